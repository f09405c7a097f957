"""Notify's creating commands without their ids, over HTTP: a subscription and a
notification get ids the platform chooses, named in the reply, the same for a resend
under the same Idempotency-Key, and readable under them. The service runs with a
sequential id source, so its ids are known here; its worker does not send."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import pytest_asyncio

from services.notify.main import spec
from services.notify.settings import NotifySettings
from tests.support.service import running
from yishi.clock import ManualClock
from yishi.ids import SequentialIds

pytestmark = pytest.mark.asyncio(loop_scope="session")

T0 = datetime(2026, 4, 1, 1, 0, tzinfo=timezone.utc)
WORKER = {"id": "worker-0102", "role": "community_worker"}
RESIDENT = {"id": "resident-4211", "role": "resident"}


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def service(servers):
    settings = NotifySettings(webhook_secret="new-ids", worker_interval_s=3600)
    async with running(spec(settings), servers, clock=ManualClock(T0), ids=SequentialIds()) as r:
        yield r


async def post(r, type_: str, body: dict, key: str) -> dict:
    response = await r.client.post(f"/{r.district}/commands/{type_}", json={"district": r.district, **body},
                                   headers={"Idempotency-Key": key})
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_subscription_and_a_notification_without_their_ids_are_named_in_the_reply(service):
    r = service
    subscribe = {"actor": RESIDENT, "subscriber": {"kind": "person", "id": "resident-4211"}, "channel": "webhook",
                 "address": "https://hooks.example/resident-4211"}
    subscribed = await post(r, "Subscribe", subscribe, key="sub-1")
    assert (subscribed["subject"], subscribed["ids"]) == ("subscription-1", {"subscription_id": "subscription-1"})
    assert await post(r, "Subscribe", subscribe, key="sub-1") == subscribed
    view = (await r.client.get(f"/{r.district}/subscriptions/subscription-1")).json()
    assert (view["subscription_id"], view["address"], view["active"]) == (
        "subscription-1", "https://hooks.example/resident-4211", True)

    notice = {"actor": WORKER, "recipients": [{"kind": "person", "id": "resident-4211"}], "channels": ["webhook"],
              "template": "proposal.published",
              "params": {"title": "增设休息座椅", "proposal_id": "p-1",
                         "notice_ends_at": (T0 + timedelta(days=7)).isoformat()}}
    requested = await post(r, "RequestNotification", notice, key="notice-1")
    assert requested["ids"] == {"notification_id": "notification-1"}
    assert await post(r, "RequestNotification", notice, key="notice-1") == requested
    deliveries = (await r.client.get(f"/{r.district}/deliveries",
                                     params={"notification_id": "notification-1"})).json()["items"]
    assert [(d["notification_id"], d["recipient_id"], d["address"]) for d in deliveries] == [
        ("notification-1", "resident-4211", "https://hooks.example/resident-4211")]
