"""500 electors at once, 100 duplicate attempts, and a close racing in the middle, over
the real PostgreSQL: one ballot per elector, nothing counted after the close, tally =
accepted ballots."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import timedelta

from contracts.common import Actor, CommandAccepted, CommandRejected, RejectionReason, Role
from contracts.voting import BallotChoice, CastBallot, CloseVote, OpenVote
from services.voting.application import create_bus
from services.voting.domain import vote_stream
from services.voting.main import spec
from tests.support.service import running
from yishi.auth import Principal

ELECTORS = 500
DUPLICATES = 100
CHOICES = list(BallotChoice)

PLATFORM = Principal.of_platform("voting")


def open_command(district: str, vote_id: str, closes_at, size: int, secrecy: str = "open",
                 roll: list[str] | None = None, **terms) -> OpenVote:
    """An ``OpenVote`` by a community worker for a council vote (roll = m0000…)."""
    return OpenVote.model_validate({
        "district": district, "actor": {"id": "worker-1", "role": "community_worker"},
        "vote_id": vote_id, "council_id": "council-1", "matter": {"kind": "question", "id": f"q-{vote_id}"},
        "terms": {"question": "在3号院增设充电棚?", "method": "online", "majority": "simple", "quorum_percent": 50,
                  "secrecy": secrecy, "closes_at": closes_at.isoformat(),
                  "electorate": {"kind": "council_members", "scope_id": "council-1", "size": size,
                                 "roll": roll or [f"m{i:04d}" for i in range(size)]}, **terms},
    })


def ballot(district: str, vote_id: str, voter: str, ballot_id: str, choice: BallotChoice) -> CastBallot:
    return CastBallot(district=district, actor=Actor(id=voter, role=Role.COUNCIL_MEMBER, seat_id=f"seat-{voter}"),
                      vote_id=vote_id,
                      ballot_id=ballot_id, choice=choice)


async def test_concurrent_ballots_duplicates_and_a_racing_close(servers):
    async with running(spec(), servers, db_pool_max=20) as r:
        bus = create_bus(r.ctx.store, r.ctx.clock)
        d = r.district
        opened = await bus.dispatch(open_command(d, "vote-race", r.clock.now() + timedelta(days=1), ELECTORS),
                                    command_id="open", correlation_id="open", principal=PLATFORM)
        assert isinstance(opened, CommandAccepted)

        rng = random.Random(5)
        attempts = [(f"m{i:04d}", f"b-{i}", rng.choice(CHOICES)) for i in range(ELECTORS)]
        attempts += [(f"m{i:04d}", f"b-{i}-again", rng.choice(CHOICES)) for i in rng.sample(range(ELECTORS), DUPLICATES)]
        rng.shuffle(attempts)
        results: list[tuple[str, BallotChoice, object]] = []
        halfway = asyncio.Event()

        async def cast(voter: str, ballot_id: str, choice: BallotChoice) -> None:
            command = ballot(d, "vote-race", voter, ballot_id, choice)
            reply = await bus.dispatch(command, command_id=f"cmd-{ballot_id}", correlation_id=ballot_id,
                                       principal=Principal.of_actor(command.actor, d))
            results.append((voter, choice, reply))
            if sum(isinstance(x[2], CommandAccepted) for x in results) >= 250:
                halfway.set()

        # The convener's connection is taken now, so the close does not queue behind the ballots for one.
        convener = await r.ctx.pool.acquire()

        async def close() -> object:
            await asyncio.wait_for(halfway.wait(), 120)  # fail, not hang, if ballots are refused
            async with convener.transaction():
                return await bus.dispatch(
                    CloseVote(district=d, actor=Actor(id="worker-1", role=Role.COMMUNITY_WORKER), vote_id="vote-race"),
                    command_id="close", correlation_id="close", conn=convener,
                    principal=PLATFORM)

        try:
            *_, closed = await asyncio.gather(*(cast(*a) for a in attempts), close())
        finally:
            await r.ctx.pool.release(convener)
        assert isinstance(closed, CommandAccepted)

        accepted = [(v, c) for v, c, reply in results if isinstance(reply, CommandAccepted)]
        rejected = [reply.reason for _, _, reply in results if isinstance(reply, CommandRejected)]
        assert len(accepted) + len(rejected) == ELECTORS + DUPLICATES
        # One person, one vote: no elector accepted twice; every second attempt refused.
        assert len({v for v, _ in accepted}) == len(accepted)
        assert set(rejected) <= {RejectionReason.DUPLICATE, RejectionReason.DEADLINE_PASSED}
        assert rejected.count(RejectionReason.DUPLICATE) > 0
        # The close really raced: some ballots before it, some refused after it.
        assert 250 <= len(accepted) < ELECTORS and rejected.count(RejectionReason.DEADLINE_PASSED) > 0

        pool = r.ctx.pool
        result = json.loads(await pool.fetchval("SELECT result FROM votes WHERE public_id = 'vote-race'"))
        expected = {c.value: sum(1 for _, x in accepted if x is c) for c in CHOICES}
        assert {k: result["tally"][k] for k in expected} == expected  # tally = accepted ballots
        assert result["turnout_percent"] == round(100 * len(accepted) / ELECTORS, 2)
        # Nothing accepted after the close: every stored ballot precedes the close in the log.
        close_position = await pool.fetchval("SELECT position FROM events WHERE topic LIKE '%Vote.Closed'")
        ballots = await pool.fetch("SELECT position FROM events WHERE topic LIKE '%Ballot.Cast'")
        assert len(ballots) == len(accepted)
        assert all(b["position"] < close_position for b in ballots)
        rows = await pool.fetch("SELECT voter_id, choice FROM open_ballots WHERE vote_id = $1",
                                vote_stream(d, "vote-race"))
        assert sorted((x["voter_id"], x["choice"]) for x in rows) == sorted((v, c.value) for v, c in accepted)

        # A ballot after the close is refused, and the HTTP query shows the final tally.
        late = await bus.dispatch(ballot(d, "vote-race", "m0499", "late", BallotChoice.AGAINST),
                                  command_id="late", correlation_id="late", principal=PLATFORM)
        assert isinstance(late, CommandRejected) and late.reason is RejectionReason.DEADLINE_PASSED
        tally = (await r.client.get(f"/{d}/votes/vote-race/tally")).json()
        assert tally["status"] == "closed" and tally["turnout"] == len(accepted)
        assert tally["tally"]["in_favour"] == expected["in_favour"]
        assert (await r.client.get(f"/other-{d}/votes/vote-race/tally")).status_code == 404


async def test_a_ballot_waits_for_a_close_of_the_release_before(servers):
    """In a rolling update, a pod of the release before closes a vote while this release's
    pods take ballots: the close's lock, keyed as that release keyed it (by the server,
    ``hashtextextended('yishi.vote/' || stream, 0)``), must hold this release's ballot back
    until the close commits, and the ballot then sees the vote closed."""
    async with running(spec(), servers) as r:
        bus = create_bus(r.ctx.store, r.ctx.clock)
        d = r.district
        opened = await bus.dispatch(open_command(d, "vote-roll", r.clock.now() + timedelta(days=1), 3),
                                    command_id="open", correlation_id="open", principal=PLATFORM)
        assert isinstance(opened, CommandAccepted)
        old_close = await r.ctx.pool.acquire()
        try:
            tx = old_close.transaction()
            await tx.start()
            await old_close.execute("SELECT pg_advisory_xact_lock(hashtextextended('yishi.vote/' || $1, 0))",
                                    vote_stream(d, "vote-roll"))
            command = ballot(d, "vote-roll", "m0000", "b-roll", BallotChoice.IN_FAVOUR)
            cast = asyncio.create_task(bus.dispatch(command, command_id="cmd-roll", correlation_id="roll",
                                                    principal=Principal.of_actor(command.actor, d)))
            await asyncio.sleep(0.5)
            assert not cast.done(), f"the ballot did not wait for the older release's close: {cast.result()}"
            await tx.rollback()
        finally:
            await r.ctx.pool.release(old_close)
        assert isinstance(await asyncio.wait_for(cast, 30), CommandAccepted)
