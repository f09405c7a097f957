"""The relay's batch building and sending against a stand-in store and producer:
partitions as Kafka's default partitioner chooses them, each key's events in order,
each key hashed once per batch (aiokafka's murmur2 is pure Python, a third of the
relay's encoding CPU when every event was hashed), a batch read ahead held as the
producer's record batches (not as a message per event), batch boundaries, a change of
partitions, and a failed send that leaves nothing behind to be sent twice."""

from __future__ import annotations

import asyncio
import gc
import json
import types
import uuid

import asyncpg
import pytest
from aiokafka.errors import KafkaTimeoutError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch

from yishi import relay as relay_module
from yishi.relay import Relay
from yishi.store import LogCursor, RecordedEvent

PARTITIONS = [0, 1, 2]
TOPIC = "gulou.voting.events"


class StandInProducer:
    """What the relay uses of a started AIOKafkaProducer; keeps the batches it is given.
    ``fail_on`` fails the acknowledgement of the n-th batch handed over (counted from 1)."""

    def __init__(self, batch_bytes: int = 256 * 1024, fail_on: int | None = None) -> None:
        self.sent: list[tuple[str, int, BatchBuilder]] = []
        self.partitions = set(PARTITIONS)
        self.batch_bytes = batch_bytes
        self.fail_on = fail_on

    async def partitions_for(self, topic: str) -> set[int]:
        return set(self.partitions)

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(self.batch_bytes, 0, is_transactional=0)

    async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int):
        assert batch.closed if hasattr(batch, "closed") else batch._closed  # sent closed: nothing more goes in
        self.sent.append((topic, partition, batch))
        done = asyncio.get_running_loop().create_future()
        if self.fail_on == len(self.sent):
            done.set_exception(KafkaTimeoutError())
        else:
            done.set_result(type("Ack", (), {"topic_partition": (topic, partition), "offset": len(self.sent)})())
        return done

    async def stop(self) -> None:
        pass


class StandInPool:
    """The relay's cursor row, in memory."""

    def __init__(self) -> None:
        self.saved: list[LogCursor] = []

    async def fetchrow(self, sql: str, *args):
        return {"epoch": 1, "tx_id": 0, "position": 0}

    async def execute(self, sql: str, name, tx_id, position, epoch) -> str:
        self.saved.append(LogCursor(tx_id, position))
        return "UPDATE 1"


class StandInStore:
    """A log of ``events`` read as the store reads it: after a cursor, up to a limit."""

    def __init__(self, events: list[RecordedEvent]) -> None:
        self.events = events
        self.pool = StandInPool()
        self.reads: list[LogCursor] = []

    async def read_log(self, after: LogCursor, limit: int, conn=None) -> list[RecordedEvent]:
        # Over one connection (the relay's lock session) a read waits for none: asyncpg
        # runs one query at a time and refuses a second meanwhile.
        if conn is not None:
            if getattr(conn, "busy", False):
                raise asyncpg.InterfaceError("cannot perform operation: another operation is in progress")
            conn.busy = True
        try:
            await asyncio.sleep(0)
            self.reads.append(after)
            return [e for e in self.events if (e.tx_id, e.position) > (after.tx_id, after.position)][:limit]
        finally:
            if conn is not None:
                conn.busy = False


def log_of(count: int, streams: int = 7, state_bytes: int = 200) -> list[RecordedEvent]:
    meta = json.dumps({"actor": "r-1", "district": "gulou", "correlation_id": "c-1",
                       "occurred_at": "2026-03-02T01:00:00+00:00"})
    state = b'{"class_version":1,"x":"' + b"y" * state_bytes + b'"}'
    return [RecordedEvent(n, 1, f"stream-{n % streams}", n // streams + 1, uuid.uuid4(), "gulou", "m:Box.Voted",
                          state, meta, b"", "2026-03-02T01:00:00+00:00", "c-1")
            for n in range(1, count + 1)]


def relay_with(producer: StandInProducer, store: StandInStore, batch_size: int) -> Relay:
    relay = Relay(store, "unused:9092", "voting", batch_size=batch_size, takeover_grace=60)
    relay.idempotent, relay._producer, relay._topics = True, producer, {TOPIC}
    return relay


