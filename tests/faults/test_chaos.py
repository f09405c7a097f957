"""The fault suite, one short pass: under a steady mixed load in two districts (ballots,
proposals, task progress; HTTP and the command topics; every command resent unchanged
until answered), each target is killed once in turn: a replica of voting, proposals and
oversight (SIGKILL), the relay in the middle of a batch, one broker of three, PostgreSQL
(SIGKILL, restarted on its data directory), a broker stalled past its session timeout.
After each kill, within the bound: no accepted command lost, no stored event missing
from its topic, no effect twice, the read models equal rebuilds, every consumer caught
up. ``bench/run chaos`` runs the same harness over more rounds (tests/support/chaos.py).

The checks are shown to bite at the end: a read model altered, an accepted command that
is not in its store and an effect recorded twice are each reported."""

from __future__ import annotations

import shutil
import uuid

import asyncpg
import pytest

from tests.support.chaos import TARGETS, Sent, chaos_run, figures
from tests.support.service import eventually
from yishi.embedded import kafka_engine


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_every_target_killed_once_under_load():
    if kafka_engine() != "apache" or shutil.which("java") is None:
        pytest.skip("the fault suite needs three Apache Kafka brokers (Java 17+ and Maven)")
    async with chaos_run("apache", rate=10.0, bound_s=90.0) as (platform, load, chaos, verifier):
        await chaos.run(rounds=1)
        result = figures(platform, load, chaos, verifier)
        assert result["kills_by_target"] == dict.fromkeys(TARGETS, 1)
        assert [r.problems for r in chaos.rounds] == [[]] * len(TARGETS)  # every round recovered within the bound
        assert result["accepted"] > 0 and result["rejected"] == 0
        assert result["lost"] == 0
        assert result["events_stored"] == result["events_published"] > result["accepted"]
        assert result["missing_events"] == 0
        assert result["duplicate_effects"] == 0
        assert result["rebuild_mismatches"] == 0
        assert result["relay_kills_mid_batch"] == 1  # the relay was killed with events sent but not confirmed

        # The checks bite: each of these is reported. Read models are compared only once
        # everything has settled (the last commands' events relayed and consumed, and the
        # timers' too), so wait for a clean check first.
        await load.pause(90)

        async def problems():
            return (await verifier.check()).problems

        await eventually(lambda: _negate(problems), timeout=90, interval=1)
        conn = await asyncpg.connect(platform.dsn)
        try:
            council = await conn.fetchrow("SELECT district, council_id, area_id FROM oversight.ov_councils LIMIT 1")
            await conn.execute("UPDATE oversight.ov_councils SET area_id = 'altered' WHERE district = $1 "
                               "AND council_id = $2", council["district"], council["council_id"])

            async def altered_found():
                return any("oversight councils differ" in p for p in await problems())

            await eventually(altered_found, timeout=90, interval=1)
            await conn.execute("UPDATE oversight.ov_councils SET area_id = $3 WHERE district = $1 "
                               "AND council_id = $2", *council)

            ghost = Sent("ballot", "http", "voting", council["district"], "k-ghost", "res-ghost", None,
                         status="accepted", command_id=str(uuid.uuid4()))
            load.sent.append(ghost)
            assert (await verifier.check()).lost == 1
            load.sent.remove(ghost)

            await conn.execute(
                "INSERT INTO oversight.events (stream_id, version, event_id, district, topic, state, metadata, hash) "
                "SELECT stream_id, (SELECT max(version) + 1 FROM oversight.events o WHERE o.stream_id = e.stream_id),"
                " gen_random_uuid(), district, topic, state, metadata, hash FROM oversight.events e "
                "WHERE topic LIKE '%:Task.ProgressReported' LIMIT 1")
            assert (await verifier.check()).duplicate_effects == 1
        finally:
            await conn.close()


async def _negate(check) -> bool:
    return not await check()
