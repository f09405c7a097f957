"""The service metrics that count the platform's own work, by figures: timers fired and
the events waiting for a signed checkpoint."""

from __future__ import annotations

from datetime import timedelta

from services.voting.main import spec as voting_spec
from tests.integration.voting.test_concurrency import open_command
from tests.support.service import eventually, running
from yishi.metrics import TIMERS_FIRED


def fired(timer: str) -> float:
    return next((s.value for m in TIMERS_FIRED.collect() for s in m.samples
                 if s.name.endswith("_total") and s.labels["timer"] == timer), 0.0)


async def test_a_vote_closed_by_its_timer_counts_one_timer_fired(servers):
    async with running(voting_spec(), servers) as r:
        before = fired("voting.close")
        command = open_command(r.district, "v-timer-metric", r.clock.now() + timedelta(hours=1), 3)
        assert (await r.client.post(f"/{r.district}/commands/OpenVote",
                                    json=command.model_dump(mode="json"))).status_code == 200
        assert fired("voting.close") == before
        r.clock.advance(timedelta(hours=2))

        async def closed():
            return (await r.client.get(f"/{r.district}/votes/v-timer-metric")).json()["status"] == "closed"

        await eventually(closed)
        assert fired("voting.close") == before + 1


async def test_events_chained_after_the_last_signed_checkpoint_are_counted(servers):
    # The first checkpoint is signed as soon as there is a chain; the next not for an hour.
    async with running(voting_spec(), servers, checkpoint_interval_s=3600) as r:
        signed_at = r.clock.now()
        command = open_command(r.district, "v-cp-1", r.clock.now() + timedelta(days=1), 3)
        assert (await r.client.post(f"/{r.district}/commands/OpenVote",
                                    json=command.model_dump(mode="json"))).status_code == 200
        pool = r.ctx.pool
        await eventually(lambda: pool.fetchval("SELECT count(*) > 0 FROM checkpoints"))
        signed = await pool.fetchval("SELECT max(seq) FROM checkpoints")
        r.clock.advance(timedelta(minutes=5))
        for n in (2, 3):
            command = open_command(r.district, f"v-cp-{n}", r.clock.now() + timedelta(days=1), 3)
            assert (await r.client.post(f"/{r.district}/commands/OpenVote",
                                        json=command.model_dump(mode="json"))).status_code == 200
        events = await pool.fetchval("SELECT count(*) FROM events")
        await eventually(lambda: pool.fetchval("SELECT count(*) = $1 FROM log_chain", events))
        unsigned, last = await r.app.state.watch.checkpoints()
        assert unsigned == events - signed > 0
        assert last == signed_at.timestamp()
