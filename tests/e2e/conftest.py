"""The platform as production runs it, for the end-to-end tests: the four services and the
portal as separate ``yishi serve`` processes, each with its own database on the test PostgreSQL,
talking only over the test broker, serving two fresh districts. One start per module."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from tests.support.auth import auth_env, issuer
from tests.support.service import new_district
from yishi import migrations
from yishi.demo import WebhookInbox
from yishi.names import RUNNABLE as SERVICES  # the portal too

POLICY_DAY_S = 1.0
"""A reminder-policy day of the test platform's oversight, in seconds."""


@dataclass
class Platform:
    """A started platform: service URLs, its districts, and the webhook receiver notify
    delivers to (signed with ``webhook_secret``)."""

    urls: dict[str, str]
    districts: tuple[str, str]
    kafka_bootstrap: str
    inbox: WebhookInbox
    webhook_secret: str
    logs: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _database_url(server_url: str, name: str) -> str:
    return urlsplit(server_url)._replace(path=f"/{name}").geturl()


async def _wait_ready(urls: dict[str, str], procs: dict[str, subprocess.Popen], logs: Path) -> None:
    pending = dict(urls)
    deadline = time.monotonic() + 120
    async with httpx.AsyncClient(timeout=1) as client:
        while pending:
            for name, url in list(pending.items()):
                if procs[name].poll() is not None:
                    raise RuntimeError(f"{name} exited during start-up:\n{(logs / name).read_text()[-3000:]}")
                try:
                    if (await client.get(f"{url}/readyz")).status_code == 200:
                        del pending[name]
                except httpx.HTTPError:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready after 120 s: {', '.join(pending)}")
            await asyncio.sleep(0.2)


@pytest.fixture(scope="module")
async def platform(servers, tmp_path_factory, request) -> AsyncIterator[Platform]:
    """The platform of one module; a module's ``PLATFORM_ENV`` (e.g. a rehearsal clock) adds
    to or overrides the settings every service gets."""
    run = uuid.uuid4().hex[:8]
    databases = {name: f"e2e_{run}_{name}" for name in SERVICES}
    admin = await asyncpg.connect(servers.database_url)
    try:
        for database in databases.values():
            await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()
    districts = (new_district(), new_district())
    secret = secrets.token_hex(16)
    urls = {name: f"http://127.0.0.1:{_free_port()}" for name in SERVICES}
    logs = tmp_path_factory.mktemp("platform")
    base = {k: v for k, v in os.environ.items() if not k.startswith("YISHI_")}
    procs: dict[str, subprocess.Popen] = {}
    with WebhookInbox() as inbox:
        try:
            for name in SERVICES:
                env = {**base, "YISHI_DATABASE_URL": _database_url(servers.database_url, databases[name]),
                       "YISHI_KAFKA_BOOTSTRAP": servers.kafka_bootstrap, "YISHI_DISTRICTS": ",".join(districts),
                       "YISHI_HTTP_PORT": urls[name].rsplit(":", 1)[1], "YISHI_CONSUMER_GROUP_PREFIX": f"e2e{run}",
                       "YISHI_LOG_JSON": "false", "YISHI_LOG_LEVEL": "INFO", "YISHI_RELAY_IDLE_WAIT_S": "0.01",
                       "YISHI_OVERSIGHT_POLICY_DAY_S": str(POLICY_DAY_S), "YISHI_NOTIFY_WEBHOOK_SECRET": secret,
                       "YISHI_NOTIFY_WORKER_INTERVAL_S": "0.1", **auth_env(),
                       "YISHI_PORTAL_OIDC_DISCOVERY_URL": issuer().discovery_url,
                       "YISHI_PORTAL_SERVICE_URLS": json.dumps(urls),
                       **getattr(request.module, "PLATFORM_ENV", {})}
                await migrations.upgrade(env["YISHI_DATABASE_URL"], name, migrations.locations(name))
                with open(logs / name, "w") as log:
                    procs[name] = subprocess.Popen([sys.executable, "-m", "yishi.cli", "serve", name], env=env,
                                                   stdout=log, stderr=subprocess.STDOUT)
            await _wait_ready(urls, procs, logs)
            yield Platform(urls, districts, servers.kafka_bootstrap, inbox, secret, logs)
        finally:
            for proc in procs.values():
                proc.send_signal(signal.SIGTERM)
            for proc in procs.values():
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            admin = await asyncpg.connect(servers.database_url)
            try:
                for database in databases.values():
                    await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            finally:
                await admin.close()
