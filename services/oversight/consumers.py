"""Reactions to other services' public events, each inside the inbox transaction.

Oversight learns about proposals, votes and councils only from these events: the audit
trail of a resolution is built from them (plus oversight's own events), and an adopted
``ProposalDecided`` registers the resolution.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from contracts import registry
from contracts.common import VoteMatterKind
from contracts.envelope import Envelope
from contracts.notify import NotificationDelivered, NotificationFailed, NotificationRequested
from contracts.proposals import CouncilFormed, ProposalDecided
from yishi.clock import Clock
from yishi.repository import Repository
from yishi.runtime import ServiceContext

from services.oversight import projections
from services.oversight.application import register_resolution_from_decision

# Steps of deliberation and decision that make up a resolution's record.
PROPOSAL_STEPS = ("ProposalRaised", "ProposalPublished", "MotionSeconded", "ObjectionLodged", "StatementMade",
                  "VoteRequested", "ProposalEscalated", "ProposalWithdrawn", "ProposalReturnedForReconsultation")
VOTING_STEPS = ("VoteOpened", "BallotAccepted", "VoteClosed")


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


def wire_consumers(ctx: ServiceContext, repository: Repository, clock: Clock) -> None:
    """Subscribe to the proposals, voting and notify events topics."""
    async def proposal_decided(model: ProposalDecided, envelope: Envelope, conn: asyncpg.Connection) -> None:
        await record_step(model, envelope, conn)
        await register_resolution_from_decision(repository, clock, conn, model, envelope)

    async def council_formed(model: CouncilFormed, envelope: Envelope, conn: asyncpg.Connection) -> None:
        await projections.record_council(conn, model)

    ctx.on_events("proposals", "proposals", {
        **{name: record_step for name in PROPOSAL_STEPS},
        "ProposalDecided": proposal_decided,
        "CouncilFormed": council_formed,
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
