"""Whom a caller acts for (the token's ``acts_for`` claim): only the assigned implementer
organisation's staff accept, report, spend on and complete a task; a supervisor
inspects, and a community worker runs delivery, only for the councils they serve.
Everyone else gets 403 and a recorded ``CommandRejected``."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from services.oversight.main import spec
from tests.support.auth import acting, bearer
from tests.support.service import new_district, running
from yishi.clock import ManualClock

T0 = datetime(2026, 3, 2, 1, tzinfo=timezone.utc)
OFFICIAL = {"id": "official-0001", "role": "official"}
GREEN = {"id": "staff-green", "role": "implementer"}  # staff of the assigned organisation
OTHER = {"id": "staff-other", "role": "implementer"}  # staff of an organisation assigned another task
IDLE = {"id": "staff-idle", "role": "implementer"}  # an implementer never assigned anything
OFFICE = {"id": "worker-office", "role": "community_worker"}  # the community office, not the implementer
SUP = {"id": "sup-1", "role": "supervisor"}
SUP_ELSEWHERE = {"id": "sup-2", "role": "supervisor"}
WORKER_ELSEWHERE = {"id": "worker-2", "role": "community_worker"}
DIRECTORY = {"staff-green": ["org-green"], "staff-other": ["org-other"], "staff-idle": [],
             "worker-office": ["council-9"], "sup-1": ["council-1"], "sup-2": ["council-2"],
             "worker-2": ["council-2"]}
EVIDENCE = [{"uri": "https://f.example/1.jpg", "media_type": "image/jpeg", "sha256": "0" * 64}]


async def test_only_the_assigned_organisation_and_the_council_s_people_act_on_a_task(servers):
    d = new_district()
    auth = acting(DIRECTORY)
    async with running(spec(reminder_interval=60), servers, district=d, clock=ManualClock(T0)) as r:
        async def post(name: str, who: dict, **fields):
            return await r.client.post(f"/{d}/commands/{name}", json={"district": d, "actor": who, **fields},
                                       auth=auth)

        async def refused(name: str, who: dict, **fields) -> None:
            reply = await post(name, who, **fields)
            assert (reply.status_code, reply.json()["reason"]) == (403, "not_authorised"), (name, who, reply.text)

        assert (await post("RegisterResolution", OFFICIAL, resolution_id="res-1", proposal_id="p-1",
                           council_id="council-1", title="充电棚", text="建设")).status_code == 200
        task = dict(resolution_id="res-1", description="建设", acceptance_standards=["可用"],
                    due_at=(T0 + timedelta(days=30)).isoformat())
        await refused("AssignTask", WORKER_ELSEWHERE, task_id="task-1",
                      implementer={"kind": "local_unit", "id": "org-green", "name": "物业"}, **task)
        for task_id, org in (("task-1", "org-green"), ("task-2", "org-other")):
            assert (await post("AssignTask", OFFICIAL, task_id=task_id,
                               implementer={"kind": "local_unit", "id": org, "name": "物业"}, **task)).status_code == 200

        for who in (OTHER, IDLE, OFFICE):
            await refused("AcceptTask", who, task_id="task-1")
        no_claim = await r.client.post(f"/{d}/commands/AcceptTask", headers=bearer("staff-green", d, "implementer"),
                                       json={"district": d, "actor": GREEN, "task_id": "task-1"})
        assert (no_claim.status_code, no_claim.json()["reason"]) == (403, "not_authorised")
        assert (await post("AcceptTask", GREEN, task_id="task-1")).status_code == 200

        for who in (OTHER, IDLE, OFFICE):
            await refused("ReportProgress", who, task_id="task-1", percent_complete=40, summary="地基",
                          evidence=EVIDENCE)
        assert (await post("ReportProgress", GREEN, task_id="task-1", percent_complete=40, summary="地基",
                           evidence=EVIDENCE)).status_code == 200

        assert (await post("EstablishFund", OFFICIAL, fund_id="fund-1", community_id="xikang", year=2026,
                           amount_fen=1_000_000)).status_code == 200
        assert (await post("AllocateFunds", OFFICIAL, allocation_id="alloc-1", resolution_id="res-1",
                           task_id="task-1", fund_id="fund-1", amount_fen=500_000, purpose="建设")).status_code == 200
        for who in (OTHER, IDLE, OFFICE):
            await refused("RecordSpending", who, expenditure_id=f"exp-{who['id']}", allocation_id="alloc-1",
                          amount_fen=1_000, payee="电气公司", purpose="安装")
        assert (await post("RecordSpending", GREEN, expenditure_id="exp-1", allocation_id="alloc-1",
                           amount_fen=1_000, payee="电气公司", purpose="安装")).status_code == 200
        fund = (await r.client.get(f"/{d}/funds/fund-1")).json()
        assert fund["spent_fen"] == 1_000  # nothing the others sent counted

        for who in (OTHER, IDLE):
            await refused("CompleteTask", who, task_id="task-1", summary="完成")
        assert (await post("CompleteTask", GREEN, task_id="task-1", summary="完成")).status_code == 200

        inspection = dict(resolution_id="res-1", task_id="task-1", inspector_ids=["sup-1"], aspects=["quality"],
                          finding="satisfactory", notes="符合标准")
        await refused("RecordInspection", SUP_ELSEWHERE, inspection_id="insp-0", **inspection)
        assert (await post("RecordInspection", SUP, inspection_id="insp-1", **inspection)).status_code == 200
        assert (await r.client.get(f"/{d}/tasks/task-1")).json()["status"] == "passed"

        rejected = [json.loads(row["state"]) for row in await r.ctx.pool.fetch(
            "SELECT state FROM events WHERE topic = 'contract:CommandRejected' ORDER BY position")]
        assert [(x["command_type"], x["actor"]["id"], x["reason"]) for x in rejected] == [
            ("AssignTask", "worker-2", "not_authorised"),
            *[("AcceptTask", who, "not_authorised") for who in ("staff-other", "staff-idle", "worker-office",
                                                                  "staff-green")],
            *[("ReportProgress", who["id"], "not_authorised") for who in (OTHER, IDLE, OFFICE)],
            *[("RecordSpending", who["id"], "not_authorised") for who in (OTHER, IDLE, OFFICE)],
            *[("CompleteTask", who["id"], "not_authorised") for who in (OTHER, IDLE)],
            ("RecordInspection", "sup-2", "not_authorised"),
        ]
        # The community office may not accept at all (the table); the others are refused by the record.
        assert [x["subject"] for x in rejected] == ["res-1", "task-1", "task-1", None, *["task-1"] * 4, *[
            f"exp-{who['id']}" for who in (OTHER, IDLE, OFFICE)], "task-1", "task-1", "task-1"]
        assert "org-green" in next(x["message"] for x in rejected if x["command_type"] == "AcceptTask")
