"""Command handlers of consultation sessions (:mod:`services.proposals.domain.session`):
a council's rota and schedule, each session's chair, agenda, invitations, attendance and
minutes, and the platform's own commands about them (the schedule's timer,
:mod:`services.proposals.timer`; the agenda offer after a seconding that passed,
:func:`offer`, sent from ``SecondMotion``'s handler). Registered on the service's bus by
:func:`register`, as :mod:`services.proposals.application` registers the rest."""

from __future__ import annotations

import secrets
from datetime import datetime

from contracts.common import Command, Id, Moment, RejectionReason
from contracts.permissions import Party
from contracts.sessions import (
    AddAgendaItem,
    ChangeSessionChair,
    CheckIn,
    CloseSession,
    InviteStakeholder,
    OpenSession,
    PublishMinutes,
    RecordAttendance,
    ScheduleSession,
    SetChairRota,
    SetSessionSchedule,
    session_id_for,
)
from services.proposals.domain import Calendar, Council, Proposal, Session, SessionStatus
from yishi.commands import CommandBus, CommandContext
from yishi.rules import Rejected

CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
"""Check-in codes are read aloud and typed on phones: no 0/O, 1/I."""


def new_code() -> str:
    """A fresh check-in code: six characters, about 30 bits."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(6))


class ScheduleFromCalendar(Command):
    """Internal, the schedule's timer: schedule the council's next session, due at ``starts_at``."""

    council_id: Id
    starts_at: Moment


class OpenDueSession(Command):
    """Internal, the schedule's timer: open a scheduled session whose start has come."""

    session_id: Id


class OfferForAgenda(Command):
    """Internal, after a seconding passed: offer the proposal for its council's next session."""

    proposal_id: Id


async def council_calendar(ctx: CommandContext, cmd: Command, council_id: str) -> tuple[Council, Calendar]:
    """The council ``cmd`` addresses, once the caller may act for it, and its calendar
    (an empty one if it has none yet)."""
    council = await ctx.load(Council, cmd.district, council_id)
    ctx.authorise_party(cmd, {Party.COUNCIL: council_id}, council_id)
    calendar = await ctx.find(Calendar, cmd.district, council_id)
    return council, calendar or Calendar.open_for(council, ctx.clock.now())


async def addressed_session(ctx: CommandContext, cmd: Command, session_id: str) -> Session:
    """The session ``cmd`` addresses, once the caller may act for its council."""
    session = await ctx.load(Session, cmd.district, session_id)
    ctx.authorise_party(cmd, {Party.COUNCIL: session.council_id}, session_id)
    return session


def next_session(sessions: list[Session]) -> Session | None:
    """The earliest of the scheduled (not yet open) ``sessions``."""
    waiting = [s for s in sessions if s.status == SessionStatus.SCHEDULED]
    return min(waiting, key=lambda s: s.starts_at) if waiting else None


async def offer(bus: CommandBus, ctx: CommandContext, district: str, council_id: str, proposal_id: str) -> None:
    """The platform's reaction to a seconding that passed, in the seconding's transaction
    ``ctx``: an :class:`OfferForAgenda` through ``bus``, whose refusal (no session
    scheduled) is a recorded reply and leaves the seconding standing. Only for a council
    that holds sessions (it has a calendar): others are offered nothing."""
    if await ctx.find(Calendar, district, council_id) is None:
        return
    command = OfferForAgenda(district=district, actor=bus.system_actor, proposal_id=proposal_id)
    await bus.dispatch(command, command_id=f"{ctx.command_id}:offer", correlation_id=ctx.correlation_id,
                       principal=bus.platform, conn=ctx.conn, key=f"offer:{ctx.command_id}")


