"""Aggregates through the repository on PostgreSQL, where a test reaches the stored rows
with SQL: snapshots bound what is read, old events are upcast. The repository's round trip
on every store is in the store contract suite (``tests/contract/test_event_store.py``)."""

from __future__ import annotations

from tests.support.store import Counter, CounterV2, Tally, meta
from yishi.repository import Repository
from yishi.store import EventStore


async def test_snapshots_bound_what_is_read(pool):
    store = EventStore(pool)
    repo = Repository(store, snapshot_every=10)
    tally = Tally("long")
    for _ in range(24):
        tally.add(1)
    await repo.save(tally, meta=meta())
    snap = await store.latest_snapshot(str(tally.id))
    assert snap is not None and snap.version == 25
    tally = await repo.get(Tally, tally.id)
    tally.add(1)
    await repo.save(tally, meta=meta())
    # Remove the events the snapshot covers: loading must not need them.
    await pool.execute("DELETE FROM events WHERE stream_id = $1 AND version <= 25", str(tally.id))
    loaded = await repo.get(Tally, tally.id)
    assert (loaded.count, loaded.version) == (25, 26)


async def test_old_events_are_upcast_on_load(pool):
    store = EventStore(pool)
    repo = Repository(store, snapshot_every=None)
    old = Counter()
    old.count(4)
    await repo.save(old, meta=meta())
    # Same stream, read by the new code: point the stored topics at the v2 classes.
    await pool.execute(
        "UPDATE events SET topic = replace(topic, ':Counter.', ':CounterV2.'), "
        "state = convert_to(replace(convert_from(state, 'UTF8'), ':Counter\"', ':CounterV2\"'), 'UTF8') "
        "WHERE stream_id = $1", str(old.id)
    )
    loaded = await repo.get(CounterV2, old.id)
    assert loaded.total == 4
    assert loaded.reasons == ["unknown (recorded before reasons)"]
