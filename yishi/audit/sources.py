"""Where audited events come from: a service's PostgreSQL store, its Kafka topics read
from offset zero, or an exported bundle (see :mod:`yishi.audit.export`).

Stores and bundles hold the private domain events; the service's own translator (the
one its relay uses) turns them into the public events that Kafka carries, so all three
sources feed the audit view the same :class:`PublicEvent`\\ s.
"""

from __future__ import annotations

import importlib
import json
import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from contracts.envelope import Envelope
from yishi.commands import REPLY_TOPIC_PREFIX
from yishi.kafka import topic_partitions
from yishi.relay import Translator
from yishi.store import RecordedEvent

# The same read barrier as EventStore.read_log (never skip a late-committing writer),
# with the auditor's filters; log order is (tx_id, position).
_LOG = """
SELECT position, tx_id, stream_id, version, event_id, district, topic, state, metadata, hash FROM events
WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot())
  AND ($1::text IS NULL OR district = $1) AND ($2::bigint IS NULL OR position <= $2)
ORDER BY tx_id, position
"""
_COUNT = """
SELECT count(*) FROM events WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot())
  AND ($1::text IS NULL OR district = $1) AND ($2::bigint IS NULL OR position <= $2)
"""


class PublicEvent(NamedTuple):
    """One public event as the audit view consumes it; ``position`` is the store position
    (None when read from Kafka, which has no store positions)."""

    service: str
    type: str
    schema_version: int
    data: bytes
    event_id: str
    subject: str
    district: str
    time: datetime
    position: int | None = None


def translator(service: str) -> Translator:
    """The translator ``service``'s relay publishes with (from its ``main.spec()``)."""
    return importlib.import_module(f"services.{service}.main").spec().translate


async def count_stored(pool: asyncpg.Pool, *, district: str | None = None, upto: int | None = None) -> int:
    """How many events :func:`stored_events` will yield (for progress bars)."""
    return await pool.fetchval(_COUNT, district, upto)


async def stored_batches(
    pool: asyncpg.Pool, *, district: str | None = None, upto: int | None = None, batch: int = 5000
) -> AsyncIterator[list[RecordedEvent]]:
    """A service's stored events in log order, up to position ``upto``, read with a
    server-side cursor from one consistent snapshot, ``batch`` at a time."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        cursor = await conn.cursor(_LOG, district, upto)
        while rows := await cursor.fetch(batch):
            yield [RecordedEvent.from_row(row) for row in rows]


async def stored_events(
    pool: asyncpg.Pool, *, district: str | None = None, upto: int | None = None, batch: int = 5000
) -> AsyncIterator[RecordedEvent]:
    """:func:`stored_batches`, one event at a time."""
    async for events in stored_batches(pool, district=district, upto=upto, batch=batch):
        for event in events:
            yield event


def to_public(service: str, translate: Translator, event: RecordedEvent) -> PublicEvent | None:
    """What the relay publishes for a stored event; None for private events and replies."""
    if event.topic.startswith(REPLY_TOPIC_PREFIX):
        return None
    publication = translate(event)
    if publication is None:
        return None
    return PublicEvent(service, publication.type, publication.schema_version, publication.data,
                       str(event.event_id), publication.subject or event.stream_id, event.district,
                       datetime.fromisoformat(event.metadata["occurred_at"]), event.position)


async def public_stored_batches(
    pool: asyncpg.Pool, service: str, *, district: str | None = None, upto: int | None = None
) -> AsyncIterator[list[PublicEvent | None]]:
    """:func:`to_public` of each of :func:`stored_batches` (None for unpublished ones, so
    callers can count progress over every stored row), a batch at a time: a replay
    spends no per-event steps of asynchronous iteration."""
    translate = translator(service)
    async for events in stored_batches(pool, district=district, upto=upto):
        yield [to_public(service, translate, event) for event in events]


def events_topic_matches(topic: str, service: str, districts: Iterable[str] | None) -> bool:
    """Whether ``topic`` is ``service``'s events topic of one of ``districts`` (any when None)."""
    district, _, rest = topic.partition(".")
    return rest == f"{service}.events" and (districts is None or district in set(districts))


async def kafka_records(
    bootstrap: str, services: Iterable[str], districts: Iterable[str] | None = None,
    kafka_options: dict[str, Any] | None = None,
) -> AsyncIterator[tuple[str, Any]]:
    """``(service, record)`` for every message on the services' events topics, from offset
    zero to the end offsets seen when reading starts (no consumer group, nothing committed)."""
    services = list(services)
    districts = list(districts) if districts is not None else None
    partitions = await topic_partitions(bootstrap, lambda t: any(events_topic_matches(t, s, districts)
                                                                 for s in services), **(kafka_options or {}))
    owner = {t: s for t in partitions for s in services if events_topic_matches(t, s, districts)}
    tps = [TopicPartition(t, p) for t in sorted(owner) for p in partitions[t]]
    if not tps:
        return
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", **(kafka_options or {}))
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        remaining = {tp: end for tp, end in (await consumer.end_offsets(tps)).items() if end > 0}
        while remaining:
            for tp, records in (await consumer.getmany(*remaining, timeout_ms=1000)).items():
                for record in records:
                    yield owner[tp.topic], record
                if records and records[-1].offset + 1 >= remaining[tp]:
                    del remaining[tp]
    finally:
        await consumer.stop()


async def kafka_events(
    bootstrap: str, services: Iterable[str], districts: Iterable[str] | None = None,
    kafka_options: dict[str, Any] | None = None,
) -> AsyncIterator[PublicEvent]:
    """The public events on Kafka (:func:`kafka_records`), each once: the relay delivers at
    least once, so a re-sent ``ce_id`` is skipped."""
    seen: set[str] = set()
    async for service, record in kafka_records(bootstrap, services, districts, kafka_options):
        envelope = Envelope.from_kafka(record.headers or (), record.value, record.key)
        if envelope.id in seen:
            continue
        seen.add(envelope.id)
        yield PublicEvent(service, envelope.type, envelope.schema_version, envelope.data, envelope.id,
                          envelope.subject, envelope.district, envelope.time)


def record_to_json(event: RecordedEvent) -> dict[str, Any]:
    """A stored event as one JSON object (bytes as hex), the line format of bundles."""
    return {
        "position": event.position, "tx_id": event.tx_id, "stream_id": event.stream_id,
        "version": event.version, "event_id": str(event.event_id), "district": event.district,
        "topic": event.topic, "state": event.state.hex(), "metadata": event.metadata, "hash": event.hash.hex(),
    }


def record_from_json(line: str | bytes) -> RecordedEvent:
    """The inverse of :func:`record_to_json`."""
    d = json.loads(line)
    return RecordedEvent(d["position"], d["tx_id"], d["stream_id"], d["version"], uuid.UUID(d["event_id"]),
                         d["district"], d["topic"], bytes.fromhex(d["state"]), d["metadata"], bytes.fromhex(d["hash"]))
