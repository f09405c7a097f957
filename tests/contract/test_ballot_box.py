"""The ballot box contract: what every ballot box does, run against each (the voting
service's PostgreSQL tables and the one in memory, the ``box`` fixture), as the event
store's suite is. Open ballots, secret choices under their receipts, replacements, the
refusals the box decides before a ballot is saved, the count and the mixing.
PostgreSQL's own (the locks, what its rows let an observer pair) are in
``tests/integration/voting``."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from contracts.common import RejectionReason, VoteTerms
from services.voting.ballot_box import MIX_BATCH, BallotBox, MemoryBallotBox, PostgresBallotBox, receipt_hash
from services.voting.domain import Tally, Vote
from yishi import migrations
from yishi.db import create_pool
from yishi.rules import Rejected
from yishi.store import ConcurrencyError

NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)


@pytest.fixture(params=["postgres", "memory"])
async def box(request):
    """An empty ballot box and the connection it is used on: the voting schema's tables
    (a fresh migrated schema, each call committing at once) or in memory."""
    if request.param == "memory":
        yield MemoryBallotBox(seed=3), None
        return
    servers, schema = request.getfixturevalue("servers"), request.getfixturevalue("schema_name")
    await migrations.upgrade(servers.database_url, schema, migrations.locations("voting"))
    pool = await create_pool(servers.database_url, schema, max_size=2)
    try:
        yield PostgresBallotBox(), pool
    finally:
        await pool.close()
        conn = await asyncpg.connect(servers.database_url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


@contextlib.asynccontextmanager
async def transaction(pool):
    """A transaction on a connection of ``pool`` (the memory box's ``None``: none)."""
    if pool is None:
        yield None
        return
    async with pool.acquire() as conn, conn.transaction():
        yield conn


def vote(vote_id: str = "v-1", secrecy: str = "open", majority: str = "simple", **terms) -> Vote:
    return Vote.open(vote_id=vote_id, district="gulou", council_id="c-1", matter={"kind": "question", "id": "q-1"},
                     terms=VoteTerms.model_validate({
                         "question": "?", "method": "online", "majority": majority, "quorum_percent": 50,
                         "secrecy": secrecy, "closes_at": (NOW + timedelta(days=1)).isoformat(),
                         "electorate": {"kind": "residents_meeting", "scope_id": "community-1", "size": 100},
                         **terms}),
                     convener_id="worker-1", convener_role="community_worker", now=NOW)


async def test_open_ballots_register_their_voters_and_count_who_voted_how(box):
    box, conn = box
    v, other = vote(), vote("v-2")
    await box.cast(conn, v, "m2", "b-2", "against", None, first=True)
    await box.cast(conn, v, "m1", "b-1", "in_favour", None, first=True)
    await box.cast(conn, other, "m1", "b-9", "abstain", None, first=True)
    assert await box.turnout(conn, v.id) == 2 and await box.turnout(conn, other.id) == 1
    assert await box.open_ballots(conn, v.id) == [{"voter_id": "m1", "choice": "in_favour", "approvals": None},
                                                  {"voter_id": "m2", "choice": "against", "approvals": None}]
    assert await box.tally(conn, v.id, secret=False) == Tally(in_favour=1, against=1)
    assert (await box.open_choice(conn, v.id, "b-2")).choice == "against"
    assert await box.open_choice(conn, v.id, "b-9") is None


async def test_an_open_ballot_is_replaced_in_place(box):
    box, conn = box
    v = vote(ballot_changes_allowed=True)
    await box.cast(conn, v, "m1", "b-1", "in_favour", None, first=True)
    await box.cast(conn, v, "m1", "b-2", "against", None, first=False)
    assert await box.turnout(conn, v.id) == 1
    assert await box.open_ballots(conn, v.id) == [{"voter_id": "m1", "choice": "against", "approvals": None}]
    assert await box.open_choice(conn, v.id, "b-1") is None


@pytest.mark.parametrize("secrecy", ["open", "secret"])
async def test_a_first_ballot_of_a_registered_voter_is_a_conflict_and_puts_nothing(box, secrecy):
    """Another ballot of theirs was saved since the caller read their ballot stream: the
    command is tried again, and then sees it."""
    box, conn = box
    v = vote(secrecy=secrecy)
    await box.cast(conn, v, "m1", "b-1", "in_favour", None, first=True)
    with pytest.raises(ConcurrencyError):
        await box.cast(conn, v, "m1", "b-2", "against", None, first=True)
    assert await box.turnout(conn, v.id) == 1
    if secrecy == "secret":
        assert await box.secret_choice(conn, v, "m1", "b-2") is None
        assert await box.mix(conn, v.id) == 1
    assert await box.tally(conn, v.id, secret=secrecy == "secret") == Tally(in_favour=1)


async def test_a_secret_choice_is_kept_under_its_receipt_and_counted_once_mixed(box):
    box, conn = box
    v = vote(secrecy="secret", majority="approval", options=[{"id": "east", "label": "东"},
                                                                {"id": "west", "label": "西"}])
    await box.cast(conn, v, "m1", "r-1", "in_favour", ["east", "west"], first=True)
    await box.cast(conn, v, "m2", "r-2", "in_favour", ["east"], first=True)
    assert await box.turnout(conn, v.id) == 2 and await box.open_ballots(conn, v.id) == []
    assert (await box.secret_choice(conn, v, "m1", "r-1")).approvals == ["east", "west"]
    assert await box.secret_choice(conn, v, "m2", "r-1") is None  # another voter's receipt finds nothing
    assert await box.recorded(conn, v.id, receipt_hash("gulou", "v-1", "m2", "r-2")) is not None
    assert await box.tally(conn, v.id, secret=True) == Tally()  # pending choices are not counted yet
    assert await box.mix(conn, v.id, at_least=3) == 0
    assert await box.mix(conn, v.id) == 2 and await box.mix(conn, v.id) == 0
    assert await box.tally(conn, v.id, secret=True) == Tally(in_favour=2, approvals={"east": 2, "west": 1})
    assert (await box.secret_choice(conn, v, "m1", "r-1")).choice == "in_favour"  # mixed, still found


async def test_a_receipt_already_taken_is_refused_before_anything_is_kept(box, monkeypatch):
    """Receipts are hashes of the voter with their ballot id: two voters' collide only if
    their hashes do. Such a second ballot is refused, and as the bus runs it, in a
    transaction its refusal rolls back, it leaves nothing."""
    box, conn = box
    v = vote(secrecy="secret")
    monkeypatch.setattr(BallotBox, "receipt", staticmethod(lambda *_: b"one receipt"))
    await box.cast(conn, v, "m1", "r-1", "in_favour", None, first=True)
    with pytest.raises(Rejected) as taken:
        async with transaction(conn) as tx:
            await box.cast(tx, v, "m2", "r-2", "against", None, first=True)
    assert (taken.value.reason, taken.value.subject) == (RejectionReason.ALREADY_EXISTS, "v-1")
    assert await box.turnout(conn, v.id) == 1
    assert await box.mix(conn, v.id) == 1 and await box.tally(conn, v.id, secret=True) == Tally(in_favour=1)


@pytest.mark.parametrize("mixed", [False, True])
async def test_a_secret_choice_is_replaced_with_its_first_receipt_only(box, mixed):
    box, conn = box
    v = vote(secrecy="secret", ballot_changes_allowed=True)
    await box.cast(conn, v, "m1", "r-1", "in_favour", None, first=True)
    if mixed:
        await box.mix(conn, v.id)
    with pytest.raises(Rejected) as other:
        await box.cast(conn, v, "m1", "r-2", "against", None, first=False)
    assert (other.value.reason, other.value.subject) == (RejectionReason.INVALID_STATE, "v-1")
    assert (await box.secret_choice(conn, v, "m1", "r-1")).choice == "in_favour"
    await box.cast(conn, v, "m1", "r-1", "against", None, first=False)
    assert (await box.secret_choice(conn, v, "m1", "r-1")).choice == "against"
    assert await box.turnout(conn, v.id) == 1
    assert await box.mix(conn, v.id) == 1  # the replacement waits to be mixed like any other
    assert await box.tally(conn, v.id, secret=True) == Tally(against=1)


async def test_votes_with_a_full_batch_pending_are_listed_to_mix(box):
    box, conn = box
    full, short = vote("v-full", secrecy="secret"), vote("v-short", secrecy="secret")
    for i in range(MIX_BATCH):
        await box.cast(conn, full, f"m{i}", f"r-{i}", "abstain", None, first=True)
    await box.cast(conn, short, "m1", "r-1", "abstain", None, first=True)
    assert await box.votes_to_mix(conn) == [full.id]
    assert await box.mix(conn, full.id, MIX_BATCH) == MIX_BATCH
    assert await box.votes_to_mix(conn) == []


async def test_a_verifiable_vote_boards_its_mixed_choices_by_tracking_code_and_registers_who_voted(box):
    box, conn = box
    v = vote(secrecy="secret", majority="approval", options=[{"id": "east", "label": "东"},
                                                                {"id": "west", "label": "西"}])
    ballots = {"m3": ("in_favour", ["east"]), "m1": ("abstain", None), "m2": ("in_favour", ["east", "west"])}
    for voter, (choice, approvals) in ballots.items():
        await box.cast(conn, v, voter, f"r-{voter}", choice, approvals, first=True)
    codes = {voter: (await box.secret_choice(conn, v, voter, f"r-{voter}")).tracking_code for voter in ballots}
    assert all(len(c) == 20 and int(c, 16) >= 0 for c in codes.values()) and len(set(codes.values())) == 3
    assert await box.board(conn, v.id) == []  # nothing is boarded before it is mixed
    await box.mix(conn, v.id)
    board = await box.board(conn, v.id)
    assert [e.tracking_code for e in board] == sorted(codes.values())
    assert {e.tracking_code: (e.choice, e.approvals) for e in board} == {
        codes["m3"]: ("in_favour", ("east",)), codes["m1"]: ("abstain", None),
        codes["m2"]: ("in_favour", ("east", "west"))}
    assert await box.participant_ids(conn, v.id) == ["m1", "m2", "m3"]
    assert (await box.secret_choice(conn, v, "m1", "r-m1")).tracking_code == codes["m1"]  # mixed, still found


async def test_a_replaced_secret_choice_gets_a_new_tracking_code(box):
    box, conn = box
    v = vote(secrecy="secret", ballot_changes_allowed=True)
    await box.cast(conn, v, "m1", "r-1", "in_favour", None, first=True)
    await box.mix(conn, v.id)
    first = (await box.secret_choice(conn, v, "m1", "r-1")).tracking_code
    await box.cast(conn, v, "m1", "r-1", "against", None, first=False)
    second = (await box.secret_choice(conn, v, "m1", "r-1")).tracking_code
    await box.mix(conn, v.id)
    assert first != second
    assert [(e.tracking_code, e.choice) for e in await box.board(conn, v.id)] == [(second, "against")]


async def test_an_open_vote_or_a_secret_one_turned_off_draws_no_tracking_code(box):
    box, conn = box
    off, public = vote("v-off", secrecy="secret", verifiable=False), vote("v-open")
    await box.cast(conn, off, "m1", "r-1", "against", None, first=True)
    await box.cast(conn, public, "m1", "b-1", "against", None, first=True)
    assert (await box.secret_choice(conn, off, "m1", "r-1")).tracking_code is None
    assert (await box.open_choice(conn, public.id, "b-1")).tracking_code is None
    assert await box.participant_ids(conn, public.id) == ["m1"]


def test_both_boxes_implement_the_one_interface():
    assert issubclass(PostgresBallotBox, BallotBox) and issubclass(MemoryBallotBox, BallotBox)
    PostgresBallotBox(), MemoryBallotBox()  # neither leaves an abstract method open
