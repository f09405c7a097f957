"""Reactions of the voting service to other services' events."""

from __future__ import annotations

import asyncpg

from contracts.envelope import Envelope
from contracts.proposals import VoteRequested
from contracts.voting import OpenVote
from services.voting.application import PLATFORM
from yishi.commands import CommandBus


def on_vote_requested(bus: CommandBus):
    """A council's ``VoteRequested`` opens the vote, as an ``OpenVote`` by the requester.

    It runs in the inbox transaction; the command id is derived from the event, so a
    redelivered request is answered from the recorded reply and changes nothing.
    """
    async def handle(event: VoteRequested, envelope: Envelope, conn: asyncpg.Connection) -> None:
        command = OpenVote(district=event.district, actor=event.actor, vote_id=event.vote_id,
                           council_id=event.council_id, matter=event.matter, terms=event.terms)
        await bus.dispatch(command, command_id=f"event:{envelope.id}", correlation_id=envelope.correlation_id,
                           principal=PLATFORM, conn=conn)
    return handle
