"""Contracts of the voting service: votes and ballots.

Secret ballots: ``BallotAccepted`` then names the voter (turnout is public, as on a
paper register) but never the choice; choices appear only summed, in ``VoteClosed``.
The ``ballot_id`` a voter sends with a secret ballot is their receipt: it is never
stored or published (only its hash, beside the anonymous choice), and it lets them
check that their choice was recorded and, where allowed, replace it.

Verifiable secret ballots (``VoteTerms.verifiable``, on for secret votes unless turned
off): each secret ballot gets a random tracking code, stored beside the anonymous choice
and shown only to its voter (by their receipt). After the close the vote publishes its
board (``VoteBoardPublished``: every code with its choice, in code order, no voter) and
who took part (``VoteParticipants``: voter ids, not how); :func:`recount` counts the
board, which anyone compares with ``VoteClosed``'s tally (``yishi audit recount``).
"""

from __future__ import annotations

from enum import StrEnum
from collections.abc import Iterable
from typing import Annotated

from pydantic import AwareDatetime, Field, StringConstraints

from contracts.common import Command, Count, Event, Id, NewId, Value, VoteMatter, VoteTerms


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
    approvals: dict[Id, Count] | None = Field(
        default=None, description="Approval votes: approvals per option id.")


class VoteClosure(StrEnum):
    """Why a vote closed."""

    DEADLINE = "deadline"  # its closing time came
    ALL_VOTED = "all_voted"  # every elector had voted
    CONVENER = "convener"  # closed early by its convener


class RecordedBallot(Value):
    """How one voter voted, published in ``VoteClosed`` for open votes only."""

    voter_id: Id
    choice: BallotChoice
    approvals: tuple[Id, ...] | None = None


TrackingCode = Annotated[
    str, StringConstraints(pattern=r"^[0-9a-f]{20}$"),
    Field(description="A secret ballot's tracking code: 80 random bits in hex, drawn for the ballot (a "
          "replacement draws a new one), shown to its voter only.", examples=["3f9ac2e17b04d5a96e18"]),
]


class BoardEntry(Value):
    """One counted secret ballot on a vote's board: its tracking code and its choice, no voter."""

    tracking_code: TrackingCode
    choice: BallotChoice
    approvals: tuple[Id, ...] | None = Field(default=None, description="Approval votes: the options approved.")


def recount(entries: Iterable[BoardEntry], *, approval: bool) -> Tally:
    """The tally of a board, as ``VoteClosed`` reports it: ballots per choice and, for an
    approval vote (``approval``), approvals per option (else ``approvals`` is None).
    A pure function, so anyone holding the board counts it again."""
    counts = {choice: 0 for choice in BallotChoice}
    approvals: dict[str, int] = {}
    for entry in entries:
        counts[entry.choice] += 1
        for option in entry.approvals or ():
            approvals[option] = approvals.get(option, 0) + 1
    return Tally(in_favour=counts[BallotChoice.IN_FAVOUR], against=counts[BallotChoice.AGAINST],
                 abstain=counts[BallotChoice.ABSTAIN], approvals=approvals if approval else None)


class VoteOpened(Event):
    """A vote opened for ballots on these terms, until ``terms.closes_at``."""

    vote_id: Id
    council_id: Id
    matter: VoteMatter
    terms: VoteTerms


class BallotAccepted(Event):
    """A ballot was accepted; the actor is the voter, the choice is absent for secret votes."""

    vote_id: Id
    ballot_id: Id = Field(description="Open votes: the sender's ballot id; secret votes: an id of the voter's "
                          "participation, never the ballot id (the voter's receipt).")
    choice: BallotChoice | None = Field(default=None, description="Present for open votes only.")
    approvals: tuple[Id, ...] | None = Field(default=None, description="Approved options; open approval votes only.")
    replaced: bool = Field(default=False, description="The voter replaced an earlier ballot (where allowed).")


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
    winning_option: Id | None = Field(default=None, description="Adopted approval votes: the most approved option.")
    closed_by: VoteClosure | None = None
    closed_at: AwareDatetime | None = None
    ballots: tuple[RecordedBallot, ...] | None = Field(
        default=None, description="Open votes only: who voted how. Never present for secret votes.")


class VoteBoardPublished(Event):
    """A closed verifiable secret vote's board: each counted ballot's tracking code and choice.

    In tracking-code order (random, so unrelated to who voted when), no voter id.
    Published right after ``VoteClosed``, in pages of at most 5,000 entries (a message
    stays far below Kafka's 1 MB); :func:`recount` of all pages' ``entries`` is its tally."""

    vote_id: Id
    entries: tuple[BoardEntry, ...]
    page: Annotated[int, Field(ge=1)] = Field(default=1, description="This page's number, from 1.")
    pages: Annotated[int, Field(ge=1)] = Field(default=1, description="How many pages the board has.")


class VoteParticipants(Event):
    """Who took part in a closed verifiable secret vote, not how.

    By voter id, in id order, published right after the board and paged as it is: as many
    as the board has entries, each an elector of the vote."""

    vote_id: Id
    voter_ids: tuple[Id, ...]
    page: Annotated[int, Field(ge=1)] = Field(default=1, description="This page's number, from 1.")
    pages: Annotated[int, Field(ge=1)] = Field(default=1, description="How many pages the list has.")


class OpenVote(Command):
    """Open a vote on a question directly (matter kind ``question``); a proposal's or a
    nomination's vote opens on its ``VoteRequested`` (``RequestVote``), never this way."""

    vote_id: NewId = None
    council_id: Id
    matter: VoteMatter
    terms: VoteTerms


class CastBallot(Command):
    """Cast the actor's ballot; one per voter, rejected after the vote closes."""

    vote_id: Id
    # Not a NewId: for a secret vote the ballot id is the voter's receipt, which only the
    # voter may know and keep (reading the receipt needs it). A platform-chosen one would be
    # derived from the voter's own command and named in a reply stored and published on the
    # replies topic, readable by others than the voter.
    ballot_id: Id = Field(description="Chosen by the sender, so a resent ballot is recognised. For secret votes "
                          "it is the voter's receipt: choose it at random and keep it.")
    choice: BallotChoice
    approvals: tuple[Id, ...] | None = Field(
        default=None, description="Approval votes: the option ids approved (choice `in_favour`); none with `abstain`.")


class CloseVote(Command):
    """Close a vote before its closing time (it closes by itself at ``closes_at``)."""

    vote_id: Id
