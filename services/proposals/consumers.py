"""Reactions to other services' events: vote results (voting) and reconsultation
requests (oversight). Each runs in its inbox transaction, so a redelivered event
changes nothing; a result the matter is not waiting for is ignored."""

from __future__ import annotations

import asyncpg
import structlog
from eventsourcing.domain import Aggregate

from contracts.common import VoteMatterKind
from contracts.envelope import Envelope
from contracts.oversight import ReconsultationRequested
from contracts.voting import VoteClosed
from services.proposals import projections
from services.proposals.domain import Council, Nomination, Proposal, Slate
from yishi.repository import AggregateNotFound, Repository
from yishi.rules import Rejected
from yishi.runtime import ServiceContext
from yishi.store import Metadata

log = structlog.get_logger("yishi.proposals.consumers")

SYSTEM_ACTOR = "yishi-proposals"
TALLY_COUNTS = {"in_favour", "against", "abstain"}
"""The counts kept on the deliberation record (newer tally fields are not needed here)."""


class Reactions:
    """The proposals service's event handlers, on one repository and clock."""

    def __init__(self, ctx: ServiceContext, repository: Repository) -> None:
        self.ctx = ctx
        self.repository = repository

    async def _get(self, cls: type[Aggregate], district: str, public_id: str, conn: asyncpg.Connection):
        try:
            return await self.repository.get(cls, cls.create_id(district, public_id), conn=conn)
        except AggregateNotFound:
            return None

    async def _save(self, envelope: Envelope, conn: asyncpg.Connection, *aggregates: Aggregate) -> None:
        meta = Metadata(
            actor=SYSTEM_ACTOR,
            actor_role="system",
            district=envelope.district,
            correlation_id=envelope.correlation_id,
            causation_id=envelope.id,
            occurred_at=self.ctx.clock.now(),
        )
        await self.repository.save(*aggregates, meta=meta, conn=conn)
        await projections.update(conn, *aggregates)

    async def vote_closed(self, event: VoteClosed, envelope: Envelope, conn: asyncpg.Connection) -> None:
        """Decide the proposal, nomination or slate the vote was about; a confirmed
        nomination or slate seats its nominees."""
        now = self.ctx.clock.now()
        if event.matter.kind == VoteMatterKind.PROPOSAL:
            proposal = await self._get(Proposal, event.district, event.matter.id, conn)
            if proposal is None or not proposal.close_vote(
                vote_id=event.vote_id,
                outcome=event.outcome,
                tally=event.tally.model_dump(include=TALLY_COUNTS),
                now=now,
            ):
                log.info(
                    "vote result ignored: the proposal is not waiting for it",
                    vote_id=event.vote_id,
                    proposal_id=event.matter.id,
                )
                return
            await self._save(envelope, conn, proposal)
            return
        slate = event.matter.kind == VoteMatterKind.SLATE
        confirmed = await self._get(Slate if slate else Nomination, event.district, event.matter.id, conn)
        if confirmed is None or not confirmed.close_vote(vote_id=event.vote_id, outcome=event.outcome, now=now):
            log.info(
                "vote result ignored: the matter is not waiting for it",
                vote_id=event.vote_id,
                matter_kind=str(event.matter.kind),
                matter_id=event.matter.id,
            )
            return
        changed: list[Aggregate] = [confirmed]
        if confirmed.outcome == "adopted":
            council = await self._get(Council, event.district, confirmed.council_id, conn)
            nominees = confirmed.nominees if slate else [
                {"seat_id": confirmed.seat_id, "nominee_id": confirmed.nominee_id}]
            for nominee in nominees:
                try:
                    council.seat(
                        seat_id=nominee["seat_id"],
                        member_id=nominee["nominee_id"],
                        term_ends_at=None,
                        now=now,
                        by_nomination=True,
                    )
                except Rejected as exc:
                    # The confirmation stands on record; the seat was taken in the meantime.
                    log.warning(
                        "confirmed nominee could not be seated", matter_id=event.matter.id,
                        nominee_id=nominee["nominee_id"], reason=exc.message
                    )
            changed.append(council)
        await self._save(envelope, conn, *changed)

    async def reconsultation_requested(
        self, event: ReconsultationRequested, envelope: Envelope, conn: asyncpg.Connection
    ) -> None:
        """Return the adopted proposal to deliberation because of a problem in delivery."""
        proposal = await self._get(Proposal, event.district, event.proposal_id, conn)
        if proposal is None:
            log.warning("reconsultation requested for an unknown proposal", proposal_id=event.proposal_id)
            return
        try:
            proposal.return_for_reconsultation(
                reason=event.problem, resolution_id=event.resolution_id, now=self.ctx.clock.now()
            )
        except Rejected as exc:
            log.warning("reconsultation request ignored", proposal_id=event.proposal_id, reason=exc.message)
            return
        await self._save(envelope, conn, proposal)


def wire(ctx: ServiceContext, repository: Repository) -> None:
    """Subscribe the reactions to the voting and oversight events topics."""
    reactions = Reactions(ctx, repository)
    ctx.on_events("votes", "voting", {"VoteClosed": reactions.vote_closed})
    ctx.on_events("reconsultation", "oversight", {"ReconsultationRequested": reactions.reconsultation_requested})
