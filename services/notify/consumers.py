"""Reactions to other services' events: keep the audience read models current and turn
notable events into notices. A notice is the platform's own command
(:class:`~services.notify.application.GiveNotice`), dispatched through the command bus in
the inbox transaction (:meth:`yishi.commands.CommandBus.react`): its refusal is a recorded
``CommandRejected`` on notify's replies topic, and a redelivered event changes nothing
(the inbox, then the reply recorded under the event's id). The copies of other services'
facts are written on the inbox transaction's connection first, so a notice sees them."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from contracts import oversight, proposals, sessions, voting
from contracts.envelope import Envelope
from contracts.notify import Recipient, RecipientKind
from services.notify.application import Followed, GiveNotice
from services.notify.domain import source_notification_id
from yishi.commands import CommandBus
from yishi.runtime import ServiceContext

LOCAL = ZoneInfo("Asia/Shanghai")


def local_time(when: datetime) -> str:
    """How times appear in messages: Beijing time, to the minute."""
    return when.astimezone(LOCAL).strftime("%Y-%m-%d %H:%M")


def where(place: str | None, online_link: str | None) -> str:
    """Where a session is held, as messages say it: the place, the online link, or both.
    Cut to 200 characters: a notice's parameters are published (at most 2,000 each)."""
    text = " / ".join(p for p in (place, online_link) if p) or "-"
    return text if len(text) <= 200 else text[:199] + "…"


def notice_of(envelope: Envelope, actor: Any, template: str, params: dict[str, str], **audience: Any) -> GiveNotice:
    """The notice ``envelope``'s event asks for, about it, to ``audience`` (the fields of
    :class:`GiveNotice` naming who is addressed); its id is derived from the event's."""
    return GiveNotice(district=envelope.district, actor=actor,
                      notification_id=source_notification_id(envelope.id, template), template=template,
                      params=params, regarding=(envelope.type, envelope.subject), **audience)


