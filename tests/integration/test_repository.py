"""Aggregates through the repository: round trip, optimistic concurrency, snapshots, upcasting."""

from __future__ import annotations

import asyncio

import pytest
from eventsourcing.domain import Aggregate, event

from tests.integration.test_store import meta
from yishi.repository import AggregateNotFound, Repository
from yishi.store import ConcurrencyError, EventStore, NewEvent


class Tally(Aggregate):
    """A small aggregate: validate in the public method, record in the private event."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0

    def add(self, n: int) -> None:
        if n <= 0:
            raise ValueError("only positive additions")
        self._added(n)

    @event("Added")
    def _added(self, n: int) -> None:
        self.count += n


async def test_round_trip_and_not_found(pool):
    repo = Repository(EventStore(pool))
    tally = Tally("ballots")
    tally.add(2)
    tally.add(3)
    saved = await repo.save(tally, meta=meta())
    assert [type(e).__name__ for e in saved] == ["Created", "Added", "Added"]
    loaded = await repo.get(Tally, tally.id)
    assert (loaded.name, loaded.count, loaded.version) == ("ballots", 5, 3)
    with pytest.raises(AggregateNotFound):
        await repo.get(Tally, Tally("other").id)


async def test_a_stream_of_another_kind_is_not_found(pool):
    """A stream whose events make another class of aggregate, or no aggregate at all (a
    command's reply), is not found as the class asked for: never loaded as the wrong
    type, never a decoding error. Checked on the stream's first event and on snapshots."""
    store = EventStore(pool)
    repo = Repository(store, snapshot_every=10)
    short, long = Tally("short"), Tally("long")
    for _ in range(12):
        long.add(1)
    await repo.save(short, long, meta=meta())
    assert await store.latest_snapshot(str(long.id)) is not None
    await store.append("reply-http:k9", 0, [NewEvent("contract:CommandAccepted", b"{}")], meta())
    await store.append("odd-topic", 0, [NewEvent("yishi.store:EventStore", b"{}")], meta())
    for cls, stream in ((Counter, short.id), (Counter, long.id), (Tally, "reply-http:k9"), (Tally, "odd-topic")):
        with pytest.raises(AggregateNotFound):
            await repo.get(cls, stream)
    assert (await repo.get(Tally, long.id)).count == 12
    assert (await repo.get(Aggregate, short.id)).name == "short", "a subclass is an aggregate of its base class"


async def test_two_writers_on_one_aggregate_one_wins(pool):
    repo = Repository(EventStore(pool))
    tally = Tally("x")
    await repo.save(tally, meta=meta())
    a, b = await repo.get(Tally, tally.id), await repo.get(Tally, tally.id)
    a.add(1)
    b.add(10)
    results = await asyncio.gather(repo.save(a, meta=meta()), repo.save(b, meta=meta()), return_exceptions=True)
    assert sum(isinstance(r, ConcurrencyError) for r in results) == 1
    assert (await repo.get(Tally, tally.id)).count in (1, 10)


async def test_saving_several_aggregates_is_atomic(pool):
    repo = Repository(EventStore(pool))
    first, second = Tally("a"), Tally("b")
    await repo.save(second, meta=meta())
    stale = await repo.get(Tally, second.id)
    second_now = await repo.get(Tally, second.id)
    second_now.add(1)
    await repo.save(second_now, meta=meta())
    stale.add(5)
    with pytest.raises(ConcurrencyError):
        await repo.save(first, stale, meta=meta())
    assert not await repo.exists(first.id), "the first aggregate was half-saved"


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


class Counter(Aggregate):
    def __init__(self) -> None:
        self.total = 0

    @event("Counted")
    def count(self, n: int) -> None:
        self.total += n


class CounterV2(Aggregate):
    """Version 2 of the same events: ``Counted`` gained a ``reason``; old events are upcast."""

    def __init__(self) -> None:
        self.total = 0
        self.reasons: list[str] = []

    class Counted(Aggregate.Event):
        class_version = 2
        n: int
        reason: str

        @staticmethod
        def upcast_v1_v2(state: dict) -> None:
            state["reason"] = "unknown (recorded before reasons)"

        def apply(self, aggregate: "CounterV2") -> None:
            aggregate.total += self.n
            aggregate.reasons.append(self.reason)


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
