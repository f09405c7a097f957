"""The proposals service over the real PostgreSQL and broker: proposals raised over HTTP
and over the command topic reach ``VoteRequested``, a vote result delivered twice
decides once, and the read models rebuilt from the log answer as the live ones do.

One service instance serves the whole module (a consumer group takes seconds to join).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
import pytest_asyncio

from contracts.common import CommandRejected
from contracts.envelope import Envelope
from contracts.registry import decode, to_envelope, topic
from contracts.voting import VoteClosed
from services.proposals.domain import Proposal
from services.proposals.main import spec
from tests.support.auth import bearer, kafka_token
from tests.support.kafka import read_topic
from tests.support.service import eventually, running
from yishi.clock import ManualClock
from yishi.kafka import new_producer

pytestmark = pytest.mark.asyncio(loop_scope="session")

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc)
WORKER = {"id": "worker-0102", "role": "community_worker"}
RESIDENT = {"id": "resident-4211", "role": "resident"}


def member(n: int) -> dict:
    return {"id": f"m{n}", "role": "council_member", "seat_id": f"seat-{n}"}


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def service(servers):
    async with running(spec(), servers, clock=ManualClock(T0)) as r:
        producer = new_producer(servers.kafka_bootstrap)
        await producer.start()
        r.producer = producer
        try:
            yield r
        finally:
            await producer.stop()


async def command(r, type_: str, body: dict, status: int = 200) -> dict:
    response = await r.client.post(f"/{r.district}/commands/{type_}", json={"district": r.district, **body})
    assert response.status_code == status, response.text
    return response.json()


async def send(r, model, subject: str, correlation_id: str, kafka_topic: str | None = None) -> Envelope:
    envelope = to_envelope(
        model,
        id=str(uuid.uuid4()),
        source=f"/{r.district}/tests",
        subject=subject,
        time=r.clock.now(),
        correlation_id=correlation_id,
        token=kafka_token(model),
    )
    await publish(r, envelope, kafka_topic or topic(envelope.type, r.district))
    return envelope


async def publish(r, envelope: Envelope, kafka_topic: str) -> None:
    key, headers, value = envelope.to_kafka()
    await r.producer.send_and_wait(kafka_topic, value, key=key, headers=headers)


async def events(r, servers, expect: int) -> list[Envelope]:
    return await read_topic(servers.kafka_bootstrap, f"{r.district}.proposals.events", expect, timeout=10)


async def council_with_members(r, council_id: str, **rules) -> None:
    seats = [
        {"seat_id": f"seat-{n}", "kind": kind}
        for n, kind in [(1, "expert"), (2, "local_unit"), (3, "social_organisation"), (4, "resident_representative")]
    ]
    await command(
        r,
        "FormCouncil",
        {
            "actor": WORKER,
            "council_id": council_id,
            "name": "西康社区议事会",
            "level": "community",
            "area_id": "xikang",
            "seats": seats,
            "rules": {"seconds_required": 2, "notice_period_days": 7, **rules},
        },
    )
    for n in (1, 2, 3):
        await command(
            r, "SeatMember", {"actor": WORKER, "council_id": council_id, "seat_id": f"seat-{n}", "member_id": f"m{n}"}
        )


def vote_terms(closes_at: datetime) -> dict:
    return {
        "question": "是否建设充电棚?",
        "electorate": {"kind": "council_members", "scope_id": "x", "size": 1},
        "method": "online",
        "majority": "absolute",
        "quorum_percent": 10,
        "secrecy": "open",
        "closes_at": closes_at.isoformat(),
    }


def council_vote_terms(closes_at: datetime, council_id: str) -> dict:
    """Terms within the rules of a council of :func:`council_with_members` (quorum up to
    60 %, simple majority, open): its three members, online, absolute majority."""
    return vote_terms(closes_at) | {
        "electorate": {"kind": "council_members", "scope_id": council_id, "size": 3},
        "quorum_percent": 60,
    }


async def test_proposal_raised_over_http_reaches_vote_requested(service, servers):
    r = service
    await council_with_members(r, "c-http", quorum_percent=60)
    await command(
        r,
        "DefineCatalogueCategory",
        {
            "actor": WORKER,
            "category_id": "cat-public",
            "code": "PA",
            "title": "公共事务",
            "description": "涉及居民共同利益的事务",
        },
    )
    await command(
        r,
        "AddCatalogueItem",
        {
            "actor": WORKER,
            "item_id": "item-1",
            "category_id": "cat-public",
            "community_id": "xikang",
            "title": "电动车充电",
            "description": "充电设施",
        },
    )
    raised = await command(
        r,
        "RaiseProposal",
        {
            "actor": RESIDENT,
            "proposal_id": "p-http",
            "council_id": "c-http",
            "catalogue_item_id": "item-1",
            "title": "在3号院增设电动自行车集中充电棚",
            "summary": "建设集中充电棚,约40个充电位。",
            "attachments": [{"uri": "https://files.example/p.jpg", "media_type": "image/jpeg", "sha256": "0" * 64}],
        },
    )
    assert raised["subject"] == "p-http"
    await command(
        r,
        "RaiseProposal",
        {"actor": RESIDENT, "proposal_id": "p-http", "council_id": "c-http", "title": "again", "summary": "again"},
        status=409,
    )
    notice_ends = r.clock.now() + timedelta(days=7)
    await command(
        r,
        "PublishProposal",
        {"actor": WORKER, "proposal_id": "p-http", "form": "council", "notice_ends_at": notice_ends.isoformat()},
    )
    await command(
        r,
        "MakeStatement",
        {
            "actor": RESIDENT,
            "proposal_id": "p-http",
            "statement_id": "st-1",
            "step": "motion",
            "speaker_role": "proposer",
            "text": "我提议建设充电棚。",
        },
    )
    rejected = await command(
        r, "SecondMotion", {"actor": {"id": "stranger", "role": "resident"}, "proposal_id": "p-http"}, status=403
    )
    assert rejected["command_type"] == "SecondMotion"  # see the report: the HTTP body drops `reason`
    for n in (1, 2):
        await command(r, "SecondMotion", {"actor": member(n), "proposal_id": "p-http"})
    await command(r, "SecondMotion", {"actor": member(1), "proposal_id": "p-http"}, status=409)
    vote = {
        "actor": WORKER,
        "vote_id": "vote-http",
        "council_id": "c-http",
        "matter": {"kind": "proposal", "id": "p-http"},
        "terms": vote_terms(notice_ends + timedelta(days=2)),
    }
    early = await command(r, "RequestVote", vote, status=409)
    assert early["command_type"] == "RequestVote"
    r.clock.set(notice_ends)
    # Terms outside the council's rules are refused, never replaced: another council's
    # electorate, one member instead of its three, a quorum of 10 % under its 60 %.
    refused = await command(r, "RequestVote", vote, status=422)
    assert refused["reason"] == "invalid_command" and "scope_id must be c-http" in refused["message"]
    terms = council_vote_terms(notice_ends + timedelta(days=2), "c-http")
    for wrong, says in (({"electorate": terms["electorate"] | {"size": 1}}, "3 seated members"),
                        ({"quorum_percent": 10}, "rule quorum is at least 60%")):
        refused = await command(r, "RequestVote", vote | {"terms": terms | wrong}, status=409)
        assert refused["reason"] == "council_rule" and says in refused["message"], refused
    vote["terms"] = council_vote_terms(notice_ends + timedelta(days=2), "c-http")
    await command(r, "RequestVote", vote)

    got = await events(r, servers, 12)
    requested = [decode(e) for e in got if e.type == "VoteRequested"]
    assert [(v.vote_id, v.matter.id) for v in requested] == [("vote-http", "p-http")]
    terms = requested[0].terms
    assert terms.electorate.roll == ("m1", "m2", "m3") and terms.electorate.size == 3
    assert (terms.quorum_percent, terms.majority, terms.method) == (60, "absolute", "online")  # as requested
    raised_event = next(decode(e) for e in got if e.type == "ProposalRaised")
    assert raised_event.actor.id == "resident-4211" and len(raised_event.attachments) == 1
    assert "MotionSeconded" in {e.type for e in got}

    detail = (await r.client.get(f"/{r.district}/proposals/p-http")).json()
    assert detail["status"] == "voting" and [s["member_id"] for s in detail["seconders"]] == ["m1", "m2"]
    assert [s["step"] for s in detail["statements"]] == ["motion"]
    # The history tells the whole course, seconds and statements included, in order.
    assert [(h["what"], h["details"].get("member_id") or h["details"].get("statement_id"))
            for h in detail["history"]] == [("raised", None), ("published", None), ("statement_made", "st-1"),
                                            ("seconded", "m1"), ("seconded", "m2"), ("vote_requested", None)]
    statement = detail["history"][2]["details"]
    assert (statement["step"], statement["speaker_id"], statement["speaker_role"]) == \
        ("motion", "resident-4211", "proposer")
    assert detail["history"][3]["details"]["seat_id"] == member(1)["seat_id"]
    assert (await r.client.get(f"/{r.district}/proposals/nope")).status_code == 404
    assert (await r.client.get("/otherdistrict/proposals/p-http")).status_code == 404
    members = (await r.client.get(f"/{r.district}/councils/c-http/members")).json()
    assert [(m["member_id"], m["seat_kind"]) for m in members] == [
        ("m1", "expert"),
        ("m2", "local_unit"),
        ("m3", "social_organisation"),
    ]


async def test_proposal_raised_over_the_command_topic_reaches_vote_requested(service, servers):
    r = service
    await council_with_members(r, "c-topic")
    pid = "p-topic"

    def cmd(model_type, **body):
        return model_type.model_validate({"district": r.district, **body})

    from contracts import proposals as c

    notice_ends = r.clock.now() + timedelta(days=7)
    sent = [
        cmd(
            c.RaiseProposal,
            actor=member(1),
            proposal_id=pid,
            council_id="c-topic",
            title="楼道堆物清理",
            summary="清理楼道堆物,消除消防隐患。",
        ),
        cmd(c.PublishProposal, actor=WORKER, proposal_id=pid, form="council", notice_ends_at=notice_ends),
        cmd(
            c.MakeStatement,
            actor=member(1),
            proposal_id=pid,
            statement_id="st-t1",
            step="motion",
            speaker_role="proposer",
            text="动议",
        ),
        cmd(c.SecondMotion, actor=member(1), proposal_id=pid),  # the proposer: rejected
        cmd(c.SecondMotion, actor=member(2), proposal_id=pid),
        cmd(c.SecondMotion, actor=member(3), proposal_id=pid),
    ]
    for n, model in enumerate(sent):
        await send(r, model, pid, f"corr-topic-{n}")

    async def seconded() -> bool:
        doc = (await r.client.get(f"/{r.district}/proposals/{pid}")).json()
        return len(doc.get("seconders", [])) == 2

    await eventually(seconded)
    r.clock.set(notice_ends)
    await send(
        r,
        cmd(
            c.RequestVote,
            actor=WORKER,
            vote_id="vote-topic",
            council_id="c-topic",
            matter={"kind": "proposal", "id": pid},
            terms=council_vote_terms(notice_ends + timedelta(days=1), "c-topic"),
        ),
        pid,
        "corr-topic-vote",
    )

    replies = await read_topic(servers.kafka_bootstrap, f"{r.district}.proposals.replies", 100, timeout=8)
    mine = {e.correlation_id: decode(e) for e in replies if e.correlation_id.startswith("corr-topic")}
    assert set(mine) == {f"corr-topic-{n}" for n in range(6)} | {"corr-topic-vote"}
    refused = mine["corr-topic-3"]
    assert isinstance(refused, CommandRejected) and refused.reason == "not_authorised"
    assert all(type(m).__name__ == "CommandAccepted" for k, m in mine.items() if k != "corr-topic-3")

    async def vote_requested():
        got = await events(r, servers, 100)
        return [decode(e) for e in got if e.type == "VoteRequested" and decode(e).matter.id == pid]

    requested = await eventually(vote_requested)
    assert requested[0].vote_id == "vote-topic" and requested[0].terms.electorate.size == 3
    assert requested[0].actor.id == WORKER["id"]


async def test_vote_closed_twice_decides_once(service, servers):
    r = service
    closed = VoteClosed.model_validate(
        {
            "district": r.district,
            "actor": {"id": "yishi-voting", "role": "system"},
            "occurred_at": r.clock.now(),
            "vote_id": "vote-http",
            "council_id": "c-http",
            "matter": {"kind": "proposal", "id": "p-http"},
            "tally": {"in_favour": 3, "against": 0, "abstain": 0},
            "electorate_size": 3,
            "turnout_percent": 100,
            "quorum_met": True,
            "outcome": "adopted",
        }
    )
    voting_topic = f"{r.district}.voting.events"
    envelope = await send(r, closed, "vote-http", "session-http", voting_topic)
    await publish(r, envelope, voting_topic)  # the same message again: a redelivery
    # A later message on the same key is consumed after both copies.
    marker = await send(
        r,
        closed.model_copy(update={"matter": closed.matter.model_copy(update={"id": "p-none"})}),
        "vote-http",
        "session-marker",
        voting_topic,
    )

    async def consumed() -> bool:
        return bool(await r.ctx.pool.fetchval("SELECT true FROM inbox WHERE message_id = $1", marker.id))

    await eventually(consumed)

    stream = str(Proposal.create_id(r.district, "p-http"))
    decided = await r.ctx.pool.fetchval(
        "SELECT count(*) FROM events WHERE stream_id = $1 AND topic LIKE '%Proposal.Decided'", stream
    )
    assert decided == 1
    detail = (await r.client.get(f"/{r.district}/proposals/p-http")).json()
    assert detail["status"] == "adopted" and detail["decision"]["vote_id"] == "vote-http"
    assert detail["votes"][0]["tally"] == {"in_favour": 3, "against": 0, "abstain": 0}

    async def published_decision():
        got = [e for e in await events(r, servers, 100) if e.type == "ProposalDecided"]
        return got

    published = await eventually(published_decision)
    assert len({e.id for e in published}) == 1
    decision = decode(published[0])
    assert decision.decision == "adopted" and decision.resolution and decision.catalogue_item_id == "item-1"
    assert published[0].causation_id == envelope.id and published[0].correlation_id == "session-http"


async def test_rebuilt_read_models_answer_as_the_live_ones(service):
    r = service
    await command(r, "RetireCatalogueItem", {"actor": WORKER, "item_id": "item-1", "reason": "已纳入年度计划"})
    await command(
        r,
        "RaiseProposal",
        {
            "actor": RESIDENT,
            "proposal_id": "p-late",
            "council_id": "c-http",
            "catalogue_item_id": "item-1",
            "title": "t",
            "summary": "s",
        },
        status=409,
    )
    base = f"/{r.district}"
    queries = [
        f"{base}/councils",
        f"{base}/councils/c-http",
        f"{base}/councils/c-topic/members",
        f"{base}/catalogue?include_retired=true",
        f"{base}/catalogue",
        f"{base}/proposals",
        f"{base}/proposals?status=adopted",
        f"{base}/proposals?council_id=c-topic&status=voting",
        f"{base}/proposals/p-http",
        f"{base}/proposals/p-topic",
    ]

    async def answers() -> list:
        out = []
        for q in queries:
            response = await r.client.get(q)
            assert response.status_code == 200, (q, response.text)
            out.append(response.json())
        return out

    live = await answers()
    assert [p["proposal_id"] for p in live[6]["items"]] == ["p-http"]
    assert [p["proposal_id"] for p in live[7]["items"]] == ["p-topic"]
    assert live[4][0]["items"] == [] and live[3][0]["items"][0]["retired"] is True
    await r.ctx.pool.execute("DELETE FROM read_models")
    assert (await r.client.get(f"{base}/proposals/p-http")).status_code == 404
    refused = await r.client.post("/admin/read-models/rebuild", headers=bearer("w-1", r.district, "official"))
    assert refused.status_code == 403
    rebuilt = await r.client.post("/admin/read-models/rebuild", headers=bearer("admin-1", r.district, "district_admin"))
    assert rebuilt.json() == {"documents": 6}  # 2 councils, 1 category, 1 item, 2 proposals
    assert await answers() == live


async def test_nomination_confirmed_by_vote_seats_the_nominee_and_oversight_reopens_a_proposal(service, servers):
    r = service
    await command(
        r,
        "NominateRepresentative",
        {
            "actor": WORKER,
            "nomination_id": "n-1",
            "council_id": "c-http",
            "seat_id": "seat-4",
            "nominee_id": "r-9",
            "route": "self_nomination",
        },
    )
    notice_ends = r.clock.now() + timedelta(days=5)
    await command(
        r, "PubliciseNomination", {"actor": WORKER, "nomination_id": "n-1", "notice_ends_at": notice_ends.isoformat()}
    )
    r.clock.set(notice_ends)
    terms = vote_terms(notice_ends + timedelta(days=1)) | {
        "electorate": {"kind": "residents_meeting", "scope_id": "xikang", "size": 120}
    }
    await command(
        r,
        "RequestVote",
        {
            "actor": WORKER,
            "vote_id": "vote-n-1",
            "council_id": "c-http",
            "matter": {"kind": "nomination", "id": "n-1"},
            "terms": terms,
        },
    )
    closed = VoteClosed.model_validate(
        {
            "district": r.district,
            "actor": {"id": "yishi-voting", "role": "system"},
            "occurred_at": r.clock.now(),
            "vote_id": "vote-n-1",
            "council_id": "c-http",
            "matter": {"kind": "nomination", "id": "n-1"},
            "tally": {"in_favour": 80, "against": 10, "abstain": 5},
            "electorate_size": 120,
            "turnout_percent": 79.17,
            "quorum_met": True,
            "outcome": "adopted",
        }
    )
    await send(r, closed, "vote-n-1", "session-n-1", f"{r.district}.voting.events")
    from contracts.oversight import ReconsultationRequested

    problem = ReconsultationRequested.model_validate(
        {
            "district": r.district,
            "actor": {"id": "supervisor-01", "role": "supervisor"},
            "occurred_at": r.clock.now(),
            "resolution_id": "res-http",
            "proposal_id": "p-http",
            "problem": "选址距住户窗户不足8米",
        }
    )
    await send(r, problem, "res-http", "insp-1", f"{r.district}.oversight.events")

    async def seated() -> bool:
        members = (await r.client.get(f"/{r.district}/councils/c-http/members")).json()
        return ("r-9", "resident_representative") in [(m["member_id"], m["seat_kind"]) for m in members]

    await eventually(seated)
    nomination = (await r.client.get(f"/{r.district}/nominations/n-1")).json()
    assert (nomination["status"], nomination["vote_id"]) == ("confirmed", "vote-n-1")

    async def reopened():
        doc = (await r.client.get(f"/{r.district}/proposals/p-http")).json()
        return doc if doc["status"] == "published" else None

    doc = await eventually(reopened)
    assert doc["round"] == 2 and doc["decision"] is None
    assert doc["history"][-1]["details"]["resolution_id"] == "res-http"
