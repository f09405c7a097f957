"""Issue 15's tasks practice across the four service processes: only the organisation a
task is assigned to (its staff, as their tokens' ``acts_for`` says) accepts and reports
on it; another organisation's staff, and an implementer never assigned anything, are
refused with 403 and a ``CommandRejected`` that is recorded and published. And the audit
trail of a resolution names the seat of every council member who acted, with the
reminder policy and the fund's creation."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import httpx
from rich.console import Console

from contracts.oversight import AllocateFunds, EstablishFund, PolicyScope, SetReminderPolicy
from contracts.proposals import LodgeObjection
from tests.support.auth import acting
from tests.support.kafka import read_topic
from yishi import demo
from yishi.demo import WORKER, Api, member
from yishi.names import replies_topic

say = Console(width=160)  # the story's output, shown when a test fails


async def test_an_implementer_is_refused_on_another_s_task_and_the_assigned_one_accepted(platform):
    d, t = platform.districts[0], uuid.uuid4().hex[:6]
    official = {"id": f"official-{t}", "role": "official"}
    prop_staff = {"id": f"staff-property-{t}", "role": "implementer"}  # the property company's
    office_staff = {"id": f"staff-office-{t}", "role": "implementer"}  # the community office's
    idle = {"id": f"staff-idle-{t}", "role": "implementer"}  # assigned nothing
    property_co, office = f"org-property-{t}", f"org-office-{t}"
    auth = acting({prop_staff["id"]: [property_co], office_staff["id"]: [office], idle["id"]: []})
    resolution, roof, lights = f"res-{t}", f"task-roof-{t}", f"task-lights-{t}"
    due = (datetime.now(timezone.utc) + timedelta(days=30)).isoformat()
    async with httpx.AsyncClient(base_url=platform.urls["oversight"], auth=auth, timeout=30) as http:
        async def post(name: str, who: dict, **fields) -> httpx.Response:
            return await http.post(f"/{d}/commands/{name}", json={"district": d, "actor": who, **fields})

        assert (await post("RegisterResolution", official, resolution_id=resolution, proposal_id=f"prop-{t}",
                           council_id=f"council-{t}", title="修屋顶", text="修屋顶和路灯")).status_code == 200
        for task_id, org in ((roof, property_co), (lights, office)):
            assigned = await post("AssignTask", official, task_id=task_id, resolution_id=resolution,
                                  implementer={"kind": "local_unit", "id": org, "name": "物业"}, description="修缮",
                                  acceptance_standards=["不漏水"], due_at=due)
            assert assigned.status_code == 200, assigned.text

        refusals = []
        for who in (office_staff, idle):
            for name, fields in (("AcceptTask", {}), ("ReportProgress", {"percent_complete": 10, "summary": "开工"})):
                reply = await post(name, who, task_id=roof, **fields)
                assert reply.status_code == 403, reply.text
                assert reply.headers["content-type"].startswith("application/problem+json")
                refusals.append((name, who["id"], reply.json()["reason"]))
        assert refusals == [(name, who["id"], "not_authorised") for who in (office_staff, idle)
                            for name in ("AcceptTask", "ReportProgress")]
        assert (await post("AcceptTask", prop_staff, task_id=roof)).status_code == 200
        assert (await post("ReportProgress", prop_staff, task_id=roof, percent_complete=40,
                           summary="防水层完成")).status_code == 200
        assert (await post("AcceptTask", office_staff, task_id=lights)).status_code == 200  # its own task
        task = (await http.get(f"/{d}/tasks/{roof}")).json()
        assert (task["status"], task["percent"]) == ("accepted", 40)

    # Every refusal is published as the command's reply, naming who was refused and why.
    replies = await read_topic(platform.kafka_bootstrap, replies_topic(d, "oversight"), 6 + 4, timeout=60)
    rejected = sorted((e.payload()["command_type"], e.payload()["actor"]["id"], e.payload()["reason"],
                       e.payload()["subject"]) for e in {e.id: e for e in replies}.values()
                      if e.type == "CommandRejected" and e.payload()["subject"] == roof)
    assert rejected == sorted((name, who, reason, roof) for name, who, reason in refusals)


async def test_the_audit_trail_names_members_seats_the_policy_and_the_fund(platform):
    d, t = platform.districts[1], uuid.uuid4().hex[:6]
    async with Api(platform.urls, d, timeout=60, auth=acting()) as api:
        councils = await demo.form_councils(api, t, say)
        proposal_id = f"prop-seats-{t}"
        await demo.raise_and_deliberate(api, councils, proposal_id, say)
        await api.send(LodgeObjection(district=d, actor=member("member-chen"), proposal_id=proposal_id,
                                      objection_id=f"{proposal_id}-obj-2", grounds="费用应当公开。"))
        decided = await demo.vote(api, councils, proposal_id, f"vote-seats-{t}", say)
        assert decided.proposal["status"] == "adopted", decided.proposal
        resolution_id = f"res-{proposal_id}"
        await api.until("the resolution", "oversight", f"resolutions/{resolution_id}", lambda r: r["community_id"])
        await api.send(SetReminderPolicy(district=d, actor=WORKER, scope=PolicyScope.COUNCIL,
                                         scope_id=councils.community, not_accepted_days=3, stall_days=10,
                                         deadline_warning_days=5, escalate_after_days=2))
        await api.send(EstablishFund(district=d, actor=WORKER, fund_id=f"fund-{t}", community_id="xikang", year=2026,
                                     amount_fen=30_000_000))
        await api.send(AllocateFunds(district=d, actor=WORKER, allocation_id=f"alloc-{t}", resolution_id=resolution_id,
                                     fund_id=f"fund-{t}", amount_fen=8_600_000, purpose="充电棚建设"))
        trail = await api.until("the trail with the fund", "oversight", f"resolutions/{resolution_id}/audit",
                                lambda x: {"FundEstablished", "FundsAllocated"} <= {s["type"] for s in x["steps"]})

    seats = {(s["type"], s["actor_id"], s["seat_id"]) for s in trail["steps"]}
    members = [(m, seat) for seat, _, m in demo.MEMBERS]
    assert {("ProposalRaised", "member-wang", "seat-pm-01"), ("MotionSeconded", "member-li", "seat-so-01"),
            ("ObjectionLodged", "member-chen", "seat-ex-01"), ("ObjectionLodged", "resident-liu", None),
            ("StatementMade", "member-wang", "seat-pm-01"), ("StatementMade", "member-li", "seat-so-01"),
            ("StatementMade", "member-zhao", "seat-np-01"),
            *[("BallotAccepted", m, seat) for m, seat in members]} <= seats
    policy = next(s for s in trail["steps"] if s["type"] == "ReminderPolicySet")
    assert (policy["actor_id"], policy["body"]["scope_id"], policy["body"]["stall_days"]) == (
        WORKER.id, councils.community, 10)
    fund = next(s for s in trail["steps"] if s["type"] == "FundEstablished")
    assert (fund["actor_id"], fund["body"]["fund_id"], fund["body"]["amount_fen"]) == (WORKER.id, f"fund-{t}",
                                                                                       30_000_000)