def records(batch: BatchBuilder) -> list[tuple[bytes, dict]]:
    return [(r.key, dict(r.headers)) for r in DefaultRecordBatch(bytes(batch._build()))]


def tracked_objects_held(root, stop: tuple[type, ...]) -> int:
    """Objects the garbage collector tracks that ``root`` holds as data, not counting
    instances of ``stop`` (the events, which the store read; the producer) nor what they
    hold, nor code (functions, methods, classes, modules)."""
    seen, todo, count = set(), [root], 0
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, (*stop, types.ModuleType)) or callable(obj):
            continue
        seen.add(id(obj))
        if gc.is_tracked(obj):
            count += 1
            todo.extend(gc.get_referents(obj))
    return count


def published_ids(producer: StandInProducer) -> list[str]:
    return [h["ce_id"].decode() for _, _, b in producer.sent for _, h in records(b)]


async def test_each_key_is_hashed_once_and_lands_where_kafka_puts_it(monkeypatch):
    calls: list[bytes] = []
    hashing = DefaultPartitioner()

    def counting(key, all_partitions, available):
        calls.append(key)
        return hashing(key, all_partitions, available)

    monkeypatch.setattr(relay_module, "_PARTITIONER", counting)
    events = log_of(35)
    producer = StandInProducer()
    relay = relay_with(producer, StandInStore(events), batch_size=100)

    count, cursor = await relay.publish_batch(LogCursor())
    await relay.flush()

    assert count == 35 and cursor == events[-1].cursor
    assert sorted(calls) == sorted({e.stream_id.encode() for e in events})  # once per key, not once per event
    for topic, partition, batch in producer.sent:
        for key, _ in records(batch):
            assert hashing(key, PARTITIONS, PARTITIONS) == partition
    by_key = {}
    for _, _, batch in producer.sent:
        for key, headers in records(batch):
            by_key.setdefault(key, []).append(headers["ce_id"].decode())
    assert by_key == {s.encode(): [str(e.event_id) for e in events if e.stream_id == s]
                      for s in {e.stream_id for e in events}}


async def test_a_batch_read_ahead_is_held_as_record_batches_not_as_a_message_per_event():
    # Every message held until its send is a few objects for the garbage collector
    # (headers list, tuples); held by the thousand, they made the collector run full
    # collections during the relay's batches. Built ahead, a batch holds the producer's
    # record batches (bytes) and the events read.
    size = 2000
    events = log_of(3 * size)
    producer = StandInProducer()
    relay = relay_with(producer, StandInStore(events), batch_size=size)
    await relay.publish_batch(LogCursor())
    await relay.flush()
    ahead = relay._ahead
    assert ahead is not None
    held = tracked_objects_held(await ahead.task, stop=(RecordedEvent, StandInProducer))
    assert held < size / 20, f"{held} objects held for a batch of {size} read ahead"
    count, _ = await relay.publish_batch(events[size - 1].cursor)
    await relay.flush()
    assert count == size
    assert sorted(published_ids(producer)) == sorted(str(e.event_id) for e in events[:2 * size])  # each once
    await relay._drop_producer()


async def test_a_partition_full_goes_on_in_a_next_batch_sent_after_every_partitions_first():
    events = log_of(600)
    producer = StandInProducer(batch_bytes=16 * 1024)  # a few dozen events per record batch
    relay = relay_with(producer, StandInStore(events), batch_size=600)

    count, _ = await relay.publish_batch(LogCursor())
    await relay.flush()

    assert count == 600
    per_partition = {}
    for _, partition, batch in producer.sent:
        per_partition.setdefault(partition, []).append(batch)
    assert all(len(batches) > 1 for batches in per_partition.values())
    # Sent round by round: a partition's second batch waits for its first to be acknowledged,
    # and must not hold up the first batch of another partition.
    firsts = [i for i, (_, p, b) in enumerate(producer.sent) if per_partition[p][0] is b]
    assert firsts == list(range(len(per_partition)))
    ids = published_ids(producer)
    assert sorted(ids) == sorted(str(e.event_id) for e in events)  # each once
    position = {i: n for n, i in enumerate(ids)}
    for stream in {e.stream_id for e in events}:
        sent = [position[str(e.event_id)] for e in events if e.stream_id == stream]
        assert sent == sorted(sent)  # in order across the record batches of its partition


