"""Every voting command handler, through the command bus, on the memory event store and the
memory ballot box (no PostgreSQL, no broker): what each accepts, what it refuses and
why, what a secret ballot records, resends and replacements, and the timer's close."""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from contracts.common import Actor, CommandAccepted, CommandRejected, RejectionReason, Role
from contracts.envelope import Envelope
from contracts.proposals import VoteRequested
from contracts.registry import to_envelope
from contracts.voting import BallotChoice, CastBallot, CloseVote, OpenVote, VoteBoardPublished, VoteParticipants
from services.voting.application import build_bus, close_due
from services.voting.ballot_box import MemoryBallotBox, receipt_hash
from services.voting.consumers import vote_requested
from services.voting.domain import Ballot, Vote
from services.voting.translator import translate
from tests.support.handlers import Handlers, assert_every_handler_tested, covers
from yishi.clock import ManualClock
from yishi.memory import MemoryEventStore
from yishi.repository import Repository

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
D = "gulou"
WORKER = Actor(id="worker-1", role=Role.COMMUNITY_WORKER)
ROLL = ["m1", "m2", "m3"]


@pytest.fixture
def box() -> MemoryBallotBox:
    return MemoryBallotBox(seed=7)


@pytest.fixture
def h(box: MemoryBallotBox) -> Handlers:
    """Voting's bus on the memory store (no snapshots, as the service runs) and ``box``."""
    return Handlers(build_bus, ManualClock(T0), Repository(MemoryEventStore(), snapshot_every=None), box=box)


def open_vote(vote_id: str = "v-1", *, kind: str = "question", **terms) -> OpenVote:
    return OpenVote.model_validate({
        "district": D, "actor": WORKER.model_dump(), "vote_id": vote_id, "council_id": "council-1",
        "matter": {"kind": kind, "id": f"q-{vote_id}"},
        "terms": {"question": "在3号院增设充电棚?", "method": "online", "majority": "simple", "quorum_percent": 50,
                  "secrecy": "open", "closes_at": (T0 + timedelta(days=1)).isoformat(),
                  "electorate": {"kind": "council_members", "scope_id": "council-1", "size": len(ROLL),
                                 "roll": ROLL}, **terms}})


def ballot(voter: str, ballot_id: str, choice: str = "in_favour", vote_id: str = "v-1") -> CastBallot:
    return CastBallot(district=D, actor=Actor(id=voter, role=Role.RESIDENT), vote_id=vote_id, ballot_id=ballot_id,
                      choice=BallotChoice(choice))


def close(vote_id: str = "v-1", actor: Actor = WORKER) -> CloseVote:
    return CloseVote(district=D, actor=actor, vote_id=vote_id)


async def topics(h: Handlers, stream: str) -> list[str]:
    return [e.topic.rsplit(":", 1)[-1] for e in await h.store.read_stream(stream)]


async def closed_event(h: Handlers):
    (closed,) = [e for e in await h.store.read_stream(VOTE) if e.topic.endswith("Vote.Closed")]
    return closed


def ballot_stream(voter: str, vote_id: str = "v-1") -> str:
    return Ballot.create_id(D, vote_id, voter)


VOTE = Vote.create_id(D, "v-1")


# -- OpenVote -------------------------------------------------------------------


@covers(OpenVote, "accepted")
async def test_open_vote_is_accepted_once_and_again_on_the_same_terms(h):
    assert (await h.accepted(open_vote())).subject == "v-1"
    assert (await h.accepted(open_vote())).subject == "v-1"  # a new key, the same vote: no change
    assert await topics(h, VOTE) == ["Vote.Opened"]
    vote = await h.load(Vote, D, "v-1")
    assert (vote.vote_id, vote.council_id, vote.convener_id, vote.terms) == ("v-1", "council-1", "worker-1",
                                                                             open_vote().terms)


@covers(OpenVote, "refused")
async def test_open_vote_refusals(h):
    await h.accepted(open_vote())
    taken = await h.rejected(open_vote(quorum_percent=60), RejectionReason.ALREADY_EXISTS)
    assert (taken.subject, taken.message) == ("v-1", "vote id v-1 is already used")
    await h.rejected(open_vote("v-2", closes_at=T0.isoformat()), RejectionReason.INVALID_COMMAND)
    await h.rejected(open_vote("v-3", kind="proposal"), RejectionReason.VOTE_REQUESTED_THROUGH_PROPOSALS)
    await h.rejected(open_vote("v-4"), RejectionReason.NOT_AUTHORISED, acts_for=("council-9",))
    assert await topics(h, Vote.create_id(D, "v-4")) == []


