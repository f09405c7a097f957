"""Readiness fails only on what truly blocks the service: the database (its store is the
outbox). A broker that does not answer is reported, and commands are still accepted."""

from __future__ import annotations

from datetime import timedelta

from services.voting.main import spec as voting_spec
from tests.integration.voting.test_concurrency import open_command
from tests.support.service import running


async def test_ready_without_the_broker_and_commands_still_accepted(servers):
    async with running(voting_spec(), servers) as r:
        ready = await r.client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"] == {"database": True, "broker": True}

        async def unreachable(timeout: float | None = None) -> bool:
            return False

        r.ctx.broker.ping = unreachable  # as a broker that stopped answering looks to the service
        ready = await r.client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": True, "broker": False}
        command = open_command(r.district, "v-outbox", r.clock.now() + timedelta(days=1), 3)
        accepted = await r.client.post(f"/{r.district}/commands/OpenVote", json=command.model_dump(mode="json"))
        assert accepted.status_code == 200, accepted.text


async def test_a_served_service_freezes_what_its_start_made_out_of_the_collectors_view(servers):
    """``yishi serve``: once started, the objects its start made are frozen (gc.freeze), so
    that a full collection no longer goes through them all (up to 87 ms of CPU at 400
    ballots/s, no request answered meanwhile); the service still serves. Apps started in a
    test process freeze nothing: their objects must stay collectable."""
    import gc

    assert gc.get_freeze_count() == 0
    try:
        async with running(voting_spec(), servers, own_process=True) as voting:
            assert gc.get_freeze_count() > 50_000
            assert (await voting.client.get("/readyz")).status_code == 200
    finally:
        gc.unfreeze()
    async with running(voting_spec(), servers):
        assert gc.get_freeze_count() == 0