def register(bus: CommandBus) -> None:
    """Register the session handlers on the proposals service's ``bus``."""

    async def schedule(ctx: CommandContext, cmd: Command, *, session_id: str, council: Council, calendar: Calendar,
                       form: str, starts_at: datetime, place: str | None, online_link: str | None,
                       chair: str | None, from_schedule: bool) -> str:
        await ctx.ensure_new(Session, cmd.district, session_id)
        now = ctx.clock.now()
        session = Session.schedule(session_id=session_id, council=council, calendar=calendar, form=form,
                                   starts_at=starts_at, place=place, online_link=online_link, chair=chair,
                                   code=new_code(), now=now, from_schedule=from_schedule)
        calendar.took(session, from_schedule=from_schedule, now=now)
        await ctx.save(cmd, session, calendar)
        return session_id

    @bus.handles(SetChairRota)
    async def set_chair_rota(cmd: SetChairRota, ctx: CommandContext) -> str:
        _, calendar = await council_calendar(ctx, cmd, cmd.council_id)
        calendar.set_rota(chairs=list(cmd.chairs), now=ctx.clock.now())
        await ctx.save(cmd, calendar)
        return cmd.council_id

    @bus.handles(SetSessionSchedule)
    async def set_session_schedule(cmd: SetSessionSchedule, ctx: CommandContext) -> str:
        council, calendar = await council_calendar(ctx, cmd, cmd.council_id)
        calendar.set_schedule(council=council, schedule=cmd.model_dump(
            mode="json", include={"form", "day_of_month", "local_time", "timezone", "place", "online_link"}),
            now=ctx.clock.now())
        await ctx.save(cmd, calendar)
        return cmd.council_id

    @bus.handles(ScheduleSession)
    async def schedule_session(cmd: ScheduleSession, ctx: CommandContext) -> str:
        council, calendar = await council_calendar(ctx, cmd, cmd.council_id)
        return await schedule(ctx, cmd, session_id=cmd.session_id, council=council, calendar=calendar, form=cmd.form,
                              starts_at=cmd.starts_at, place=cmd.place, online_link=cmd.online_link, chair=cmd.chair,
                              from_schedule=False)

    @bus.handles(ScheduleFromCalendar, internal=True)
    async def schedule_from_calendar(cmd: ScheduleFromCalendar, ctx: CommandContext) -> str:
        """Schedule the session the calendar has due at ``starts_at`` (a timer that fired
        twice finds it scheduled: ``invalid_state``, or its id taken)."""
        council = await ctx.load(Council, cmd.district, cmd.council_id)
        calendar = await ctx.load(Calendar, cmd.district, cmd.council_id)
        if calendar.due() != cmd.starts_at:
            raise Rejected(RejectionReason.INVALID_STATE,
                           f"{cmd.council_id} has no session due at {cmd.starts_at.isoformat()}", cmd.council_id)
        plan = calendar.schedule or {}
        return await schedule(ctx, cmd, session_id=session_id_for(cmd.council_id, cmd.starts_at), council=council,
                              calendar=calendar, form=plan["form"], starts_at=cmd.starts_at, place=plan.get("place"),
                              online_link=plan.get("online_link"), chair=None, from_schedule=True)

    @bus.handles(ChangeSessionChair)
    async def change_session_chair(cmd: ChangeSessionChair, ctx: CommandContext) -> str:
        session = await addressed_session(ctx, cmd, cmd.session_id)
        session.change_chair(chair=cmd.chair, reason=cmd.reason, now=ctx.clock.now())
        await ctx.save(cmd, session)
        return cmd.session_id

    @bus.handles(AddAgendaItem)
    async def add_agenda_item(cmd: AddAgendaItem, ctx: CommandContext) -> str:
        session = await addressed_session(ctx, cmd, cmd.session_id)
        proposal = await ctx.load(Proposal, cmd.district, cmd.proposal_id)
        session.add_item(proposal=proposal, offered=False, now=ctx.clock.now())
        await ctx.save(cmd, session)
        return cmd.session_id

    @bus.handles(OfferForAgenda, internal=True)
    async def offer_for_agenda(cmd: OfferForAgenda, ctx: CommandContext) -> str:
        """Put a proposal whose seconding passed on its council's next scheduled session."""
        proposal = await ctx.load(Proposal, cmd.district, cmd.proposal_id)
        calendar = await ctx.find(Calendar, cmd.district, proposal.council_id)
        sessions = [s for s in await ctx.repository.get_each(
            *((Session, Session.create_id(cmd.district, i)) for i in (calendar.sessions if calendar else ())),
            conn=ctx.conn) if s is not None]
        session = next_session(sessions)
        if session is None:
            raise Rejected(RejectionReason.INVALID_STATE,
                           f"{proposal.council_id} has no session scheduled to offer {cmd.proposal_id} for",
                           cmd.proposal_id)
        session.add_item(proposal=proposal, offered=True, now=ctx.clock.now())
        await ctx.save(cmd, session)
        return session.session_id

    @bus.handles(InviteStakeholder)
    async def invite_stakeholder(cmd: InviteStakeholder, ctx: CommandContext) -> str:
        session = await addressed_session(ctx, cmd, cmd.session_id)
        session.invite(proposal_id=cmd.proposal_id, person_id=cmd.person_id, kind=cmd.kind, name=cmd.name,
                       now=ctx.clock.now())
        await ctx.save(cmd, session)
        return cmd.session_id

    async def open_session(ctx: CommandContext, cmd: Command, session: Session) -> str:
        now = ctx.clock.now()
        session.open(now)
        calendar = await ctx.find(Calendar, cmd.district, session.council_id)
        changed = [session]
        if calendar is not None and calendar.pending == session.session_id:
            calendar.opened(session, now)
            changed.append(calendar)
        await ctx.save(cmd, *changed)
        return session.session_id

    @bus.handles(OpenSession)
    async def open_by_hand(cmd: OpenSession, ctx: CommandContext) -> str:
        return await open_session(ctx, cmd, await addressed_session(ctx, cmd, cmd.session_id))

    @bus.handles(OpenDueSession, internal=True)
    async def open_due_session(cmd: OpenDueSession, ctx: CommandContext) -> str:
        """Open a session at its start (one opened meanwhile by hand: ``invalid_state``)."""
        session = await ctx.load(Session, cmd.district, cmd.session_id)
        if session.starts_at > ctx.clock.now():
            raise Rejected(RejectionReason.INVALID_STATE, f"session {cmd.session_id} starts "
                           f"{session.starts_at.isoformat()}", cmd.session_id)
        return await open_session(ctx, cmd, session)

    @bus.handles(CheckIn)
    async def check_in(cmd: CheckIn, ctx: CommandContext) -> str:
        session = await ctx.load(Session, cmd.district, cmd.session_id)
        council = await ctx.load(Council, cmd.district, session.council_id)
        session.check_in(person_id=cmd.actor.id, code=cmd.code, proxy_for=cmd.proxy_for, council=council,
                         now=ctx.clock.now())
        await ctx.save(cmd, session)
        return cmd.session_id

    @bus.handles(RecordAttendance)
    async def record_attendance(cmd: RecordAttendance, ctx: CommandContext) -> str:
        session = await addressed_session(ctx, cmd, cmd.session_id)
        council = await ctx.load(Council, cmd.district, session.council_id)
        session.record_attendance(person_id=cmd.person_id, proxy_for=cmd.proxy_for, council=council,
                                  now=ctx.clock.now())
        await ctx.save(cmd, session)
        return cmd.session_id

    @bus.handles(CloseSession)
    async def close_session(cmd: CloseSession, ctx: CommandContext) -> str:
        session = await addressed_session(ctx, cmd, cmd.session_id)
        session.close(ctx.clock.now())
        await ctx.save(cmd, session)
        return cmd.session_id

    @bus.handles(PublishMinutes)
    async def publish_minutes(cmd: PublishMinutes, ctx: CommandContext) -> str:
        session = await addressed_session(ctx, cmd, cmd.session_id)
        session.publish_minutes(text=cmd.text, now=ctx.clock.now())
        await ctx.save(cmd, session)
        return cmd.session_id
