"""Background jobs run on one replica at a time (yishi.jobs.Leadership), over the real
PostgreSQL: two "replicas" are two pools on one schema."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from tests.support.service import eventually
from yishi.db import create_pool
from yishi.jobs import Leadership, every

JOB = "test.job"
HOLDERS = """
    SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1
    AND classid::bigint = (hashtext('yishi.job.' || current_schema() || '.' || $1)::bigint >> 32) & 4294967295
    AND objid::bigint = hashtext('yishi.job.' || current_schema() || '.' || $1)::bigint & 4294967295
"""


@pytest.fixture
async def second_pool(servers, schema_name, pool):
    other = await create_pool(servers.database_url, schema_name)
    try:
        yield other
    finally:
        await other.close()


async def holders(pool) -> list[int]:
    return [row["pid"] for row in await pool.fetch(HOLDERS, JOB)]


async def test_one_replica_runs_the_steps_and_the_other_takes_over_when_it_stops(pool, second_pool):
    steps: Counter = Counter()
    stops = [asyncio.Event(), asyncio.Event()]

    def step_of(replica: int):
        async def step() -> int:
            steps[replica] += 1
            return 0
        return step

    tasks = [asyncio.create_task(every(0.01, step_of(i), JOB)(stops[i], p))
             for i, p in enumerate((pool, second_pool))]
    try:
        await eventually(lambda: asyncio.sleep(0, sum(steps.values()) >= 30))
        assert len(steps) == 1, f"both replicas ran the job: {dict(steps)}"
        leader = next(iter(steps))
        assert len(await holders(pool)) == 1

        stops[leader].set()
        await tasks[leader]
        before = steps[1 - leader]
        await eventually(lambda: asyncio.sleep(0, steps[1 - leader] >= before + 10))
        assert steps[leader] > 0 and before == 0
    finally:
        for stop in stops:
            stop.set()
        await asyncio.gather(*tasks)
    assert await holders(pool) == []  # released on stop, not left on a pooled connection


async def test_a_leader_whose_session_dies_stands_by_and_the_lock_passes_on(pool, second_pool):
    first, second = Leadership(pool, JOB), Leadership(second_pool, JOB)
    try:
        assert await first.lead() and not await second.lead()
        assert await first.lead()  # still leading: its session answers
        [pid] = await holders(pool)
        assert await pool.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)  # waits until it is gone

        assert not await first.lead()  # noticed before running a step: stands by
        assert not first.leading
        assert await second.lead()
        assert not await first.lead()  # the lock is taken now
        assert (await holders(pool)) not in ([], [pid])

        await second.resign()
        assert await holders(pool) == [] and second_pool.get_idle_size() == second_pool.get_size()
        assert await first.lead()
    finally:
        await first.resign()
        await second.resign()
    assert await holders(pool) == []
