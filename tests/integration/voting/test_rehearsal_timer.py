"""On the rehearsal clock, a vote whose closing time passes while the service is down is
closed exactly once when it is back: a restarted service's clock, built afresh from the
same settings, goes on from where the first one stopped."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone

from contracts.proposals import VoteRequested
from contracts.registry import to_envelope
from services.voting.main import spec
from tests.integration.voting.test_concurrency import open_command
from tests.support.auth import auth_settings
from tests.support.kafka import read_topic
from tests.support.service import eventually, new_district, running
from yishi.clock import AcceleratedClock, from_settings
from yishi.kafka import new_producer
from yishi.settings import Settings

FACTOR = 600.0
"""Ten minutes a second."""


def rehearsal_clock(epoch: datetime):
    """The clock a service process builds from ``YISHI_CLOCK_FACTOR`` and ``YISHI_CLOCK_EPOCH``."""
    return from_settings(Settings(clock_factor=FACTOR, clock_epoch=epoch, **auth_settings()))


async def test_a_deadline_passing_while_down_closes_once_on_the_rehearsal_clock(servers):
    district, schema = new_district(), f"s_{uuid.uuid4().hex[:12]}"
    epoch = datetime.now(timezone.utc)
    first_clock = rehearsal_clock(epoch)
    assert isinstance(first_clock, AcceleratedClock)
    async with running(spec(), servers, schema=schema, district=district, clock=first_clock) as first:
        closes_at = first_clock.now() + timedelta(hours=1)  # six real seconds away
        opened = open_command(district, "vote-rehearsal", closes_at, 3)
        requested = VoteRequested(district=district, actor=opened.actor, occurred_at=first_clock.now(),
                                  vote_id="vote-rehearsal", council_id=opened.council_id, matter=opened.matter,
                                  terms=opened.terms)
        envelope = to_envelope(requested, id=str(uuid.uuid4()), source=f"/yishi/{district}/proposals",
                               subject="p-vote-rehearsal", time=first_clock.now(), correlation_id="rehearsal-1")
        producer = new_producer(servers.kafka_bootstrap)
        await producer.start()
        try:
            key, headers, value = envelope.to_kafka()
            await producer.send_and_wait(f"{district}.proposals.events", value, key=key, headers=headers)
        finally:
            await producer.stop()

        async def is_open():
            return (await first.client.get(f"/{district}/votes/vote-rehearsal")).status_code == 200
        await eventually(is_open)
        body = {"district": district, "actor": {"id": "m0000", "role": "council_member", "seat_id": "seat-m0000"},
                "vote_id": "vote-rehearsal", "ballot_id": "b-m0000", "choice": "in_favour"}
        assert (await first.client.post(f"/{district}/commands/CastBallot", json=body)).status_code == 200
        assert (await first.client.get(f"/{district}/votes/vote-rehearsal")).json()["status"] == "open"
        last_seen = first_clock.now()
    assert last_seen < closes_at, "the machine was too slow: the vote closed before the restart"

    while first_clock.now() <= closes_at:  # down while the closing time passes (in rehearsal time)
        await asyncio.sleep(0.2)

    second_clock = rehearsal_clock(epoch)  # what the restarted process builds
    assert second_clock.now() >= last_seen  # rehearsal time goes on; it does not start again
    async with running(spec(), servers, schema=schema, district=district, clock=second_clock) as second:
        async def closed():
            vote = (await second.client.get(f"/{district}/votes/vote-rehearsal")).json()
            return vote if vote["status"] == "closed" else None
        vote = await eventually(closed)
        assert vote["result"]["closed_by"] == "deadline"
        assert vote["result"]["tally"]["in_favour"] == 1
        await asyncio.sleep(1.0)  # an hour of rehearsal time per second: more ticks close nothing again
        pool = second.ctx.pool
        assert await pool.fetchval("SELECT count(*) FROM events WHERE topic LIKE '%Vote.Closed'") == 1
        closed_at = await pool.fetchval("SELECT (metadata->>'occurred_at')::timestamptz FROM events "
                                        "WHERE topic LIKE '%Vote.Closed'")
        assert closes_at <= closed_at <= second_clock.now()
        events = await read_topic(servers.kafka_bootstrap, f"{district}.voting.events", 3)
        assert len({e.id for e in events if e.type == "VoteClosed"}) == 1
