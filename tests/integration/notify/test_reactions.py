"""Notify's reactions to other services' events go through its command bus: each notice is
its internal command ``GiveNotice``, answered on notify's replies topic like any command,
accepted or refused (``CommandRejected``), never only a log line or a dead letter. The
service runs with a catalogue whose ``task.stalled`` no longer renders; its worker does not
send."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

import pytest
import pytest_asyncio

from contracts.common import CommandAccepted, CommandRejected
from contracts.oversight import ResolutionRegistered, TaskStalled
from contracts.registry import decode, to_envelope
from services.notify.domain import source_notification_id
from services.notify.main import spec
from services.notify.settings import NotifySettings
from services.notify.templates import CATALOGUE, PARAMS, TemplateError, Templates
from tests.support.kafka import read_topic
from tests.support.service import eventually, new_district, running
from yishi.clock import ManualClock
from yishi.kafka import ensure_topics, new_producer
from yishi.names import events_topic, replies_topic

pytestmark = pytest.mark.asyncio(loop_scope="session")

T0 = datetime(2026, 4, 1, 1, 0, tzinfo=timezone.utc)
BOARD = "https://board.example/notices"
WORKER = {"id": "worker-0102", "role": "community_worker"}


@dataclass(frozen=True)
class WithoutTaskStalled(Templates):
    """The catalogue, but ``task.stalled`` cannot be rendered (as a template withdrawn would)."""

    def render(self, key, language, params):
        if key == "task.stalled":
            raise TemplateError("no template 'task.stalled'")
        return super().render(key, language, params)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def service(servers):
    settings = NotifySettings(webhook_secret="reactions", bulletin_board_urls=[BOARD], worker_interval_s=3600)
    district = new_district()
    await ensure_topics(servers.kafka_bootstrap, [events_topic(district, "oversight")])
    async with running(spec(settings, WithoutTaskStalled(CATALOGUE, PARAMS)), servers, clock=ManualClock(T0),
                       district=district) as r:
        yield r


async def publish(r, servers, model, subject: str):
    """Publish ``model`` on oversight's events topic, as oversight would."""
    envelope = to_envelope(model, id=str(uuid.uuid4()), source=f"/{r.district}/oversight", subject=subject,
                           time=r.clock.now(), correlation_id=f"c-{uuid.uuid4()}")
    producer = new_producer(servers.kafka_bootstrap)
    await producer.start()
    try:
        key, headers, value = envelope.to_kafka()
        await producer.send_and_wait(events_topic(r.district, "oversight"), value, key=key, headers=headers)
    finally:
        await producer.stop()
    return envelope


async def reply_to(r, servers, envelope):
    async def answered():
        got = await read_topic(servers.kafka_bootstrap, replies_topic(r.district, "notify"), 100, timeout=3)
        return [decode(e) for e in got if e.correlation_id == envelope.correlation_id]

    (reply,) = await eventually(answered, timeout=60)
    return reply


def oversight_event(r, model, **body):
    return model.model_validate({"district": r.district, "actor": WORKER,
                                 "occurred_at": T0.isoformat(), **body})


async def test_a_notice_an_event_asks_for_is_an_accepted_command_of_the_platform(service, servers):
    r = service
    registered = await publish(r, servers, oversight_event(
        r, ResolutionRegistered, resolution_id="res-1", proposal_id="p-1", council_id="c-1", title="增设充电棚",
        text="建设"), "res-1")

    reply = await reply_to(r, servers, registered)
    notification_id = source_notification_id(registered.id, "resolution.registered")
    assert isinstance(reply, CommandAccepted)
    assert (reply.command_type, reply.subject) == ("GiveNotice", notification_id)
    assert (reply.actor.id, reply.actor.role) == ("yishi-notify", "system")
    deliveries = (await r.client.get(f"/{r.district}/deliveries",
                                     params={"notification_id": notification_id})).json()["items"]
    assert [(d["recipient_id"], d["address"], d["regarding_type"]) for d in deliveries] == [
        ("board-1", BOARD, "ResolutionRegistered")]


async def test_a_notice_that_cannot_be_given_is_a_recorded_refusal(service, servers):
    r = service
    watch = await r.client.post(f"/{r.district}/commands/Subscribe", json={
        "district": r.district, "actor": WORKER, "subscription_id": "sub-watch",
        "subscriber": {"kind": "system", "id": "sys-watch"}, "channel": "webhook",
        "address": "https://hooks.example/watch", "event_types": ["TaskStalled"]})
    assert watch.status_code == 200, watch.text
    stalled = await publish(r, servers, oversight_event(
        r, TaskStalled, task_id="task-1", resolution_id="res-1", stalled_after_days=5), "task-1")

    reply = await reply_to(r, servers, stalled)
    notification_id = source_notification_id(stalled.id, "task.stalled")
    assert isinstance(reply, CommandRejected)
    assert (reply.command_type, reply.reason, reply.subject) == ("GiveNotice", "invalid_command", notification_id)
    assert (await r.client.get(f"/{r.district}/deliveries",
                               params={"notification_id": notification_id})).json()["items"] == []
