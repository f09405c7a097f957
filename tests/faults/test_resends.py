"""Clients resend, as every client does after a crash: voting is SIGKILLed while 16
callers cast ballots and resend them, then restarted. Afterwards every ballot answered
200 is counted exactly once, nobody is counted twice, no resend got anything but its
first reply, the service is ready again within 30 s of the restart, and no database
session is left idle in a transaction."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone

import asyncpg
import httpx
import pytest

from tests.integration.test_idempotency import ballot_body
from tests.integration.voting.test_concurrency import open_command
from tests.support.auth import acting, auth_env
from tests.support.service import new_district
from yishi import migrations
from yishi.embedded import free_port

ROLL = 800
CALLERS = 16


class Voting:
    """The voting service as a real process on the test servers."""

    def __init__(self, servers, district: str, schema: str, port: int) -> None:
        self.port = port
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("YISHI_")},
                    "YISHI_DATABASE_URL": servers.database_url, "YISHI_KAFKA_BOOTSTRAP": servers.kafka_bootstrap,
                    "YISHI_DB_SCHEMA": schema, "YISHI_DISTRICTS": district, "YISHI_HTTP_PORT": str(port),
                    "YISHI_CONSUMER_GROUP_PREFIX": schema, "YISHI_LOG_LEVEL": "WARNING",
                    "YISHI_COMMAND_RATE_LIMIT": "100000/second", **auth_env()}
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "yishi.cli", "serve", "voting"], env=self.env)

    async def ready(self, client: httpx.AsyncClient, timeout: float) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            assert self.proc.poll() is None, f"voting exited with {self.proc.returncode}"
            try:
                if (await client.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
        raise AssertionError(f"voting not ready within {timeout} s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.mark.slow
async def test_sigkill_while_clients_resend(servers):
    district, schema = new_district(), f"f_{uuid.uuid4().hex[:12]}"
    service = Voting(servers, district, schema, free_port())
    base = f"http://127.0.0.1:{service.port}"
    await migrations.upgrade(servers.database_url, schema, migrations.locations("voting"))  # as a release does
    service.start()
    async with httpx.AsyncClient(base_url=base, auth=acting(), timeout=5) as client:
        try:
            await service.ready(client, 60)
            opened = await client.post(f"/{district}/commands/OpenVote", json=open_command(
                district, "vk", datetime.now(timezone.utc) + timedelta(days=1), ROLL).model_dump(mode="json"))
            assert opened.status_code == 200, opened.text

            voters = iter(f"m{i:04d}" for i in range(ROLL))
            accepted: dict[str, dict] = {}
            refused: list[str] = []
            killed = asyncio.Event()

            async def send(body: dict, key: str) -> dict:
                """Until answered: a connection refused or reset, a 5xx, is resent as it was."""
                while True:
                    try:
                        response = await client.post(f"/{district}/commands/CastBallot", json=body,
                                                     headers={"Idempotency-Key": key})
                    except httpx.HTTPError:
                        await asyncio.sleep(0.2)
                        continue
                    if response.status_code >= 500:
                        await asyncio.sleep(0.2)
                        continue
                    if response.status_code != 200:
                        refused.append(response.text)
                    return response.json()

            async def caller(n: int) -> None:
                rng = random.Random(n)
                for voter in voters:
                    body, key = ballot_body(district, "vk", voter, f"b-{voter}"), f"k-{voter}"
                    first = await send(body, key)
                    accepted[voter] = first
                    while rng.random() < 0.5:  # resend, at once or after the crash
                        assert await send(body, key) == first
                        if killed.is_set():
                            break

            callers = [asyncio.create_task(caller(n)) for n in range(CALLERS)]
            while len(accepted) < ROLL // 3:
                await asyncio.sleep(0.05)
            service.proc.kill()
            service.proc.wait()
            killed.set()
            await asyncio.sleep(1)
            service.start()
            await service.ready(client, 30)
            await asyncio.wait_for(asyncio.gather(*callers), 240)

            assert refused == []
            assert len(accepted) == ROLL
            tally = (await client.get(f"/{district}/votes/vk/tally")).json()
            assert tally["turnout"] == ROLL
            assert tally["tally"]["in_favour"] == ROLL  # each counted once: a second count would exceed it
            conn = await asyncpg.connect(servers.database_url)
            try:
                counted = await conn.fetchval(
                    f'SELECT count(DISTINCT stream_id) FROM "{schema}".events WHERE topic LIKE $1', "%:Ballot.Cast")
                stuck = await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 "
                    "AND state LIKE 'idle in transaction%'", f"yishi-{schema}")
            finally:
                await conn.close()
            assert stuck == 0
            assert counted == ROLL  # one ballot stream per voter: no voter's ballot was cast twice
        finally:
            service.stop()
