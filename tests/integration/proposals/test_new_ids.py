"""Ids the platform chooses when a caller leaves them out, over HTTP and the command topic
of a real proposals service (PostgreSQL and broker), and the resolution id a decided
proposal names. The service runs with a sequential id source, so its ids are known here.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from contracts import proposals as c
from contracts.registry import decode, topic
from tests.integration.proposals.support import (  # noqa: F401 (service: a fixture)
    RESIDENT, WORKER, council_of_representatives, get, post, publish, service, vote_closes,
)
from tests.support.kafka import read_topic
from tests.support.service import eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")


def council_terms(closes_at: datetime) -> dict:
    """The terms of the council's own rules (the defaults): its two members vote."""
    return {"question": "是否增设快递柜?",
            "electorate": {"kind": "council_members", "scope_id": "c-res", "size": 2, "roll": ["m1", "m2"]},
            "method": "show_of_hands", "majority": "simple", "quorum_percent": 50, "secrecy": "open",
            "closes_at": closes_at.isoformat()}


async def test_omitted_ids_are_chosen_by_the_platform_and_named_in_the_reply(service):
    r = service
    council = await post(r, "FormCouncil", {
        "actor": WORKER, "name": "北京西路议事会", "level": "community", "area_id": "bjxl",
        "seats": [{"seat_id": "rr-1", "kind": "resident_representative"}]}, key="form-bjxl")
    council_id = council["ids"]["council_id"]
    assert council_id == "council-1" and council["subject"] == council_id
    assert (await get(r, f"councils/{council_id}"))["name"] == "北京西路议事会"

    body = {"actor": RESIDENT, "council_id": council_id, "title": "修缮楼道灯", "summary": "更换12盏楼道灯。"}
    raised = await post(r, "RaiseProposal", body, key="raise-1")
    proposal_id = raised["ids"]["proposal_id"]
    assert proposal_id == "proposal-1" and raised["subject"] == proposal_id
    # The same request under the same key: the same answer, nothing created twice.
    assert (await post(r, "RaiseProposal", body, key="raise-1")) == raised
    # null is the same as leaving the id out.
    assert (await post(r, "RaiseProposal", body | {"proposal_id": None}, key="raise-2"))["ids"] == {
        "proposal_id": "proposal-2"}
    # A caller that chooses its id still may; the reply then names no chosen id.
    chosen = await post(r, "RaiseProposal", body | {"proposal_id": "p-mine"})
    assert (chosen["subject"], chosen["ids"]) == ("p-mine", {})
    listed = [p["proposal_id"] for p in (await get(r, f"proposals?council_id={council_id}"))["items"]]
    assert listed == ["p-mine", "proposal-1", "proposal-2"]

    ends = r.clock.now() + timedelta(days=7)
    await post(r, "PublishProposal", {"actor": WORKER, "proposal_id": proposal_id, "form": "council",
                                      "notice_ends_at": ends.isoformat()})
    stated = await post(r, "MakeStatement", {"actor": RESIDENT, "proposal_id": proposal_id, "step": "motion",
                                             "speaker_role": "proposer", "text": "我提议更换楼道灯。"})
    assert (stated["subject"], stated["ids"]) == (proposal_id, {"statement_id": "statement-1"})
    objected = await post(r, "LodgeObjection", {"actor": {"id": "resident-9", "role": "resident"},
                                                "proposal_id": proposal_id, "grounds": "费用过高"})
    assert objected["ids"] == {"objection_id": "objection-1"}
    doc = await get(r, f"proposals/{proposal_id}")
    assert [s["statement_id"] for s in doc["statements"]] == ["statement-1"]
    assert [o["objection_id"] for o in doc["objections"]] == ["objection-1"]


