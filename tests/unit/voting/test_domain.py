"""Votes and ballots without I/O: counting rules per method, ties, quorum, ballot rules."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, strategies as st

from contracts.common import MajorityRule, RejectionReason, Role, VoteTerms
from contracts.voting import BallotChoice, BoardEntry, VoteClosure, VoteOutcome, recount
from services.voting import domain
from services.voting.domain import Ballot, Tally, Vote, ballot_stream, decide
from yishi.repository import default_mapper
from yishi.rules import HORIZON, Rejected

NOW = datetime(2026, 3, 1, 9, tzinfo=timezone.utc)


def terms(majority: str = "simple", quorum: int = 50, size: int = 10, secrecy: str = "open",
          roll: bool = True, **extra) -> VoteTerms:
    return VoteTerms.model_validate({
        "question": "建充电棚?", "method": "online", "majority": majority, "quorum_percent": quorum,
        "secrecy": secrecy, "closes_at": (NOW + timedelta(days=1)).isoformat(),
        "electorate": {"kind": "council_members", "scope_id": "c-1", "size": size,
                       **({"roll": [f"m{i}" for i in range(size)]} if roll else {})},
        **extra,
    })


OPTIONS = {"options": [{"id": "east", "label": "东侧"}, {"id": "west", "label": "西侧"},
                       {"id": "north", "label": "北侧"}]}


def entry(code: str, choice: str = "in_favour", approvals: tuple[str, ...] | None = None) -> BoardEntry:
    return BoardEntry(tracking_code=code, choice=choice, approvals=approvals)


def open_vote(t: VoteTerms, role: Role = Role.COMMUNITY_WORKER) -> Vote:
    return Vote.open(vote_id="vote-1", district="gulou", council_id="c-1", matter={"kind": "proposal", "id": "p-1"},
                     terms=t, convener_id="worker-1", convener_role=role, now=NOW)


@pytest.mark.parametrize("majority, tally, outcome", [
    ("simple", Tally(4, 3, 3), VoteOutcome.ADOPTED),
    ("simple", Tally(3, 4, 3), VoteOutcome.REJECTED),
    ("simple", Tally(3, 3, 4), VoteOutcome.TIED),
    # absolute: more than half of the electorate (10), not of the ballots cast
    ("absolute", Tally(6, 0, 0), VoteOutcome.ADOPTED),
    ("absolute", Tally(5, 1, 0), VoteOutcome.REJECTED),
    ("absolute", Tally(3, 3, 0), VoteOutcome.TIED),
    # two thirds of the ballots cast, abstentions included
    ("two_thirds", Tally(6, 3, 0), VoteOutcome.ADOPTED),
    ("two_thirds", Tally(6, 2, 1), VoteOutcome.ADOPTED),
    ("two_thirds", Tally(5, 2, 1), VoteOutcome.REJECTED),
    ("two_thirds", Tally(3, 3, 2), VoteOutcome.TIED),
    ("unanimity", Tally(8, 0, 0), VoteOutcome.ADOPTED),
    ("unanimity", Tally(7, 0, 1), VoteOutcome.REJECTED),
    ("unanimity", Tally(7, 1, 0), VoteOutcome.REJECTED),
    ("consensus", Tally(7, 0, 1), VoteOutcome.ADOPTED),
    ("consensus", Tally(7, 1, 0), VoteOutcome.REJECTED),
    ("consensus", Tally(0, 0, 6), VoteOutcome.REJECTED),
])
def test_each_majority_rule(majority, tally, outcome):
    result = decide(terms(majority), 10, tally)
    assert result.outcome is outcome
    assert result.quorum_met and result.turnout_percent == tally.cast * 10


@pytest.mark.parametrize("approvals, outcome, winner", [
    ({"east": 5, "west": 3, "north": 1}, VoteOutcome.ADOPTED, "east"),
    ({"east": 4, "west": 4, "north": 1}, VoteOutcome.TIED, None),
    ({"east": 0, "west": 0}, VoteOutcome.REJECTED, None),
])
def test_approval_among_options(approvals, outcome, winner):
    result = decide(terms("approval", **OPTIONS), 10, Tally(6, 0, 0, approvals))
    assert (result.outcome, result.winning_option) == (outcome, winner)


@pytest.mark.parametrize("majority", [m.value for m in MajorityRule if m is not MajorityRule.APPROVAL])
def test_no_quorum_wins_over_every_rule(majority):
    # 4 of 10 voted, quorum 50 %: even a unanimous result is no decision
    result = decide(terms(majority, quorum=50), 10, Tally(4, 0, 0))
    assert (result.outcome, result.quorum_met, result.turnout_percent) == (VoteOutcome.NO_QUORUM, False, 40.0)
    assert decide(terms(majority, quorum=50), 10, Tally(4, 0, 1)).quorum_met  # abstaining takes part


@given(f=st.integers(0, 50), a=st.integers(0, 50), x=st.integers(0, 50), quorum=st.integers(0, 100))
def test_outcome_properties(f, a, x, quorum):
    size = 150
    t = Tally(f, a, x)
    simple = decide(terms("simple", quorum=quorum, size=size, roll=False), size, t)
    assert simple.quorum_met == (100 * t.cast >= quorum * size)
    if simple.quorum_met:
        assert (simple.outcome is VoteOutcome.ADOPTED) == (f > a)
        assert (simple.outcome is VoteOutcome.TIED) == (f == a)
        # stricter rules never adopt what a simple majority rejects
        for rule in ("two_thirds", "unanimity", "consensus"):
            if decide(terms(rule, quorum=quorum, size=size, roll=False), size, t).outcome is VoteOutcome.ADOPTED:
                assert simple.outcome is VoteOutcome.ADOPTED


def test_opening_rules():
    with pytest.raises(Rejected) as denied:
        open_vote(terms(), role=Role.RESIDENT)
    assert denied.value.reason is RejectionReason.NOT_AUTHORISED
    with pytest.raises(Rejected) as bad:
        open_vote(terms("approval"))
    assert bad.value.reason is RejectionReason.INVALID_COMMAND
    with pytest.raises(Rejected):
        open_vote(terms("simple", **OPTIONS))
    with pytest.raises(Rejected):
        open_vote(terms(opens_at=(NOW + timedelta(days=2)).isoformat()))


def test_a_vote_closes_within_the_horizon():
    """Five years ahead is the furthest a deadline may lie (yishi.rules.HORIZON)."""
    assert open_vote(terms(closes_at=(NOW + HORIZON).isoformat())).terms.closes_at == NOW + HORIZON
    with pytest.raises(Rejected) as far:
        open_vote(terms(closes_at=(NOW + HORIZON + timedelta(seconds=1)).isoformat()))
    assert far.value.reason is RejectionReason.INVALID_COMMAND and "closes_at" in far.value.message


def test_ballot_rules():
    vote = open_vote(terms(opens_at=(NOW + timedelta(hours=1)).isoformat()))
    later = NOW + timedelta(hours=2)
    vote.check_ballot("m1", BallotChoice.IN_FAVOUR, None, later)
    for voter, when, reason in [("m1", NOW, RejectionReason.INVALID_STATE),  # before opening
                                ("stranger", later, RejectionReason.NOT_ELIGIBLE),
                                ("m1", NOW + timedelta(days=1), RejectionReason.DEADLINE_PASSED)]:
        with pytest.raises(Rejected) as exc:
            vote.check_ballot(voter, BallotChoice.IN_FAVOUR, None, when)
        assert exc.value.reason is reason
    with pytest.raises(Rejected):
        vote.check_ballot("m1", BallotChoice.IN_FAVOUR, ("east",), later)  # approvals on a yes/no vote


def test_approval_ballot_rules():
    vote = open_vote(terms("approval", **OPTIONS))
    vote.check_ballot("m1", BallotChoice.IN_FAVOUR, ("east", "west"), NOW)
    vote.check_ballot("m1", BallotChoice.ABSTAIN, None, NOW)
    for choice, approvals in [(BallotChoice.IN_FAVOUR, ()), (BallotChoice.IN_FAVOUR, ("south",)),
                              (BallotChoice.IN_FAVOUR, ("east", "east")), (BallotChoice.AGAINST, None),
                              (BallotChoice.ABSTAIN, ("east",))]:
        with pytest.raises(Rejected):
            vote.check_ballot("m1", choice, approvals, NOW)


def test_close_once_and_who_may_close():
    vote = open_vote(terms())
    with pytest.raises(Rejected) as early:
        vote.closure("yishi-voting", Role.SYSTEM, NOW, turnout=3)
    assert early.value.reason is RejectionReason.INVALID_STATE
    with pytest.raises(Rejected) as resident:
        vote.closure("m1", Role.RESIDENT, NOW, turnout=3)
    assert resident.value.reason is RejectionReason.NOT_AUTHORISED
    assert vote.closure("yishi-voting", Role.SYSTEM, NOW, turnout=10) is VoteClosure.ALL_VOTED
    with pytest.raises(Rejected):  # ballots may change until closing: everyone voting does not end it
        open_vote(terms(ballot_changes_allowed=True)).closure("yishi-voting", Role.SYSTEM, NOW, turnout=10)
    assert vote.closure("worker-1", Role.RESIDENT, NOW, turnout=3) is VoteClosure.CONVENER
    deadline = NOW + timedelta(days=1)
    assert vote.closure("yishi-voting", Role.SYSTEM, deadline, turnout=3) is VoteClosure.DEADLINE
    result = vote.close(Tally(5, 1, 0), VoteClosure.DEADLINE, deadline, ballots=[])
    assert result.outcome is VoteOutcome.ADOPTED and vote.result["closed_by"] == "deadline"
    with pytest.raises(Rejected):
        vote.close(Tally(), VoteClosure.DEADLINE, deadline)
    with pytest.raises(Rejected):
        vote.check_ballot("m1", BallotChoice.AGAINST, None, NOW)


def test_secret_ballot_records_participation_only_and_replays():
    mapper = default_mapper()
    once, changeable = open_vote(terms(secrecy="secret")), open_vote(terms(secrecy="secret", ballot_changes_allowed=True))
    ballot = Ballot.cast(vote=once, voter_id="m1", ballot_id="b-1", choice="in_favour", approvals=None, now=NOW)
    assert ballot.id == ballot_stream("gulou", "vote-1", "m1") != ballot_stream("gulou", "vote-1", "m2")
    with pytest.raises(Rejected) as twice:
        ballot.replace(vote=once, ballot_id="b-1", choice="against", approvals=None, now=NOW)
    assert twice.value.reason is RejectionReason.DUPLICATE
    ballot.replace(vote=changeable, ballot_id="b-1", choice="against", approvals=None, now=NOW)
    assert (ballot.ballot_id, ballot.choice, ballot.approvals) == (None, None, None)
    stored = [mapper.to_stored_event(e) for e in ballot.collect_events()]
    assert all(b"in_favour" not in s.state and b"against" not in s.state for s in stored)
    replayed = None
    for s in stored:
        replayed = mapper.to_domain_event(s).mutate(replayed)
    assert (replayed.id, replayed.version, replayed.voter_id) == (ballot.id, 2, "m1")


def test_vote_replays_from_its_events():
    mapper = default_mapper()
    vote = open_vote(terms(secrecy="secret"))
    vote.close(Tally(2, 1, 0), VoteClosure.CONVENER, NOW, ballots=[{"voter_id": "m1"}],
               board=[entry("0" * 20, "against")], participants=["m1"])
    replayed = None
    for e in vote.collect_events():
        replayed = mapper.to_domain_event(mapper.to_stored_event(e)).mutate(replayed)
    assert replayed.closed and replayed.secret and replayed.terms == vote.terms
    assert replayed.result["outcome"] == "no_quorum"  # 3 of 10 with quorum 50 %


# -- verifiable secret votes: the board and who took part ------------------------


def test_a_verifiable_vote_publishes_its_board_in_code_order_and_who_took_part_after_its_close():
    vote = open_vote(terms(secrecy="secret"))
    assert vote.verifiable and vote.terms.publishes_board  # on by default for a secret vote
    # As the box hands them over: in the order they were mixed, not by code.
    board = [entry("c" * 20, "against"), entry("a" * 20), entry("b" * 20, "abstain")]
    vote.close(Tally(1, 1, 1), VoteClosure.DEADLINE, NOW, board=board, participants=["m7", "m2", "m5"])
    closed, published, listed = vote.collect_events()[1:]
    assert isinstance(closed, Vote.Closed) and closed.ballots is None
    assert [e["tracking_code"][0] for e in published.entries] == ["a", "b", "c"]  # code order: random
    assert [e["choice"] for e in published.entries] == ["in_favour", "abstain", "against"]
    assert all(set(e) == {"tracking_code", "choice", "approvals"} for e in published.entries)  # no voter
    assert "m2" not in repr(published.entries)
    assert listed.voter_ids == ["m2", "m5", "m7"]  # id order: nothing of the ballots' order


def test_an_open_vote_or_a_secret_one_turned_off_publishes_no_board():
    for t in (terms(), terms(verifiable=True), terms(secrecy="secret", verifiable=False)):
        vote = open_vote(t)
        assert not vote.verifiable and not t.publishes_board
        vote.close(Tally(1, 0, 0), VoteClosure.DEADLINE, NOW, ballots=[])
        assert [type(e).__name__ for e in vote.collect_events()] == ["Opened", "Closed"]
        with pytest.raises(ValueError):  # a board is the verifiable votes' only
            open_vote(t).close(Tally(), VoteClosure.DEADLINE, NOW, board=[], participants=[])
    with pytest.raises(ValueError):  # and theirs is required
        open_vote(terms(secrecy="secret")).close(Tally(), VoteClosure.DEADLINE, NOW)


def test_a_stored_secret_vote_from_before_the_option_is_verifiable():
    stored = terms(secrecy="secret").model_dump(mode="json")
    del stored["verifiable"]
    assert VoteTerms.model_validate(stored).publishes_board


@given(st.lists(st.sampled_from(["in_favour", "against", "abstain"]), max_size=30))
def test_recounting_a_board_counts_each_choice(choices):
    board = [entry(f"{i:020x}", c) for i, c in enumerate(choices)]
    counted = recount(board, approval=False)
    assert (counted.in_favour, counted.against, counted.abstain) == tuple(choices.count(c) for c in
                                                                          ("in_favour", "against", "abstain"))
    assert counted.approvals is None


def test_recounting_an_approval_board_counts_each_option():
    board = [entry("1" * 20, "in_favour", ("east", "west")), entry("2" * 20, "in_favour", ("east",)),
             entry("3" * 20, "abstain")]
    counted = recount(board, approval=True)
    assert (counted.in_favour, counted.abstain, counted.approvals) == (2, 1, {"east": 2, "west": 1})
    assert recount([], approval=True).approvals == {}


def test_a_large_board_and_its_participants_are_published_in_pages(monkeypatch):
    monkeypatch.setattr(domain, "BOARD_PAGE", 2)
    vote = open_vote(terms(secrecy="secret"))
    board = [entry(f"{i:020x}") for i in (4, 0, 3, 1, 2)]
    vote.close(Tally(5, 0, 0), VoteClosure.DEADLINE, NOW, board=board, participants=[f"m{i}" for i in range(5)])
    events = vote.collect_events()
    boards = [e for e in events if isinstance(e, Vote.BoardPublished)]
    lists = [e for e in events if isinstance(e, Vote.ParticipantsListed)]
    assert [(e.page, e.pages, [x["tracking_code"][-1] for x in e.entries]) for e in boards] == [
        (1, 3, ["0", "1"]), (2, 3, ["2", "3"]), (3, 3, ["4"])]  # code order across the pages
    assert [(e.page, e.pages, e.voter_ids) for e in lists] == [(1, 3, ["m0", "m1"]), (2, 3, ["m2", "m3"]),
                                                              (3, 3, ["m4"])]
    empty = open_vote(terms(secrecy="secret"))
    empty.close(Tally(), VoteClosure.DEADLINE, NOW, board=[], participants=[])
    assert [(e.page, e.pages, e.entries) for e in empty.collect_events() if isinstance(e, Vote.BoardPublished)] == [
        (1, 1, [])]  # an empty board is published too: nobody voted
