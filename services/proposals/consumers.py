"""Reactions to other services' events: vote results (voting) and reconsultation
requests (oversight). Each event becomes one of the service's internal commands, handled
by the bus like any other (:mod:`services.proposals.application`) in the inbox
transaction: a redelivered event changes nothing, and a result the matter is not waiting
for is a recorded ``CommandRejected`` (``invalid_state``)."""

from __future__ import annotations

from contracts.common import Actor, Command, Id, Text, VoteMatter
from contracts.oversight import ReconsultationRequested
from contracts.voting import VoteClosed, VoteOutcome
from yishi.commands import CommandBus
from yishi.runtime import ServiceContext

TALLY_COUNTS = {"in_favour", "against", "abstain"}
"""The counts kept on the deliberation record (newer tally fields are not needed here)."""

class TakeVoteResult(Command):
    """Internal: decide the proposal, nomination or slate a closed vote was about."""

    vote_id: Id
    matter: VoteMatter
    outcome: VoteOutcome
    tally: dict[str, int]


class ReturnForReconsultation(Command):
    """Internal: return an adopted proposal to deliberation for a problem in delivery."""

    proposal_id: Id
    resolution_id: Id
    problem: Text


def vote_closed(event: VoteClosed, actor: Actor) -> TakeVoteResult:
    return TakeVoteResult(district=event.district, actor=actor, vote_id=event.vote_id, matter=event.matter,
                          outcome=event.outcome, tally=event.tally.model_dump(include=TALLY_COUNTS))


def reconsultation_requested(event: ReconsultationRequested, actor: Actor) -> ReturnForReconsultation:
    return ReturnForReconsultation(district=event.district, actor=actor, proposal_id=event.proposal_id,
                                   resolution_id=event.resolution_id, problem=event.problem)


def wire(ctx: ServiceContext, bus: CommandBus) -> None:
    """Subscribe the reactions to the voting and oversight events topics."""
    ctx.react("votes", "voting", bus, {"VoteClosed": vote_closed})
    ctx.react("reconsultation", "oversight", bus, {"ReconsultationRequested": reconsultation_requested})
