"""A task's budget holds under concurrent allocations from different funds: each fund's
stream is version-checked, and so is the task's, so of two allocations that together
exceed the task's budget exactly one is accepted, however they interleave."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from services.oversight.main import spec
from tests.support.service import new_district, running
from yishi.clock import ManualClock

T0 = datetime(2026, 3, 2, 1, tzinfo=timezone.utc)
OFFICIAL = {"id": "official-0001", "role": "official"}
ROUNDS = 6


async def test_two_funds_cannot_overallocate_one_task_concurrently(servers):
    d = new_district()
    async with running(spec(reminder_interval=60), servers, district=d, clock=ManualClock(T0),
                       command_rate_limit="10000/second") as r:
        async def post(name: str, **fields):
            return await r.client.post(f"/{d}/commands/{name}", json={"district": d, "actor": OFFICIAL, **fields})

        assert (await post("RegisterResolution", resolution_id="res-1", proposal_id="p-1", council_id="council-1",
                           title="充电棚", text="建设")).status_code == 200
        for year in (2026, 2027):
            assert (await post("EstablishFund", fund_id=f"fund-{year}", community_id="xikang", year=year,
                               amount_fen=10_000_000)).status_code == 200
        statuses = []
        for n in range(ROUNDS):
            assert (await post("AssignTask", task_id=f"task-{n}", resolution_id="res-1",
                               implementer={"kind": "local_unit", "id": "unit-7", "name": "物业"},
                               description="建设", acceptance_standards=["可用"], budget_fen=1_000,
                               due_at=(T0 + timedelta(days=30)).isoformat())).status_code == 200
            # 700 from each fund: either alone fits the task's 1,000 fen, both do not.
            replies = await asyncio.gather(*(
                post("AllocateFunds", allocation_id=f"alloc-{n}-{year}", resolution_id="res-1", task_id=f"task-{n}",
                     fund_id=f"fund-{year}", amount_fen=700, purpose="建设") for year in (2026, 2027)))
            statuses.append(sorted((reply.status_code, reply.json().get("reason")) for reply in replies))
        assert statuses == [[(200, None), (422, "over_budget")]] * ROUNDS
        funds = [(await r.client.get(f"/{d}/funds/fund-{year}")).json() for year in (2026, 2027)]
        assert sum(fund["allocated_fen"] for fund in funds) == 700 * ROUNDS
