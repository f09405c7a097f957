"""The event store contract: what every event store does, run against each (PostgreSQL and
in memory, the ``store`` fixture) as the ``eventsourcing`` library runs one suite against
each of its recorders. Appends, concurrency, transactions, the log order, snapshots, and
aggregates through the repository. PostgreSQL's own (the hash chain and its seal, SQL
reached under the store) are in ``tests/integration``."""

from __future__ import annotations

import asyncio
import random
import uuid

import pytest
from eventsourcing.domain import Aggregate

from tests.support.store import Counter, Tally, events, meta
from yishi.repository import AggregateNotFound, Repository
from yishi.store import (GENESIS, Append, ConcurrencyError, LogCursor, NewEvent, Snapshot, StoreError, canonical_metadata,
                         chain_hash, event_digest)


async def test_append_and_read_stream(store):
    positions = await store.append("s1", 0, events(3), meta())
    assert len(positions) == 3 and positions == sorted(positions)
    await store.append("s1", 3, events(2, "more"), meta())
    stored = await store.read_stream("s1")
    assert [e.version for e in stored] == [1, 2, 3, 4, 5]
    assert [e.stream_id for e in stored] == ["s1"] * 5
    assert stored[0].metadata["actor"] == "u1" and stored[0].metadata["actor_role"] == "convener"
    assert {"occurred_at", "recorded_at", "correlation_id", "district"} <= stored[0].metadata.keys()
    assert [e.version for e in await store.read_stream("s1", after_version=3)] == [4, 5]


async def test_stale_expected_version_raises_and_writes_nothing(store):
    await store.append("s1", 0, events(2), meta())
    with pytest.raises(ConcurrencyError, match="not at expected version 1"):
        await store.append("s1", 1, events(3), meta())
    with pytest.raises(ConcurrencyError):
        await store.append("s1", 0, events(1), meta())  # "new stream" but it exists
    with pytest.raises(ConcurrencyError):
        await store.append("s1", 5, events(1), meta())  # ahead of the stream: would leave a gap
    assert [e.version for e in await store.read_stream("s1")] == [1, 2]


async def test_concurrent_appends_at_same_version_exactly_one_wins(store):
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


async def test_log_reader_never_skips_late_commits(store):
    """Writers commit in random order after random delays (one holds its transaction
    open for seconds); a concurrent reader must see each committed event exactly once."""
    rng = random.Random(7)
    committed: set[uuid.UUID] = set()
    rolled_back: set[uuid.UUID] = set()
    seen: list[uuid.UUID] = []
    done = asyncio.Event()

    async def writer(w: int) -> None:
        for i in range(15):
            batch = events(rng.randint(1, 3), f"w{w}-{i}")
            async with store.pool.acquire() as conn:
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


async def test_snapshot_keeps_newest(store):
    await store.save_snapshot(Snapshot("s", 10, "t:S", b"{}"))
    await store.save_snapshot(Snapshot("s", 5, "t:S", b"{old}"))
    await store.save_snapshot(Snapshot("s", 20, "t:S", b'{"v":20}'))
    snap = await store.latest_snapshot("s")
    assert snap is not None and snap.version == 20 and snap.state == b'{"v":20}'
    assert await store.latest_snapshot("nothing") is None


async def test_a_batch_is_all_or_nothing(store):
    """A batch holding an event id already stored, or the same id twice, stores none of
    its events; the stream stays where it was and takes the next append."""
    first = events(1)
    await store.append("s", 0, first, meta())
    with pytest.raises(StoreError, match="already stored"):
        await store.append("s", 1, [*events(2), first[0]], meta())
    twice = events(1)[0]
    with pytest.raises(StoreError, match="already stored"):
        await store.append("s", 1, [twice, twice], meta())
    with pytest.raises(StoreError, match="already stored"):
        await store.append("elsewhere", 0, first, meta())
    assert [e.version for e in await store.read_stream("s")] == [1]
    assert await store.read_stream("elsewhere") == []
    await store.append("s", 1, events(2), meta())
    assert [e.version for e in await store.read_stream("s")] == [1, 2, 3]


