"""Lists over HTTP: every list answers ``{items, next_cursor}`` pages in a stable order by
a unique key (yishi/pagination.py); walking the pages yields every item exactly once,
even with items added between two pages; ``limit`` is bounded and a cursor that is not
one is refused as problem details; filters narrow; another district's items are never
listed. Votes, resolutions and tasks have lists of their own."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from contracts import registry
from contracts.common import Actor, CommandAccepted
from contracts.proposals import CouncilFormed
from contracts.voting import OpenVote
from services.notify.main import spec as notify_spec
from services.notify.settings import NotifySettings
from services.oversight.main import spec as oversight_spec
from services.proposals.main import spec as proposals_spec
from services.voting.application import create_bus
from services.voting.main import spec as voting_spec
from tests.support.service import eventually, new_district, running
from yishi.clock import ManualClock
from yishi.kafka import ensure_topics, new_producer
from yishi.names import events_topic, source

pytestmark = pytest.mark.asyncio(loop_scope="session")

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
WORKER = {"id": "worker-1", "role": "community_worker"}
OFFICIAL = {"id": "official-1", "role": "official"}
IMPLEMENTER = {"id": "impl-1", "role": "implementer"}
PROBLEM = "application/problem+json"


async def accepted(client, district: str, type_: str, body: dict) -> None:
    got = await client.post(f"/{district}/commands/{type_}", json={"district": district, **body})
    assert got.status_code == 200, got.text


async def walk(client, path: str, key: str, limit: int, between=None, **filters) -> list[list[str]]:
    """The ids of every page of ``path`` (``between(n)`` runs after page n)."""
    pages, cursor = [], None
    while True:
        params = {**filters, "limit": limit, **({"cursor": cursor} if cursor else {})}
        got = await client.get(path, params=params)
        assert got.status_code == 200, got.text
        body = got.json()
        assert set(body) == {"items", "next_cursor"}
        pages.append([item[key] for item in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100, "the walk does not end"
        if between is not None:
            await between(len(pages))


def refused(got, field: str) -> None:
    """422 problem details naming the offending query parameter."""
    assert got.status_code == 422, got.text
    assert got.headers["content-type"] == PROBLEM
    body = got.json()
    assert body["reason"] == "invalid_request" and body["type"] == "urn:yishi:problem:invalid_request"
    assert [e["field"] for e in body["errors"]] == [field], body


async def assert_bounds_and_cursor(client, path: str, **filters: str) -> None:
    """limit 1..200 (50 by default); a cursor that is not one of this list's: 422."""
    refused(await client.get(path, params={**filters, "limit": 0}), "query.limit")
    refused(await client.get(path, params={**filters, "limit": 201}), "query.limit")
    refused(await client.get(path, params={**filters, "limit": "ten"}), "query.limit")
    assert (await client.get(path, params={**filters, "limit": 200})).status_code == 200
    assert (await client.get(path, params={**filters, "limit": 1})).status_code == 200
    not_base64 = "!!not-a-cursor!!"
    not_json = base64.urlsafe_b64encode(b"{nope").decode()
    wrong_shape = base64.urlsafe_b64encode(b'{"id": 1}').decode()
    too_long = "A" * 1001
    for cursor in (not_base64, not_json, wrong_shape, too_long, ""):
        refused(await client.get(path, params={**filters, "cursor": cursor}), "query.cursor")


async def publish(bootstrap: str, model) -> None:
    producer = new_producer(bootstrap)
    await producer.start()
    try:
        envelope = registry.to_envelope(model, id=str(uuid.uuid4()), source=source(model.district, "proposals"),
                                        subject=model.council_id, time=T0, correlation_id=str(uuid.uuid4()))
        key, headers, value = envelope.to_kafka()
        await producer.send_and_wait(events_topic(model.district, "proposals"), value, key=key, headers=headers)
    finally:
        await producer.stop()


