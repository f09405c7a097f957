"""A Kafka outage is a Kafka signal, not an outage of the API: while the broker is stopped
the service stays ready and accepts commands (the store is the outbox), reports the broker
down (``/healthz/kafka`` 503, ``yishi_kafka_up`` 0) and how far its relay is behind
(``yishi_relay_lag_events``, ``yishi_relay_lag_seconds``); when the broker is back the relay
publishes what was kept and its lag goes back to 0."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.voting.main import spec as voting_spec
from tests.integration.test_relay import numbered
from tests.support.store import meta
from tests.integration.voting.test_concurrency import open_command
from tests.support.kafka import read_topic
from tests.support.service import eventually, new_district, running
from yishi.clock import ManualClock
from yishi.embedded import EmbeddedTansu
from yishi.relay import Relay
from yishi.store import EventStore


async def scrape(client) -> dict[str, float]:
    """``/metrics`` as {"name{label=value,...}": value}."""
    text = (await client.get("/metrics")).text
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}"] = sample.value
    return out


async def count_events(r) -> int:
    return await r.ctx.pool.fetchval("SELECT count(*) FROM events")


@pytest.mark.slow
async def test_api_stays_ready_and_accepts_commands_while_the_broker_is_stopped(embedded):
    async with running(voting_spec(), embedded, health_interval_s=0.1) as r:
        closes = r.clock.now() + timedelta(days=1)
        first = await r.client.post(f"/{r.district}/commands/OpenVote",
                                    json=open_command(r.district, "v-before", closes, 3).model_dump(mode="json"))
        assert first.status_code == 200, first.text
        await eventually(lambda: _lag_is(r, 0))
        assert (await r.client.get("/healthz/kafka")).status_code == 200
        assert (await scrape(r.client))["yishi_kafka_up{service=voting}"] == 1
        before = await count_events(r)

        embedded.kafka.kill()
        try:
            down = await r.client.get("/healthz/kafka")
            assert down.status_code == 503 and down.json()["status"] == "unreachable", down.text
            ready = await r.client.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"] == {"database": True, "broker": False}
            for n in range(5):
                command = open_command(r.district, f"v-outage-{n}", closes, 3)
                accepted = await r.client.post(f"/{r.district}/commands/OpenVote",
                                               json=command.model_dump(mode="json"))
                assert accepted.status_code == 200, accepted.text
            kept = await count_events(r) - before
            assert kept >= 5  # each OpenVote records its event (and its reply)
            r.clock.advance(timedelta(seconds=42))
            assert await r.app.state.watch.relay.measure_lag() == (kept, 42.0)
            await asyncio.sleep(0.3)  # the watch measures every 0.1 s
            metrics = await scrape(r.client)
            assert metrics["yishi_kafka_up{service=voting}"] == 0
            assert metrics["yishi_relay_lag_events{service=voting}"] == kept
            assert metrics["yishi_relay_lag_seconds{service=voting}"] == 42.0
            assert (await r.client.get("/healthz/kafka")).json()["relay_lag"] == {"events": kept, "seconds": 42.0}
        finally:
            await asyncio.to_thread(embedded.kafka.start)

        await eventually(lambda: _lag_is(r, 0), timeout=90)
        assert (await r.client.get("/healthz/kafka")).status_code == 200
        metrics = await scrape(r.client)
        assert metrics["yishi_kafka_up{service=voting}"] == 1
        assert metrics["yishi_relay_lag_seconds{service=voting}"] == 0
        # Tansu keeps messages in memory only: what it had before the kill died with it.
        kept_by_broker = {"v-before"} if not isinstance(embedded.kafka, EmbeddedTansu) else set()
        expected = kept_by_broker | {f"v-outage-{n}" for n in range(5)}
        published = await read_topic(embedded.kafka_bootstrap, f"{r.district}.voting.events", len(expected))
        assert {e.subject for e in published} == expected


async def _lag_is(r, events: int) -> bool:
    lag = await r.app.state.watch.relay.measure_lag()
    return lag[0] == events


async def test_relay_lag_counts_unpublished_events_and_their_age(pool, servers):
    """The lag is what the broker has not confirmed, by the store's clock; publishing a
    batch takes it to 0 and observes the publish latency once."""
    clock = ManualClock()
    store, district = EventStore(pool, clock), new_district()
    relay = Relay(store, servers.kafka_bootstrap, "proposals", batch_size=100)
    assert await relay.measure_lag() == (0, 0.0)
    await store.append("s-1", 0, numbered(1, 1, 3), meta(district))
    clock.advance(timedelta(seconds=10))
    await store.append("s-2", 0, numbered(2, 1, 4), meta(district))
    clock.advance(timedelta(seconds=5))
    assert await relay.measure_lag() == (7, 15.0)  # the oldest unpublished event is 15 s old

    from yishi.relay import PUBLISH_SECONDS
    batches = _histogram_count(PUBLISH_SECONDS, "proposals")
    count, _ = await relay.publish_batch(await relay.position())
    await relay.flush()
    assert count == 7
    assert await relay.measure_lag() == (0, 0.0)
    assert _histogram_count(PUBLISH_SECONDS, "proposals") == batches + 1
    await relay._drop_producer()


def _histogram_count(histogram, service: str) -> float:
    for metric in histogram.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count") and sample.labels.get("service") == service:
                return sample.value
    return 0.0
