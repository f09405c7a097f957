"""Two relays of one service (two replicas, each with its own pool) while events keep
arriving: the database session holding the relay lock is terminated mid-run, several
times. The relay that lost its lock must notice at once and stop publishing, the other
takes over, and in the end every stored event is on the topic exactly once."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter

import pytest

from contracts.envelope import Envelope
from tests.support.store import meta
from tests.support.kafka import read_whole_topic
from yishi.db import create_pool
from yishi.kafka import ensure_topics
from yishi.names import events_topic
from yishi.relay import Relay
from yishi.store import EventStore, NewEvent

TAKEOVERS = 3
STREAMS = 30
GRACE = 3.0  # a batch must then be published within 1.5 s


async def eventually(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := await predicate()):
        assert asyncio.get_running_loop().time() < deadline, f"{what} not reached in time"
        await asyncio.sleep(0.02)
    return value


@pytest.mark.slow
async def test_the_relay_that_lost_its_lock_publishes_nothing_its_successor_publishes(pool, servers, schema_name):
    district = f"fence-{uuid.uuid4().hex[:8]}"
    topic = events_topic(district, "notify")
    # Created beforehand, so that no batch waits for a new topic's leaders: a batch that
    # timed out would be sent again by the same relay, which this test would count.
    await ensure_topics(servers.kafka_bootstrap, [topic])
    store = EventStore(pool)
    pools = [await create_pool(servers.database_url, schema_name, max_size=4) for _ in range(2)]
    relays = [Relay(EventStore(p), servers.kafka_bootstrap, "notify", batch_size=25, idle_wait=0.01,
                    max_backoff=0.2, takeover_grace=GRACE) for p in pools]
    stop, writing = asyncio.Event(), asyncio.Event()
    writing.set()

    async def writer() -> None:
        version = 0
        while writing.is_set():
            for s in range(STREAMS):
                body = json.dumps({"stream": s, "v": version + 1}).encode()
                await store.append(f"stream-{s}", version, [NewEvent("tests.domain:Counted", body)], meta(district))
            version += 1
            await asyncio.sleep(0.01)

    async def the_active_relay():
        active = [r for r in relays if r.active]
        return active[0] if len(active) == 1 else None

    async def lock_holder_pid():
        return await pool.fetchval(
            """
            SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = $1
            """,
            f"yishi-{schema_name}",
        )

    async def published_past(position: int):
        return (await relays[0].position()).position >= position

    tasks = [asyncio.create_task(r.run(stop)) for r in relays]
    filling = asyncio.create_task(writer())
    terminations = takeovers = 0
    try:
        while takeovers < TAKEOVERS:
            assert terminations < 3 * TAKEOVERS, f"only {takeovers} takeovers in {terminations} terminations"
            holder = await eventually(the_active_relay, what="one relay relaying")
            pid = await eventually(lock_holder_pid, what="the relay lock held")
            mark = await store.head() + STREAMS
            await eventually(lambda: published_past(mark), what="the holder publishing")
            losses = holder.losses
            assert await pool.fetchval("SELECT pg_terminate_backend($1)", pid)
            terminations += 1

            async def noticed(holder=holder, losses=losses):
                return holder.losses > losses

            # Noticed while it runs (its next read fails), not at shutdown.
            await eventually(noticed, timeout=10, what="the holder noticing its lost lock")
            successor = await eventually(the_active_relay, what="a relay taking over")
            takeovers += successor is not holder
        writing.clear()
        await filling
        head = await store.head()
        await eventually(lambda: published_past(head), what="everything published")
    finally:
        writing.clear()
        stop.set()
        await asyncio.gather(filling, *tasks, return_exceptions=True)
        for p in pools:
            await p.close()

    stored = [str(e.event_id) async for e in store.iter_log()]
    records = await read_whole_topic(servers.kafka_bootstrap, topic)
    published = Counter(Envelope.from_kafka(r.headers, r.value, r.key).id for r in records)
    twice = {event_id: n for event_id, n in published.items() if n > 1}
    assert not twice, f"{len(twice)} of {len(stored)} events published more than once"
    assert set(published) == set(stored)
    assert len(stored) > TAKEOVERS * 100
