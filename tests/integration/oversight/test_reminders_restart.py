"""The reminder scheduler is durable: a due time that passed while the service was down
fires once after the restart, is published, and never fires again; with two replicas it
runs on one of them."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

from services.oversight import scheduler
from services.oversight.main import spec
from tests.support.kafka import read_topic
from tests.support.service import eventually, new_district, running
from yishi.clock import ManualClock
from yishi.names import events_topic

T0 = datetime(2026, 3, 1, 1, tzinfo=timezone.utc)
WORKER = {"id": "worker-0102", "role": "community_worker"}


def body(d: str, **fields) -> dict:
    return {"district": d, "actor": WORKER, **fields}


async def fired(r) -> list[str]:
    rows = await r.ctx.pool.fetch("SELECT state FROM events WHERE topic LIKE '%Task.ReminderFired' ORDER BY position")
    return [row["state"].decode() for row in rows]


async def test_reminder_due_during_downtime_fires_once_after_restart(servers):
    d, schema = new_district(), f"s_{uuid.uuid4().hex[:12]}"
    clock = ManualClock(T0)
    async with running(spec(reminder_interval=0.05), servers, district=d, schema=schema, clock=clock) as r:
        post = lambda name, **fields: r.client.post(f"/{d}/commands/{name}", json=body(d, **fields))  # noqa: E731
        assert (await post("RegisterResolution", resolution_id="res-1", proposal_id="p-1", council_id="council-1",
                           title="充电棚", text="建设")).status_code == 200
        assert (await post("SetReminderPolicy", scope="council", scope_id="council-1", not_accepted_days=2,
                           stall_days=5, deadline_warning_days=3, escalate_after_days=2,
                           supervisor_id="supervisor-01")).status_code == 200
        assert (await post("AssignTask", task_id="task-1", resolution_id="res-1",
                           implementer={"kind": "local_unit", "id": "unit-7", "name": "物业"}, description="建设",
                           acceptance_standards=["可用"], due_at=(T0 + timedelta(days=30)).isoformat())).status_code == 200
        clock.advance(timedelta(days=1))
        await r.ctx.pool.fetchval("SELECT 1")  # let a few ticks pass at day 1: nothing is due
        assert await fired(r) == []
    # Down while the not-accepted reminder (day 2) falls due.
    clock.set(T0 + timedelta(days=3))
    async with running(spec(reminder_interval=0.05), servers, district=d, schema=schema, clock=clock) as r:
        await eventually(lambda: fired(r))
        first = await fired(r)
        assert len(first) == 1 and '"recipient_id":"unit-7"' in first[0] and '"step":1' in first[0]
        for _ in range(20):  # many more ticks at the same time: nothing new
            await r.ctx.pool.fetchval("SELECT pg_sleep(0.01)")
        assert await fired(r) == first
        clock.set(T0 + timedelta(days=4))  # the second rung: the supervisor
        await eventually(lambda: _more_than(r, 1))
        assert len(await fired(r)) == 2 and '"recipient_id":"supervisor-01"' in (await fired(r))[1]
        published = await read_topic(servers.kafka_bootstrap, events_topic(d, "oversight"), 5, timeout=30)
        reminders = [e.payload() for e in published if e.type == "ReminderDue"]
        assert [(x["kind"], x["recipient_id"], x["escalation_step"]) for x in reminders] == [
            ("not_accepted", "unit-7", 1), ("not_accepted", "supervisor-01", 2)]


async def _more_than(r, n: int) -> bool:
    return len(await fired(r)) > n


async def test_two_replicas_fire_a_due_reminder_once_and_only_one_scans(servers, monkeypatch):
    ticks: Counter = Counter()
    fire_due_reminders = scheduler.fire_due_reminders

    async def counted(repository, pool, *args, **kwargs):
        ticks[pool] += 1
        return await fire_due_reminders(repository, pool, *args, **kwargs)

    monkeypatch.setattr(scheduler, "fire_due_reminders", counted)
    d, clock = new_district(), ManualClock(T0)
    shared = {"district": d, "schema": f"s_{uuid.uuid4().hex[:12]}", "clock": clock,
              "consumer_group_prefix": f"g{uuid.uuid4().hex[:8]}"}
    async with running(spec(reminder_interval=0.02), servers, **shared) as a, \
            running(spec(reminder_interval=0.02), servers, **shared) as b:
        post = lambda name, **fields: a.client.post(f"/{d}/commands/{name}", json=body(d, **fields))  # noqa: E731
        assert (await post("RegisterResolution", resolution_id="res-1", proposal_id="p-1", council_id="council-1",
                           title="充电棚", text="建设")).status_code == 200
        assert (await post("SetReminderPolicy", scope="council", scope_id="council-1", not_accepted_days=2,
                           stall_days=5, deadline_warning_days=3, escalate_after_days=2,
                           supervisor_id="supervisor-01")).status_code == 200
        assert (await post("AssignTask", task_id="task-1", resolution_id="res-1",
                           implementer={"kind": "local_unit", "id": "unit-7", "name": "物业"}, description="建设",
                           acceptance_standards=["可用"], due_at=(T0 + timedelta(days=30)).isoformat())).status_code == 200
        clock.set(T0 + timedelta(days=3))  # the not-accepted reminder is due
        await eventually(lambda: fired(a))
        start = sum(ticks.values())
        await eventually(lambda: _more_ticks(ticks, start + 20))
        assert len(await fired(b)) == 1
        counts = sorted([ticks[a.ctx.pool], ticks[b.ctx.pool]])
        assert counts[0] == 0 and counts[1] >= 20, f"both replicas ran the reminder job: {counts}"


async def _more_ticks(ticks, target: int) -> bool:
    return sum(ticks.values()) >= target