@covers(OpenVote, "resent")
async def test_the_platform_opens_a_proposals_vote_from_vote_requested_once(h):
    """The reaction to ``VoteRequested``: the requester's ``OpenVote`` on the proposal,
    sent by the platform; the event delivered again is answered from the recorded reply."""
    command = open_vote(kind="proposal")
    event = VoteRequested(district=D, actor=command.actor, occurred_at=T0, vote_id="v-1", council_id="council-1",
                          matter=command.matter, terms=command.terms)
    envelope: Envelope = to_envelope(event, id=str(uuid.uuid4()), source=f"/yishi/{D}/proposals", subject="p-1",
                                     time=T0, correlation_id="session-1")
    reply = await h.react(vote_requested(event, h.bus.system_actor), envelope)
    assert isinstance(reply, CommandAccepted) and reply.subject == "v-1"
    await h.resent(vote_requested(event, h.bus.system_actor), reply, envelope=envelope)
    assert await topics(h, VOTE) == ["Vote.Opened"]
    assert (await h.load(Vote, D, "v-1")).convener_id == "worker-1"


# -- CastBallot -----------------------------------------------------------------


@covers(CastBallot, "accepted")
async def test_an_open_ballot_is_recorded_with_its_choice_and_counted(h, box):
    await h.accepted(open_vote())
    assert (await h.accepted(ballot("m1", "b-1", "against"))).subject == "v-1"
    stored = await h.load(Ballot, D, "v-1", "m1")
    assert (stored.voter_id, stored.ballot_id, stored.choice) == ("m1", "b-1", "against")
    assert await box.turnout(None, VOTE) == 1
    assert await box.open_ballots(None, VOTE) == [{"voter_id": "m1", "choice": "against", "approvals": None}]


@covers(CastBallot, "secret")
async def test_a_secret_ballot_records_participation_only(h, box):
    await h.accepted(open_vote(secrecy="secret"))
    await h.accepted(ballot("m1", "rcpt-1", "against"), aspects=["secret"])
    (event,) = await h.store.read_stream(ballot_stream("m1"))
    assert b"against" not in event.state and b"rcpt-1" not in event.state
    stored = await h.load(Ballot, D, "v-1", "m1")
    assert (stored.voter_id, stored.ballot_id, stored.choice, stored.approvals) == ("m1", None, None, None)
    # The choice is in the box, under the receipt's hash only, waiting to be mixed.
    receipt = receipt_hash(D, "v-1", "m1", "rcpt-1")
    assert list(box.pending[VOTE]) == [receipt] and box.pending[VOTE][receipt].choice == "against"
    assert await box.turnout(None, VOTE) == 1 and VOTE not in box.open


@pytest.mark.parametrize("secrecy", ["open", "secret"])
@covers(CastBallot, "resent")
async def test_a_resent_ballot_changes_nothing_and_another_is_a_duplicate(h, box, secrecy):
    await h.accepted(open_vote(secrecy=secrecy))
    await h.once(ballot("m1", "b-1", "in_favour"))  # and resent under its key: its reply
    await h.accepted(ballot("m1", "b-1", "in_favour"))  # the same ballot under a new key
    duplicate = await h.rejected(ballot("m1", "b-2", "against"), RejectionReason.DUPLICATE)
    assert duplicate.message == "this voter has already voted"
    assert await topics(h, ballot_stream("m1")) == ["Ballot.Cast"]
    assert await box.turnout(None, VOTE) == 1


async def test_an_open_ballot_is_replaced_where_the_vote_allows_it(h, box):
    await h.accepted(open_vote(ballot_changes_allowed=True))
    await h.accepted(ballot("m1", "b-1", "in_favour"))
    await h.accepted(ballot("m1", "b-2", "against"))
    assert await topics(h, ballot_stream("m1")) == ["Ballot.Cast", "Ballot.Replaced"]
    assert (await h.load(Ballot, D, "v-1", "m1")).ballot_id == "b-2"
    assert await box.open_ballots(None, VOTE) == [{"voter_id": "m1", "choice": "against", "approvals": None}]
    assert await box.turnout(None, VOTE) == 1


@covers(CastBallot, "replaced")
async def test_a_secret_ballot_is_replaced_with_its_first_receipt_only(h, box):
    await h.accepted(open_vote(secrecy="secret", ballot_changes_allowed=True))
    await h.accepted(ballot("m1", "rcpt-1", "in_favour"))
    other = await h.rejected(ballot("m1", "rcpt-2", "against"), RejectionReason.INVALID_STATE)
    assert other.message == "a secret ballot is replaced by sending it again with its first ballot_id"
    assert await topics(h, ballot_stream("m1")) == ["Ballot.Cast"]
    await h.accepted(ballot("m1", "rcpt-1", "against"), aspects=["replaced"])
    assert await topics(h, ballot_stream("m1")) == ["Ballot.Cast", "Ballot.Replaced"]
    assert [c.choice for c in box.pending[VOTE].values()] == ["against"]
    assert all(b"against" not in e.state for e in await h.store.read_stream(ballot_stream("m1")))