async def test_resolutions_and_tasks_are_listed_filtered_and_paged(servers):
    a, b = new_district(), new_district()
    await ensure_topics(servers.kafka_bootstrap, [events_topic(d, s) for d in (a, b)
                                                  for s in ("proposals", "voting", "oversight")])
    async with running(oversight_spec(), servers, district=a, districts=[a, b], clock=ManualClock(T0),
                       command_rate_limit="1000/second") as svc:
        c = svc.client
        for district in (a, b):
            for community in ("xikang", "ninghai"):
                await publish(servers.kafka_bootstrap, CouncilFormed(
                    district=district, actor=Actor.model_validate(WORKER), occurred_at=T0,
                    council_id=f"council-{community}", name=community, level="community", area_id=community,
                    seats=[{"seat_id": "seat-1", "kind": "expert"}]))
        await eventually(lambda: svc.ctx.pool.fetchval("SELECT count(*) = 4 FROM ov_councils WHERE district = ANY($1)",
                                                       [a, b]), timeout=60)

        async def resolution(district: str, n: int, community: str) -> None:
            await accepted(c, district, "RegisterResolution", {
                "actor": WORKER, "resolution_id": f"res-{n:02}", "proposal_id": f"p-{n:02}",
                "council_id": f"council-{community}", "title": f"{district} resolution {n}", "text": "t"})

        async def task(district: str, n: int, resolution_n: int, implementer: str) -> None:
            await accepted(c, district, "AssignTask", {
                "actor": WORKER, "task_id": f"task-{n:02}", "resolution_id": f"res-{resolution_n:02}",
                "implementer": {"kind": "social_organisation", "id": implementer, "name": implementer},
                "description": "d", "acceptance_standards": ["s"], "due_at": (T0 + timedelta(days=30)).isoformat()})

        # A: resolutions 1..7 (odd ones in xikang), tasks 1..9 by org-1 or org-2; B: its own.
        for n in range(1, 8):
            await resolution(a, n, "xikang" if n % 2 else "ninghai")
        for n in range(1, 10):
            await task(a, n, n % 7 + 1, "org-1" if n <= 5 else "org-2")
        for n in (1, 3):
            await accepted(c, a, "AcceptTask", {"actor": IMPLEMENTER, "task_id": f"task-{n:02}"})
        for n in range(1, 4):
            await resolution(b, n, "xikang")
            await task(b, n, n, "org-1")

        # Paging: every item exactly once, in id order, items added between pages or not.
        pages = await walk(c, f"/{a}/resolutions", "resolution_id", 3)
        assert pages == [["res-01", "res-02", "res-03"], ["res-04", "res-05", "res-06"], ["res-07"]]

        async def add_before_and_after(page: int) -> None:
            # res-00 sorts before every page read so far (never listed in this walk),
            # res-9n after all of them (listed once, on a later page).
            if page == 1:
                await resolution(a, 0, "xikang")
            await accepted(c, a, "RegisterResolution", {
                "actor": WORKER, "resolution_id": f"res-9{page}", "proposal_id": f"p-9{page}",
                "council_id": "council-xikang", "title": "late", "text": "t"})
        walked = await walk(c, f"/{a}/resolutions", "resolution_id", 2, between=add_before_and_after)
        seen = [i for p in walked for i in p]
        assert len(seen) == len(set(seen)), f"an item was listed twice: {walked}"
        assert seen == [f"res-{n:02}" for n in range(1, 8)] + [f"res-9{n}" for n in range(1, len(walked))]
        assert [len(p) for p in walked] == [2] * 6  # 7 items and 5 added on the way (res-00 behind the cursor)

        default = (await c.get(f"/{a}/tasks")).json()
        assert [t["task_id"] for t in default["items"]] == [f"task-{n:02}" for n in range(1, 10)]
        assert default["next_cursor"] is None

        # Filters (and combinations), each walked in pages of two.
        async def ids(path: str, key: str, **filters) -> list[str]:
            return [i for p in await walk(c, f"/{a}/{path}", key, 2, **filters) for i in p]
        assert await ids("tasks", "task_id", implementer_id="org-2") == [f"task-{n:02}" for n in range(6, 10)]
        assert await ids("tasks", "task_id", status="accepted") == ["task-01", "task-03"]
        assert await ids("tasks", "task_id", status="assigned", implementer_id="org-1") == ["task-02", "task-04",
                                                                                             "task-05"]
        assert await ids("tasks", "task_id", implementer_kind="social_organisation", resolution_id="res-02") == \
            ["task-01", "task-08"]
        # Tasks of xikang's resolutions (odd ones): task n belongs to resolution n % 7 + 1.
        assert await ids("tasks", "task_id", community_id="xikang") == \
            [f"task-{n:02}" for n in range(1, 10) if (n % 7 + 1) % 2]
        assert await ids("resolutions", "resolution_id", community_id="ninghai") == ["res-02", "res-04", "res-06"]
        assert await ids("resolutions", "resolution_id", status="open", council_id="council-ninghai",
                         proposal_id="p-04") == ["res-04"]
        assert await ids("resolutions", "resolution_id", status="closed") == []

        # Another district's items are never listed, and A's never in B.
        assert await ids("tasks", "task_id", implementer_id="org-1") == [f"task-{n:02}" for n in range(1, 6)]
        in_b = (await c.get(f"/{b}/tasks", params={"limit": 200})).json()
        assert [t["task_id"] for t in in_b["items"]] == ["task-01", "task-02", "task-03"]
        assert {t["resolution_id"] for t in in_b["items"]} == {"res-01", "res-02", "res-03"}
        titles = {r["title"] for r in (await c.get(f"/{b}/resolutions", params={"limit": 200})).json()["items"]}
        assert titles == {f"{b} resolution {n}" for n in (1, 2, 3)}

        for path in (f"/{a}/resolutions", f"/{a}/tasks"):
            await assert_bounds_and_cursor(c, path)


