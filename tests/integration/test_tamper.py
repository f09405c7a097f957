"""Tamper evidence: altering, deleting, inserting or reordering a stored row is found
by ``verify``, which names the position."""

from __future__ import annotations

import pytest

from tests.support.store import events, meta
from yishi.store import EventStore


@pytest.fixture
async def sealed_store(pool):
    store = EventStore(pool)
    for s in range(5):
        await store.append(f"stream-{s}", 0, events(4, f"s{s}"), meta())
    assert await store.seal() == 20
    await store.append("stream-late", 0, events(2, "late"), meta())  # not sealed yet
    report = await store.verify()
    assert report.ok, report.problems
    assert (report.events_checked, report.sealed) == (22, 20)
    return store


async def position_of(pool, stream: str, version: int) -> int:
    return await pool.fetchval("SELECT position FROM events WHERE stream_id = $1 AND version = $2", stream, version)


async def test_altered_state_is_found(pool, sealed_store):
    pos = await position_of(pool, "stream-2", 3)
    await pool.execute("UPDATE events SET state = $1 WHERE position = $2", b'{"n":99}', pos)
    report = await sealed_store.verify()
    assert not report.ok
    assert report.first.position == pos
    assert "altered" in report.first.reason


async def test_altered_metadata_is_found(pool, sealed_store):
    pos = await position_of(pool, "stream-1", 1)
    await pool.execute("UPDATE events SET metadata = metadata || '{\"actor\": \"someone-else\"}' WHERE position = $1", pos)
    assert (await sealed_store.verify()).first.position == pos


async def test_deleted_row_is_found(pool, sealed_store):
    pos = await position_of(pool, "stream-3", 2)
    await pool.execute("DELETE FROM events WHERE position = $1", pos)
    report = await sealed_store.verify()
    assert not report.ok and report.first.position == pos


async def test_deleted_last_event_of_a_stream_is_found(pool, sealed_store):
    pos = await position_of(pool, "stream-4", 4)
    await pool.execute("DELETE FROM events WHERE position = $1", pos)
    report = await sealed_store.verify()
    assert [p.position for p in report.problems] == [pos]
    assert "removed" in report.first.reason


async def test_reordered_events_are_found(pool, sealed_store):
    a, b = await position_of(pool, "stream-0", 2), await position_of(pool, "stream-0", 3)
    # Swap the two events' places in their stream: same rows, other order.
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("UPDATE events SET version = 1000 WHERE position = $1", a)
        await conn.execute("UPDATE events SET version = 2 WHERE position = $1", b)
        await conn.execute("UPDATE events SET version = 3 WHERE position = $1", a)
    report = await sealed_store.verify()
    assert not report.ok and report.first.position == a


async def test_reordered_log_is_found(pool, sealed_store):
    a, b = await position_of(pool, "stream-0", 1), await position_of(pool, "stream-1", 1)
    # Move one event behind another in the global log order by swapping transaction ids.
    await pool.execute(
        "UPDATE events e SET tx_id = o.tx_id FROM events o WHERE (e.position, o.position) IN (($1, $2), ($2, $1))",
        a, b,
    )
    await pool.execute("UPDATE log_chain c SET tx_id = e.tx_id FROM events e WHERE e.position = c.position")
    report = await sealed_store.verify()
    assert not report.ok and report.first.position in (a, b)


async def test_unsealed_tail_is_checked_by_its_stream_chain(pool, sealed_store):
    pos = await position_of(pool, "stream-late", 2)
    await pool.execute("UPDATE events SET state = $1 WHERE position = $2", b'{"n":0}', pos)
    assert (await sealed_store.verify()).first.position == pos
