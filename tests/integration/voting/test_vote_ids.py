"""A vote id is the id a district chose, never the name of a stream: the names of the
streams the voting store holds (a vote's own stream, a ballot's, a reply's such as
``reply-http:k9``) and odd ids are answered as votes that do not exist, over HTTP and on
the command topic, and nothing is recorded for them."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
import pytest_asyncio

from contracts import registry
from contracts.registry import Kind
from services.voting.main import spec
from tests.support.auth import token_for
from tests.support.kafka import read_topic
from tests.support.service import Running, eventually, new_district, running
from yishi.kafka import ensure_topics, new_producer
from yishi.names import commands_topic, replies_topic

pytestmark = pytest.mark.asyncio(loop_scope="session")

WORKER = {"id": "worker-1", "role": "community_worker"}
ROLL = ["m1", "m2", "m3"]
ODD = ("..", "%2F", "v" * 300, "", f"vote-{uuid.uuid4()}", "reply-http:k9")
"""Ids a caller may guess: dot segments, an escaped slash, too long, empty, stream-like."""


def voter(name: str) -> dict:
    return {"id": name, "role": "resident"}


def ballot(vote_id: str, name: str, choice: str = "in_favour") -> dict:
    return {"actor": voter(name), "vote_id": vote_id, "ballot_id": f"b-{name}-{uuid.uuid4().hex[:6]}",
            "choice": choice}


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def voting(servers):
    """The voting service with vote ``v-1`` open and one ballot (m1's, sent with the
    ``Idempotency-Key`` ``k9``)."""
    district = new_district()
    await ensure_topics(servers.kafka_bootstrap, [commands_topic(district, "voting"),
                                                  replies_topic(district, "voting")])
    async with running(spec(), servers, district=district, command_rate_limit="1000/second") as r:
        opened = await command(r, "OpenVote", {
            "actor": WORKER, "vote_id": "v-1", "council_id": "council-1", "matter": {"kind": "question", "id": "q-1"},
            "terms": {"question": "在3号院增设充电棚?", "method": "online", "majority": "simple",
                      "quorum_percent": 50, "secrecy": "open", "closes_at": (r.clock.now() + timedelta(days=2)).isoformat(),
                      "electorate": {"kind": "council_members", "scope_id": "council-1", "size": len(ROLL),
                                     "roll": ROLL}}})
        assert opened.status_code == 200, opened.text
        cast = await command(r, "CastBallot", ballot("v-1", "m1"), headers={"Idempotency-Key": "k9"})
        assert cast.status_code == 200, cast.text
        yield r


async def command(r: Running, type_: str, body: dict, headers: dict | None = None):
    return await r.client.post(f"/{r.district}/commands/{type_}", json={"district": r.district, **body},
                               headers=headers or {})


async def stream_names(r: Running) -> list[str]:
    """Every stream the store holds (the vote's, the ballot's, the replies')."""
    names = [row["stream_id"] for row in await r.ctx.pool.fetch("SELECT DISTINCT stream_id FROM events")]
    assert {n.split("-")[0] for n in names} >= {"vote", "ballot", "reply"}, names
    return names


async def recorded(r: Running) -> int:
    """Events of votes and ballots (replies aside)."""
    return await r.ctx.pool.fetchval("SELECT count(*) FROM events WHERE stream_id NOT LIKE 'reply-%'")


async def vote_v1(r: Running) -> dict:
    got = await r.client.get(f"/{r.district}/votes/v-1")
    assert got.status_code == 200, got.text
    return got.json()


async def test_stream_names_and_odd_ids_are_no_votes_over_http(voting):
    """CastBallot and CloseVote naming a stream are ``not_found`` (404), odd ids 422 or
    404; no ballot and no close is recorded, and v-1 is still open to m2 afterwards."""
    r = voting
    before, v1 = await recorded(r), await vote_v1(r)
    names = await stream_names(r)
    for vote_id in names:
        for type_, body in (("CastBallot", ballot(vote_id, "m2")), ("CloseVote", {"actor": WORKER, "vote_id": vote_id})):
            got = await command(r, type_, body)
            assert (got.status_code, got.json().get("reason")) == (404, "not_found"), f"{type_} {vote_id}: {got.text}"
    for vote_id in ODD:
        for type_, body in (("CastBallot", ballot(vote_id, "m2")), ("CloseVote", {"actor": WORKER, "vote_id": vote_id})):
            got = await command(r, type_, body)
            assert got.status_code in (404, 422), f"{type_} {vote_id!r}: {got.status_code} {got.text}"
    assert await recorded(r) == before, "a command naming a stream recorded something"
    assert await vote_v1(r) == v1
    assert (await command(r, "CastBallot", ballot("v-1", "m2"))).status_code == 200


async def test_stream_names_and_odd_ids_are_no_votes_in_queries(voting):
    """The vote, tally and receipt queries answer every stream name and odd id 404 or 422
    (a vote id no contract accepts, such as 300 characters, is 422: it is never looked up)."""
    r = voting
    for vote_id in [*await stream_names(r), *ODD]:
        for path in (f"{vote_id}", f"{vote_id}/tally", f"{vote_id}/receipts/b-1"):
            got = await r.client.get(f"/{r.district}/votes/{path}")
            assert got.status_code in (404, 422), f"GET votes/{path}: {got.status_code} {got.text}"
    got = await r.client.get(f"/{r.district}/votes/{'v' * 300}")
    assert got.status_code == 422, got.text


async def test_a_stream_name_on_the_command_topic_is_answered_not_found(voting, servers):
    """A CastBallot whose vote_id names a reply stream (and one naming the vote's own
    stream), on voting's command topic: each gets ``CommandRejected(not_found)``, and the
    good ballot sent after them on the same partition is accepted."""
    r = voting
    names = await stream_names(r)
    targets = [next(n for n in names if n.startswith("reply-")), next(n for n in names if n.startswith("vote-"))]
    sent = []
    producer = new_producer(servers.kafka_bootstrap)
    await producer.start()
    try:
        for vote_id in [*targets, "v-1"]:
            model = registry.spec("CastBallot", Kind.COMMAND).model.model_validate(
                {"district": r.district, **ballot(vote_id, "m3")})
            ident = str(uuid.uuid4())
            envelope = registry.to_envelope(model, id=ident, source=f"/districts/{r.district}/grid-system",
                                            subject="v-1", time=r.clock.now(), correlation_id=ident,
                                            token=token_for(model.actor, r.district))
            key, headers, value = envelope.to_kafka()
            await producer.send_and_wait(commands_topic(r.district, "voting"), value, key=key, headers=headers)
            sent.append(ident)
    finally:
        await producer.stop()

    async def replies():
        published = await read_topic(servers.kafka_bootstrap, replies_topic(r.district, "voting"), 100, timeout=2)
        mine = {e.correlation_id: e for e in published if e.correlation_id in sent}
        return mine if len(mine) == len(sent) else None
    got = await eventually(replies, timeout=60)
    for ident, vote_id in zip(sent[:-1], targets):
        body = json.loads(got[ident].data)
        assert (got[ident].type, body["reason"]) == ("CommandRejected", "not_found"), f"{vote_id}: {body}"
    assert got[sent[-1]].type == "CommandAccepted", json.loads(got[sent[-1]].data)
