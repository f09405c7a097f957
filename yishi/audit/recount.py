"""Recounting verifiable secret votes from what they published (``yishi audit recount``).

A verifiable vote (``VoteTerms.verifiable``, on for secret votes) publishes, with its
close, its board (``VoteBoardPublished``: tracking codes and choices, no voter) and who
took part (``VoteParticipants``). From those public events alone, whoever holds them (an
export bundle, or the voting service's ``GET /{district}/votes/{vote_id}/board``) checks:

* the board recounted (:func:`contracts.voting.recount`) is ``VoteClosed``'s tally;
* there are as many participants as entries on the board, no tracking code and no
  voter twice, and each participant is an elector: in the vote's roll where it has one,
  and never more than the electorate;
* from a bundle, also that the participants are exactly the voters whose ballots were
  accepted (``BallotAccepted`` names each voter, never the choice): no one was counted
  who did not vote, and no one who voted is missing.

Each voter checks the rest: their tracking code (their receipt's, ``GET
/{district}/votes/{vote_id}/receipts/{ballot_id}``) is on the board with their choice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from contracts.common import MajorityRule, Secrecy, VoteTerms
from contracts.voting import (
    BallotAccepted,
    BoardEntry,
    Tally,
    VoteBoardPublished,
    VoteClosed,
    VoteOpened,
    VoteParticipants,
    recount,
)
from yishi.audit.sources import PublicEvent


@dataclass
class Published:
    """What one vote published that a recount reads (None: not seen)."""

    district: str
    vote_id: str
    terms: VoteTerms | None = None
    tally: Tally | None = None
    entries: tuple[BoardEntry, ...] | None = None
    voter_ids: tuple[str, ...] | None = None
    ballot_voters: set[str] | None = None  # who cast a ballot (BallotAccepted), when the source has them
    gaps: list[str] = field(default_factory=list)  # pages of the board or the participants missing


@dataclass(frozen=True)
class Recount:
    """One vote recounted: the board's count, the published tally, and what disagrees."""

    district: str
    vote_id: str
    recounted: Tally | None
    published: Tally | None
    entries: int
    participants: int
    findings: tuple[str, ...] = field(default=())
    roll_checked: bool = False  # the participants' names were checked against a roll (else only their number)

    @property
    def ok(self) -> bool:
        """Nothing disagrees."""
        return not self.findings


def recount_vote(vote: Published) -> Recount:
    """Check one vote's board and participants (see the module's docstring)."""
    findings: list[str] = list(vote.gaps)
    entries, voters = vote.entries or (), vote.voter_ids or ()
    if vote.entries is None or vote.voter_ids is None:
        findings.append("published its board or its participants, not both")
    recounted = None
    if vote.terms is not None:
        recounted = recount(entries, approval=vote.terms.majority is MajorityRule.APPROVAL)
        if vote.tally is not None and recounted != vote.tally:
            findings.append(f"the board recounts to {_counts(recounted)}, the published tally is {_counts(vote.tally)}")
    if vote.tally is None:
        findings.append("no published tally (VoteClosed) to compare with")
    if len(voters) != len(entries):
        findings.append(f"{len(voters)} participants but {len(entries)} entries on the board")
    if twice := _repeated(e.tracking_code for e in entries):
        findings.append(f"tracking codes on the board twice: {', '.join(twice)}")
    if twice := _repeated(voters):
        findings.append(f"participants listed twice: {', '.join(twice)}")
    if vote.terms is not None:
        roll = vote.terms.electorate.roll
        if roll is not None and (strangers := sorted(set(voters) - set(roll))):
            findings.append(f"participants not in the vote's roll: {', '.join(strangers)}")
        if len(set(voters)) > vote.terms.electorate.size:
            findings.append(f"{len(set(voters))} participants for an electorate of {vote.terms.electorate.size}")
    if vote.ballot_voters is not None:
        if unseen := sorted(set(voters) - vote.ballot_voters):
            findings.append(f"participants with no accepted ballot: {', '.join(unseen)}")
        if missing := sorted(vote.ballot_voters - set(voters)):
            findings.append(f"voters with an accepted ballot not among the participants: {', '.join(missing)}")
    roll_checked = vote.terms is not None and vote.terms.electorate.roll is not None
    return Recount(vote.district, vote.vote_id, recounted, vote.tally, len(entries), len(voters), tuple(findings),
                   roll_checked)


