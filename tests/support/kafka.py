"""Test helpers for reading what reached the broker."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, TopicPartition

from contracts.envelope import Envelope


async def read_topic(bootstrap: str, topic: str, expect: int, timeout: float = 60.0) -> list[Envelope]:
    """Read ``topic`` from the beginning (no consumer group) until ``expect`` envelopes or timeout."""
    records = await read_records(bootstrap, topic, expect, timeout)
    return [Envelope.from_kafka(r.headers, r.value, r.key) for r in records]


async def read_records(bootstrap: str, topic: str, expect: int, timeout: float = 60.0) -> list:
    """Raw records of ``topic`` from the beginning until ``expect`` records or timeout."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout
        partitions = None
        while partitions is None and time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                partitions = None
                await consumer._client.force_metadata_update()
                await asyncio.sleep(0.2)
        assert partitions, f"topic {topic} does not exist"
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        got = []
        while len(got) < expect and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                got.extend(records)
        return got
    finally:
        await consumer.stop()


async def read_whole_topic(bootstrap: str, topic: str, timeout: float = 60.0) -> list:
    """Every record of ``topic`` up to its end offsets at the time of the call: unlike
    :func:`read_records` it does not stop at a count, so it also sees duplicates."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout
        partitions = consumer.partitions_for_topic(topic)
        while not partitions and time.monotonic() < deadline:
            await consumer._client.force_metadata_update()
            await asyncio.sleep(0.2)
            partitions = consumer.partitions_for_topic(topic)
        assert partitions, f"topic {topic} does not exist"
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        got = []
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            assert time.monotonic() < deadline, f"{topic} not read to its end in time"
            for records in (await consumer.getmany(timeout_ms=500)).values():
                got.extend(records)
        return got
    finally:
        await consumer.stop()


def versions_by_stream(envelopes: list[Envelope], version_of) -> dict[str, list[int]]:
    """Per stream (Kafka key), the versions in arrival order with re-sent duplicates removed."""
    out: dict[str, list[int]] = {}
    seen: set[str] = set()
    for e in envelopes:
        if e.id in seen:
            continue
        seen.add(e.id)
        out.setdefault(e.subject, []).append(version_of(e))
    return out