async def test_votes_are_listed_filtered_and_paged(servers):
    a, b = new_district(), new_district()
    async with running(voting_spec(), servers, district=a, districts=[a, b], clock=ManualClock(T0),
                       command_rate_limit="1000/second") as svc:
        c = svc.client

        bus = create_bus(svc.ctx.store, svc.ctx.clock)

        async def open_vote(district: str, vote_id: str, council: str, kind: str = "question") -> None:
            body = {
                "actor": WORKER, "vote_id": vote_id, "council_id": council,
                "matter": {"kind": kind, "id": f"m-{vote_id}"},
                "terms": {"question": f"{district} {vote_id}?", "method": "online", "majority": "simple",
                          "electorate": {"kind": "council_members", "scope_id": council, "size": 1,
                                         "roll": ["voter-1"]},
                          "quorum_percent": 50, "secrecy": "open", "closes_at": (T0 + timedelta(days=2)).isoformat()}}
            if kind == "question":
                await accepted(c, district, "OpenVote", body)
                return
            # A nomination's vote is opened by the platform, from the proposals service's VoteRequested.
            reply = await bus.dispatch(OpenVote.model_validate({"district": district, **body}),
                                       command_id=f"open-{vote_id}", correlation_id=vote_id, principal=bus.platform)
            assert isinstance(reply, CommandAccepted), reply

        for n in range(1, 6):
            await open_vote(a, f"v-{n}", "c-1" if n <= 3 else "c-2", "nomination" if n == 5 else "question")
        await open_vote(b, "v-1", "c-1")
        # Everyone on the roll voted: v-2 closes.
        await accepted(c, a, "CastBallot", {"actor": {"id": "voter-1", "role": "resident"}, "vote_id": "v-2",
                                            "ballot_id": "b-1", "choice": "in_favour"})

        async def closed() -> bool:
            return (await c.get(f"/{a}/votes/v-2")).json()["status"] == "closed"
        await eventually(closed)

        async def one_more(page: int) -> None:
            await open_vote(a, f"v-0{page}", "c-1")  # before the cursor: not listed in this walk
            await open_vote(a, f"v-9{page}", "c-1")  # after it: listed once

        walked = await walk(c, f"/{a}/votes", "vote_id", 2, between=one_more)
        seen = [i for p in walked for i in p]
        assert seen == sorted(set(seen)) and {f"v-{n}" for n in range(1, 6)} <= set(seen)
        assert not any(i.startswith("v-0") for i in seen)
        first = (await c.get(f"/{a}/votes", params={"limit": 1})).json()["items"][0]
        assert (first["vote_id"], first["council_id"], first["status"], first["turnout"]) == ("v-01", "c-1", "open", 0)
        assert first["terms"]["question"] == f"{a} v-01?"

        async def ids(**filters) -> list[str]:
            return [i for p in await walk(c, f"/{a}/votes", "vote_id", 2, **filters) for i in p]
        assert await ids(council_id="c-2") == ["v-4", "v-5"]
        assert await ids(status="closed") == ["v-2"]
        every = [v["vote_id"] for v in (await c.get(f"/{a}/votes", params={"limit": 200})).json()["items"]]
        assert every == sorted(every) and set(seen) == set(every) - {i for i in every if i.startswith("v-0")}
        assert await ids(status="open", council_id="c-1", matter_kind="question") == \
            [i for i in every if i not in ("v-2", "v-4", "v-5")]
        assert await ids(matter_kind="nomination") == ["v-5"]
        assert await ids(matter_id="m-v-3") == ["v-3"]
        in_b = (await c.get(f"/{b}/votes")).json()
        assert [(v["vote_id"], v["terms"]["question"]) for v in in_b["items"]] == [("v-1", f"{b} v-1?")]
        refused(await c.get(f"/{a}/votes", params={"status": "maybe"}), "query.status")
        await assert_bounds_and_cursor(c, f"/{a}/votes")


