"""Votes and ballots: pure rules, no I/O, time passed in.

Two kinds of aggregate, so that thousands of concurrent ballots never contend on one
stream version:

* :class:`Vote` — one stream per vote (its terms, then its close and tally).
* :class:`Ballot` — one small stream per (vote, voter). Creating it appends at
  expected version 0, so "one person, one vote" holds in the database even when the
  same voter sends ballots concurrently. For secret votes it records participation
  only, never the choice: :meth:`Ballot.cast` and :meth:`Ballot.replace` decide that
  (the choice goes to the ballot box, :mod:`services.voting.ballot_box`).

Counting (:func:`decide`) is a pure function of the terms and the tally. A verifiable
secret vote's close also publishes its board and who took part (:meth:`Vote.close`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from eventsourcing.domain import BaseAggregate, CanInitAggregate, CanMutateAggregate, MetaDomainEvent, event

from contracts.common import MajorityRule, RejectionReason, Role, Secrecy, VoteTerms
from contracts.voting import BallotChoice, BoardEntry, VoteClosure, VoteOutcome
from yishi.rules import Rejected, within_horizon

# Roles that may convene (open or close) a vote besides its own convener.
CONVENING_ROLES = frozenset({Role.COMMUNITY_WORKER, Role.CHAIR, Role.OFFICIAL})
_BALLOT_NAMESPACE = uuid.UUID("5b0c1f0e-7a43-4d0c-9f5e-7f3a9b1c2d4e")
_VOTE_NAMESPACE = uuid.UUID("0d7c6f52-3b8e-4a51-9e0a-2c4f6b8d1e37")


class NamedAggregate(BaseAggregate[str]):
    """An ``eventsourcing`` aggregate whose id is a string (the public vote id), so the
    stream id, the Kafka key and ``ce_subject`` are the id the contracts name."""

    class Event(CanMutateAggregate[str], metaclass=MetaDomainEvent):
        originator_id: str
        originator_version: int
        timestamp: datetime

    class Created(Event, CanInitAggregate[str]):
        originator_topic: str


def vote_stream(district: str, vote_id: str) -> str:
    """The stream of vote ``vote_id`` of ``district``. Each district names its own votes
    (a council's ``RequestVote`` chooses the id), so the stream is derived from both:
    another district's vote with the same id is another stream."""
    return "vote-" + uuid.uuid5(_VOTE_NAMESPACE, f"{district}/{vote_id}").hex


def ballot_stream(district: str, vote_id: str, voter_id: str) -> str:
    """The stream of one voter's ballot on one vote; derived, so a second ballot of the
    same voter addresses the same stream and collides at version 0."""
    return "ballot-" + uuid.uuid5(_BALLOT_NAMESPACE, f"{district}/{vote_id}/{voter_id}").hex


@dataclass(frozen=True)
class Tally:
    """Ballots counted: per choice, and per option for approval votes."""

    in_favour: int = 0
    against: int = 0
    abstain: int = 0
    approvals: dict[str, int] = field(default_factory=dict)

    @property
    def cast(self) -> int:
        return self.in_favour + self.against + self.abstain


@dataclass(frozen=True)
class Result:
    """The outcome of counting a vote."""

    outcome: VoteOutcome
    quorum_met: bool
    turnout_percent: float
    winning_option: str | None = None


def decide(terms: VoteTerms, electorate_size: int, tally: Tally) -> Result:
    """Count a closed vote: quorum first (share of the electorate that cast a ballot,
    abstentions included, at least the exact quorum), then the majority rule of
    ``terms``; every comparison is on integers (the table "Voting rules" of
    ``contracts/README.md`` gives each formula). Only the reported turnout is rounded."""
    turnout = round(100 * tally.cast / electorate_size, 2)
    quorum = terms.quorum_share
    if tally.cast * quorum.denominator < quorum.numerator * electorate_size:
        return Result(VoteOutcome.NO_QUORUM, False, turnout)
    f, a = tally.in_favour, tally.against
    rule = terms.majority
    if rule is MajorityRule.APPROVAL:
        top = max(tally.approvals.values(), default=0)
        leaders = sorted(o for o, n in tally.approvals.items() if n == top)
        if top == 0:
            return Result(VoteOutcome.REJECTED, True, turnout)
        if len(leaders) > 1:
            return Result(VoteOutcome.TIED, True, turnout)
        return Result(VoteOutcome.ADOPTED, True, turnout, winning_option=leaders[0])
    if rule is MajorityRule.UNANIMITY:
        adopted = tally.cast > 0 and f == tally.cast
    elif rule is MajorityRule.CONSENSUS:
        adopted = f > 0 and a == 0
    elif rule is MajorityRule.SIMPLE:
        adopted = f > a
    elif rule is MajorityRule.ABSOLUTE:
        adopted = 2 * f > electorate_size
    else:  # TWO_THIRDS of the ballots cast
        adopted = 3 * f >= 2 * tally.cast and f > 0
    if adopted:
        return Result(VoteOutcome.ADOPTED, True, turnout)
    # Unanimity and consensus are blocked by any objection: a split is not a tie there.
    if f == a and rule not in (MajorityRule.UNANIMITY, MajorityRule.CONSENSUS):
        return Result(VoteOutcome.TIED, True, turnout)
    return Result(VoteOutcome.REJECTED, True, turnout)


class Vote(NamedAggregate):
    """A vote: who may vote, how it is counted, and when it is open."""

    @staticmethod
    def create_id(district: str, vote_id: str) -> str:
        """The vote's stream (:func:`vote_stream`)."""
        return vote_stream(district, vote_id)

    @classmethod
    def open(cls, *, vote_id: str, district: str, council_id: str, matter: dict[str, Any], terms: VoteTerms,
             convener_id: str, convener_role: str, now: datetime) -> Vote:
        """Open a vote on ``terms``; refuses terms that cannot be run."""
        if convener_role not in CONVENING_ROLES | {Role.SYSTEM}:
            raise Rejected(RejectionReason.NOT_AUTHORISED, f"a {convener_role} may not open a vote", vote_id)
        if terms.closes_at <= now:
            raise Rejected(RejectionReason.INVALID_COMMAND, "closes_at must be in the future", vote_id)
        within_horizon(terms.closes_at, now, "closes_at", vote_id)
        if terms.opens_at is not None and terms.opens_at >= terms.closes_at:
            raise Rejected(RejectionReason.INVALID_COMMAND, "opens_at must be before closes_at", vote_id)
        approval = terms.majority is MajorityRule.APPROVAL
        option_ids = [o.id for o in terms.options or ()]
        if approval and (len(option_ids) < 2 or len(set(option_ids)) != len(option_ids)):
            raise Rejected(RejectionReason.INVALID_COMMAND, "an approval vote needs two or more distinct options",
                           vote_id)
        if not approval and terms.options:
            raise Rejected(RejectionReason.INVALID_COMMAND, "options are only for approval votes", vote_id)
        return cls._create(cls.Opened, id=cls.create_id(district, vote_id), vote_id=vote_id, district=district,
                           council_id=council_id, matter=matter,
                           terms=terms.model_dump(mode="json"), convener_id=convener_id, opened_at=now)

    class Opened(NamedAggregate.Created):
        vote_id: str
        district: str
        council_id: str
        matter: dict[str, Any]
        terms: dict[str, Any]
        convener_id: str
        opened_at: datetime

        def apply(self, aggregate: Vote) -> None:
            aggregate.vote_id = self.vote_id
            aggregate.district = self.district
            aggregate.council_id = self.council_id
            aggregate.matter = self.matter
            aggregate.terms_json = self.terms
            aggregate.convener_id = self.convener_id
            aggregate.opened_at = self.opened_at
            aggregate.closed = False
            aggregate.result = None

    # -- reading the terms --------------------------------------------------

    @property
    def terms(self) -> VoteTerms:
        return VoteTerms.model_validate(self.terms_json)

    @property
    def secret(self) -> bool:
        return self.terms_json["secrecy"] == Secrecy.SECRET

    @property
    def electorate_size(self) -> int:
        return self.terms_json["electorate"]["size"]

    @property
    def roll(self) -> frozenset[str] | None:
        roll = self.terms_json["electorate"].get("roll")
        return frozenset(roll) if roll is not None else None

    @property
    def verifiable(self) -> bool:
        """Whether the close publishes the board of tracking codes (``VoteTerms.publishes_board``;
        read from the stored terms without parsing them, as every ballot asks)."""
        return self.secret and self.terms_json.get("verifiable") is not False

    @property
    def changes_allowed(self) -> bool:
        return bool(self.terms_json.get("ballot_changes_allowed"))

    def closes_at(self) -> datetime:
        return self.terms.closes_at

    # -- rules ----------------------------------------------------------------

    def check_ballot(self, voter_id: str, choice: BallotChoice, approvals: tuple[str, ...] | None,
                     now: datetime) -> None:
        """Raise :class:`Rejected` unless ``voter_id`` may cast this ballot now."""
        terms = self.terms
        if self.closed or now >= terms.closes_at:
            raise Rejected(RejectionReason.DEADLINE_PASSED, "the vote has closed", self.vote_id)
        if terms.opens_at is not None and now < terms.opens_at:
            raise Rejected(RejectionReason.INVALID_STATE, "the vote is not open for ballots yet", self.vote_id)
        roll = self.roll
        if roll is not None and voter_id not in roll:
            raise Rejected(RejectionReason.NOT_ELIGIBLE, "the voter is not in the electorate", self.vote_id)
        if terms.majority is MajorityRule.APPROVAL:
            options = {o.id for o in terms.options or ()}
            chosen = approvals or ()
            if choice is BallotChoice.IN_FAVOUR and (not chosen or not set(chosen) <= options
                                                     or len(set(chosen)) != len(chosen)):
                raise Rejected(RejectionReason.INVALID_COMMAND,
                               "an approval ballot in favour lists one or more distinct options of the vote",
                               self.vote_id)
            if choice is BallotChoice.AGAINST:
                raise Rejected(RejectionReason.INVALID_COMMAND,
                               "an approval ballot approves options (in_favour) or abstains", self.vote_id)
            if choice is BallotChoice.ABSTAIN and chosen:
                raise Rejected(RejectionReason.INVALID_COMMAND, "an abstention approves no option", self.vote_id)
        elif approvals:
            raise Rejected(RejectionReason.INVALID_COMMAND, "approvals are only for approval votes", self.vote_id)

    def closure(self, actor_id: str, actor_role: str, now: datetime, turnout: int) -> VoteClosure:
        """Why ``actor`` may close the vote now, or :class:`Rejected`."""
        if self.closed:
            raise Rejected(RejectionReason.INVALID_STATE, "the vote is already closed", self.vote_id)
        if actor_role == Role.SYSTEM:
            if now >= self.closes_at():
                return VoteClosure.DEADLINE
            if turnout >= self.electorate_size and not self.changes_allowed:
                return VoteClosure.ALL_VOTED
            raise Rejected(RejectionReason.INVALID_STATE, "the vote is not due to close", self.vote_id)
        if actor_id == self.convener_id or actor_role in CONVENING_ROLES:
            return VoteClosure.CONVENER
        raise Rejected(RejectionReason.NOT_AUTHORISED, "only the convener may close a vote early", self.vote_id)

    def close(self, tally: Tally, closed_by: VoteClosure, now: datetime,
              ballots: list[dict[str, Any]] | None = None, *, board: list[BoardEntry] | None = None,
              participants: list[str] | None = None) -> Result:
        """Close and count. ``ballots`` (who voted how) is kept for open votes only. A
        verifiable vote then publishes its ``board`` (the counted ballots' codes and
        choices, put in code order here: random, so it tells nothing of who voted when)
        and its ``participants`` (in id order), both required for it and refused for any other."""
        if self.closed:
            raise Rejected(RejectionReason.INVALID_STATE, "the vote is already closed", self.vote_id)
        if (board is not None, participants is not None) != (self.verifiable, self.verifiable):
            raise ValueError("a verifiable vote, and only one, closes with its board and participants")
        result = decide(self.terms, self.electorate_size, tally)
        self._closed(
            vote_id=self.vote_id, council_id=self.council_id, matter=self.matter,
            electorate_size=self.electorate_size,
            tally={"in_favour": tally.in_favour, "against": tally.against, "abstain": tally.abstain,
                   "approvals": dict(tally.approvals) if self.terms.majority is MajorityRule.APPROVAL else None},
            outcome=str(result.outcome), quorum_met=result.quorum_met, turnout_percent=result.turnout_percent,
            winning_option=result.winning_option, closed_by=str(closed_by), closed_at=now,
            ballots=None if self.secret else ballots,
        )
        if self.verifiable:
            entries = [e.model_dump(mode="json") for e in sorted(board, key=lambda e: e.tracking_code)]
            for page, chunk, pages in _pages(entries):
                self._board_published(vote_id=self.vote_id, entries=chunk, page=page, pages=pages)
            for page, chunk, pages in _pages(sorted(participants)):
                self._participants_listed(vote_id=self.vote_id, voter_ids=chunk, page=page, pages=pages)
        return result

    @event("BoardPublished")
    def _board_published(self, vote_id: str, entries: list[dict[str, Any]], page: int, pages: int) -> None:
        """Nothing to apply: the board is published, the vote decides nothing with it."""

    @event("ParticipantsListed")
    def _participants_listed(self, vote_id: str, voter_ids: list[str], page: int, pages: int) -> None:
        """Nothing to apply: the list is published, the vote decides nothing with it."""

    @event("Closed")
    def _closed(self, vote_id: str, council_id: str, matter: dict[str, Any], electorate_size: int, tally: dict[str, Any], outcome: str, quorum_met: bool, turnout_percent: float,
                winning_option: str | None, closed_by: str, closed_at: datetime,
                ballots: list[dict[str, Any]] | None) -> None:
        self.closed = True
        self.result = {"tally": tally, "outcome": outcome, "quorum_met": quorum_met,
                       "turnout_percent": turnout_percent, "winning_option": winning_option,
                       "closed_by": closed_by, "closed_at": closed_at.isoformat()}


BOARD_PAGE = 5000
"""Entries of a board (about 80 bytes each as JSON) or voter ids of its participants per
event: a page of 400 KB at most, so that a vote of any size publishes within Kafka's
default 1 MB message (a 13,000-ballot board in one event would not)."""


def _pages(items: list[Any]) -> list[tuple[int, list[Any], int]]:
    """``items`` in pages of :data:`BOARD_PAGE`: (number from 1, items, how many pages); one
    page, empty, for none."""
    chunks = [items[i:i + BOARD_PAGE] for i in range(0, len(items), BOARD_PAGE)] or [[]]
    return [(n, chunk, len(chunks)) for n, chunk in enumerate(chunks, 1)]


class Ballot(NamedAggregate):
    """One voter's ballot on one vote. Secret votes record participation only: the
    choice, the ballot id (the voter's receipt) and the approvals stay ``None``."""

    @staticmethod
    def create_id(district: str, vote_id: str, voter_id: str) -> str:
        """The ballot's stream (:func:`ballot_stream`)."""
        return ballot_stream(district, vote_id, voter_id)

    @classmethod
    def cast(cls, *, vote: Vote, voter_id: str, ballot_id: str, choice: str, approvals: list[str] | None,
             now: datetime) -> Ballot:
        """A first ballot of ``voter_id`` on ``vote`` (checked with :meth:`Vote.check_ballot`);
        on a secret vote it records that the voter voted, nothing of what or how."""
        return cls._create(cls.Cast, id=cls.create_id(vote.district, vote.vote_id, voter_id), vote_id=vote.vote_id,
                           voter_id=voter_id, **_recorded(vote, ballot_id, choice, approvals), cast_at=now)

    class Cast(NamedAggregate.Created):
        vote_id: str
        voter_id: str
        ballot_id: str | None
        choice: str | None
        approvals: list[str] | None
        cast_at: datetime

        def apply(self, aggregate: Ballot) -> None:
            aggregate.vote_id = self.vote_id
            aggregate.voter_id = self.voter_id
            aggregate.ballot_id = self.ballot_id
            aggregate.choice = self.choice
            aggregate.approvals = self.approvals

    def same_as(self, ballot_id: str, choice: str, approvals: list[str] | None) -> bool:
        """Whether this open ballot is exactly what was sent (a resent command)."""
        return (self.ballot_id, self.choice, self.approvals) == (ballot_id, choice, approvals)

    def replace(self, *, vote: Vote, ballot_id: str, choice: str, approvals: list[str] | None,
                now: datetime) -> None:
        """Replace the ballot where ``vote`` allows it; otherwise a second ballot is a
        duplicate. On a secret vote the replacement too records participation only."""
        if not vote.changes_allowed:
            raise Rejected(RejectionReason.DUPLICATE, "this voter has already voted", self.vote_id)
        self._replaced(vote_id=self.vote_id, **_recorded(vote, ballot_id, choice, approvals), replaced_at=now)

    @event("Replaced")
    def _replaced(self, vote_id: str, ballot_id: str | None, choice: str | None, approvals: list[str] | None,
                  replaced_at: datetime) -> None:
        self.ballot_id = ballot_id
        self.choice = choice
        self.approvals = approvals


def _recorded(vote: Vote, ballot_id: str, choice: str, approvals: list[str] | None) -> dict[str, Any]:
    """What a ballot's stream keeps of what was sent: all of it on an open vote (it is
    published, and counted from the ballot box), none of it on a secret one (the choice
    is in the ballot box only, under the receipt's hash, apart from the voter)."""
    if vote.secret:
        return {"ballot_id": None, "choice": None, "approvals": None}
    return {"ballot_id": ballot_id, "choice": choice, "approvals": approvals}
