"""The outbox relay: publishes a service's stored events to Kafka in log order.

The store is the outbox. The relay reads the log after its stored cursor, translates
each domain event to its public form (or skips private ones), sends the batch with
``acks=all`` to ``{district}.{service}.events`` keyed by stream id, waits for every
acknowledgement and only then stores the new cursor. A crash at any point therefore
re-sends at most the last unconfirmed batch (at-least-once; consumers de-duplicate by
``ce_id``) and never skips an event. Broker failures are retried with backoff and a
fresh producer, forever: the relay recovers by itself.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import structlog
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import Counter, Gauge

from contracts.envelope import Envelope, binary_headers, rfc3339_text
from yishi.kafka import ensure_topics, new_producer, supports_idempotence
from yishi.names import events_topic, source
from yishi.store import EventStore, LogCursor, RecordedEvent

log = structlog.get_logger("yishi.relay")
_PARTITIONER = DefaultPartitioner()
# Advisory locks span the whole database, where several services may keep their schemas:
# one relay per schema and name.
_LOCK_KEY = "hashtext('yishi.relay.' || current_schema() || '.' || $1)"

DDL = (
    """
    CREATE TABLE IF NOT EXISTS relay_position (
        name        text PRIMARY KEY,
        tx_id       xid8 NOT NULL,
        position    bigint NOT NULL,
        updated_at  timestamptz NOT NULL DEFAULT now()
    )
    """,
)

PUBLISHED = Counter("yishi_relay_published_total", "Events published by the relay", ["service"])
SKIPPED = Counter("yishi_relay_skipped_total", "Private events the relay did not publish", ["service"])
FAILURES = Counter("yishi_relay_failures_total", "Failed publish attempts (retried)", ["service"])
LAST_POSITION = Gauge("yishi_relay_position", "Log position of the last published event", ["service"])


class BrokerLostData(KafkaError):
    """The broker acknowledged offsets lower than ones it acknowledged before."""


@dataclass(frozen=True, slots=True)
class Publication:
    """The public form of a stored event: type name, schema version, JSON body, the
    topic when it is not the service's events topic (replies), and the subject (Kafka
    key) when the public id differs from the stream id. One stream must map to one
    subject, so that its events stay in order."""

    type: str
    schema_version: int
    data: bytes
    topic: str | None = None
    subject: str | None = None


Translator = Callable[[RecordedEvent], Publication | None]

_CLASS_VERSION = re.compile(rb'"class_version":(\d+)')


def passthrough(event: RecordedEvent) -> Publication:
    """Publish the stored state as it is, typed by the event class name.

    For infrastructure tests and benchmarks; services install a translator to their
    public contracts instead, so domain events stay private.
    """
    name = event.topic.rsplit(":", 1)[-1].rsplit(".", 1)[-1]
    match = _CLASS_VERSION.search(event.state)
    return Publication(name, int(match.group(1)) if match else 1, event.state)


def to_envelope(event: RecordedEvent, service: str, publication: Publication) -> Envelope:
    """The CloudEvent for a stored event: id = event id, subject = stream id (or the public id)."""
    occurred_at, correlation_id, causation_id = event.envelope_fields()
    return Envelope(
        id=str(event.event_id),
        source=source(event.district, service),
        type=publication.type,
        subject=publication.subject or event.stream_id,
        time=datetime.fromisoformat(occurred_at),
        district=event.district,
        correlation_id=correlation_id,
        causation_id=causation_id,
        schema_version=publication.schema_version,
        data=publication.data,
    )


def kafka_message(event: RecordedEvent, service: str, publication: Publication) -> tuple[bytes, list, bytes]:
    """What :func:`to_envelope` then ``to_kafka`` give, without the round trip through a
    datetime: ``(key, headers, value)``. The relay's hot path."""
    occurred_at, correlation_id, causation_id = event.envelope_fields()
    subject = publication.subject or event.stream_id
    headers = binary_headers(
        id=str(event.event_id), source=source(event.district, service), type=publication.type, subject=subject,
        time=rfc3339_text(occurred_at), district=event.district, correlation_id=correlation_id,
        schema_version=publication.schema_version, causation_id=causation_id,
    )
    return subject.encode(), headers, publication.data


