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
    """Subscribe to the proposals and voting events topics."""
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
