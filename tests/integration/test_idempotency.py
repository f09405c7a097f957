"""Idempotent commands as real clients use them: several callers, two districts, one key;
resends with the same and with another body; a storm of concurrent resends.

A command's identity is (district, caller, command type, key). The same identity and body
gets the same reply and no second effect; the same identity with another body is refused
with ``idempotency_key_reused``; a reply goes only to the caller it was made for, and
only once the caller is authorised.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import timedelta

from contracts import registry
from contracts.common import Actor, CommandRejected, RejectionReason, Role
from contracts.voting import BallotChoice, CastBallot
from services.voting.main import spec as voting_spec
from tests.integration.voting.test_concurrency import open_command
from tests.support.auth import bearer, kafka_token
from tests.support.kafka import read_topic
from tests.support.service import eventually, new_district, running
from yishi.kafka import ensure_topics, new_producer
from yishi.names import commands_topic, replies_topic


def ballot_body(district: str, vote_id: str, voter: str, ballot_id: str,
                choice: BallotChoice = BallotChoice.IN_FAVOUR) -> dict:
    return CastBallot(district=district, actor=Actor(id=voter, role=Role.COUNCIL_MEMBER, seat_id=f"seat-{voter}"),
                      vote_id=vote_id, ballot_id=ballot_id, choice=choice).model_dump(mode="json")


async def open_vote(r, vote_id: str, size: int, district: str | None = None) -> None:
    district = district or r.district
    command = open_command(district, vote_id, r.clock.now() + timedelta(days=1), size)
    response = await r.client.post(f"/{district}/commands/OpenVote", json=command.model_dump(mode="json"))
    assert response.status_code == 200, response.text


async def turnout(r, vote_id: str, district: str | None = None) -> int:
    response = await r.client.get(f"/{district or r.district}/votes/{vote_id}/tally")
    assert response.status_code == 200, response.text
    return response.json()["turnout"]


async def test_two_voters_one_key_both_counted(servers):
    async with running(voting_spec(), servers) as r:
        d = r.district
        await open_vote(r, "v1", 3)
        key = {"Idempotency-Key": "same-key"}
        first = await r.client.post(f"/{d}/commands/CastBallot", json=ballot_body(d, "v1", "m0000", "b-a"),
                                    headers=key)
        second = await r.client.post(f"/{d}/commands/CastBallot", json=ballot_body(d, "v1", "m0001", "b-b"),
                                     headers=key)
        assert first.status_code == second.status_code == 200, (first.text, second.text)
        assert first.json()["actor"]["id"] == "m0000" and second.json()["actor"]["id"] == "m0001"
        assert await turnout(r, "v1") == 2
        # Each voter's resend is answered with that voter's own reply, and counts once.
        again = await r.client.post(f"/{d}/commands/CastBallot", json=ballot_body(d, "v1", "m0001", "b-b"),
                                    headers=key)
        assert again.status_code == 200 and again.json() == second.json()
        assert await turnout(r, "v1") == 2


async def test_one_key_in_two_districts(servers):
    a, b = new_district(), new_district()
    async with running(voting_spec(), servers, district=a, districts=[a, b]) as r:
        key = {"Idempotency-Key": "shared"}
        for district in (a, b):
            command = open_command(district, "v-shared", r.clock.now() + timedelta(days=1), 3)
            response = await r.client.post(f"/{district}/commands/OpenVote", json=command.model_dump(mode="json"),
                                           headers=key)
            assert response.status_code == 200, response.text
            assert response.json()["district"] == district
        assert await turnout(r, "v-shared", a) == 0 and await turnout(r, "v-shared", b) == 0


async def test_same_key_another_body_is_refused_and_runs_nothing(servers):
    async with running(voting_spec(), servers) as r:
        d = r.district
        await open_vote(r, "v2", 3)
        key = {"Idempotency-Key": "k-body"}
        ok = await r.client.post(f"/{d}/commands/CastBallot", json=ballot_body(d, "v2", "m0000", "b-1"), headers=key)
        assert ok.status_code == 200, ok.text
        changed = ballot_body(d, "v2", "m0000", "b-1", BallotChoice.AGAINST)
        reused = await r.client.post(f"/{d}/commands/CastBallot", json=changed, headers=key)
        assert reused.status_code == 422, reused.text
        assert reused.json()["reason"] == "idempotency_key_reused"
        # Asked again, the refusal is the same; the first body still gets its own reply.
        assert (await r.client.post(f"/{d}/commands/CastBallot", json=changed, headers=key)).json()["reason"] \
            == "idempotency_key_reused"
        same = await r.client.post(f"/{d}/commands/CastBallot", json=ballot_body(d, "v2", "m0000", "b-1"),
                                   headers=key)
        assert same.status_code == 200 and same.json() == ok.json()
        receipt = (await r.client.get(f"/{d}/votes/v2/receipts/b-1")).json()
        assert receipt["choice"] == "in_favour" and await turnout(r, "v2") == 1


async def test_concurrent_resends_run_once_and_answer_alike(servers):
    """Ten copies of one request at once, and two other bodies under the same key: one
    effect, ten identical answers, the other bodies refused."""
    async with running(voting_spec(), servers, command_rate_limit="1000/second") as r:
        d = r.district
        await open_vote(r, "v4", 3)
        key = {"Idempotency-Key": "k" * 200}  # the longest key the header allows
        body = ballot_body(d, "v4", "m0000", "b-1")
        others = [ballot_body(d, "v4", "m0000", "b-1", BallotChoice.AGAINST),
                  ballot_body(d, "v4", "m0000", "b-2")]
        async def send(*bodies):
            return await asyncio.gather(
                *(r.client.post(f"/{d}/commands/CastBallot", json=b, headers=key) for b in bodies))

        same = await send(*[body] * 10)
        assert all(x.status_code == 200 for x in same), [x.text for x in same]
        assert all(x.json() == same[0].json() for x in same)
        mixed = await send(*others, body, body)
        assert [x.status_code for x in mixed] == [422, 422, 200, 200], [x.text for x in mixed]
        assert {x.json()["reason"] for x in mixed[:2]} == {"idempotency_key_reused"}
        assert mixed[2].json() == mixed[3].json() == same[0].json()
        assert await turnout(r, "v4") == 1


async def test_another_caller_replaying_a_key_is_authorised_first(servers):
    async with running(voting_spec(), servers) as r:
        d = r.district
        await open_vote(r, "v3", 3)
        key = {"Idempotency-Key": "k-victim"}
        body = ballot_body(d, "v3", "m0000", "b-1")
        ok = await r.client.post(f"/{d}/commands/CastBallot", json=body, headers=key)
        assert ok.status_code == 200
        # m0001 sends m0000's very request: refused as not the caller's, never given m0000's reply.
        thief = await r.client.post(f"/{d}/commands/CastBallot", json=body,
                                    headers={**key, **bearer("m0001", d, "council_member", seats=("seat-m0001",))})
        assert thief.status_code == 403, thief.text
        assert thief.json()["reason"] == "not_authorised"
        assert await turnout(r, "v3") == 1


async def test_kafka_ids_are_scoped_to_district_and_caller(servers):
    a, b = new_district(), new_district()
    async with running(voting_spec(), servers, district=a, districts=[a, b]) as r:
        for district in (a, b):
            await open_vote(r, "vk", 3, district)
        topics = [commands_topic(d, "voting") for d in (a, b)]
        await ensure_topics(servers.kafka_bootstrap, topics)
        producer = new_producer(servers.kafka_bootstrap)
        await producer.start()
        same_id = str(uuid.uuid4())

        async def send(district: str, voter: str, choice: BallotChoice, correlation: str) -> None:
            model = CastBallot.model_validate(ballot_body(district, "vk", voter, "b-k", choice))
            env = registry.to_envelope(model, id=same_id, source=f"/wechat/{district}", subject="vk",
                                       time=r.clock.now(), correlation_id=correlation, token=kafka_token(model))
            key, headers, value = env.to_kafka()
            await (await producer.send(commands_topic(district, "voting"), key=key, headers=headers, value=value))

        try:
            await send(a, "m0000", BallotChoice.IN_FAVOUR, "a-1")
            await send(b, "m0000", BallotChoice.IN_FAVOUR, "b-1")  # another district, the same ce_id
            await send(a, "m0001", BallotChoice.IN_FAVOUR, "a-2")  # another caller, the same ce_id
            await send(a, "m0000", BallotChoice.AGAINST, "a-3")  # the same caller, another body
        finally:
            await producer.stop()
        replies_a = await read_topic(servers.kafka_bootstrap, replies_topic(a, "voting"), 4)
        replies_b = await read_topic(servers.kafka_bootstrap, replies_topic(b, "voting"), 2)
        by_correlation = {e.correlation_id: e for e in replies_a + replies_b}
        assert {c: by_correlation[c].type for c in ("a-1", "b-1", "a-2")} == dict.fromkeys(
            ("a-1", "b-1", "a-2"), "CommandAccepted")
        refused = CommandRejected.model_validate_json(by_correlation["a-3"].data)
        assert refused.reason == RejectionReason.IDEMPOTENCY_KEY_REUSED
        assert await eventually(lambda: _turnout_is(r, a, 2)) and await turnout(r, "vk", b) == 1


async def _turnout_is(r, district: str, n: int) -> bool:
    return await turnout(r, "vk", district) == n


async def test_resend_storm_leaves_no_connection_in_a_transaction(servers):
    """24 callers for 20 s, each sending new ballots with its own keys and resending half
    of them: every reply is the first one, the tally counts each voter once, and no
    pooled connection is left inside a transaction (readiness stays green)."""
    roll, callers, seconds = 2400, 24, 20.0
    async with running(voting_spec(), servers, command_rate_limit="100000/second") as r:
        d = r.district
        await open_vote(r, "storm", roll)
        voters = iter(f"m{i:04d}" for i in range(roll))
        accepted: dict[str, dict] = {}
        mismatches: list[tuple[dict, dict]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds

        async def caller(n: int) -> None:
            rng = random.Random(n)
            last: tuple[dict, dict, dict] | None = None
            while loop.time() < deadline:
                if last is not None and rng.random() < 0.5:
                    body, headers, first = last
                    again = await r.client.post(f"/{d}/commands/CastBallot", json=body, headers=headers)
                    assert again.status_code == 200, again.text
                    if again.json() != first:
                        mismatches.append((first, again.json()))
                    continue
                voter = next(voters, None)
                if voter is None:
                    return
                body = ballot_body(d, "storm", voter, f"b-{voter}")
                headers = {"Idempotency-Key": f"key-{voter}"}
                response = await r.client.post(f"/{d}/commands/CastBallot", json=body, headers=headers)
                assert response.status_code == 200, response.text
                accepted[voter] = response.json()
                last = (body, headers, response.json())

        await asyncio.wait_for(asyncio.gather(*(caller(n) for n in range(callers))), seconds + 60)
        assert not mismatches
        assert await turnout(r, "storm") == len(accepted) > 0

        async def in_transaction() -> set[tuple]:
            rows = await r.ctx.pool.fetch(
                "SELECT pid, xact_start FROM pg_stat_activity"
                " WHERE application_name = $1 AND state LIKE 'idle in transaction%'",
                f"yishi-{r.ctx.settings.db_schema}")
            return {tuple(row) for row in rows}

        # The sealer or the relay may be between two statements of one transaction at this
        # instant (a busy machine shows it); a transaction a request left behind stays.
        seen = await in_transaction()

        async def none_left() -> bool:
            return not seen & await in_transaction()

        await eventually(none_left, timeout=30)
        ready = await r.client.get("/readyz")
        assert ready.status_code == 200, ready.text
