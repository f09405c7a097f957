"""The oversight service over the real PostgreSQL and broker: resolutions from consumed
``ProposalDecided`` (once, however often delivered), delivery and funds over HTTP, and
the audit trail of one resolution built from consumed proposals and voting events."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta, timezone

from contracts import proposals as p
from contracts import registry
from contracts import voting as v
from contracts.common import Actor, Secrecy
from contracts.envelope import Envelope
from services.oversight.main import spec
from tests.support.auth import kafka_token
from tests.support.kafka import read_topic
from tests.support.service import eventually, new_district, running
from yishi.clock import ManualClock
from yishi.kafka import ensure_topics, new_producer
from yishi.names import events_topic, source

T0 = datetime(2026, 3, 2, 1, tzinfo=timezone.utc)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def actor(actor_id: str, role: str, seat: str | None = None) -> Actor:
    return Actor(id=actor_id, role=role, seat_id=seat)


def envelope(model, service: str, subject: str, *, message_id: str | None = None) -> Envelope:
    return registry.to_envelope(model, id=message_id or str(uuid.uuid4()), source=source(model.district, service),
                                subject=subject, time=model.occurred_at, correlation_id="session-017",
                                token=kafka_token(model))


async def publish(bootstrap: str, *envelopes: Envelope) -> None:
    producer = new_producer(bootstrap)
    await producer.start()
    try:
        for env in envelopes:
            key, headers, value = env.to_kafka()
            service = registry.spec(env.type).service
            await (await producer.send(events_topic(env.district, service), key=key, headers=headers, value=value))
    finally:
        await producer.stop()


def deliberation(d: str) -> tuple[list[Envelope], Envelope]:
    """A proposal's life up to its adoption, as the proposals and voting services publish it."""
    prop, council, vote = "prop-017", "council-xikang", "vote-017"
    common = dict(district=d, proposal_id=prop, council_id=council)
    terms = {"question": "建充电棚?", "electorate": {"kind": "council_members", "scope_id": council, "size": 3,
                                                  "roll": ["m-1", "m-2", "m-3"]},
             "method": "online", "majority": "simple", "quorum_percent": 50, "secrecy": Secrecy.OPEN,
             "closes_at": at(600)}
    steps = [
        envelope(p.CouncilFormed(district=d, actor=actor("worker-0102", "community_worker"), occurred_at=at(0),
                                 council_id=council, name="西康议事会", level="community", area_id="xikang",
                                 parent_council_id="council-ninghai-street",
                                 seats=[{"seat_id": "seat-1", "kind": "resident_representative"}]),
                 "proposals", council),
        envelope(p.CouncilFormed(district=d, actor=actor("worker-0001", "official"), occurred_at=at(0),
                                 council_id="council-ninghai-street", name="宁海路街道议事会", level="street",
                                 area_id="ninghai", seats=[{"seat_id": "seat-9", "kind": "expert"}]),
                 "proposals", "council-ninghai-street"),
        envelope(p.ProposalRaised(**common, actor=actor("resident-4211", "council_member", "seat-rr-03"),
                                  occurred_at=at(1), title="充电棚", summary="楼道充电有隐患"), "proposals", prop),
        envelope(p.MotionSeconded(**common, actor=actor("resident-5120", "council_member", "seat-rr-07"),
                                  occurred_at=at(2)), "proposals", prop),
        envelope(p.ObjectionLodged(**common, actor=actor("resident-3307", "resident"), occurred_at=at(3),
                                   objection_id="obj-1", grounds="占用绿地"), "proposals", prop),
        envelope(p.StatementMade(**common, actor=actor("expert-0007", "expert"), occurred_at=at(4),
                                 statement_id="st-1", step="expert_comment", speaker_role="expert",
                                 text="东侧空地可行"), "proposals", prop),
        envelope(p.VoteRequested(district=d, actor=actor("chair-0001", "chair"), occurred_at=at(5), vote_id=vote,
                                 council_id=council, matter={"kind": "proposal", "id": prop}, terms=terms),
                 "proposals", vote),
        envelope(v.VoteOpened(district=d, actor=actor("yishi-voting", "system"), occurred_at=at(6), vote_id=vote,
                              council_id=council, matter={"kind": "proposal", "id": prop}, terms=terms),
                 "voting", vote),
        envelope(v.BallotAccepted(district=d, actor=actor("m-1", "council_member"), occurred_at=at(7),
                                  vote_id=vote, ballot_id="b-1", choice="in_favour"), "voting", vote),
        envelope(v.BallotAccepted(district=d, actor=actor("m-2", "council_member"), occurred_at=at(8),
                                  vote_id=vote, ballot_id="b-2", choice="against"), "voting", vote),
        envelope(v.VoteClosed(district=d, actor=actor("yishi-voting", "system"), occurred_at=at(9), vote_id=vote,
                              council_id=council, matter={"kind": "proposal", "id": prop},
                              tally={"in_favour": 1, "against": 1, "abstain": 0}, electorate_size=3,
                              turnout_percent=66.7, quorum_met=True, outcome="adopted"), "voting", vote),
    ]
    decided = envelope(p.ProposalDecided(**common, actor=actor("chair-0001", "chair"), occurred_at=at(10),
                                         vote_id=vote, decision="adopted", title="充电棚", resolution="建充电棚"),
                       "proposals", prop)
    return steps, decided


