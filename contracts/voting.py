"""Contracts of the voting service: votes and ballots.

Secret ballots: ``BallotAccepted`` then names the voter (turnout is public, as on a
paper register) but never the choice; choices appear only summed, in ``VoteClosed``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field

from contracts.common import Command, Count, Event, Id, Value, VoteMatter, VoteTerms


class BallotChoice(StrEnum):
    """A voter's answer to the question."""

    IN_FAVOUR = "in_favour"
    AGAINST = "against"
    ABSTAIN = "abstain"


class VoteOutcome(StrEnum):
    """How a vote ended."""

    ADOPTED = "adopted"
    REJECTED = "rejected"
    NO_QUORUM = "no_quorum"  # too few ballots; the matter goes back to consultation
    TIED = "tied"  # as many in favour as against


class Tally(Value):
    """Ballots counted per choice."""

    in_favour: Count
    against: Count
    abstain: Count


class VoteOpened(Event):
    """A vote opened for ballots on these terms, until ``terms.closes_at``."""

    vote_id: Id
    council_id: Id
    matter: VoteMatter
    terms: VoteTerms


class BallotAccepted(Event):
    """A ballot was accepted; the actor is the voter, the choice is absent for secret votes."""

    vote_id: Id
    ballot_id: Id
    choice: BallotChoice | None = Field(default=None, description="Present for open votes only.")


class VoteClosed(Event):
    """A vote closed and was counted."""

    vote_id: Id
    council_id: Id
    matter: VoteMatter
    tally: Tally
    electorate_size: Annotated[int, Field(gt=0)]
    turnout_percent: Annotated[float, Field(ge=0, le=100)]
    quorum_met: bool
    outcome: VoteOutcome


class OpenVote(Command):
    """Open a vote directly (votes requested by a council open on ``VoteRequested``)."""

    vote_id: Id
    council_id: Id
    matter: VoteMatter
    terms: VoteTerms


class CastBallot(Command):
    """Cast the actor's ballot; one per voter, rejected after the vote closes."""

    vote_id: Id
    ballot_id: Id = Field(description="Chosen by the sender, so a resent ballot is recognised.")
    choice: BallotChoice


class CloseVote(Command):
    """Close a vote before its closing time (it closes by itself at ``closes_at``)."""

    vote_id: Id