async def test_appends_to_several_streams_go_together_or_not_at_all(store):
    """``append_each``: one event on each of several streams (a command's aggregates and its
    reply), each chained in its own stream, in the order given; one stream not at its
    expected version, ahead or behind, and none of them is written."""
    await store.append("a", 0, events(1), meta())
    positions = await store.append_each([Append("a", 1, events(1, "a2"), meta()),
                                         Append("new", 0, events(1, "n1"), meta("xicheng"))])
    a, new = await store.read_stream("a"), await store.read_stream("new")
    assert [e.version for e in a] == [1, 2] and [e.version for e in new] == [1]
    assert positions == [a[1].position, new[0].position] and positions == sorted(positions)
    assert new[0].district == "xicheng" and a[1].tx_id == new[0].tx_id
    for stream in (a, new):
        previous = GENESIS
        for e in stream:
            digest = event_digest(e.stream_id, e.version, e.event_id, e.district, e.topic, e.state,
                                  canonical_metadata(e.metadata))
            assert e.hash == chain_hash(previous, digest), f"{e.stream_id} v{e.version} does not chain"
            previous = e.hash
    for stale in ([Append("a", 1, events(1), meta()), Append("other", 0, events(1), meta())],   # behind
                  [Append("other", 0, events(1), meta()), Append("a", 5, events(1), meta())],   # ahead
                  [Append("other", 0, events(1), meta()), Append("new", 0, events(1), meta())]):  # new, but exists
        with pytest.raises(ConcurrencyError):
            await store.append_each(stale)
    assert await store.read_stream("other") == []
    assert [e.version for e in await store.read_stream("a")] == [1, 2]
    mixed = await store.append_each([Append("a", 2, events(2, "a3"), meta()), Append("other", 0, events(1), meta())])
    assert len(mixed) == 3 and [e.version for e in await store.read_stream("a")] == [1, 2, 3, 4]


async def test_recorded_events_carry_what_was_appended(store):
    batch = events(2)
    positions = await store.append("s", 0, batch, meta("xicheng"))
    stored = await store.read_stream("s")
    assert [e.position for e in stored] == positions
    assert [(e.event_id, e.topic, e.state) for e in stored] == [(e.event_id, e.topic, e.state) for e in batch]
    assert {e.district for e in stored} == {"xicheng"} and stored[0].metadata["district"] == "xicheng"
    assert stored[0].tx_id == stored[1].tx_id > 0, "one append, one transaction"
    assert stored[0].hash != stored[1].hash and len(stored[0].hash) == 32
    occurred_at, correlation_id, causation_id = stored[0].envelope_fields()
    assert (occurred_at, correlation_id, causation_id) == ("2026-05-01T00:00:00+00:00",
                                                           stored[0].metadata["correlation_id"], None)
    assert await store.head() == positions[-1]


async def test_each_event_hash_chains_to_the_previous_of_its_stream(store):
    """The hash :meth:`EventStore.verify` recomputes: each event's digest chained to the
    previous event's hash of its stream, from the genesis."""
    await store.append("s", 0, events(2), meta())
    await store.append("s", 2, events(1), meta())
    previous = GENESIS
    for e in await store.read_stream("s"):
        digest = event_digest(e.stream_id, e.version, e.event_id, e.district, e.topic, e.state,
                              canonical_metadata(e.metadata))
        assert e.hash == chain_hash(previous, digest), f"v{e.version} does not chain"
        previous = e.hash


async def test_a_rolled_back_transaction_leaves_nothing(store):
    async with store.pool.acquire() as conn:
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await store.append("s", 0, events(2), meta(), conn=conn)
                await store.save_snapshot(Snapshot("s", 2, "t:S", b"{}"), conn=conn)
                assert len(await store.read_stream("s", conn=conn)) == 2, "the transaction sees its own events"
                assert (await store.latest_snapshot("s", conn=conn)).version == 2
                assert await store.latest_snapshot("s") is None
                raise RuntimeError("the handler failed")
    assert await store.read_stream("s") == []
    assert await store.latest_snapshot("s") is None
    assert await store.read_log() == []
    await store.append("s", 0, events(1), meta())  # the stream is new again
    assert [e.version for e in await store.read_stream("s")] == [1]


async def test_a_savepoint_rolls_back_only_its_own_part(store):
    async with store.pool.acquire() as conn, conn.transaction():
        await store.append("kept", 0, events(1), meta(), conn=conn)
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await store.append("dropped", 0, events(1), meta(), conn=conn)
                await store.append("kept", 1, events(1), meta(), conn=conn)
                raise RuntimeError("refused")
        assert await store.read_stream("dropped", conn=conn) == []
        async with conn.transaction():
            await store.append("kept", 1, events(1, "again"), meta(), conn=conn)
    assert [e.version for e in await store.read_stream("kept")] == [1, 2]
    assert await store.read_stream("dropped") == []
    assert [e.stream_id for e in await store.read_log()] == ["kept", "kept"]


async def test_uncommitted_events_are_invisible_to_other_connections_and_the_log(store):
    await store.append("before", 0, events(1), meta())
    async with store.pool.acquire() as writer, store.pool.acquire() as reader:
        tx = writer.transaction()
        await tx.start()
        await store.append("open", 0, events(2), meta(), conn=writer)
        assert await store.read_stream("open", conn=reader) == []
        assert await store.read_streams(["open"], conn=reader) == {"open": []}
        assert await store.read_stream("open") == []
        # Committed after the open transaction began: held back until it ends.
        await store.append("after", 0, events(1), meta())
        assert [e.stream_id for e in await store.read_log(conn=reader)] == ["before"]
        await tx.commit()
        assert [e.version for e in await store.read_stream("open", conn=reader)] == [1, 2]
    assert [e.stream_id for e in await store.read_log()] == ["before", "open", "open", "after"]


