"""The relay's batch building (``Relay._send``) against a stand-in producer: partitions as
Kafka's default partitioner chooses them, each key's events in order in one partition's
batch, and each key hashed once per call (aiokafka's murmur2 is pure Python, a third of
the relay's encoding CPU when every event was hashed)."""

from __future__ import annotations

import asyncio

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch

from yishi import relay as relay_module
from yishi.relay import Relay

PARTITIONS = [0, 1, 2]


class StandInProducer:
    """What ``_send`` uses of an AIOKafkaProducer; keeps the batches it is given."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int, BatchBuilder]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return set(PARTITIONS)

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(256 * 1024, 0, is_transactional=0)

    async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int):
        self.sent.append((topic, partition, batch))
        done = asyncio.get_running_loop().create_future()
        done.set_result((topic, partition))
        return done


def _records(batch: BatchBuilder) -> list[tuple[bytes, bytes]]:
    return [(r.key, r.value) for r in DefaultRecordBatch(bytes(batch._build()))]


async def test_each_key_is_hashed_once_and_lands_where_kafka_puts_it(monkeypatch):
    calls: list[bytes] = []
    hashing = DefaultPartitioner()

    def counting(key, all_partitions, available):
        calls.append(key)
        return hashing(key, all_partitions, available)

    monkeypatch.setattr(relay_module, "_PARTITIONER", counting)
    keys = [f"stream-{s}".encode() for s in range(7)]
    outgoing = [("gulou.voting.events", (key, [("ce_id", f"{key.decode()}-{n}".encode())], f"{n}".encode()))
                for n in range(5) for key in keys]
    producer = StandInProducer()
    relay = Relay(None, "unused:9092", "voting")

    acks = await relay._send(producer, outgoing)

    assert sorted(calls) == sorted(keys)  # once per key, not once per event
    assert len(acks) == len(producer.sent)
    for topic, partition, batch in producer.sent:
        for key, _ in _records(batch):
            assert hashing(key, PARTITIONS, PARTITIONS) == partition
    sent = {key: [value for _, _, b in producer.sent for k, value in _records(b) if k == key] for key in keys}
    assert sent == {key: [f"{n}".encode() for n in range(5)] for key in keys}
