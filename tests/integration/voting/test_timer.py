"""A vote opened from ``VoteRequested`` whose closing time passes while the service is
down is closed exactly once when the service comes back."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from contracts.proposals import VoteRequested
from contracts.registry import decode, to_envelope
from services.voting.main import spec
from tests.integration.voting.test_concurrency import open_command
from tests.support.kafka import read_topic
from tests.support.service import eventually, new_district, running
from yishi.clock import ManualClock
from yishi.kafka import new_producer


async def test_closing_time_passing_while_down_closes_once_after_restart(servers):
    district, schema, clock = new_district(), f"s_{uuid.uuid4().hex[:12]}", ManualClock()
    opened = open_command(district, "vote-timer", clock.now() + timedelta(hours=1), 5)
    requested = VoteRequested(district=district, actor=opened.actor, occurred_at=clock.now(), vote_id="vote-timer",
                              council_id=opened.council_id, matter=opened.matter, terms=opened.terms)
    envelope = to_envelope(requested, id=str(uuid.uuid4()), source=f"/yishi/{district}/proposals",
                           subject="p-vote-timer", time=clock.now(), correlation_id="session-1")
    producer = new_producer(servers.kafka_bootstrap)
    await producer.start()
    try:
        key, headers, value = envelope.to_kafka()
        for _ in range(2):  # delivered twice: opens one vote
            await producer.send_and_wait(f"{district}.proposals.events", value, key=key, headers=headers)
    finally:
        await producer.stop()

    async with running(spec(), servers, schema=schema, district=district, clock=clock) as first:
        async def is_open():
            return (await first.client.get(f"/{district}/votes/vote-timer")).status_code == 200
        await eventually(is_open)
        for voter in ("m0000", "m0001", "m0002"):
            body = {"district": district, "actor": {"id": voter, "role": "council_member", "seat_id": f"seat-{voter}"},
                    "vote_id": "vote-timer",
                    "ballot_id": f"b-{voter}", "choice": "in_favour" if voter != "m0002" else "against"}
            assert (await first.client.post(f"/{district}/commands/CastBallot", json=body)).status_code == 200
        await asyncio.sleep(0.5)  # a few timer ticks: not due, nothing closes
        assert (await first.client.get(f"/{district}/votes/vote-timer")).json()["status"] == "open"

    clock.advance(timedelta(hours=2))  # the closing time passes while the service is down

    async with running(spec(), servers, schema=schema, district=district, clock=clock) as second:
        async def closed():
            vote = (await second.client.get(f"/{district}/votes/vote-timer")).json()
            return vote if vote["status"] == "closed" else None
        vote = await eventually(closed)
        assert vote["result"]["closed_by"] == "deadline" and vote["result"]["outcome"] == "adopted"
        assert vote["result"]["tally"] == {"in_favour": 2, "against": 1, "abstain": 0, "approvals": None}
        await asyncio.sleep(1.0)  # more ticks of the timer change nothing
        pool = second.ctx.pool
        assert await pool.fetchval("SELECT count(*) FROM events WHERE topic LIKE '%Vote.Opened'") == 1
        assert await pool.fetchval("SELECT count(*) FROM events WHERE topic LIKE '%Vote.Closed'") == 1
        events = await read_topic(servers.kafka_bootstrap, f"{district}.voting.events", 5)
        closes = {e.id for e in events if e.type == "VoteClosed"}
        assert len(closes) == 1
        final = decode(next(e for e in events if e.type == "VoteClosed"))
        assert final.quorum_met and final.turnout_percent == 60.0 and len(final.ballots) == 3
