"""Reactions of the voting service to other services' events: a council's
``VoteRequested`` opens its vote. The event becomes the platform's own ``OpenVote``,
handled by the bus like any other (:mod:`services.voting.application`) in the inbox
transaction: a redelivered request is answered from the recorded reply and changes
nothing, and a request the vote refuses is a recorded ``CommandRejected``."""

from __future__ import annotations

from contracts.common import Actor
from contracts.proposals import VoteRequested
from contracts.voting import OpenVote
from yishi.commands import CommandBus
from yishi.runtime import ServiceContext


def vote_requested(event: VoteRequested, actor: Actor) -> OpenVote:
    """The vote a council requested, opened as an ``OpenVote`` by the requester (not
    ``actor``, the platform: the convener of the vote is whoever requested it)."""
    return OpenVote(district=event.district, actor=event.actor, vote_id=event.vote_id, council_id=event.council_id,
                    matter=event.matter, terms=event.terms)


def wire(ctx: ServiceContext, bus: CommandBus) -> None:
    """Subscribe the reaction to the proposals events topic."""
    ctx.react("vote-requests", "proposals", bus, {"VoteRequested": vote_requested})
