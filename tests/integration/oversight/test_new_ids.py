"""Oversight's creating commands without their ids, over HTTP: the platform chooses each
id (a directly registered resolution's is derived from its proposal), the reply names
it, a resend under the same Idempotency-Key gets the same id, and the record is readable
under it. The service runs with a sequential id source, so its ids are known here."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import pytest_asyncio

from services.oversight.main import spec
from tests.support.service import running
from yishi.clock import ManualClock
from yishi.ids import SequentialIds

pytestmark = pytest.mark.asyncio(loop_scope="session")

T0 = datetime(2026, 4, 1, 1, 0, tzinfo=timezone.utc)
WORKER = {"id": "worker-0102", "role": "community_worker"}
STAFF = {"id": "staff-2201", "role": "implementer"}
SUPERVISOR = {"id": "supervisor-01", "role": "supervisor"}


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def service(servers):
    async with running(spec(), servers, clock=ManualClock(T0), ids=SequentialIds()) as r:
        yield r


async def post(r, type_: str, body: dict, key: str | None = None, status: int = 200) -> dict:
    headers = {"Idempotency-Key": key} if key else {}
    response = await r.client.post(f"/{r.district}/commands/{type_}", json={"district": r.district, **body},
                                   headers=headers)
    assert response.status_code == status, response.text
    return response.json()


async def created(r, type_: str, body: dict, key: str, field: str, expected: str) -> None:
    """``type_`` sent without ``field`` under ``key``: ``expected`` is chosen, named in the
    reply, and a resend under the same key is answered the same."""
    reply = await post(r, type_, body, key=key)
    assert reply["ids"] == {field: expected}, reply
    assert await post(r, type_, body, key=key) == reply


async def get(r, path: str) -> dict:
    response = await r.client.get(f"/{r.district}/{path}")
    assert response.status_code == 200, response.text
    return response.json()


async def test_records_created_without_their_ids_are_named_in_the_reply_and_readable(service):
    r = service
    resolution = {"actor": WORKER, "proposal_id": "p-bench", "council_id": "council-xikang",
                  "title": "增设休息座椅", "text": "在小区花园增设6张座椅。", "budget_fen": 600_000}
    await created(r, "RegisterResolution", resolution, "register-1", "resolution_id", "res-p-bench")
    assert (await get(r, "resolutions/res-p-bench"))["proposal_id"] == "p-bench"
    # Derived from the proposal, not drawn: the same proposal under another key is the same
    # resolution, refused as existing (as it is when its adoption arrives from proposals).
    assert (await post(r, "RegisterResolution", resolution, key="register-2", status=409))["reason"] == (
        "already_exists")

    await created(r, "EstablishFund", {"actor": WORKER, "community_id": "xikang", "year": 2026,
                                       "amount_fen": 3_000_000}, "fund-1", "fund_id", "fund-1")
    task = {"actor": WORKER, "resolution_id": "res-p-bench",
            "implementer": {"kind": "social_organisation", "id": "org-green-home", "name": "绿色家园"},
            "description": "采购并安装座椅", "acceptance_standards": ["6张座椅"],
            "due_at": (T0 + timedelta(days=30)).isoformat(), "budget_fen": 600_000}
    await created(r, "AssignTask", task, "assign-1", "task_id", "task-1")
    assert [t["task_id"] for t in (await get(r, "resolutions/res-p-bench"))["tasks"]] == ["task-1"]
    first = await get(r, "tasks/task-1")
    assert (first["task_id"], first["implementer_id"], first["status"]) == ("task-1", "org-green-home", "assigned")

    await created(r, "AllocateFunds", {"actor": WORKER, "resolution_id": "res-p-bench", "task_id": "task-1",
                                       "fund_id": "fund-1", "amount_fen": 500_000, "purpose": "座椅"},
                  "allocate-1", "allocation_id", "allocation-1")
    await post(r, "AcceptTask", {"actor": STAFF, "task_id": "task-1"})
    await created(r, "RecordSpending", {"actor": STAFF, "allocation_id": "allocation-1", "amount_fen": 420_000,
                                        "payee": "园林公司", "purpose": "座椅6张"},
                  "spend-1", "expenditure_id", "expenditure-1")
    fund = await get(r, "funds/fund-1")
    assert (fund["allocated_fen"], fund["spent_fen"]) == (500_000, 420_000)
    assert [(a["allocation_id"], a["spent_fen"]) for a in fund["allocations"]] == [("allocation-1", 420_000)]

    await post(r, "CompleteTask", {"actor": STAFF, "task_id": "task-1", "summary": "已安装"})
    await created(r, "ScheduleFollowUpInspection", {
        "actor": SUPERVISOR, "task_id": "task-1", "scheduled_for": (T0 + timedelta(days=60)).isoformat(),
        "reason": "雨季后复查"}, "follow-up-1", "inspection_id", "inspection-1")
    await created(r, "RecordInspection", {
        "actor": SUPERVISOR, "resolution_id": "res-p-bench", "task_id": "task-1", "inspector_ids": ["supervisor-01"],
        "aspects": ["quality"], "finding": "satisfactory", "notes": "符合标准"}, "inspect-1", "inspection_id",
        "inspection-2")
    await created(r, "RecordSatisfaction", {
        "actor": WORKER, "resolution_id": "res-p-bench", "review_meeting_id": "review-2026", "year": 2026,
        "satisfied": 20, "basically_satisfied": 3, "dissatisfied": 1}, "rate-1", "rating_id", "rating-1")
    trail = await get(r, "resolutions/res-p-bench/audit")
    bodies = {s["type"]: s["body"] for s in trail["steps"]}
    assert bodies["InspectionRecorded"]["inspection_id"] == "inspection-2"
    assert bodies["FollowUpInspectionScheduled"]["inspection_id"] == "inspection-1"
    assert bodies["SatisfactionRated"]["rating_id"] == "rating-1"
    assert bodies["FundsSpent"]["expenditure_id"] == "expenditure-1"
