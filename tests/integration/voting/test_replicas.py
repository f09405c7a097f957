"""The two-replica timer test: two voting instances on one schema and one consumer group
run the closing timer once between them. Only the elected replica scans for due votes;
a due vote closes exactly once, with no second close attempted (and refused); when the
leader stops, the other replica takes over and closes the next due vote."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from datetime import timedelta

from services.voting import projections
from services.voting.main import spec
from tests.integration.voting.test_concurrency import open_command
from tests.support.service import Running, eventually, new_district, running
from yishi.clock import ManualClock


class Scans:
    """Counts the closing timer's scans for due votes, per replica (by pool)."""

    def __init__(self, monkeypatch) -> None:
        self.by_pool: Counter = Counter()
        due_votes = projections.due_votes

        async def counted(pool, now):
            self.by_pool[pool] += 1
            return await due_votes(pool, now)

        monkeypatch.setattr(projections, "due_votes", counted)

    def of(self, replica: Running) -> int:
        return self.by_pool[replica.ctx.pool]

    async def at_least(self, n: int) -> None:
        """Wait until ``n`` more scans than now have run (in all)."""
        target = sum(self.by_pool.values()) + n
        await eventually(lambda: asyncio.sleep(0, sum(self.by_pool.values()) >= target))


async def _open(replica: Running, vote_id: str) -> None:
    cmd = open_command(replica.district, vote_id, replica.clock.now() + timedelta(hours=1), 3)
    response = await replica.client.post(f"/{replica.district}/commands/OpenVote", json=cmd.model_dump(mode="json"))
    assert response.status_code == 200, response.text


async def _closed(replica: Running, vote_id: str) -> dict:
    async def check():
        vote = (await replica.client.get(f"/{replica.district}/votes/{vote_id}")).json()
        return vote if vote["status"] == "closed" else None
    return await eventually(check)


async def _closes(replica: Running, vote_id: str) -> tuple[int, int]:
    """How many close commands of ``vote_id`` were accepted and how many refused."""
    rows = await replica.ctx.pool.fetch(
        "SELECT topic, count(*) FROM events WHERE topic LIKE 'contract:Command%' "
        "AND metadata->>'correlation_id' = $1 GROUP BY topic", f"timer-{vote_id}-close")
    counts = {row["topic"].rsplit(":", 1)[-1].split(".")[0]: row["count"] for row in rows}
    return counts.get("CommandAccepted", 0), counts.get("CommandRejected", 0)


async def test_two_replicas_run_the_closing_timer_once_and_the_survivor_takes_over(servers, monkeypatch):
    scans = Scans(monkeypatch)
    shared = {"schema": f"s_{uuid.uuid4().hex[:12]}", "district": new_district(), "clock": ManualClock(),
              "consumer_group_prefix": f"g{uuid.uuid4().hex[:8]}"}
    clock = shared["clock"]
    stacks = [contextlib.AsyncExitStack(), contextlib.AsyncExitStack()]
    try:
        replicas = [await stack.enter_async_context(running(spec(), servers, **shared)) for stack in stacks]
        await _open(replicas[0], "vote-1")
        await scans.at_least(10)  # both replicas have had many ticks; the vote is not due

        clock.advance(timedelta(hours=2))
        vote = await _closed(replicas[1], "vote-1")
        assert vote["result"]["closed_by"] == "deadline"
        await scans.at_least(10)  # further ticks change nothing

        counts = sorted((scans.of(r), i) for i, r in enumerate(replicas))
        assert counts[0][0] == 0, f"both replicas scanned for due votes: {counts}"
        assert counts[1][0] >= 20
        assert await _closes(replicas[0], "vote-1") == (1, 0)
        assert await replicas[0].ctx.pool.fetchval(
            "SELECT count(*) FROM events WHERE topic LIKE '%Vote.Closed'") == 1

        leader, survivor = counts[1][1], counts[0][1]
        await stacks[leader].aclose()  # the leader stops (releasing its lock)
        await _open(replicas[survivor], "vote-2")
        clock.advance(timedelta(hours=2))
        await _closed(replicas[survivor], "vote-2")
        assert scans.of(replicas[survivor]) > 0
        assert await _closes(replicas[survivor], "vote-2") == (1, 0)
    finally:
        for stack in reversed(stacks):
            await stack.aclose()
