"""Consultation sessions (协商日, 邀约式, 理事制, 云协商): a council's calendar (its rota of
chairs and its monthly schedule) and each session, with its chair, agenda, invited
stakeholders, attendance and minutes.

The calendar decides what the schedule's timer does next: :meth:`Calendar.due` is the
start of the next session to schedule (one at a time: the next is scheduled once the
previous one opened), and every session takes the rota's next chair unless one is named.
Sessions are opened by the timer at their start (or by hand), closed by hand; an invited
stakeholder speaks on the item invited for while the session is open, and only then.
"""

from __future__ import annotations

import uuid
from datetime import datetime, time
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from eventsourcing.domain import Aggregate, event

from contracts.common import RejectionReason
from services.proposals.domain.council import Council
from services.proposals.domain.rules import stream_id
from yishi.rules import Rejected

if TYPE_CHECKING:  # the proposal module imports this one
    from services.proposals.domain.proposal import Proposal


class SessionStatus(StrEnum):
    """Where a session stands."""

    SCHEDULED = "scheduled"
    OPEN = "open"
    CLOSED = "closed"
    MINUTED = "minuted"  # closed, its minutes published


def next_occurrence(schedule: dict[str, Any], after: datetime) -> datetime:
    """The first start of the monthly ``schedule`` strictly after ``after``: its day of the
    month at its local time in its time zone (aware, in that zone)."""
    zone = ZoneInfo(schedule["timezone"])
    hour, minute = (int(part) for part in schedule["local_time"].split(":"))
    local = after.astimezone(zone)
    year, month = local.year, local.month
    while True:
        candidate = datetime.combine(
            datetime(year, month, schedule["day_of_month"]).date(), time(hour, minute), tzinfo=zone)
        if candidate > after:
            return candidate
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def _check_form(council: Council, form: str) -> None:
    if form not in council.rules.get("forms", ()):
        raise Rejected(RejectionReason.INVALID_STATE,
                       f"{council.council_id} does not consult in the form {form}", council.council_id)


class Calendar(Aggregate):
    """A council's rota of chairs and its monthly schedule (one stream per council)."""

    @staticmethod
    def create_id(district: str, council_id: str) -> uuid.UUID:
        return stream_id("calendar", district, council_id)

    @classmethod
    def open_for(cls, council: Council, now: datetime) -> Calendar:
        """A council's calendar, empty: no rota, no schedule."""
        return cls(district=council.district, council_id=council.council_id, at=now)

    @event("Opened")
    def __init__(self, district: str, council_id: str, at: datetime) -> None:
        self.district = district
        self.council_id = council_id
        self.chairs: list[str] = []
        self.turn = 0  # sessions that took their chair from the rota
        self.schedule: dict[str, Any] | None = None
        self.next_at: datetime | None = None  # the next start to schedule, None while one is pending
        self.pending: str | None = None  # the schedule's session not opened yet
        self.sessions: list[str] = []  # every session scheduled for the council, in order

    # -- rules --

    def set_rota(self, *, chairs: list[str], now: datetime) -> None:
        """Set the rota; the next session from the rota takes its first chair."""
        if len(set(chairs)) != len(chairs):
            raise Rejected(RejectionReason.INVALID_COMMAND, "the rota names a person twice", self.council_id)
        self._rota_set(council_id=self.council_id, chairs=list(chairs), at=now)

    def set_schedule(self, *, council: Council, schedule: dict[str, Any], now: datetime) -> None:
        """Set the monthly schedule; its first session is the first occurrence after ``now``
        (unless one is pending: the next follows it)."""
        _check_form(council, schedule["form"])
        self._schedule_set(council_id=self.council_id, schedule=schedule,
                           next_at=None if self.pending else next_occurrence(schedule, now), at=now)

    def due(self) -> datetime | None:
        """The start of the session the timer should schedule, if any (it is scheduled at
        once: it is the council's next session from then on)."""
        return self.next_at if self.schedule and self.pending is None and self.next_at is not None else None

    def next_chair(self) -> str | None:
        """The rota's next chair (None without a rota)."""
        return self.chairs[self.turn % len(self.chairs)] if self.chairs else None

    def chair_for(self, chair: str | None) -> tuple[str, bool]:
        """The chair of a new session and whether it comes from the rota."""
        if chair is not None:
            return chair, False
        turn = self.next_chair()
        if turn is None:
            raise Rejected(RejectionReason.INVALID_STATE,
                           f"{self.council_id} has no rota of chairs: name the chair", self.council_id)
        return turn, True

    def took(self, session: Session, *, from_schedule: bool, now: datetime) -> None:
        """Record a session scheduled for the council (advancing the rota if it took its
        chair from it); a session of the schedule is pending until it opens."""
        self._session_taken(session_id=session.session_id, from_rota=session.from_rota,
                            from_schedule=from_schedule, at=now)

    def opened(self, session: Session, now: datetime) -> None:
        """A session opened; if it was the schedule's pending one, the next start is due."""
        if session.session_id == self.pending and self.schedule is not None:
            self._pending_opened(session_id=session.session_id,
                                 next_at=next_occurrence(self.schedule, session.starts_at), at=now)

    # -- events --

    @event("RotaSet")
    def _rota_set(self, council_id: str, chairs: list[str], at: datetime) -> None:
        self.chairs = chairs
        self.turn = 0

    @event("ScheduleSet")
    def _schedule_set(self, council_id: str, schedule: dict[str, Any], next_at: datetime | None,
                      at: datetime) -> None:
        self.schedule = schedule
        if next_at is not None:
            self.next_at = next_at

    @event("SessionTaken")
    def _session_taken(self, session_id: str, from_rota: bool, from_schedule: bool, at: datetime) -> None:
        self.sessions.append(session_id)
        if from_rota:
            self.turn += 1
        if from_schedule:
            self.pending = session_id
            self.next_at = None

    @event("PendingOpened")
    def _pending_opened(self, session_id: str, next_at: datetime, at: datetime) -> None:
        self.pending = None
        self.next_at = next_at