def wire_consumers(ctx: ServiceContext, bus: CommandBus) -> None:
    """Subscribe to the proposals, voting and oversight events notify reacts to."""

    async def notice(conn: asyncpg.Connection, envelope: Envelope, template: str, params: dict[str, str],
                     **audience: Any) -> None:
        """Give the notice ``envelope`` asks for, through the bus (see :func:`notice_of`)."""
        await bus.react(notice_of(envelope, bus.system_actor, template, params, **audience), envelope, conn)

    # -- proposals ---------------------------------------------------------------

    async def member_seated(e: proposals.MemberSeated, env: Envelope, conn: asyncpg.Connection) -> None:
        await conn.execute("INSERT INTO council_members VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                           e.district, e.council_id, e.member_id)

    async def member_unseated(e: proposals.MemberUnseated, env: Envelope, conn: asyncpg.Connection) -> None:
        await conn.execute("DELETE FROM council_members WHERE district = $1 AND council_id = $2 AND member_id = $3",
                           e.district, e.council_id, e.member_id)

    async def proposal_raised(e: proposals.ProposalRaised, env: Envelope, conn: asyncpg.Connection) -> None:
        await conn.execute("INSERT INTO proposals VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                           e.district, e.proposal_id, e.council_id, e.title)

    async def proposal_published(e: proposals.ProposalPublished, env: Envelope, conn: asyncpg.Connection) -> None:
        title = await conn.fetchval("SELECT title FROM proposals WHERE district = $1 AND proposal_id = $2",
                                    e.district, e.proposal_id)
        await notice(conn, env, "proposal.published",
                     {"title": title or e.proposal_id, "proposal_id": e.proposal_id,
                      "notice_ends_at": local_time(e.notice_ends_at)},
                     members_of=e.council_id, followers=Followed(council_id=e.council_id, proposal_id=e.proposal_id),
                     public=True)

    # -- consultation sessions (the proposals service's) ----------------------------
    # The reminder the day before is the timer's (worker.SESSION_COMING) from the rows
    # kept here: a session scheduled again (another time, place or chair) updates its row
    # and keeps its ``reminded`` mark, so it is reminded once.

    async def session_scheduled(e: sessions.SessionScheduled, env: Envelope, conn: asyncpg.Connection) -> None:
        await conn.execute(
            "INSERT INTO sessions (district, session_id, council_id, form, starts_at, place, online_link, chair)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (district, session_id) DO UPDATE SET"
            " starts_at = EXCLUDED.starts_at, place = EXCLUDED.place, online_link = EXCLUDED.online_link,"
            " chair = EXCLUDED.chair, form = EXCLUDED.form",
            e.district, e.session_id, e.council_id, str(e.form), e.starts_at, e.place, e.online_link, e.chair)

    async def session_chair_changed(e: sessions.SessionChairChanged, env: Envelope,
                                    conn: asyncpg.Connection) -> None:
        await conn.execute("UPDATE sessions SET chair = $3 WHERE district = $1 AND session_id = $2",
                           e.district, e.session_id, e.chair)

    async def session_held(e: sessions.SessionOpened | sessions.SessionClosed, env: Envelope,
                            conn: asyncpg.Connection) -> None:
        # Once it opened, a reminder of it helps nobody (the timer also checks starts_at).
        await conn.execute("UPDATE sessions SET closed = true WHERE district = $1 AND session_id = $2",
                           e.district, e.session_id)

    async def stakeholder_invited(e: sessions.StakeholderInvited, env: Envelope, conn: asyncpg.Connection) -> None:
        await conn.execute("INSERT INTO session_invitees VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                           e.district, e.session_id, e.person_id)
        session = await conn.fetchrow("SELECT * FROM sessions WHERE district = $1 AND session_id = $2",
                                      e.district, e.session_id)
        title = await conn.fetchval("SELECT title FROM proposals WHERE district = $1 AND proposal_id = $2",
                                    e.district, e.proposal_id)
        await notice(conn, env, "session.invited",
                     {"session_id": e.session_id, "title": title or e.proposal_id, "proposal_id": e.proposal_id,
                      "starts_at": local_time(session["starts_at"]) if session else "-",
                      "where": where(session["place"], session["online_link"]) if session else "-"},
                     people=(e.person_id,))  # no expiry: one may be invited while the session is open

    async def minutes_published(e: sessions.SessionMinutesPublished, env: Envelope,
                                conn: asyncpg.Connection) -> None:
        await notice(conn, env, "session.minutes_published",
                     {"session_id": e.session_id, "held_at": local_time(e.held_at), "attendance": str(e.attendance),
                      "decisions": str(len(e.decisions))},
                     members_of=e.council_id)

    ctx.on_events("proposals", "proposals", {
        "MemberSeated": member_seated, "MemberUnseated": member_unseated,
        "ProposalRaised": proposal_raised, "ProposalPublished": proposal_published,
        "SessionScheduled": session_scheduled, "SessionChairChanged": session_chair_changed,
        "SessionOpened": session_held, "SessionClosed": session_held,
        "StakeholderInvited": stakeholder_invited, "SessionMinutesPublished": minutes_published,
    })

    # -- voting ------------------------------------------------------------------

    async def vote_opened(e: voting.VoteOpened, env: Envelope, conn: asyncpg.Connection) -> None:
        roll = list(e.terms.electorate.roll) if e.terms.electorate.roll is not None else None
        await conn.execute("INSERT INTO votes (district, vote_id, council_id, question, closes_at, roll) "
                           "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                           e.district, e.vote_id, e.council_id, e.terms.question, e.terms.closes_at, roll)
        # The electorate: the roll, or (without one) the council's members.
        electors: dict[str, Any] = {"people": roll} if roll is not None else {"members_of": e.council_id}
        proposal_id = e.matter.id if e.matter.kind == "proposal" else None
        await notice(conn, env, "vote.opened",
                     {"question": e.terms.question, "vote_id": e.vote_id, "closes_at": local_time(e.terms.closes_at)},
                     **electors, followers=Followed(council_id=e.council_id, proposal_id=proposal_id),
                     expires_at=e.terms.closes_at)

    async def ballot_accepted(e: voting.BallotAccepted, env: Envelope, conn: asyncpg.Connection) -> None:
        await conn.execute("INSERT INTO ballots VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                           e.district, e.vote_id, e.actor.id)

    async def vote_closed(e: voting.VoteClosed, env: Envelope, conn: asyncpg.Connection) -> None:
        question = await conn.fetchval(
            "UPDATE votes SET closed = true WHERE district = $1 AND vote_id = $2 RETURNING question",
            e.district, e.vote_id)
        proposal_id = e.matter.id if e.matter.kind == "proposal" else None
        await notice(conn, env, "vote.closed",
                     {"question": question or e.vote_id, "vote_id": e.vote_id, "outcome": e.outcome.value,
                      "turnout_percent": f"{e.turnout_percent:.1f}"},
                     members_of=e.council_id, followers=Followed(council_id=e.council_id, proposal_id=proposal_id),
                     public=True)

    ctx.on_events("voting", "voting", {
        "VoteOpened": vote_opened, "BallotAccepted": ballot_accepted, "VoteClosed": vote_closed,
    })

    # -- oversight ---------------------------------------------------------------

    async def resolution_registered(e: oversight.ResolutionRegistered, env: Envelope,
                                    conn: asyncpg.Connection) -> None:
        await notice(conn, env, "resolution.registered", {"title": e.title, "resolution_id": e.resolution_id},
                     members_of=e.council_id, followers=Followed(council_id=e.council_id, proposal_id=e.proposal_id),
                     public=True)

    async def add_task_person(district: str, task_id: str, resolution_id: str, person_id: str, role: str,
                              conn: asyncpg.Connection) -> None:
        await conn.execute("INSERT INTO task_people VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                           district, task_id, resolution_id, person_id, role)

    async def task_assigned(e: oversight.TaskAssigned, env: Envelope, conn: asyncpg.Connection) -> None:
        await add_task_person(e.district, e.task_id, e.resolution_id, e.implementer.id, "implementer", conn)

    async def task_accepted(e: oversight.TaskAccepted, env: Envelope, conn: asyncpg.Connection) -> None:
        await add_task_person(e.district, e.task_id, e.resolution_id, e.actor.id, "implementer_staff", conn)

    async def inspection_recorded(e: oversight.InspectionRecorded, env: Envelope, conn: asyncpg.Connection) -> None:
        await conn.executemany("INSERT INTO supervisors VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                               [(e.district, e.resolution_id, p) for p in e.inspector_ids])

    async def task_stalled(e: oversight.TaskStalled, env: Envelope, conn: asyncpg.Connection) -> None:
        await notice(conn, env, "task.stalled",
                     {"task_id": e.task_id, "stalled_after_days": str(e.stalled_after_days)},
                     people_of_task=e.task_id, followers=Followed())

    async def reminder_due(e: oversight.ReminderDue, env: Envelope, conn: asyncpg.Connection) -> None:
        # The reminded party's own subscriptions, else its default contact, else (for an
        # implementer's staff) the implementer organisation's; nobody is recorded as a failure.
        # The top of the ladder is the council above; below it, a person (or a council named
        # as supervisor, which notify cannot tell apart).
        kind = RecipientKind.COUNCIL if e.escalation_step == 3 else RecipientKind.PERSON
        await notice(conn, env, "task.reminder_due",
                     {"task_id": e.task_id, "kind": e.kind.value, "due_at": local_time(e.due_at),
                      "reminder_id": e.reminder_id},
                     people=(e.recipient_id,), via_implementer_of=e.task_id, followers=Followed(),
                     required=(Recipient(kind=kind, id=e.recipient_id),))

    ctx.on_events("oversight", "oversight", {
        "ResolutionRegistered": resolution_registered, "TaskAssigned": task_assigned,
        "TaskAccepted": task_accepted, "InspectionRecorded": inspection_recorded,
        "TaskStalled": task_stalled, "ReminderDue": reminder_due,
    })