async def test_councils_proposals_and_subscriptions_are_paged(servers):
    async with running(proposals_spec(), servers, command_rate_limit="1000/second") as svc:
        d, c = svc.district, svc.client

        async def council(n: int) -> None:
            await accepted(c, d, "FormCouncil", {
                "actor": WORKER, "council_id": f"c-{n:02}", "name": f"council {n}", "level": "community",
                "area_id": "xikang", "seats": [{"seat_id": "seat-1", "kind": "expert"}],
                "rules": {"seconds_required": 1, "notice_period_days": 7}})

        for n in range(1, 6):
            await council(n * 2)

        async def before_and_after(page: int) -> None:
            await council(page * 2 + 1)  # just before the cursor: not listed in this walk
            await council(90 + page)  # after every page read: listed once

        walked = await walk(c, f"/{d}/councils", "council_id", 2, between=before_and_after)
        seen = [i for p in walked for i in p]
        assert seen[:5] == [f"c-{n * 2:02}" for n in range(1, 6)]
        assert seen[5:] == [f"c-9{n}" for n in range(1, len(walked))]
        await assert_bounds_and_cursor(c, f"/{d}/councils")
        await assert_bounds_and_cursor(c, f"/{d}/proposals")

    async with running(notify_spec(NotifySettings(webhook_secret="lists", worker_interval_s=3600)), servers,
                       command_rate_limit="1000/second") as svc:
        d, c = svc.district, svc.client
        for n in range(1, 6):
            await accepted(c, d, "Subscribe", {
                "actor": WORKER, "subscription_id": f"sub-{n}", "subscriber": {"kind": "person", "id": "r-1"},
                "channel": "webhook", "address": f"https://r1.example/{n}", "event_types": ["ProposalPublished"]})
        walked = await walk(c, f"/{d}/subscriptions", "subscription_id", 2, subscriber_id="r-1")
        assert walked == [["sub-1", "sub-2"], ["sub-3", "sub-4"], ["sub-5"]]
        await accepted(c, d, "RequestNotification", {
            "actor": WORKER, "notification_id": "note-1", "recipients": [{"kind": "person", "id": "r-1"}],
            "channels": ["webhook"], "template": "proposal.published",
            "params": {"title": "t", "proposal_id": "p-1", "notice_ends_at": (T0 + timedelta(days=7)).isoformat()}})
        # Newest first, then by id: one delivery per subscribed address.
        walked = await walk(c, f"/{d}/deliveries", "delivery_id", 2, recipient_id="r-1")
        seen = [i for p in walked for i in p]
        assert [len(p) for p in walked] == [2, 2, 1] and len(set(seen)) == 5
        assert seen == [i["delivery_id"] for i in (await c.get(f"/{d}/deliveries", params={"recipient_id": "r-1"})
                                                    ).json()["items"]]
        await assert_bounds_and_cursor(c, f"/{d}/subscriptions", subscriber_id="r-1")
        await assert_bounds_and_cursor(c, f"/{d}/deliveries")