class Session(Aggregate):
    """One consultation session of a council."""

    @staticmethod
    def create_id(district: str, session_id: str) -> uuid.UUID:
        return stream_id("session", district, session_id)

    @classmethod
    def schedule(cls, *, session_id: str, council: Council, calendar: Calendar, form: str, starts_at: datetime,
                 place: str | None, online_link: str | None, chair: str | None, code: str,
                 now: datetime, from_schedule: bool = False) -> Session:
        """Schedule a session of ``council`` in one of its forms, starting after ``now``
        (or when its schedule says, ``from_schedule``: a start the timer missed while the
        service was down is still that month's session, opened at once); without
        ``chair``, the rota's next chairs it. ``code`` is its check-in code."""
        _check_form(council, form)
        if starts_at <= now and not from_schedule:
            raise Rejected(RejectionReason.INVALID_COMMAND, "the session would start in the past", session_id)
        chosen, from_rota = calendar.chair_for(chair)
        return cls(district=council.district, session_id=session_id, council_id=council.council_id, form=str(form),
                   starts_at=starts_at, place=place, online_link=online_link, chair=chosen, from_rota=from_rota,
                   code=code, at=now)

    @event("Scheduled")
    def __init__(self, district: str, session_id: str, council_id: str, form: str, starts_at: datetime,
                 place: str | None, online_link: str | None, chair: str, from_rota: bool, code: str,
                 at: datetime) -> None:
        self.district = district
        self.session_id = session_id
        self.council_id = council_id
        self.form = form
        self.starts_at = starts_at
        self.place = place
        self.online_link = online_link
        self.chair = chair
        self.from_rota = from_rota
        self.code = code
        self.status = SessionStatus.SCHEDULED.value
        self.opened_at: datetime | None = None
        self.closed_at: datetime | None = None
        self.agenda: list[str] = []
        self.invited: dict[str, list[str]] = {}  # proposal id → person ids
        self.attendance: list[dict[str, Any]] = []
        self.statements: list[str] = []
        self.votes: list[dict[str, str]] = []
        self.decisions: list[str] = []

    # -- queries --

    def invited_for(self, person_id: str) -> list[str]:
        """The agenda items ``person_id`` is invited to speak on."""
        return [proposal_id for proposal_id, people in self.invited.items() if person_id in people]

    def present(self, people: set[str] | None = None) -> int:
        """Person-times of attendance, counted for those the attendee is or stands for;
        of ``people`` only, when given."""
        return sum(1 for a in self.attendance
                   if people is None or (a["proxy_for"] or a["person_id"]) in people)

    @property
    def _ids(self) -> dict[str, str]:
        """What every event of a session names: the session and its council."""
        return {"session_id": self.session_id, "council_id": self.council_id}

    def _require(self, *statuses: str, doing: str) -> None:
        if self.status not in statuses:
            raise Rejected(RejectionReason.INVALID_STATE,
                           f"session {self.session_id} is {self.status}: cannot {doing}", self.session_id)

    # -- rules --

    def change_chair(self, *, chair: str, reason: str, now: datetime) -> None:
        """Override the chair before the session closes, with the reason on record."""
        self._require(SessionStatus.SCHEDULED, SessionStatus.OPEN, doing="change its chair")
        if chair == self.chair:
            raise Rejected(RejectionReason.INVALID_STATE, f"{chair} already chairs {self.session_id}",
                           self.session_id)
        self._chair_changed(**self._ids, chair=chair, reason=reason, at=now)

    def add_item(self, *, proposal: Proposal, offered: bool, now: datetime) -> None:
        """Put ``proposal`` (one of the council's, still undecided) on the agenda."""
        self._require(SessionStatus.SCHEDULED, SessionStatus.OPEN, doing="add to its agenda")
        if proposal.council_id != self.council_id or proposal.status not in ("raised", "published", "voting"):
            raise Rejected(RejectionReason.INVALID_STATE,
                           f"proposal {proposal.proposal_id} is {proposal.status} before {proposal.council_id}: "
                           f"not an item for {self.session_id}", self.session_id)
        if proposal.proposal_id in self.agenda:
            raise Rejected(RejectionReason.DUPLICATE,
                           f"proposal {proposal.proposal_id} is already on the agenda", self.session_id)
        self._item_added(**self._ids, proposal_id=proposal.proposal_id, offered=offered, at=now)

    def invite(self, *, proposal_id: str, person_id: str, kind: str, name: str | None, now: datetime) -> None:
        """Invite a stakeholder to speak on one agenda item."""
        self._require(SessionStatus.SCHEDULED, SessionStatus.OPEN, doing="invite")
        if proposal_id not in self.agenda:
            raise Rejected(RejectionReason.INVALID_STATE, f"proposal {proposal_id} is not on the agenda",
                           self.session_id)
        if person_id in self.invited.get(proposal_id, ()):
            raise Rejected(RejectionReason.DUPLICATE, f"{person_id} is already invited to {proposal_id}",
                           self.session_id)
        self._invited(**self._ids, proposal_id=proposal_id, person_id=person_id, kind=str(kind), name=name, at=now)

    def open(self, now: datetime) -> None:
        """Open the session (the timer at its start, or by hand)."""
        self._require(SessionStatus.SCHEDULED, doing="open")
        self._opened(**self._ids, chair=self.chair, at=now)

    def check_in(self, *, person_id: str, code: str, proxy_for: str | None, council: Council,
                 now: datetime) -> None:
        """The person checks in with the session's code."""
        self._require(SessionStatus.OPEN, doing="check in")
        if code != self.code:
            raise Rejected(RejectionReason.NOT_AUTHORISED, "that is not the session's check-in code",
                           self.session_id)
        self._attend(person_id=person_id, by="self", proxy_for=proxy_for, council=council, now=now)

    def record_attendance(self, *, person_id: str, proxy_for: str | None, council: Council, now: datetime) -> None:
        """The community worker (or chair) records the person's attendance."""
        self._require(SessionStatus.OPEN, doing="record attendance")
        self._attend(person_id=person_id, by="worker", proxy_for=proxy_for, council=council, now=now)

    def _attend(self, *, person_id: str, by: str, proxy_for: str | None, council: Council, now: datetime) -> None:
        if proxy_for is not None and not council.rules.get("proxies_allowed", False):
            raise Rejected(RejectionReason.NOT_AUTHORISED,
                           f"{self.council_id}'s rules allow no proxies", self.session_id)
        # One person-time per person: who attends for a resident counts as that resident.
        who = proxy_for or person_id
        if who in {a["proxy_for"] or a["person_id"] for a in self.attendance}:
            raise Rejected(RejectionReason.DUPLICATE, f"{who} is already recorded as present", self.session_id)
        self._attended(**self._ids, person_id=person_id, by=by, proxy_for=proxy_for, at=now)

    def admit_speaker(self, *, proposal_id: str, speaker_id: str) -> bool:
        """Whether ``speaker_id`` speaks on ``proposal_id`` in this session as an invited
        stakeholder; refused when the session is not open, the item is not on the agenda,
        or the speaker is invited to other items only."""
        if self.status != SessionStatus.OPEN:
            raise Rejected(RejectionReason.NOT_AUTHORISED,
                           f"session {self.session_id} is {self.status}: no statements in it", self.session_id)
        if proposal_id not in self.agenda:
            raise Rejected(RejectionReason.NOT_AUTHORISED,
                           f"proposal {proposal_id} is not on the agenda of {self.session_id}", self.session_id)
        items = self.invited_for(speaker_id)
        if items and proposal_id not in items:
            raise Rejected(RejectionReason.NOT_AUTHORISED,
                           f"{speaker_id} is invited to speak on {', '.join(items)} only", self.session_id)
        return proposal_id in items

    def link_statement(self, statement_id: str, now: datetime) -> None:
        """A statement was made in the session."""
        self._statement_linked(**self._ids, statement_id=statement_id, at=now)

    def admit_vote(self, *, proposal_id: str, council_id: str, electorate: dict[str, Any], quorum: Any) -> None:
        """A vote on ``proposal_id`` may be requested in the session: it is open, the item
        is on its agenda, and those present make the vote's quorum (of the roll when the
        electorate has one, else of every person-time)."""
        if council_id != self.council_id or self.status != SessionStatus.OPEN or proposal_id not in self.agenda:
            raise Rejected(RejectionReason.INVALID_STATE,
                           f"no vote on {proposal_id} in {self.session_id}: the session is {self.status}, of "
                           f"{self.council_id}, and must be open with the item on its agenda", self.session_id)
        roll = electorate.get("roll")
        present = self.present(set(roll) if roll is not None else None)
        if present < quorum * electorate["size"]:
            raise Rejected(RejectionReason.INVALID_STATE,
                           f"{present} of {electorate['size']} electors present in {self.session_id}: "
                           f"short of the quorum of {quorum}", self.session_id)

    def link_vote(self, *, vote_id: str, proposal_id: str, now: datetime) -> None:
        """A vote was requested in the session."""
        self._vote_linked(**self._ids, vote_id=vote_id, proposal_id=proposal_id, at=now)

    def link_decision(self, *, vote_id: str, proposal_id: str, now: datetime) -> bool:
        """A vote requested in the session decided its proposal; False if not this session's vote."""
        if not any(v["vote_id"] == vote_id for v in self.votes) or proposal_id in self.decisions:
            return False
        self._decision_linked(**self._ids, proposal_id=proposal_id, at=now)
        return True

    def close(self, now: datetime) -> None:
        """Close the session; invitations end."""
        self._require(SessionStatus.OPEN, doing="close")
        self._closed(**self._ids, at=now)

    def publish_minutes(self, *, text: str | None, now: datetime) -> None:
        """Publish the minutes of the closed session."""
        if self.status == SessionStatus.MINUTED:
            raise Rejected(RejectionReason.DUPLICATE, f"the minutes of {self.session_id} are published",
                           self.session_id)
        self._require(SessionStatus.CLOSED, doing="publish its minutes")
        self._minutes_published(
            **self._ids, form=self.form, held_at=self.opened_at,
            chair=self.chair, agenda=list(self.agenda), attendance=self.present(),
            proxies=sum(1 for a in self.attendance if a["proxy_for"]), statements=list(self.statements),
            votes=[v["vote_id"] for v in self.votes], decisions=list(self.decisions), text=text, at=now)

    # -- events --

    @event("ChairChanged")
    def _chair_changed(self, session_id: str, council_id: str, chair: str, reason: str, at: datetime) -> None:
        self.chair = chair
        self.from_rota = False

    @event("ItemAdded")
    def _item_added(self, session_id: str, council_id: str, proposal_id: str, offered: bool, at: datetime) -> None:
        self.agenda.append(proposal_id)

    @event("StakeholderInvited")
    def _invited(self, session_id: str, council_id: str, proposal_id: str, person_id: str, kind: str,
                 name: str | None, at: datetime) -> None:
        self.invited.setdefault(proposal_id, []).append(person_id)

    @event("Opened")
    def _opened(self, session_id: str, council_id: str, chair: str, at: datetime) -> None:
        self.status = SessionStatus.OPEN.value
        self.opened_at = at

    @event("Attended")
    def _attended(self, session_id: str, council_id: str, person_id: str, by: str, proxy_for: str | None,
                  at: datetime) -> None:
        self.attendance.append({"person_id": person_id, "by": by, "proxy_for": proxy_for})

    @event("StatementLinked")
    def _statement_linked(self, session_id: str, council_id: str, statement_id: str, at: datetime) -> None:
        self.statements.append(statement_id)

    @event("VoteLinked")
    def _vote_linked(self, session_id: str, council_id: str, vote_id: str, proposal_id: str, at: datetime) -> None:
        self.votes.append({"vote_id": vote_id, "proposal_id": proposal_id})

    @event("DecisionLinked")
    def _decision_linked(self, session_id: str, council_id: str, proposal_id: str, at: datetime) -> None:
        self.decisions.append(proposal_id)

    @event("Closed")
    def _closed(self, session_id: str, council_id: str, at: datetime) -> None:
        self.status = SessionStatus.CLOSED.value
        self.closed_at = at

    @event("MinutesPublished")
    def _minutes_published(self, session_id: str, council_id: str, form: str, held_at: datetime, chair: str,
                           agenda: list[str], attendance: int, proxies: int, statements: list[str],
                           votes: list[str], decisions: list[str], text: str | None, at: datetime) -> None:
        self.status = SessionStatus.MINUTED.value

