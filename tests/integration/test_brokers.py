"""The relay on both embedded brokers: idempotent where the broker grants producer ids
(Apache Kafka), plain ``acks=all`` where it refuses them (Tansu), and the same events
published either way. The choice is the broker's answer, not its name."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.test_relay import numbered
from tests.support.store import meta
from tests.support.kafka import read_topic
from tests.support.service import new_district
from yishi.embedded import EmbeddedApacheKafka, EmbeddedTansu, kafka_engine
from yishi.kafka import supports_idempotence
from yishi.relay import Relay
from yishi.store import EventStore


@pytest.fixture
def tansu(tmp_path):
    broker = EmbeddedTansu(tmp_path)
    broker.start()
    yield broker
    broker.stop()


async def _relay_all(pool, bootstrap: str, events: int) -> Relay:
    store, district = EventStore(pool), new_district()
    for s in range(events // 5):
        await store.append(f"stream-{s}", 0, numbered(s, 1, 5), meta(district))
    relay = Relay(store, bootstrap, "oversight", idle_wait=0.01)
    cursor, published = await relay.position(), 0
    while published < events:
        count, cursor = await relay.publish_batch(cursor)
        published += count
    await relay.flush()
    await relay._drop_producer()
    got = await read_topic(bootstrap, f"{district}.oversight.events", events)
    assert sorted(e.id for e in got) == sorted([str(e.event_id) async for e in store.iter_log()])
    return relay


async def test_tansu_refuses_producer_ids_and_the_relay_still_publishes(pool, tansu):
    assert not await supports_idempotence(tansu.bootstrap)
    relay = await asyncio.wait_for(_relay_all(pool, tansu.bootstrap, 50), 60)
    assert relay.idempotent is False


async def test_the_session_broker_is_apache_kafka_where_java_is_and_its_relay_is_idempotent(pool, servers):
    if servers.kafka is None:
        pytest.skip("an external broker: its engine is not ours to check")
    assert servers.kafka.engine == kafka_engine()
    if not isinstance(servers.kafka, EmbeddedApacheKafka):
        assert not await supports_idempotence(servers.kafka_bootstrap)
        return
    assert await supports_idempotence(servers.kafka_bootstrap)
    relay = await asyncio.wait_for(_relay_all(pool, servers.kafka_bootstrap, 50), 60)
    assert relay.idempotent is True