@covers(CastBallot, "refused")
async def test_cast_ballot_refusals(h):
    missing = await h.rejected(ballot("m1", "b-1", vote_id="v-9"), RejectionReason.NOT_FOUND)
    assert (missing.subject, missing.message) == ("v-9", "no vote v-9 in gulou")
    await h.accepted(open_vote())
    await h.accepted(open_vote("v-later", opens_at=(T0 + timedelta(hours=1)).isoformat()))
    await h.rejected(ballot("m1", "b-1", vote_id="v-later"), RejectionReason.INVALID_STATE)
    await h.rejected(ballot("stranger", "b-1"), RejectionReason.NOT_ELIGIBLE)
    with_approvals = ballot("m1", "b-1").model_copy(update={"approvals": ("east",)})
    await h.rejected(with_approvals, RejectionReason.INVALID_COMMAND)
    h.clock.advance(timedelta(days=2))
    await h.rejected(ballot("m1", "b-1"), RejectionReason.DEADLINE_PASSED)
    assert await topics(h, ballot_stream("m1")) == []


# -- CloseVote ------------------------------------------------------------------


@covers(CloseVote, "accepted", "resent")
async def test_the_convener_closes_an_open_vote_counting_who_voted_how(h):
    await h.accepted(open_vote())
    await h.accepted(ballot("m1", "b-1", "in_favour"))
    await h.accepted(ballot("m2", "b-2", "against"))
    await h.accepted(ballot("m3", "b-3", "in_favour"))
    first = await h.accepted(close(), key="close-1")
    assert first.subject == "v-1"
    await h.resent(close(), first, key="close-1")  # its recorded reply, nothing else
    assert await topics(h, VOTE) == ["Vote.Opened", "Vote.Closed"]
    vote = await h.load(Vote, D, "v-1")
    assert vote.closed and vote.result["outcome"] == "adopted" and vote.result["closed_by"] == "convener"
    assert vote.result["tally"] == {"in_favour": 2, "against": 1, "abstain": 0, "approvals": None}
    assert vote.result["turnout_percent"] == 100.0 and vote.result["quorum_met"]
    closed = await closed_event(h)
    assert b'"voter_id":"m2"' in closed.state.replace(b" ", b"")


@covers(CloseVote, "secret")
async def test_closing_a_secret_vote_mixes_and_counts_its_choices(h, box):
    await h.accepted(open_vote(secrecy="secret"))
    await h.accepted(ballot("m1", "r-1", "against"))
    await h.accepted(ballot("m2", "r-2", "against"))
    await h.accepted(close(), aspects=["secret"])
    vote = await h.load(Vote, D, "v-1")
    assert vote.result["tally"] == {"in_favour": 0, "against": 2, "abstain": 0, "approvals": None}
    assert vote.result["outcome"] == "rejected" and not box.pending[VOTE] and len(box.mixed[VOTE]) == 2
    closed = await closed_event(h)
    assert b"m1" not in closed.state and b'"ballots":null' in closed.state.replace(b" ", b"")


async def published_board(h: Handlers) -> tuple[list[dict], list[str]]:
    """Vote v-1's board entries and participants, as published (``VoteBoardPublished``,
    ``VoteParticipants``)."""
    board, listed = (translate(e) for e in (await h.store.read_stream(VOTE))[2:])
    assert (board.type, listed.type) == ("VoteBoardPublished", "VoteParticipants")
    return (VoteBoardPublished.model_validate_json(board.data).model_dump(mode="json")["entries"],
            list(VoteParticipants.model_validate_json(listed.data).voter_ids))


@covers(CloseVote, "board")
async def test_closing_a_verifiable_vote_publishes_its_board_and_who_took_part(h, box):
    await h.accepted(open_vote(secrecy="secret"))
    for voter, choice in (("m1", "against"), ("m2", "in_favour"), ("m3", "against")):
        await h.accepted(ballot(voter, f"r-{voter}", choice))
    codes = {v: (await box.secret_choice(None, await h.load(Vote, D, "v-1"), v, f"r-{v}")).tracking_code
             for v in ROLL}
    await h.accepted(close(), aspects=["board"])
    assert await topics(h, VOTE) == ["Vote.Opened", "Vote.Closed", "Vote.BoardPublished", "Vote.ParticipantsListed"]
    board = (await h.store.read_stream(VOTE))[2]
    assert all(voter.encode() not in board.state for voter in ROLL)  # no voter id on the board
    vote = await h.load(Vote, D, "v-1")
    assert vote.result["tally"] == {"in_favour": 1, "against": 2, "abstain": 0, "approvals": None}
    entries, voter_ids = await published_board(h)
    assert sorted(e["tracking_code"] for e in entries) == [e["tracking_code"] for e in entries]  # code order
    assert {e["tracking_code"]: e["choice"] for e in entries} == {
        codes["m1"]: "against", codes["m2"]: "in_favour", codes["m3"]: "against"}  # each voter's code, their choice
    assert voter_ids == ROLL