async def test_a_batch_read_ahead_over_partitions_that_changed_is_built_again():
    events = log_of(200)
    producer = StandInProducer()
    store = StandInStore(events)
    relay = relay_with(producer, store, batch_size=100)
    await relay.publish_batch(LogCursor())
    await relay.flush()
    await relay._ahead.task  # built over partitions 0-2
    producer.partitions = {0, 1, 2, 3, 4}
    producer.sent.clear()

    count, _ = await relay.publish_batch(events[99].cursor)
    await relay.flush()

    assert count == 100
    hashing = DefaultPartitioner()
    every = sorted(producer.partitions)
    for _, partition, batch in producer.sent:
        for key, _ in records(batch):
            assert hashing(key, every, every) == partition
    assert sorted(published_ids(producer)) == sorted(str(e.event_id) for e in events[100:])


async def test_over_the_lock_session_a_batch_built_again_reads_alone_and_the_next_goes_on():
    """The relay reads over its lock session: a batch built again (its partitions changed)
    must not read while the next batch is read ahead on the same connection."""
    class Session(StandInPool):  # the claim and the cursor's writes go over it too
        busy = False

    conn = Session()
    events = log_of(300)
    producer = StandInProducer()
    store = StandInStore(events)
    relay = relay_with(producer, store, batch_size=100)
    _, cursor = await relay.publish_batch(LogCursor(), conn)
    await relay.flush()
    await relay._ahead.task
    producer.partitions = {0, 1, 2, 3, 4}
    producer.sent.clear()

    count, cursor = await relay.publish_batch(cursor, conn)
    count_next, _ = await relay.publish_batch(cursor, conn)
    await relay.flush()

    assert (count, count_next) == (100, 100)
    assert sorted(published_ids(producer)) == sorted(str(e.event_id) for e in events[100:])


async def test_a_failed_send_stores_no_cursor_and_its_retry_sends_fresh_batches_once():
    events = log_of(300)
    producer = StandInProducer(fail_on=2)
    store = StandInStore(events)
    relay = relay_with(producer, store, batch_size=150)

    with pytest.raises(KafkaTimeoutError):
        await relay.publish_batch(LogCursor())
    assert store.pool.saved == []
    failed = list(producer.sent)
    await relay._drop_producer()  # what the retry loop does (Relay._publish_failed)
    retry = StandInProducer()
    relay._producer, relay._topics = retry, {TOPIC}

    count, cursor = await relay.publish_batch(LogCursor())
    await relay.flush()

    assert count == 150 and store.pool.saved == [cursor] == [events[149].cursor]
    assert not {id(b) for _, _, b in failed} & {id(b) for _, _, b in retry.sent}  # nothing handed over twice
    assert sorted(published_ids(retry)) == sorted(str(e.event_id) for e in events[:150])  # each once
    await relay._drop_producer()


async def test_a_new_producer_starts_while_the_topics_are_checked_not_after(monkeypatch):
    # Each is a connection to the broker and a round trip or two: the relay's start, and
    # every retry after a failure, waited for one and then for the other.
    events = log_of(10)
    producer = StandInProducer()
    relay = relay_with(producer, StandInStore(events), batch_size=100)
    relay._producer, relay._topics = None, set()
    checking, starting = asyncio.Event(), asyncio.Event()

    async def ensure_topics(bootstrap, topics, **options):
        checking.set()
        await asyncio.wait_for(starting.wait(), 2)

    async def ensure_producer():
        starting.set()
        await asyncio.wait_for(checking.wait(), 2)
        relay._producer = producer
        return producer

    monkeypatch.setattr(relay_module, "ensure_topics", ensure_topics)
    monkeypatch.setattr(relay, "_ensure_producer", ensure_producer)

    count, _ = await relay.publish_batch(LogCursor())
    await relay.flush()

    assert count == 10 and relay._topics == {TOPIC}
    assert sorted(published_ids(producer)) == sorted(str(e.event_id) for e in events)
