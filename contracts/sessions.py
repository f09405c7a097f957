"""Contracts of consultation sessions (协商日, 邀约式, 理事制, 云协商), published by the
proposals service: a council's rota of chairs and recurring schedule, each session with
its chair, agenda, invited stakeholders, attendance, and its minutes.

A session on the schedule is scheduled and then opened by the platform's timer; its id
is then :func:`session_id_for` (the council and the day), so a timer firing twice cannot
schedule it twice. Attendance is counted in person-times (人次): one per person checked
in, a proxy counted for the person who came.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field, StringConstraints

from contracts.common import Command, Event, Id, JsonInteger, Moment, NewId, Text, Title, Uri
from contracts.proposals import ConsultationForm, SeatKind


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA time zone") from None
    return name


DayOfMonth = Annotated[int, Field(ge=1, le=28, description="Every month has it: 1 to 28."), JsonInteger]
LocalTime = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$"),
                      Field(description="Local wall-clock time, HH:MM (24 h).", examples=["19:00"])]
TimeZone = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_zone),
                     Field(description="IANA time zone of `local_time`.", examples=["Asia/Shanghai"])]
CheckInCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]{4,16}$"),
                        Field(description="The session's check-in code, shown in the room.", examples=["7Q4KD2"])]


class AttendanceBy(StrEnum):
    """Who recorded an attendance."""

    SELF = "self"  # the person checked in with the session's code
    WORKER = "worker"  # the community worker (or the chair) recorded it


def session_id_for(council_id: str, starts_at: datetime) -> str:
    """The id of the session the schedule gives ``council_id`` on ``starts_at``'s day (as
    the schedule tells it): ``<council_id>-session-YYYYMMDD``, or ``session-`` and a
    digest of that when it would pass 80 characters."""
    candidate = f"{council_id}-session-{starts_at:%Y%m%d}"
    if len(candidate) <= 80 and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]*", candidate):
        return candidate
    return "session-" + hashlib.sha256(candidate.encode()).hexdigest()[:40]


# --- events --------------------------------------------------------------------------


class ChairRotaSet(Event):
    """A council set its rota of chairs: sessions on its schedule take the next in turn."""

    council_id: Id
    chairs: tuple[Id, ...] = Field(min_length=1, description="Person ids, in rota order.")


class SessionScheduleSet(Event):
    """A council set its recurring schedule: one session a month, on this day and time."""

    council_id: Id
    form: ConsultationForm
    day_of_month: DayOfMonth
    local_time: LocalTime
    timezone: TimeZone = "Asia/Shanghai"
    place: Text | None = None
    online_link: Uri | None = None


class SessionScheduled(Event):
    """A session of a council was scheduled, by its schedule's timer or by hand."""

    session_id: Id
    council_id: Id
    form: ConsultationForm
    starts_at: Moment
    place: Text | None = None
    online_link: Uri | None = None
    chair: Id
    from_rota: bool = Field(description="Whether the chair is the rota's next (else named by hand).")


class SessionChairChanged(Event):
    """The chair of a session was changed from the rota's (or the earlier) choice, with a reason."""

    session_id: Id
    council_id: Id
    chair: Id
    reason: Text


class AgendaItemAdded(Event):
    """A proposal was put on a session's agenda."""

    session_id: Id
    council_id: Id
    proposal_id: Id
    offered: bool = Field(description="True when the platform offered it after its seconding passed.")


class StakeholderInvited(Event):
    """A stakeholder was invited to speak on one agenda item of a session, and only on it."""

    session_id: Id
    council_id: Id
    proposal_id: Id
    person_id: Id
    kind: SeatKind
    name: Title | None = None


class SessionOpened(Event):
    """A session opened: by the timer at its start, or by hand."""

    session_id: Id
    council_id: Id
    opened_at: Moment
    chair: Id


class AttendanceRecorded(Event):
    """One person-time of attendance: a person checked in, or was recorded by the worker."""

    session_id: Id
    council_id: Id
    person_id: Id
    by: AttendanceBy
    proxy_for: Id | None = Field(default=None, description="The resident this person attends for (a household "
                                 "member as proxy), where the council's rules allow proxies.")


class SessionClosed(Event):
    """A session closed; invitations to speak end with it."""

    session_id: Id
    council_id: Id
    closed_at: Moment


class SessionMinutesPublished(Event):
    """The minutes of a closed session: who chaired, the agenda, attendance, and what was said and decided."""

    session_id: Id
    council_id: Id
    form: ConsultationForm
    held_at: Moment
    chair: Id
    agenda: tuple[Id, ...] = Field(description="Proposal ids, in agenda order.")
    attendance: Annotated[int, Field(ge=0, description="Person-times (人次), proxies included."), JsonInteger]
    proxies: Annotated[int, Field(ge=0, description="Of which attended as proxies."), JsonInteger]
    statements: tuple[Id, ...] = Field(description="Statements made in the session.")
    votes: tuple[Id, ...] = Field(description="Votes requested in the session.")
    decisions: tuple[Id, ...] = Field(description="Proposal ids decided by votes requested in the session.")
    text: Text | None = None


# --- commands ------------------------------------------------------------------------


class SetChairRota(Command):
    """Set a council's rota of chairs (in order); the schedule's sessions take them in turn."""

    council_id: Id
    chairs: tuple[Id, ...] = Field(min_length=1, max_length=200)


class SetSessionSchedule(Command):
    """Set a council's monthly schedule; the platform schedules and opens each session."""

    council_id: Id
    form: ConsultationForm
    day_of_month: DayOfMonth
    local_time: LocalTime
    timezone: TimeZone = "Asia/Shanghai"
    place: Text | None = None
    online_link: Uri | None = None


class ScheduleSession(Command):
    """Schedule a session by hand; without a chair, the rota's next chairs it."""

    session_id: NewId = None
    council_id: Id
    form: ConsultationForm
    starts_at: Moment
    place: Text | None = None
    online_link: Uri | None = None
    chair: Id | None = None


class ChangeSessionChair(Command):
    """Override a session's chair, with the reason recorded."""

    session_id: Id
    chair: Id
    reason: Text


class AddAgendaItem(Command):
    """Put a proposal of the council on a session's agenda."""

    session_id: Id
    proposal_id: Id


class InviteStakeholder(Command):
    """Invite a stakeholder to speak on one agenda item of a session."""

    session_id: Id
    proposal_id: Id
    person_id: Id
    kind: SeatKind
    name: Title | None = None


class OpenSession(Command):
    """Open a scheduled session by hand (the timer opens it at its start otherwise)."""

    session_id: Id


class CheckIn(Command):
    """Check in to an open session as the actor, with the session's code."""

    session_id: Id
    code: CheckInCode
    proxy_for: Id | None = Field(default=None, description="The resident the actor attends for, where the "
                                 "council's rules allow proxies.")


class RecordAttendance(Command):
    """Record a person's attendance (the community worker or the chair)."""

    session_id: Id
    person_id: Id
    proxy_for: Id | None = None


class CloseSession(Command):
    """Close an open session; invitations end."""

    session_id: Id


class PublishMinutes(Command):
    """Publish the minutes of a closed session."""

    session_id: Id
    text: Text | None = None
