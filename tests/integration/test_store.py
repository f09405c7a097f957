"""Event store against the real PostgreSQL: appends, concurrency, the log order, snapshots."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import datetime, timezone

import pytest

from yishi.store import ConcurrencyError, EventStore, LogCursor, Metadata, NewEvent, Snapshot


def meta(district: str = "gulou") -> Metadata:
    return Metadata(actor="u1", district=district, correlation_id=str(uuid.uuid4()),
                    occurred_at=datetime(2026, 5, 1, tzinfo=timezone.utc), actor_role="convener")


def events(n: int, tag: str = "e") -> list[NewEvent]:
    return [NewEvent("tests:Happened", f'{{"n":{i},"tag":"{tag}"}}'.encode()) for i in range(n)]


async def test_append_and_read_stream(pool):
    store = EventStore(pool)
    positions = await store.append("s1", 0, events(3), meta())
    assert len(positions) == 3 and positions == sorted(positions)
    await store.append("s1", 3, events(2, "more"), meta())
    stored = await store.read_stream("s1")
    assert [e.version for e in stored] == [1, 2, 3, 4, 5]
    assert [e.stream_id for e in stored] == ["s1"] * 5
    assert stored[0].metadata["actor"] == "u1" and stored[0].metadata["actor_role"] == "convener"
    assert {"occurred_at", "recorded_at", "correlation_id", "district"} <= stored[0].metadata.keys()
    assert [e.version for e in await store.read_stream("s1", after_version=3)] == [4, 5]


async def test_stale_expected_version_raises_and_writes_nothing(pool):
    store = EventStore(pool)
    await store.append("s1", 0, events(2), meta())
    with pytest.raises(ConcurrencyError, match="not at expected version 1"):
        await store.append("s1", 1, events(3), meta())
    with pytest.raises(ConcurrencyError):
        await store.append("s1", 0, events(1), meta())  # "new stream" but it exists
    with pytest.raises(ConcurrencyError):
        await store.append("s1", 5, events(1), meta())  # ahead of the stream: would leave a gap
    assert [e.version for e in await store.read_stream("s1")] == [1, 2]


async def test_concurrent_appends_at_same_version_exactly_one_wins(pool):
    store = EventStore(pool)
    await store.append("race", 0, events(1), meta())

    async def attempt(i: int) -> bool:
        try:
            await store.append("race", 1, events(2, f"w{i}"), meta())
            return True
        except ConcurrencyError:
            return False

    results = await asyncio.gather(*(attempt(i) for i in range(30)))
    assert sum(results) == 1
    stored = await store.read_stream("race")
    assert [e.version for e in stored] == [1, 2, 3]
    assert len({e.state for e in stored[1:]}) == 2  # both events of the single winner


async def test_log_reader_never_skips_late_commits(pool):
    """Writers commit in random order after random delays (one holds its transaction
    open for seconds); a concurrent reader must see each committed event exactly once."""
    store = EventStore(pool)
    rng = random.Random(7)
    committed: set[uuid.UUID] = set()
    rolled_back: set[uuid.UUID] = set()
    seen: list[uuid.UUID] = []
    done = asyncio.Event()

    async def writer(w: int) -> None:
        for i in range(15):
            batch = events(rng.randint(1, 3), f"w{w}-{i}")
            async with pool.acquire() as conn:
                tx = conn.transaction()
                await tx.start()
                await store.append(f"writer-{w}-{i}", 0, batch, meta(), conn=conn)
                delay = 3.0 if (w, i) == (0, 2) else rng.random() * 0.05
                await asyncio.sleep(delay)
                if rng.random() < 0.1:
                    await tx.rollback()
                    rolled_back.update(e.event_id for e in batch)
                else:
                    await tx.commit()
                    committed.update(e.event_id for e in batch)

    async def reader() -> None:
        cursor = LogCursor()
        while True:
            finished = done.is_set()
            batch = await store.read_log(cursor, limit=7)
            seen.extend(e.event_id for e in batch)
            if batch:
                cursor = batch[-1].cursor
            elif finished:
                return
            else:
                await asyncio.sleep(0.005)

    read_task = asyncio.create_task(reader())
    await asyncio.gather(*(writer(w) for w in range(12)))
    done.set()
    await read_task
    assert len(seen) == len(set(seen)), "an event was read twice"
    assert set(seen) == committed, "the reader skipped a committed event or saw a rolled-back one"
    assert not (set(seen) & rolled_back)
    # The order the reader reported is the log order a fresh reader gets.
    assert [e.event_id async for e in store.iter_log()] == seen


async def test_snapshot_keeps_newest(pool):
    store = EventStore(pool)
    await store.save_snapshot(Snapshot("s", 10, "t:S", b"{}"))
    await store.save_snapshot(Snapshot("s", 5, "t:S", b"{old}"))
    await store.save_snapshot(Snapshot("s", 20, "t:S", b'{"v":20}'))
    snap = await store.latest_snapshot("s")
    assert snap is not None and snap.version == 20 and snap.state == b'{"v":20}'
    assert await store.latest_snapshot("nothing") is None
