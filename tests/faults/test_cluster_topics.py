"""A topic the platform creates on a cluster of three brokers is replicated on all three
(``ensure_topics`` made one replica: the loss of that one broker took the partition with
it), and is written with ``acks=all``; on the single broker it has one replica."""

from __future__ import annotations

import asyncio
import shutil
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from yishi.embedded import EmbeddedKafkaCluster, kafka_engine
from yishi.kafka import ensure_topics, new_producer


@pytest.fixture
def cluster(tmp_path):
    if kafka_engine() != "apache" or shutil.which("java") is None:
        pytest.skip("needs Apache Kafka (Java 17+ and Maven)")
    nodes = EmbeddedKafkaCluster(tmp_path, size=3)
    nodes.start()
    yield nodes
    nodes.stop()


@pytest.mark.slow
async def test_created_topics_are_replicated_on_every_broker(cluster):
    await ensure_topics(cluster.bootstrap, ["gulou.voting.events"])
    admin = AIOKafkaAdminClient(bootstrap_servers=cluster.bootstrap)
    await admin.start()
    try:
        (topic,) = await admin.describe_topics(["gulou.voting.events"])
    finally:
        await admin.close()
    assert {len(p["replicas"]) for p in topic["partitions"]} == {3}
    producer = new_producer(cluster.bootstrap)
    await producer.start()
    try:
        await asyncio.wait_for(producer.send_and_wait("gulou.voting.events", b"one", key=b"k"), 30)
    finally:
        await producer.stop()


async def test_a_topic_on_the_single_broker_has_one_replica(servers):
    topic = f"t{uuid.uuid4().hex[:10]}.voting.events"
    await ensure_topics(servers.kafka_bootstrap, [topic])
    admin = AIOKafkaAdminClient(bootstrap_servers=servers.kafka_bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    assert {len(p["replicas"]) for p in described["partitions"]} == {1}
