"""Oversight's reaction to an adopted ``ProposalDecided`` goes through its command bus:
the internal command ``RegisterDecidedResolution``, answered on the replies topic like
any command. A redelivered decision is answered from the stored reply; a re-published
one (a new event id) is a recorded ``already_exists``, and there is still one resolution."""

from __future__ import annotations

import dataclasses
import uuid

from contracts import proposals as p
from contracts.registry import decode
from services.oversight.main import spec
from tests.integration.oversight.test_oversight_service import actor, at, deliberation, envelope, publish
from tests.support.kafka import read_topic
from tests.support.service import eventually, new_district, running
from yishi.clock import ManualClock
from yishi.kafka import ensure_topics
from yishi.names import events_topic


async def test_an_adopted_decision_registers_one_resolution_and_a_re_publication_is_refused_on_record(servers):
    d = new_district()
    await ensure_topics(servers.kafka_bootstrap, [events_topic(d, "proposals"), events_topic(d, "voting")])
    async with running(spec(reminder_interval=60), servers, district=d, clock=ManualClock(at(11))) as r:
        steps, decided = deliberation(d)
        councils = steps[:2]
        not_adopted = envelope(p.ProposalDecided(district=d, actor=actor("chair-0001", "chair"), occurred_at=at(10),
                                                 proposal_id="prop-018", council_id="council-xikang",
                                                 vote_id="vote-018", decision="rejected", title="停车"),
                               "proposals", "prop-018")
        replayed = dataclasses.replace(decided, id=str(uuid.uuid4()))  # re-published: a new ce_id
        await publish(servers.kafka_bootstrap, *councils, decided, decided, not_adopted, replayed)

        async def answered():
            got = await read_topic(servers.kafka_bootstrap, f"{d}.oversight.replies", 2, timeout=3)
            return [decode(e) for e in got] if len(got) >= 2 else None

        await eventually(lambda: _count(r, "SELECT count(*) FROM inbox WHERE consumer LIKE '%proposals'", 5),
                         timeout=60)
        replies = await eventually(answered, timeout=30)
        assert sorted((type(x).__name__, x.command_type, x.subject, getattr(x, "reason", None)) for x in replies) == [
            ("CommandAccepted", "RegisterDecidedResolution", "res-prop-017", None),
            ("CommandRejected", "RegisterDecidedResolution", "res-prop-017", "already_exists")]
        assert {(x.actor.id, x.actor.role) for x in replies} == {("yishi-oversight", "system")}
        assert await r.ctx.pool.fetchval("SELECT count(*) FROM events WHERE topic LIKE '%Resolution.Registered'") == 1
        resolution = (await r.client.get(f"/{d}/resolutions/res-prop-017")).json()
        assert (resolution["proposal_id"], resolution["community_id"]) == ("prop-017", "xikang")
        assert (await r.client.get(f"/{d}/resolutions/res-prop-018")).status_code == 404


async def _count(r, sql: str, n: int) -> bool:
    return await r.ctx.pool.fetchval(sql) >= n