async def test_concurrent_resends_without_an_id_create_one_thing_under_one_id(service):
    r = service
    await council_of_representatives(r, "c-race", seats=1)
    body = {"district": r.district, "actor": RESIDENT, "council_id": "c-race", "title": "加装电梯",
            "summary": "为5号楼加装电梯。"}
    sent = [r.client.post(f"/{r.district}/commands/RaiseProposal", json=body, headers={"Idempotency-Key": "race-1"})
            for _ in range(8)]
    responses = await asyncio.gather(*sent)
    assert [response.status_code for response in responses] == [200] * 8
    replies = [response.json() for response in responses]
    assert len({reply["ids"]["proposal_id"] for reply in replies}) == 1, replies
    listed = (await get(r, "proposals?council_id=c-race"))["items"]
    assert [p["proposal_id"] for p in listed] == [replies[0]["ids"]["proposal_id"]]


async def test_a_command_over_the_topic_without_an_id_gets_one_in_its_reply(service, servers):
    r = service
    await council_of_representatives(r, "c-topic", seats=1)
    command = c.RaiseProposal.model_validate({"district": r.district, "actor": RESIDENT, "council_id": "c-topic",
                                              "title": "增设休息座椅", "summary": "在小区花园增设6张座椅。"})
    await publish(r, command, "c-topic", "corr-no-id")
    await publish(r, command, "c-topic", "corr-no-id-other")  # another message: another proposal

    async def replies():
        got = await read_topic(servers.kafka_bootstrap, f"{r.district}.proposals.replies", 500, timeout=5)
        mine = {e.correlation_id: decode(e) for e in got if e.correlation_id.startswith("corr-no-id")}
        return mine if len(mine) == 2 else None

    mine = await eventually(replies)
    first, second = mine["corr-no-id"], mine["corr-no-id-other"]
    assert type(first).__name__ == "CommandAccepted" and first.ids["proposal_id"] == first.subject
    assert second.ids["proposal_id"] != first.ids["proposal_id"]
    assert (await get(r, f"proposals/{first.subject}"))["title"] == "增设休息座椅"


async def test_the_proposal_names_its_resolution_once_adopted(service, servers):
    r = service
    await post(r, "FormCouncil", {
        "actor": WORKER, "council_id": "c-res", "name": "议事会", "level": "community", "area_id": "res",
        "seats": [{"seat_id": "s-1", "kind": "expert"}, {"seat_id": "s-2", "kind": "local_unit"}],
        "rules": {"seconds_required": 1, "notice_period_days": 1}})
    for n in (1, 2):
        await post(r, "SeatMember", {"actor": WORKER, "council_id": "c-res", "seat_id": f"s-{n}",
                                     "member_id": f"m{n}"})
    await post(r, "RaiseProposal", {"actor": RESIDENT, "proposal_id": "p-res", "council_id": "c-res",
                                    "title": "增设快递柜", "summary": "在东门增设快递柜。"})
    ends = r.clock.now() + timedelta(days=1)
    await post(r, "PublishProposal", {"actor": WORKER, "proposal_id": "p-res", "form": "council",
                                      "notice_ends_at": ends.isoformat()})
    await post(r, "MakeStatement", {"actor": RESIDENT, "proposal_id": "p-res", "statement_id": "st-res",
                                    "step": "motion", "speaker_role": "proposer", "text": "动议"})
    await post(r, "SecondMotion", {"actor": {"id": "m1", "role": "council_member", "seat_id": "s-1"},
                                   "proposal_id": "p-res"})
    r.clock.set(ends)
    await post(r, "RequestVote", {"actor": WORKER, "vote_id": "vote-res", "council_id": "c-res",
                                  "matter": {"kind": "proposal", "id": "p-res"},
                                  "terms": council_terms(ends + timedelta(days=1))})
    assert (await get(r, "proposals/p-res"))["resolution_id"] is None
    await vote_closes(r, "vote-res", "c-res", "proposal", "p-res", "adopted")

    async def decided():
        doc = await get(r, "proposals/p-res")
        return doc if doc["status"] == "adopted" else None

    assert (await eventually(decided))["resolution_id"] == "res-p-res"

    async def published():
        got = await read_topic(servers.kafka_bootstrap, f"{r.district}.proposals.events", 500, timeout=5)
        return [decode(e) for e in got if e.type == "ProposalDecided" and e.subject == "p-res"]

    assert [d.resolution_id for d in await eventually(published)] == ["res-p-res"]
