"""Reactions to other services' public events, each inside the inbox transaction.

Oversight learns about proposals, votes and councils only from these events: the audit
trail of a resolution is built from them (plus oversight's own events), and an adopted
``ProposalDecided`` registers the resolution through the internal command
:class:`RegisterDecidedResolution`, handled by the bus like any other
(:mod:`services.oversight.application`): a redelivered decision changes nothing and a
refusal is a recorded ``CommandRejected``.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from contracts import registry
from contracts.common import Actor, Command, Id, Text, Title, VoteMatterKind
from contracts.envelope import Envelope
from contracts.notify import NotificationDelivered, NotificationFailed, NotificationRequested
from contracts.proposals import CouncilFormed, Decision, ProposalDecided
from contracts.sessions import AttendanceRecorded, SessionMinutesPublished
from yishi.commands import CommandBus
from yishi.runtime import ServiceContext

from services.oversight import projections

# Steps of deliberation and decision that make up a resolution's record.
PROPOSAL_STEPS = ("ProposalRaised", "ProposalPublished", "MotionSeconded", "ObjectionLodged", "StatementMade",
                  "VoteRequested", "ProposalEscalated", "ProposalWithdrawn", "ProposalReturnedForReconsultation")
VOTING_STEPS = ("VoteOpened", "BallotAccepted", "VoteClosed")


class RegisterDecidedResolution(Command):
    """Internal: register the resolution of an adopted proposal."""

    proposal_id: Id
    council_id: Id
    vote_id: Id
    catalogue_item_id: Id | None = None
    title: Title
    text: Text


def decided(event: ProposalDecided, actor: Actor) -> RegisterDecidedResolution | None:
    """The resolution an adopted proposal asks for; none for any other decision."""
    if event.decision != Decision.ADOPTED:
        return None
    return RegisterDecidedResolution(district=event.district, actor=actor, proposal_id=event.proposal_id,
                                     council_id=event.council_id, vote_id=event.vote_id,
                                     catalogue_item_id=event.catalogue_item_id, title=event.title,
                                     text=event.resolution or event.title)


async def record_step(model: Any, envelope: Envelope, conn: asyncpg.Connection) -> None:
    """Keep one consumed event as a step of the audit trail, keyed by proposal and vote."""
    proposal_id = getattr(model, "proposal_id", None)
    matter = getattr(model, "matter", None)
    if proposal_id is None and matter is not None and matter.kind == VoteMatterKind.PROPOSAL:
        proposal_id = matter.id
    source = registry.spec(envelope.type).service
    await projections.insert_audit(conn, model.district, source, envelope.id, envelope.type, model,
                                   proposal_id=proposal_id, vote_id=getattr(model, "vote_id", None),
                                   resolution_id=getattr(model, "resolution_id", None))


def wire_consumers(ctx: ServiceContext, bus: CommandBus) -> None:
    """Subscribe to the proposals, voting and notify events topics."""
    async def proposal_decided(model: ProposalDecided, envelope: Envelope, conn: asyncpg.Connection) -> None:
        # The step is kept whatever the decision, and before the reaction: the reaction's
        # own savepoint rolls back only what a refused command wrote.
        await record_step(model, envelope, conn)
        command = decided(model, bus.system_actor)
        if command is not None:
            await bus.react(command, envelope, conn)

    async def council_formed(model: CouncilFormed, envelope: Envelope, conn: asyncpg.Connection) -> None:
        await projections.record_council(conn, model)

    # The statistics count sessions held (a session is held on the record once its minutes
    # are published: they carry its form) and attendance person-times.
    async def minutes_published(model: SessionMinutesPublished, envelope: Envelope,
                                conn: asyncpg.Connection) -> None:
        await projections.record_session(conn, model)

    async def attendance_recorded(model: AttendanceRecorded, envelope: Envelope, conn: asyncpg.Connection) -> None:
        await projections.record_attendance(conn, model)

    ctx.on_events("proposals", "proposals", {
        **{name: record_step for name in PROPOSAL_STEPS},
        "ProposalDecided": proposal_decided,
        "CouncilFormed": council_formed,
        "SessionMinutesPublished": minutes_published,
        "AttendanceRecorded": attendance_recorded,
    })
    ctx.on_events("voting", "voting", {name: record_step for name in VOTING_STEPS})

    # Whether each reminder reached anyone: notify's public events, shown on the task (and
    # in the resolution's trail). A reminder's notice names it in its parameters.
    async def notification_requested(model: NotificationRequested, envelope: Envelope,
                                     conn: asyncpg.Connection) -> None:
        reminder_id = model.params.get("reminder_id")
        if model.regarding is not None and model.regarding.type == "ReminderDue" and reminder_id:
            await projections.record_reminder_notice(conn, model.district, model.notification_id, reminder_id)

    async def notification_outcome(model: NotificationDelivered | NotificationFailed, envelope: Envelope,
                                   conn: asyncpg.Connection) -> None:
        if isinstance(model, NotificationDelivered):
            found = await projections.record_reminder_outcome(conn, model.district, model.notification_id,
                                                              delivered=True, channel=model.channel)
        else:
            found = await projections.record_reminder_outcome(
                conn, model.district, model.notification_id, delivered=False, channel=model.channel,
                reason=str(model.reason), final=not model.will_retry)
        if found is not None:
            resolution_id, task_id = found
            await projections.insert_audit(conn, model.district, "notify", envelope.id, envelope.type, model,
                                           resolution_id=resolution_id, task_id=task_id)

    ctx.on_events("notify", "notify", {
        "NotificationRequested": notification_requested,
        "NotificationDelivered": notification_outcome,
        "NotificationFailed": notification_outcome,
    })