async def test_an_append_racing_an_open_transaction_waits_for_its_end(store):
    """Two transactions append to a new stream: the second waits for the first, then
    fails if it committed and succeeds if it rolled back (as a unique index decides)."""
    async with store.pool.acquire() as first, store.pool.acquire() as second:
        for outcome in ("commit", "rollback"):
            stream = f"race-{outcome}"

            async def append_second() -> None:
                async with second.transaction():
                    await store.append(stream, 0, events(1, "second"), meta(), conn=second)

            tx = first.transaction()
            await tx.start()
            await store.append(stream, 0, events(1, "first"), meta(), conn=first)
            racing = asyncio.create_task(append_second())
            await asyncio.sleep(0.2)
            assert not racing.done(), "the second append went ahead of the open first one"
            if outcome == "commit":
                await tx.commit()
                with pytest.raises(ConcurrencyError):
                    await racing
            else:
                await tx.rollback()
                await racing
            assert [e.state for e in await store.read_stream(stream)] == [
                events(1, "first" if outcome == "commit" else "second")[0].state]


async def test_read_log_pages_in_log_order(store):
    for i in range(7):
        await store.append(f"s{i % 3}", i // 3, events(1, str(i)), meta())
    everything = await store.read_log()
    assert len(everything) == 7
    assert [(e.tx_id, e.position) for e in everything] == sorted((e.tx_id, e.position) for e in everything)
    pages, cursor = [], LogCursor()
    while page := await store.read_log(cursor, limit=3):
        pages.append(page)
        cursor = page[-1].cursor
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [e.event_id for p in pages for e in p] == [e.event_id for e in everything]
    assert [e.event_id async for e in store.iter_log(batch=2)] == [e.event_id for e in everything]
    assert await store.read_log(everything[-1].cursor) == []
    assert await store.head() == max(e.position for e in everything)


async def test_read_streams_reads_each_in_order(store):
    await store.append("a", 0, events(2), meta())
    await store.append("b", 0, events(1), meta())
    await store.append("a", 2, events(1), meta())
    found = await store.read_streams(["a", "none", "b"])
    assert list(found) == ["a", "none", "b"]
    assert [e.version for e in found["a"]] == [1, 2, 3] and found["none"] == []
    assert [e.stream_id for e in found["b"]] == ["b"]


async def test_round_trip_and_not_found(store):
    repo = Repository(store)
    tally = Tally("ballots")
    tally.add(2)
    tally.add(3)
    saved = await repo.save(tally, meta=meta())
    assert [type(e).__name__ for e in saved] == ["Created", "Added", "Added"]
    loaded = await repo.get(Tally, tally.id)
    assert (loaded.name, loaded.count, loaded.version) == ("ballots", 5, 3)
    with pytest.raises(AggregateNotFound):
        await repo.get(Tally, Tally("other").id)


async def test_get_each_and_exists(store):
    for snapshot_every in (None, 10):
        repo = Repository(store, snapshot_every=snapshot_every)
        short, long = Tally("short"), Tally("long")
        for _ in range(12):
            long.add(1)
        await repo.save(short, long, meta=meta())
        missing = Tally("missing")
        got = await repo.get_each((Tally, short.id), (Tally, missing.id), (Counter, long.id), (Tally, long.id))
        assert [t.name if t else None for t in got] == ["short", None, None, "long"]
        assert got[3].count == 12
        assert await repo.exists(short.id) and not await repo.exists(missing.id)


async def test_a_stream_of_another_kind_is_not_found(store):
    """A stream whose events make another class of aggregate, or no aggregate at all (a
    command's reply), is not found as the class asked for: never loaded as the wrong
    type, never a decoding error. Checked on the stream's first event and on snapshots."""
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


async def test_two_writers_on_one_aggregate_one_wins(store):
    repo = Repository(store)
    tally = Tally("x")
    await repo.save(tally, meta=meta())
    a, b = await repo.get(Tally, tally.id), await repo.get(Tally, tally.id)
    a.add(1)
    b.add(10)
    results = await asyncio.gather(repo.save(a, meta=meta()), repo.save(b, meta=meta()), return_exceptions=True)
    assert sum(isinstance(r, ConcurrencyError) for r in results) == 1
    assert (await repo.get(Tally, tally.id)).count in (1, 10)


async def test_saving_several_aggregates_is_atomic(store):
    repo = Repository(store)
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


async def test_snapshots_are_saved_every_n_versions_and_loaded(store):
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
    loaded = await repo.get(Tally, tally.id)
    assert (loaded.count, loaded.version) == (25, 26)
