"""What the proposals service's integration tests share: a service on a manual clock and a
sequential id source (so the ids it chooses are known), with a producer for the command
and event topics, and small HTTP and Kafka helpers."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest_asyncio

from contracts.registry import to_envelope, topic
from contracts.voting import VoteClosed
from services.proposals.main import spec
from tests.support.auth import kafka_token
from tests.support.service import running
from yishi.clock import ManualClock
from yishi.ids import SequentialIds
from yishi.kafka import new_producer

T0 = datetime(2026, 4, 1, 1, 0, tzinfo=timezone.utc)
WORKER = {"id": "worker-0102", "role": "community_worker"}
RESIDENT = {"id": "resident-4211", "role": "resident"}


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def service(servers):
    async with running(spec(), servers, clock=ManualClock(T0), ids=SequentialIds()) as r:
        producer = new_producer(servers.kafka_bootstrap)
        await producer.start()
        r.producer = producer
        try:
            yield r
        finally:
            await producer.stop()


async def post(r, type_: str, body: dict, status: int = 200, key: str | None = None) -> dict:
    headers = {"Idempotency-Key": key} if key else {}
    response = await r.client.post(f"/{r.district}/commands/{type_}", json={"district": r.district, **body},
                                   headers=headers)
    assert response.status_code == status, response.text
    return response.json()


async def get(r, path: str) -> dict:
    response = await r.client.get(f"/{r.district}/{path}")
    assert response.status_code == 200, response.text
    return response.json()


async def publish(r, model, subject: str, correlation_id: str, kafka_topic: str | None = None):
    envelope = to_envelope(model, id=str(uuid.uuid4()), source=f"/{r.district}/tests", subject=subject,
                           time=r.clock.now(), correlation_id=correlation_id, token=kafka_token(model))
    key, headers, value = envelope.to_kafka()
    await r.producer.send_and_wait(kafka_topic or topic(envelope.type, r.district), value, key=key, headers=headers)
    return envelope


async def vote_closes(r, vote_id: str, council_id: str, kind: str, matter_id: str, outcome: str) -> None:
    """What voting publishes when the residents' meeting has voted."""
    in_favour, against = (50, 3) if outcome == "adopted" else (3, 50)
    closed = VoteClosed.model_validate({
        "district": r.district, "actor": {"id": "yishi-voting", "role": "system"}, "occurred_at": r.clock.now(),
        "vote_id": vote_id, "council_id": council_id, "matter": {"kind": kind, "id": matter_id},
        "tally": {"in_favour": in_favour, "against": against, "abstain": 0}, "electorate_size": 60,
        "turnout_percent": 88.33, "quorum_met": True, "outcome": outcome})
    await publish(r, closed, vote_id, f"session-{vote_id}", f"{r.district}.voting.events")


async def council_of_representatives(r, council_id: str, seats: int = 9) -> None:
    await post(r, "FormCouncil", {
        "actor": WORKER, "council_id": council_id, "name": "西康社区居民议事会", "level": "community",
        "area_id": "xikang",
        "seats": [{"seat_id": f"rr-{n}", "kind": "resident_representative"} for n in range(1, seats + 1)]
        + [{"seat_id": "unit-1", "kind": "local_unit"}]})