class Relay:
    """Publishes one service's log to Kafka; run one per service (an advisory lock
    keeps a second instance idle until the first dies)."""

    def __init__(
        self,
        store: EventStore,
        bootstrap: str,
        service: str,
        translate: Translator = passthrough,
        *,
        name: str = "kafka",
        batch_size: int = 500,
        idle_wait: float = 0.05,
        max_backoff: float = 5.0,
        kafka_options: dict | None = None,
    ) -> None:
        self.store = store
        self.bootstrap = bootstrap
        self.service = service
        self.translate = translate
        self.name = name
        self.batch_size = batch_size
        self.idle_wait = idle_wait
        self.max_backoff = max_backoff
        self.kafka_options = kafka_options or {}
        self._producer = None
        self.idempotent: bool | None = None  # asked of the broker on first connection
        self._topics: set[str] = set()
        self._offsets: dict = {}
        self._saving: asyncio.Task | None = None

    async def position(self) -> LogCursor:
        """The cursor after the last event confirmed by the broker."""
        row = await self.store.pool.fetchrow(
            "SELECT tx_id, position FROM relay_position WHERE name = $1", self.name
        )
        return LogCursor(row["tx_id"], row["position"]) if row else LogCursor()

    async def _save_position(self, cursor: LogCursor) -> None:
        await self.store.pool.execute(
            """
            INSERT INTO relay_position (name, tx_id, position, updated_at) VALUES ($1, $2::xid8, $3, now())
            ON CONFLICT (name) DO UPDATE SET tx_id = EXCLUDED.tx_id, position = EXCLUDED.position,
                updated_at = now()
            """,
            self.name, cursor.tx_id, cursor.position,
        )

    async def flush(self) -> None:
        """Wait until the last confirmed position is stored."""
        saving, self._saving = self._saving, None
        if saving is not None:
            await saving

    async def _ensure_producer(self):
        if self._producer is None:
            if self.idempotent is None:
                self.idempotent = await supports_idempotence(self.bootstrap, **self.kafka_options)
                log.info("relay producer", service=self.service, idempotent=self.idempotent)
            producer = new_producer(self.bootstrap, client_id=f"yishi-relay-{self.service}",
                                    idempotent=self.idempotent, **self.kafka_options)
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        self._topics.clear()  # a restarted broker may have lost them
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), 5)
            except (KafkaError, asyncio.TimeoutError, OSError):
                pass

    def _check_offsets(self, acks) -> None:
        """Raise :class:`BrokerLostData` when a partition's offsets went backwards.

        That only happens when the broker lost acknowledged messages (an unclean leader
        election, or a memory-only broker restarted) and may then be acknowledging
        writes to partitions that no longer exist. Failing the batch makes the relay
        recreate its producer and topics and publish the batch again.
        """
        regressed = []
        for ack in acks:
            last = self._offsets.get(ack.topic_partition)
            if last is not None and ack.offset <= last:
                regressed.append((ack.topic_partition, last, ack.offset))
            self._offsets[ack.topic_partition] = ack.offset
        if regressed:
            for tp, _, _ in regressed:
                self._offsets = {k: v for k, v in self._offsets.items() if k.topic != tp.topic}
            raise BrokerLostData(", ".join(f"{tp.topic}[{tp.partition}] offset {old} -> {new}"
                                           for tp, old, new in regressed))

    async def _send(self, producer, outgoing: list) -> list:
        """Send messages in closed per-partition batches; return the batch acknowledgements.

        Building the broker's batches here rather than calling ``send`` per message
        cuts the relay's CPU per event by half or more. Partitions are chosen exactly
        as aiokafka's default partitioner does (murmur2 of the key), and batches of
        one partition are sent in order, so each key's events stay in order.
        """
        partitions: dict[str, list[int]] = {}
        chosen: dict[tuple[str, bytes], int] = {}  # the partition of each key, hashed once per call
        open_batches: dict[tuple[str, int], Any] = {}
        futures = []
        for topic, (key, headers, value) in outgoing:
            partition = chosen.get((topic, key))
            if partition is None:
                if topic not in partitions:
                    partitions[topic] = sorted(await producer.partitions_for(topic))
                partition = chosen[(topic, key)] = _PARTITIONER(key, partitions[topic], partitions[topic])
            batch = open_batches.get((topic, partition))
            if batch is None:
                batch = open_batches[(topic, partition)] = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                batch.close()
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = open_batches[(topic, partition)] = producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                    raise ValueError(f"event {key!r} is larger than a producer batch")
        for (topic, partition), batch in open_batches.items():
            batch.close()
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        return await asyncio.gather(*futures)

    async def publish_batch(self, cursor: LogCursor) -> tuple[int, LogCursor]:
        """Publish the next batch after ``cursor``; return (events read, new cursor).

        The new cursor is stored only after the broker acknowledged every message.
        """
        events = await self.store.read_log(cursor, self.batch_size)
        if not events:
            await self.flush()
            return 0, cursor
        outgoing = []
        for event in events:
            publication = self.translate(event)
            if publication is None:
                SKIPPED.labels(self.service).inc()
                continue
            topic = publication.topic or events_topic(event.district, self.service)
            outgoing.append((topic, kafka_message(event, self.service, publication)))
        if outgoing:
            producer = await self._ensure_producer()
            new_topics = {t for t, _ in outgoing} - self._topics
            if new_topics:
                await ensure_topics(self.bootstrap, new_topics, **self.kafka_options)
                self._topics |= new_topics
            self._check_offsets(await self._send(producer, outgoing))
        new_cursor = events[-1].cursor
        # Saved while the next batch is read and sent: the commit's disk sync overlaps
        # useful work. Safe because the position only limits re-sending after a crash.
        await self.flush()
        self._saving = asyncio.create_task(self._save_position(new_cursor))
        PUBLISHED.labels(self.service).inc(len(outgoing))
        LAST_POSITION.labels(self.service).set(events[-1].position)
        return len(events), new_cursor

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Relay until ``stop`` is set, surviving broker and database outages."""
        stop = stop or asyncio.Event()
        try:
            while not stop.is_set():
                try:
                    await self._run_holding_lock(stop)
                except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                    log.warning("relay lost the database; retrying", service=self.service, error=repr(exc))
                    await _sleep_or_stop(stop, 1.0)
        finally:
            await self._drop_producer()

    async def _run_holding_lock(self, stop: asyncio.Event) -> None:
        # The pool does not reset connections on release (see yishi.db), so this session
        # lock is released explicitly below; a dropped connection releases it too.
        async with self.store.pool.acquire() as lock_conn:
            await self._relay_under_lock(lock_conn, stop)

    async def _relay_under_lock(self, lock_conn: asyncpg.Connection, stop: asyncio.Event) -> None:
        backoff = 0.1
        locked = False
        try:
            if not await lock_conn.fetchval(f"SELECT pg_try_advisory_lock({_LOCK_KEY})", self.name):
                await _sleep_or_stop(stop, 1.0)  # another instance relays; stand by
                return
            locked = True
            cursor = await self.position()
            log.info("relay started", service=self.service, tx_id=cursor.tx_id, position=cursor.position)
            while not stop.is_set():
                try:
                    count, cursor = await self.publish_batch(cursor)
                    backoff = 0.1
                except (KafkaError, asyncio.TimeoutError) as exc:
                    FAILURES.labels(self.service).inc()
                    log.warning("relay publish failed; retrying", service=self.service, error=repr(exc),
                                retry_in_s=backoff)
                    await self._drop_producer()
                    await _sleep_or_stop(stop, backoff)
                    backoff = min(backoff * 2, self.max_backoff)
                    await self.flush()
                    cursor = await self.position()
                    continue
                if count < self.batch_size:
                    await _sleep_or_stop(stop, self.idle_wait)
        finally:
            await self.flush()
            if locked and not lock_conn.is_closed():
                await lock_conn.execute(f"SELECT pg_advisory_unlock({_LOCK_KEY})", self.name)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass
