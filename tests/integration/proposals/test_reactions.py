"""The proposals service's reactions to other services' events go through its command
bus: each is one of its internal commands, and a refusal is a recorded
``CommandRejected`` on its replies topic, not only a log line."""

from __future__ import annotations

from contracts.common import CommandRejected
from contracts.oversight import ReconsultationRequested
from contracts.registry import decode
from tests.integration.proposals.support import (  # noqa: F401  (fixtures)
    RESIDENT,
    council_of_representatives,
    post,
    publish,
    service,
    vote_closes,
)
from tests.support.kafka import read_topic
from tests.support.service import eventually


async def replies_to(r, servers, correlation_id: str) -> list:
    got = await read_topic(servers.kafka_bootstrap, f"{r.district}.proposals.replies", 500, timeout=3)
    return [decode(e) for e in got if e.correlation_id == correlation_id]


async def test_a_result_nobody_waits_for_is_a_recorded_refusal(service, servers):
    r = service
    await vote_closes(r, "vote-nobody", "c-nobody", "proposal", "p-nobody", "adopted")

    async def refused():
        return await replies_to(r, servers, "session-vote-nobody")

    (reply,) = await eventually(refused)
    assert isinstance(reply, CommandRejected)
    assert (reply.command_type, reply.reason, reply.subject) == ("TakeVoteResult", "not_found", "p-nobody")
    assert (reply.actor.id, reply.actor.role) == ("yishi-proposals", "system")


async def test_a_reconsultation_of_a_proposal_not_decided_is_refused_on_record(service, servers):
    r = service
    await council_of_representatives(r, "c-recons")
    await post(r, "RaiseProposal", {"actor": RESIDENT, "proposal_id": "p-recons", "council_id": "c-recons",
                                    "title": "加装电梯", "summary": "三号楼加装电梯"})
    problem = ReconsultationRequested.model_validate({
        "district": r.district, "actor": {"id": "supervisor-01", "role": "supervisor"}, "occurred_at": r.clock.now(),
        "resolution_id": "res-recons", "proposal_id": "p-recons", "problem": "选址距住户窗户不足8米"})
    await publish(r, problem, "res-recons", "recons-1", f"{r.district}.oversight.events")

    async def refused():
        return await replies_to(r, servers, "recons-1")

    (reply,) = await eventually(refused)
    assert (type(reply), reply.command_type, reply.reason, reply.subject) == (
        CommandRejected, "ReturnForReconsultation", "invalid_state", "p-recons")
    doc = (await r.client.get(f"/{r.district}/proposals/p-recons")).json()
    assert doc["status"] == "raised"
