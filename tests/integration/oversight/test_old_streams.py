"""Streams oversight stored before issue 17 still behave (over PostgreSQL).

Until then the aggregates lived in one module, so every event was stored as
``services.oversight.domain:Task.Accepted`` (and a creation event's ``originator_topic``
named that module); a resolution did not record its tasks (its Registered event has no
``task_ids``), and neither a fund's year nor an allocation id was claimed on the write
side. Streams are stored here as the service stored them then, with their read models,
and must load and take new commands: the year stays taken, the allocation is found, the
task's budget holds, and closing and rating count the resolution's tasks.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from services.oversight import domain, projections
from services.oversight.domain import Fund, Resolution, Task
from services.oversight.main import spec
from tests.support.service import new_district, running
from yishi.clock import ManualClock
from yishi.commands import Saved
from yishi.repository import Repository
from yishi.store import Metadata, NewEvent

T0 = datetime(2026, 3, 2, 1, tzinfo=timezone.utc)
WORKER = {"id": "worker-0102", "role": "community_worker"}
STAFF = {"id": "staff-2201", "role": "implementer"}
SUPERVISOR = {"id": "supervisor-01", "role": "supervisor"}
MODULES = ("resolution", "task", "fund", "policy")
OLD = f"{domain.__name__}:"


def old_topic(topic: str) -> str:
    """``…domain.task:Task.Accepted`` as it was stored: ``…domain:Task.Accepted``."""
    return OLD + topic.partition(":")[2]


def old_state(state: bytes) -> bytes:
    """A stored state as it was: its classes under the old module's name, and no field
    the split added (a resolution's ``task_ids``)."""
    for module in MODULES:
        state = state.replace(f"{domain.__name__}.{module}:".encode(), OLD.encode())
    fields = json.loads(state)
    fields.pop("task_ids", None)
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()


async def store_as_before(r, *aggregates) -> None:
    """Append the aggregates' pending events as they were stored then, with the read
    models the service kept of them, in one transaction."""
    mapper = Repository(None).mapper
    meta = Metadata(actor="worker-0102", actor_role="community_worker", district=r.district,
                    correlation_id="before", occurred_at=T0)
    async with r.ctx.pool.acquire() as conn, conn.transaction():
        for aggregate in aggregates:
            events = aggregate.collect_events()
            stored = [mapper.to_stored_event(e) for e in events]
            await r.ctx.store.append(str(aggregate.id), events[0].originator_version - 1,
                                     [NewEvent(old_topic(s.topic), old_state(s.state)) for s in stored], meta,
                                     conn=conn)
            await projections.project(conn, Saved(meta, [aggregate], events))


async def test_streams_stored_before_the_split_load_and_keep_their_rules(servers):
    d = new_district()
    async with running(spec(reminder_interval=60), servers, district=d, clock=ManualClock(T0)) as r:
        async def post(name: str, actor: dict, **fields):
            return await r.client.post(f"/{d}/commands/{name}", json={"district": d, "actor": actor, **fields})

        resolution = Resolution(district=d, resolution_id="res-old", proposal_id="p-old", council_id="council-1",
                                vote_id=None, catalogue_item_id=None, community_id="xikang", title="充电棚",
                                text="建设充电棚", budget_fen=None)
        task = Task(district=d, task_id="task-old", resolution_id="res-old", council_id="council-1",
                    implementer={"kind": "local_unit", "id": "unit-7", "name": "物业"}, description="建设",
                    acceptance_standards=["可用"], due_at=T0 + timedelta(days=30), budget_fen=1_000, assigned_at=T0)
        fund = Fund(district=d, fund_id="fund-old", community_id="xikang", year=2026, amount_fen=10_000)
        fund.allocate("alloc-old", 600, "建设", resolution=resolution, task=task, resolution_community="xikang")
        await store_as_before(r, resolution, task, fund)  # the allocation's claim is not stored: none was then

        stored = [e for stream in (resolution, task, fund) for e in await r.ctx.store.read_stream(str(stream.id))]
        assert {e.topic for e in stored} == {f"{OLD}Resolution.Registered", f"{OLD}Task.Assigned",
                                             f"{OLD}Task.FundsAllocated", f"{OLD}Fund.Established",
                                             f"{OLD}Fund.Allocated"}
        assert b"task_ids" not in stored[0].state and OLD.encode() in stored[0].state

        # The community's year is taken, by the fund stored before years were claimed.
        assert (await post("EstablishFund", WORKER, fund_id="fund-new", community_id="xikang", year=2026,
                           amount_fen=1)).status_code == 409
        # The allocation is found, though its id was never claimed.
        spent = await post("RecordSpending", STAFF, expenditure_id="exp-1", allocation_id="alloc-old",
                           amount_fen=300, payee="电气公司", purpose="安装")
        assert spent.status_code == 200, spent.text
        # The task's budget counts the allocation of its old stream: 600 of 1,000 fen.
        over = await post("AllocateFunds", WORKER, allocation_id="alloc-2", resolution_id="res-old",
                          task_id="task-old", fund_id="fund-old", amount_fen=401, purpose="建设")
        assert (over.status_code, over.json()["reason"]) == (422, "over_budget")
        # Closing and rating find the task the resolution never recorded.
        early = await post("CloseResolution", WORKER, resolution_id="res-old", reason="delivered", summary="建成")
        assert (early.status_code, early.json()["reason"]) == (409, "invalid_state")
        for name, actor, fields in (
                ("AcceptTask", STAFF, {}), ("CompleteTask", STAFF, {"summary": "完成"}),
                ("RecordInspection", SUPERVISOR, {"inspection_id": "insp-1", "resolution_id": "res-old",
                                                  "inspector_ids": ["supervisor-01"], "aspects": ["quality"],
                                                  "finding": "satisfactory", "notes": "合格"})):
            reply = await post(name, actor, task_id="task-old", **fields)
            assert reply.status_code == 200, reply.text
        rated = await post("RecordSatisfaction", WORKER, rating_id="rating-1", resolution_id="res-old",
                           review_meeting_id="review-2026", year=2026, satisfied=5, basically_satisfied=1,
                           dissatisfied=0)
        assert rated.status_code == 200, rated.text
        closed = await post("CloseResolution", WORKER, resolution_id="res-old", reason="delivered", summary="建成")
        assert closed.status_code == 200, closed.text

        newest = (await r.ctx.store.read_stream(str(resolution.id)))[-1]
        assert newest.topic == "services.oversight.domain.resolution:Resolution.Closed"
        assert (await r.client.get(f"/{d}/resolutions/res-old")).json()["status"] == "closed"