async def test_a_replaced_secret_ballot_is_on_the_board_under_a_new_code_only(h, box):
    await h.accepted(open_vote(secrecy="secret", ballot_changes_allowed=True))
    await h.accepted(ballot("m1", "r-1", "in_favour"))
    vote = await h.load(Vote, D, "v-1")
    first = (await box.secret_choice(None, vote, "m1", "r-1")).tracking_code
    await h.accepted(ballot("m1", "r-1", "against"))
    second = (await box.secret_choice(None, vote, "m1", "r-1")).tracking_code
    assert first != second and len(second) == 20
    await h.accepted(close())
    entries, voter_ids = await published_board(h)
    assert entries == [{"tracking_code": second, "choice": "against", "approvals": None}] and voter_ids == ["m1"]


async def test_a_secret_vote_turned_off_draws_no_code_and_publishes_no_board(h, box):
    await h.accepted(open_vote(secrecy="secret", verifiable=False))
    await h.accepted(ballot("m1", "r-1", "against"))
    assert (await box.secret_choice(None, await h.load(Vote, D, "v-1"), "m1", "r-1")).tracking_code is None
    await h.accepted(close())
    assert await topics(h, VOTE) == ["Vote.Opened", "Vote.Closed"]


@covers(CloseVote, "refused")
async def test_close_vote_refusals(h):
    missing = await h.rejected(close("v-9"), RejectionReason.NOT_FOUND)
    assert (missing.subject, missing.message) == ("v-9", "no vote v-9 in gulou")
    await h.accepted(open_vote())
    await h.rejected(close(), RejectionReason.NOT_AUTHORISED, acts_for=("council-9",))
    await h.rejected(close(actor=Actor(id="m1", role=Role.RESIDENT)), RejectionReason.NOT_AUTHORISED)
    await h.accepted(close())
    again = await h.rejected(close(), RejectionReason.INVALID_STATE)
    assert again.message == "the vote is already closed"
    assert await topics(h, VOTE) == ["Vote.Opened", "Vote.Closed"]


# -- the closing timer's close --------------------------------------------------


@covers(CloseVote, "timer")
async def test_the_timer_closes_a_vote_at_its_closing_time_only(h):
    await h.accepted(open_vote())
    await h.accepted(ballot("m1", "b-1"))
    early = h.answered(CloseVote, await close_due(h.bus, D, "v-1"), "timer")
    assert isinstance(early, CommandRejected) and early.reason is RejectionReason.INVALID_STATE
    assert early.actor == h.bus.system_actor and early.message == "the vote is not due to close"
    h.clock.advance(timedelta(days=1))
    assert isinstance(await close_due(h.bus, D, "v-1"), CommandAccepted)
    vote = await h.load(Vote, D, "v-1")
    assert vote.result["closed_by"] == "deadline" and vote.result["outcome"] == "no_quorum"
    closed = await closed_event(h)
    assert closed.metadata["actor"] == "yishi-voting" and closed.metadata["correlation_id"] == "timer-v-1-close"


async def test_the_timer_closes_a_vote_once_everyone_voted_unless_ballots_may_change(h):
    await h.accepted(open_vote())
    await h.accepted(open_vote("v-2", ballot_changes_allowed=True))
    for voter in ROLL:
        await h.accepted(ballot(voter, f"b-{voter}"))
        await h.accepted(ballot(voter, f"b-{voter}", vote_id="v-2"))
    assert isinstance(await close_due(h.bus, D, "v-1"), CommandAccepted)
    assert (await h.load(Vote, D, "v-1")).result["closed_by"] == "all_voted"
    changeable = await close_due(h.bus, D, "v-2")
    assert isinstance(changeable, CommandRejected) and changeable.reason is RejectionReason.INVALID_STATE


# -- every handler has its tests ------------------------------------------------

EXTRA = {CastBallot: ("secret", "replaced"), CloseVote: ("secret", "timer", "board")}
"""Beyond accepted, resent and refused: what a secret vote's ballot and close record, a
ballot replaced, the timer's close, and a verifiable vote's published board."""


def test_every_handler_of_the_bus_is_tested_here(h):
    assert_every_handler_tested(h.bus, sys.modules[__name__], extra=EXTRA)