def command(d: str, who: Actor, **body) -> dict:
    return {"district": d, "actor": who.model_dump(mode="json"), **body}


async def test_resolution_delivery_funds_and_audit_trail(servers):
    d = new_district()
    await ensure_topics(servers.kafka_bootstrap, [events_topic(d, "proposals"), events_topic(d, "voting")])
    clock = ManualClock(at(11))
    async with running(spec(reminder_interval=0.1), servers, district=d, clock=clock) as r:
        steps, decided = deliberation(d)
        replayed = dataclasses.replace(decided, id=str(uuid.uuid4()))  # re-published: a new ce_id
        await publish(servers.kafka_bootstrap, *steps, decided, decided, replayed)

        async def registered():
            got = await r.client.get(f"/{d}/resolutions/res-prop-017")
            return got.json() if got.status_code == 200 and got.json()["community_id"] else None
        resolution = await eventually(registered, timeout=60)
        assert (resolution["proposal_id"], resolution["vote_id"], resolution["community_id"]) == (
            "prop-017", "vote-017", "xikang")
        await eventually(lambda: _count(r, "SELECT count(*) FROM inbox WHERE consumer LIKE '%proposals'", 9))
        assert await r.ctx.pool.fetchval("SELECT count(*) FROM events WHERE topic LIKE '%Resolution.Registered'") == 1
        assert (await r.client.get(f"/{d}/resolutions/res-prop-017?x=1")).status_code == 200
        assert (await r.client.get(f"/other{d}/resolutions/res-prop-017")).status_code == 404

        worker, staff, sup = (actor("worker-0102", "community_worker"), actor("staff-2201", "implementer"),
                              actor("supervisor-01", "supervisor"))
        post = lambda name, who, **body: r.client.post(f"/{d}/commands/{name}", json=command(d, who, **body))  # noqa: E731
        ok = await post("AssignTask", worker, task_id="task-017-1", resolution_id="res-prop-017",
                        implementer={"kind": "social_organisation", "id": "org-green-home", "name": "绿色家园"},
                        description="建设充电棚", acceptance_standards=["40个充电位"],
                        due_at=(at(11) + timedelta(days=60)).isoformat(), budget_fen=9_000_000)
        assert ok.status_code == 200, ok.text
        assert (await post("AcceptTask", staff, task_id="task-017-1")).status_code == 200
        assert (await post("ReportProgress", staff, task_id="task-017-1", percent_complete=40,
                           summary="地基完成", evidence=[{"uri": "https://f.example/1.jpg", "media_type": "image/jpeg",
                                                      "sha256": "0" * 64}])).status_code == 200
        assert (await post("EstablishFund", worker, fund_id="fund-xikang-2026", community_id="xikang", year=2026,
                           amount_fen=30_000_000)).status_code == 200
        dup = await post("EstablishFund", worker, fund_id="fund-xikang-2026b", community_id="xikang", year=2026,
                         amount_fen=1)
        assert dup.status_code == 409  # already_exists (the HTTP body drops the reason: see the report)
        over_task = await post("AllocateFunds", worker, allocation_id="alloc-0", resolution_id="res-prop-017",
                               task_id="task-017-1", fund_id="fund-xikang-2026", amount_fen=9_000_001, purpose="棚")
        assert over_task.status_code == 422  # over_budget
        assert (await post("AllocateFunds", worker, allocation_id="alloc-1", resolution_id="res-prop-017",
                           task_id="task-017-1", fund_id="fund-xikang-2026", amount_fen=8_600_000,
                           purpose="充电棚建设")).status_code == 200
        assert (await post("AllocateFunds", worker, allocation_id="alloc-2", resolution_id="res-prop-017",
                           fund_id="fund-xikang-2026", amount_fen=21_000_000, purpose="其余")).status_code == 200
        over_fund = await post("AllocateFunds", worker, allocation_id="alloc-3", resolution_id="res-prop-017",
                               fund_id="fund-xikang-2026", amount_fen=400_001, purpose="超出")
        assert over_fund.status_code == 422  # over_budget
        for n, amount in enumerate((5_000_000, 3_235_000), start=1):
            assert (await post("RecordSpending", staff, expenditure_id=f"exp-{n}", allocation_id="alloc-1",
                               amount_fen=amount, payee="电气公司", purpose="安装")).status_code == 200
        overspent = await post("RecordSpending", staff, expenditure_id="exp-3", allocation_id="alloc-1",
                               amount_fen=365_001, payee="电气公司", purpose="超支")
        assert overspent.status_code == 422  # over_budget
        fund = (await r.client.get(f"/{d}/funds/fund-xikang-2026")).json()
        assert (fund["allocated_fen"], fund["spent_fen"], fund["remaining_fen"]) == (29_600_000, 8_235_000, 400_000)
        assert sum(a["spent_fen"] for a in fund["allocations"]) == fund["spent_fen"]

        assert (await post("CompleteTask", staff, task_id="task-017-1", summary="投入使用")).status_code == 200
        not_sup = await post("RecordInspection", staff, inspection_id="insp-0", resolution_id="res-prop-017",
                             task_id="task-017-1", inspector_ids=["staff-2201"], aspects=["quality"],
                             finding="satisfactory", notes="self-check")
        assert not_sup.status_code == 403
        assert (await post("RecordInspection", sup, inspection_id="insp-1", resolution_id="res-prop-017",
                           task_id="task-017-1", inspector_ids=["supervisor-01", "supervisor-02"],
                           aspects=["quality", "spending"], finding="satisfactory",
                           notes="符合标准")).status_code == 200
        assert (await r.client.get(f"/{d}/tasks/task-017-1")).json()["status"] == "passed"
        assert (await post("RecordSatisfaction", worker, rating_id="rating-1", resolution_id="res-prop-017",
                           review_meeting_id="review-2026", year=2026, satisfied=58, basically_satisfied=9,
                           dissatisfied=3)).status_code == 200
        assert (await post("CloseResolution", worker, resolution_id="res-prop-017", reason="delivered",
                           summary="建成")).status_code == 200

        await eventually(lambda: _count(r, "SELECT count(*) FROM inbox WHERE consumer LIKE '%voting'", 4))
        trail = (await r.client.get(f"/{d}/resolutions/res-prop-017/audit")).json()
        who = [(s["type"], s["actor_id"]) for s in trail["steps"]]
        assert who[:10] == [
            ("ProposalRaised", "resident-4211"), ("MotionSeconded", "resident-5120"),
            ("ObjectionLodged", "resident-3307"), ("StatementMade", "expert-0007"), ("VoteRequested", "chair-0001"),
            ("VoteOpened", "yishi-voting"), ("BallotAccepted", "m-1"), ("BallotAccepted", "m-2"),
            ("VoteClosed", "yishi-voting"), ("ProposalDecided", "chair-0001"),
        ]
        assert [s["body"].get("choice") for s in trail["steps"] if s["type"] == "BallotAccepted"] == [
            "in_favour", "against"]
        assert ("ResolutionRegistered", "yishi-oversight") in who
        assert {("TaskAssigned", "worker-0102"), ("TaskAccepted", "staff-2201"), ("ProgressReported", "staff-2201"),
                ("FundsAllocated", "worker-0102"), ("FundsSpent", "staff-2201"), ("TaskCompleted", "staff-2201"),
                ("InspectionRecorded", "supervisor-01"), ("SatisfactionRated", "worker-0102"),
                ("ResolutionClosed", "worker-0102")} <= set(who)
        assert who.count(("ProposalDecided", "chair-0001")) == 2  # two messages, one resolution
        assert [s["occurred_at"] for s in trail["steps"]] == sorted(s["occurred_at"] for s in trail["steps"])

        roadmap = (await r.client.get(f"/{d}/communities/xikang/roadmap")).json()
        assert [(e["resolution_id"], e["status"], e["progress_percent"]) for e in roadmap["resolutions"]] == [
            ("res-prop-017", "closed", 100)]
        review = (await r.client.get(f"/{d}/communities/xikang/reviews/2026")).json()
        assert (review["resolutions_completed"], review["tasks_passed_on_time"], review["satisfaction_rate_percent"],
                review["spent_fen"]) == (1, 1, 95.7, 8_235_000)
        stats = (await r.client.get(f"/{d}/statistics")).json()
        # No consultation session held: what was counted as activities and participants
        # before sessions were recorded stands under its own names.
        assert stats == {"proposals": 1, "activities": 0, "participant_times": 0, "resolutions": 1,
                         "resolutions_completed": 1, "spent_fen": 8_235_000, "sessions_by_form": {},
                         "votes_closed": 1, "proposals_deliberated": 1, "contributions": 6}

        published = await read_topic(servers.kafka_bootstrap, events_topic(d, "oversight"), 13, timeout=30)
        types = sorted(e.type for e in {e.id: e for e in published}.values())
        assert types == sorted(["ResolutionRegistered", "TaskAssigned", "TaskAccepted", "ProgressReported",
                                "FundEstablished", "FundsAllocated", "FundsAllocated", "FundsSpent", "FundsSpent",
                                "TaskCompleted", "InspectionRecorded", "SatisfactionRated", "ResolutionClosed"])


async def _count(r, sql: str, n: int) -> bool:
    return await r.ctx.pool.fetchval(sql) >= n
