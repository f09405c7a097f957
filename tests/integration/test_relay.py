"""The outbox relay against the real broker: order, headers, crash and broker restart."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid

import pytest

from tests.support.store import meta
from tests.support.kafka import read_topic, versions_by_stream
from tests.support.service import new_district
from yishi.relay import Relay, RelayFenced
from yishi.store import EventStore, NewEvent


def numbered(stream: int, start: int, count: int) -> list[NewEvent]:
    return [NewEvent("tests.domain:Counted", json.dumps({"stream": stream, "v": v}).encode())
            for v in range(start, start + count)]


async def fill(store: EventStore, streams: int, per_stream: int, district: str = "gulou") -> int:
    for s in range(streams):
        done = 0
        while done < per_stream:
            n = min(7, per_stream - done)
            await store.append(f"stream-{s}", done, numbered(s, done + 1, n), meta(district))
            done += n
    return streams * per_stream


def check_complete_and_ordered(envelopes, streams: int, per_stream: int) -> None:
    by_stream = versions_by_stream(envelopes, lambda e: e.payload()["v"])
    assert len(by_stream) == streams
    for stream, versions in by_stream.items():
        assert versions == list(range(1, per_stream + 1)), f"{stream}: {versions[:20]}…"


async def test_relay_publishes_everything_in_order_with_cloudevents_headers(pool, servers, schema_name):
    # Its own district, so its own topics: a real Kafka keeps earlier tests' messages.
    store, district = EventStore(pool), new_district()
    await fill(store, 20, 30, district)
    await store.append("elsewhere", 0, numbered(99, 1, 3), meta("chaoyang"))
    relay = Relay(store, servers.kafka_bootstrap, "proposals", batch_size=64)
    cursor, total = await relay.position(), 0
    while (result := await relay.publish_batch(cursor))[0]:
        total += result[0]
        cursor = result[1]
    assert total == 603
    assert await relay.position() == cursor

    got = await read_topic(servers.kafka_bootstrap, f"{district}.proposals.events", 600)
    assert len(got) == 600
    check_complete_and_ordered(got, 20, 30)
    first = got[0]
    assert first.source == f"/yishi/{district}/proposals" and first.type == "Counted"
    assert first.district == district and first.schema_version == 1 and first.correlation_id
    other = await read_topic(servers.kafka_bootstrap, "chaoyang.proposals.events", 3)
    assert [e.payload()["v"] for e in other] == [1, 2, 3]


async def test_a_relay_whose_epoch_another_relay_bumped_cannot_move_the_cursor(pool, servers):
    district = f"fenced-{uuid.uuid4().hex[:8]}"
    store = EventStore(pool)
    await fill(store, 3, 10, district)
    first = Relay(store, servers.kafka_bootstrap, "proposals", batch_size=10)
    cursor = await first.claim()
    count, cursor = await first.publish_batch(cursor)
    await first.flush()
    assert count == 10 and await first.position() == cursor

    second = Relay(store, servers.kafka_bootstrap, "proposals", batch_size=10)
    assert await second.claim() == cursor
    with pytest.raises(RelayFenced):
        await first.publish_batch(cursor)
        await first.flush()
    assert await first.position() == cursor
    # The successor carries on from the stored cursor.
    count, after = await second.publish_batch(cursor)
    await second.flush()
    assert count == 10 and await second.position() == after != cursor
    await first._drop_producer()
    await second._drop_producer()


def relay_process(servers, schema: str, batch: int = 100) -> subprocess.Popen:
    env = {**os.environ, "YISHI_DATABASE_URL": servers.database_url, "YISHI_KAFKA_BOOTSTRAP": servers.kafka_bootstrap,
           "YISHI_DB_SCHEMA": schema, "YISHI_RELAY_BATCH_SIZE": str(batch), "YISHI_LOG_LEVEL": "WARNING"}
    return subprocess.Popen([sys.executable, "-m", "yishi.cli", "relay", "voting"], env=env)


async def wait_until(predicate, timeout: float = 60.0, interval: float = 0.05):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(interval)


@pytest.mark.slow
async def test_relay_killed_mid_stream_resumes_without_loss(pool, servers, schema_name):
    store, district = EventStore(pool), new_district()
    streams, per_stream = 40, 150
    await fill(store, streams, per_stream // 2, district)
    relay = Relay(store, servers.kafka_bootstrap, "voting")
    proc = relay_process(servers, schema_name, batch=50)
    try:
        await wait_until(lambda: _position_at_least(relay, 600))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_at = (await relay.position()).position
        assert killed_at < await store.head(), "the relay finished before it was killed"
        # More events arrive while the relay is down.
        for s in range(streams):
            await store.append(f"stream-{s}", per_stream // 2, numbered(s, per_stream // 2 + 1, per_stream // 2),
                               meta(district))
        proc = relay_process(servers, schema_name, batch=50)
        head = await store.head()
        await wait_until(lambda: _position_at_least(relay, head))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    got = await read_topic(servers.kafka_bootstrap, f"{district}.voting.events", streams * per_stream)
    check_complete_and_ordered(got, streams, per_stream)


async def _position_at_least(relay: Relay, position: int) -> bool:
    return (await relay.position()).position >= position


@pytest.mark.slow
async def test_broker_killed_and_restarted_relay_recovers_by_itself(pool, embedded):
    """The broker dies mid-publishing and comes back on the same port. The relay retries
    on its own and publishes everything it had not confirmed. (Tansu keeps messages in
    memory only, so what it acknowledged before dying dies with it; a real Kafka keeps
    them. What the relay confirmed is exactly what it will never re-send.)"""
    store, district = EventStore(pool), new_district()
    relay = Relay(store, embedded.kafka_bootstrap, "oversight", batch_size=40, idle_wait=0.01, max_backoff=0.5)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    streams, rounds = 30, 20

    async def writer() -> None:
        for r in range(rounds):
            for s in range(streams):
                await store.append(f"stream-{s}", r * 5, numbered(s, r * 5 + 1, 5), meta(district))
            await asyncio.sleep(0.05)

    writing = asyncio.create_task(writer())
    try:
        await wait_until(lambda: _position_at_least(relay, 400))
        embedded.kafka.kill()
        await asyncio.sleep(1.0)
        # Read after the pause: a batch the broker acknowledged just before it died may
        # have its cursor stored a moment later (Tansu loses that batch with itself).
        confirmed = await relay.position()
        assert not task.done()
        embedded.kafka.start()
        await writing
        head = await store.head()
        assert confirmed.position < head
        await wait_until(lambda: _position_at_least(relay, head), timeout=90)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    unconfirmed = [e async for e in store.iter_log(confirmed)]
    assert len(unconfirmed) > streams * 5
    got = await read_topic(embedded.kafka_bootstrap, f"{district}.oversight.events", len(unconfirmed))
    assert {e.id for e in got} >= {str(e.event_id) for e in unconfirmed}
    for stream, versions in versions_by_stream(got, lambda e: e.payload()["v"]).items():
        assert versions == sorted(versions), f"{stream} out of order"
        assert versions == list(range(versions[0], versions[0] + len(versions))), f"{stream} has a hole"


async def test_relays_of_services_sharing_a_database_run_side_by_side(servers):
    """The embedded stack keeps every service in one database: each relay must still run."""
    from yishi import migrations
    from yishi.db import create_pool

    stop = asyncio.Event()
    pools, tasks, relays = [], [], []
    try:
        for n in range(2):
            schema = f"t_side_{uuid.uuid4().hex[:8]}"
            await migrations.upgrade(servers.database_url, schema, migrations.locations())
            pool = await create_pool(servers.database_url, schema)
            pools.append(pool)
            store = EventStore(pool)
            await store.append("s", 0, numbered(n, 1, 3), meta("dside"))
            relay = Relay(store, servers.kafka_bootstrap, "notify", idle_wait=0.01)
            relays.append(relay)
            tasks.append(asyncio.create_task(relay.run(stop)))
        for relay in relays:
            await wait_until(lambda relay=relay: _position_at_least(relay, 3), timeout=30)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        for pool in pools:
            schema = await pool.fetchval("SELECT current_schema()")
            await pool.execute(f'DROP SCHEMA "{schema}" CASCADE')
            await pool.close()


async def test_an_idle_relay_is_woken_by_the_commit_not_by_its_poll(pool, servers):
    """The store's appends NOTIFY on commit and the relay LISTENs: with a poll interval of
    an hour, every append is still published, and no poll ever happened."""
    store, district = EventStore(pool), new_district()
    relay = Relay(store, servers.kafka_bootstrap, "proposals", idle_wait=3600)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))

    async def listening():
        return relay.active and relay.listening

    try:
        await wait_until(listening, timeout=60)
        for n in range(3):
            await store.append(f"woken-{n}", 0, numbered(n, 1, 2), meta(district))
            head = await store.head()
            await wait_until(lambda: _position_at_least(relay, head), timeout=60)
        assert relay.wakeups["poll"] == 0
        assert relay.wakeups["notify"] >= 3
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    check_complete_and_ordered(await read_topic(servers.kafka_bootstrap, f"{district}.proposals.events", 6), 3, 2)


async def test_with_its_listener_killed_the_relay_polls_then_listens_again(pool, servers, schema_name):
    store, district = EventStore(pool), new_district()
    relay = Relay(store, servers.kafka_bootstrap, "proposals", idle_wait=5.0)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))

    async def listening():
        return relay.active and relay.listening

    async def published(stream: int) -> None:
        await store.append(f"polled-{stream}", 0, numbered(stream, 1, 2), meta(district))
        head = await store.head()
        await wait_until(lambda: _position_at_least(relay, head), timeout=60)

    try:
        await wait_until(listening, timeout=60)
        listener = await pool.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN %'",
            f"yishi-{schema_name}")
        before = dict(relay.wakeups)
        assert await pool.fetchval("SELECT pg_terminate_backend($1)", listener)
        await published(0)  # committed while nobody listens: the poll finds it
        assert relay.wakeups["poll"] > before["poll"]
        assert relay.wakeups["notify"] == before["notify"]
        await wait_until(listening, timeout=60)  # a new LISTEN, after the poll
        assert relay.wakeups["listen"] == before["listen"] + 1
        await published(1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    check_complete_and_ordered(await read_topic(servers.kafka_bootstrap, f"{district}.proposals.events", 4), 2, 2)
