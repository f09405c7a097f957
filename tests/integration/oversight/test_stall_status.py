"""A task's status shows its stall: ``stalled`` when the stall timer fires, ``escalated``
with the level and authority when the ladder reaches the council above, and its
lifecycle status again once the implementer reports progress; the community's roadmap
shows the same, and each reminder shows on the task with its recipient."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from contracts import proposals as p
from services.oversight.main import spec
from tests.integration.oversight.test_oversight_service import actor, envelope, publish
from tests.support.service import eventually, new_district, running
from yishi.clock import ManualClock
from yishi.kafka import ensure_topics
from yishi.names import events_topic

T0 = datetime(2026, 3, 1, 1, tzinfo=timezone.utc)
WORKER = {"id": "worker-0102", "role": "community_worker"}
STAFF = {"id": "staff-2201", "role": "implementer"}


async def test_status_and_roadmap_show_the_stall_and_the_escalation_until_progress_resumes(servers):
    d = new_district()
    await ensure_topics(servers.kafka_bootstrap, [events_topic(d, "proposals")])
    clock = ManualClock(T0)
    async with running(spec(reminder_interval=0.05), servers, district=d, clock=clock) as r:
        async def post(name: str, who: dict = WORKER, **fields) -> None:
            got = await r.client.post(f"/{d}/commands/{name}", json={"district": d, "actor": who, **fields})
            assert got.status_code == 200, got.text

        async def task() -> dict:
            return (await r.client.get(f"/{d}/tasks/task-1")).json()

        async def roadmap_entry() -> dict:
            return (await r.client.get(f"/{d}/communities/xikang/roadmap")).json()["resolutions"][0]

        await publish(servers.kafka_bootstrap, *[envelope(model, "proposals", model.council_id) for model in (
            p.CouncilFormed(district=d, actor=actor("official-0007", "official"), occurred_at=T0,
                            council_id="council-hunanlu", name="湖南路街道议事会", level="street", area_id="hunanlu",
                            seats=[{"seat_id": "seat-1", "kind": "bureau_staff"}]),
            p.CouncilFormed(district=d, actor=actor("worker-0102", "community_worker"), occurred_at=T0,
                            council_id="council-xikang", name="西康路社区议事会", level="community",
                            area_id="xikang", parent_council_id="council-hunanlu",
                            seats=[{"seat_id": "seat-2", "kind": "expert"}]))])
        await eventually(lambda: r.ctx.pool.fetchval("SELECT count(*) = 2 FROM ov_councils WHERE district = $1", d),
                         timeout=60)
        await post("RegisterResolution", resolution_id="res-1", proposal_id="p-1", council_id="council-xikang",
                   title="充电棚", text="建设")
        await post("SetReminderPolicy", scope="resolution", scope_id="res-1", not_accepted_days=30, stall_days=5,
                   deadline_warning_days=3, escalate_after_days=2, supervisor_id="supervisor-01")
        await post("AssignTask", task_id="task-1", resolution_id="res-1",
                   implementer={"kind": "social_organisation", "id": "org-green-home", "name": "绿色家园"},
                   description="建设", acceptance_standards=["可用"], due_at=(T0 + timedelta(days=90)).isoformat())
        await post("AcceptTask", STAFF, task_id="task-1")
        await post("ReportProgress", STAFF, task_id="task-1", percent_complete=40, summary="棚架完成")
        assert ((await task())["status"], (await roadmap_entry())["stalled_tasks"]) == ("accepted", [])

        clock.set(T0 + timedelta(days=5))  # no news for the policy's five days
        stalled = await eventually(lambda: _with_status(task, "stalled"))
        assert (datetime.fromisoformat(stalled["stalled_at"]), stalled["escalation_level"]) == (
            T0 + timedelta(days=5), None)
        assert [(x["step"], x["recipient_id"], x["delivery"]) for x in stalled["reminders"]] == [
            (1, "staff-2201", "pending")]  # no notify here: nothing says it reached anyone
        entry = await roadmap_entry()
        assert (entry["tasks_stalled"], entry["tasks_escalated"], entry["stalled_tasks"]) == (1, 0, [
            {"task_id": "task-1", "status": "stalled", "escalation_level": None, "escalated_to": None}])

        clock.set(T0 + timedelta(days=9))  # two more rungs: the supervisor, then the street council
        escalated = await eventually(lambda: _with_status(task, "escalated"))
        assert (escalated["escalation_level"], escalated["escalated_to"]) == ("street", "council-hunanlu")
        assert [(x["step"], x["recipient_id"]) for x in escalated["reminders"]] == [
            (1, "staff-2201"), (2, "supervisor-01"), (3, "council-hunanlu")]
        entry = await roadmap_entry()
        assert (entry["tasks_stalled"], entry["tasks_escalated"], entry["stalled_tasks"]) == (0, 1, [
            {"task_id": "task-1", "status": "escalated", "escalation_level": "street",
             "escalated_to": "council-hunanlu"}])

        await post("ReportProgress", STAFF, task_id="task-1", percent_complete=60, summary="充电桩安装")
        resumed = await task()
        assert (resumed["status"], resumed["stalled_at"], resumed["escalation_level"], resumed["escalated_to"]) == (
            "accepted", None, None, None)
        assert (await roadmap_entry())["stalled_tasks"] == []
        trail = (await r.client.get(f"/{d}/resolutions/res-1/audit")).json()
        assert [s["recipient_id"] for s in trail["steps"] if s["type"] == "ReminderDue"] == [
            "staff-2201", "supervisor-01", "council-hunanlu"]


async def _with_status(task, status: str) -> dict | None:
    found = await task()
    return found if found["status"] == status else None