def published_votes(events: Iterable[PublicEvent]) -> tuple[list[Published], list[Published]]:
    """Among the voting service's public ``events`` (any order), the closed votes that
    published a board, each with what it published, and the closed secret votes that
    published none (closed before boards existed, or turned off: not recountable)."""
    votes: dict[tuple[str, str], Published] = {}
    pages: dict[tuple[str, str, str], dict[int, VoteBoardPublished | VoteParticipants]] = {}

    def of(district: str, vote_id: str) -> Published:
        return votes.setdefault((district, vote_id), Published(district, vote_id, ballot_voters=set()))

    for e in events:
        if e.type == "VoteOpened":
            opened = VoteOpened.model_validate_json(e.data)
            of(e.district, opened.vote_id).terms = opened.terms
        elif e.type == "VoteClosed":
            closed = VoteClosed.model_validate_json(e.data)
            of(e.district, closed.vote_id).tally = closed.tally
        elif e.type in ("VoteBoardPublished", "VoteParticipants"):
            page = (VoteBoardPublished if e.type == "VoteBoardPublished" else VoteParticipants).model_validate_json(
                e.data)
            of(e.district, page.vote_id)
            pages.setdefault((e.district, page.vote_id, e.type), {})[page.page] = page
        elif e.type == "BallotAccepted":
            accepted = BallotAccepted.model_validate_json(e.data)
            of(e.district, accepted.vote_id).ballot_voters.add(accepted.actor.id)
    for (district, vote_id, kind), found in pages.items():
        vote, expected = votes[district, vote_id], max(p.pages for p in found.values())
        if missing := sorted(set(range(1, expected + 1)) - set(found)):
            vote.gaps.append(f"{kind} pages missing: {', '.join(map(str, missing))} of {expected}")
        ordered = [found[n] for n in sorted(found)]
        if kind == "VoteBoardPublished":
            vote.entries = tuple(entry for p in ordered for entry in p.entries)
        else:
            vote.voter_ids = tuple(voter for p in ordered for voter in p.voter_ids)
    closed = [v for _, v in sorted(votes.items()) if v.tally is not None]
    boarded = [v for v in closed if v.entries is not None or v.voter_ids is not None]
    return boarded, [v for v in closed if v.entries is None and v.voter_ids is None
                     and v.terms is not None and v.terms.secrecy is Secrecy.SECRET]


def published_board(district: str, view: dict[str, Any]) -> Published:
    """What the voting service's board view (``GET …/votes/{vote_id}/board``) shows."""
    return Published(district, view["vote_id"], terms=VoteTerms.model_validate(view["terms"]),
                     tally=Tally.model_validate(view["tally"]),
                     entries=tuple(BoardEntry.model_validate(e) for e in view["entries"]),
                     voter_ids=tuple(view["voter_ids"]))


def _counts(tally: Tally) -> str:
    approvals = f", approvals {dict(sorted(tally.approvals.items()))}" if tally.approvals is not None else ""
    return f"in_favour {tally.in_favour}, against {tally.against}, abstain {tally.abstain}{approvals}"


def describe(result: Recount) -> str:
    """One line on ``result``: what was recounted and how it compares."""
    head = f"{result.district}/{result.vote_id}: "
    if result.ok:
        electors = "each in the vote's roll" if result.roll_checked else "within the electorate (it has no roll)"
        return (head + f"board of {result.entries} recounted: {_counts(result.recounted)}, equal to the published "
                f"tally; {result.participants} participants for {result.entries} entries, {electors}")
    return head + "; ".join(result.findings)


def _repeated(values: Iterable[str]) -> list[str]:
    return sorted(v for v, n in Counter(values).items() if n > 1)
