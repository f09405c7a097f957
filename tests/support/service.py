"""Run a service in-process for tests: its schema migrated, its real lifespan (pool, broker, relay),
an HTTP client bound to it, and its own schema and district so tests never meet."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from fastapi import FastAPI

from tests.support.auth import acting, auth_settings
from yishi import migrations
from yishi.clock import Clock, ManualClock
from yishi.ids import IdSource
from yishi.runtime import ServiceContext, ServiceSpec, create_app
from yishi.settings import Settings


@dataclass
class Running:
    """A started service: its app, context (store, pool, clock) and an HTTP client."""

    app: FastAPI
    ctx: ServiceContext
    client: httpx.AsyncClient
    district: str
    clock: Clock


def new_district() -> str:
    """A fresh district slug: its own Kafka topics."""
    return f"t{uuid.uuid4().hex[:10]}"


@asynccontextmanager
async def running(spec: ServiceSpec, servers, *, schema: str | None = None, district: str | None = None,
                  clock: Clock | None = None, ids: IdSource | None = None, own_process: bool = False,
                  **settings: object) -> AsyncIterator[Running]:
    """Start ``spec`` against the test servers; stop it on exit. Its client sends each
    command with a token of the command's actor and reads as the district's auditor.
    ``ids`` is the source of the ids the platform chooses; ``own_process`` starts it as
    ``yishi serve`` does (see :func:`yishi.runtime.create_app`); ``settings`` override the defaults (a replica of another instance passes its schema,
    district, clock and ``consumer_group_prefix``)."""
    district = district or new_district()
    clock = clock or ManualClock()
    config = Settings(**{"database_url": servers.database_url, "kafka_bootstrap": servers.kafka_bootstrap,
                         "db_schema": schema or f"s_{uuid.uuid4().hex[:12]}",
                         "consumer_group_prefix": f"g{uuid.uuid4().hex[:8]}", "log_json": False,
                         "log_level": "WARNING", "relay_idle_wait_s": 0.01, "districts": [district],
                         **auth_settings(), **settings})
    await migrations.upgrade(config.database_url, config.db_schema,
                             migrations.locations(spec.name, spec.migrations))
    app = create_app(spec, config, clock, ids, own_process=own_process)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", auth=acting()) as client:
            yield Running(app, app.state.ctx, client, district, clock)


async def eventually(check, timeout: float = 30.0, interval: float = 0.05):
    """Await ``check()`` until it returns a truthy value (or raise after ``timeout``)."""
    deadline = asyncio.get_running_loop().time() + timeout
    last_error: Exception | None = None
    while asyncio.get_running_loop().time() < deadline:
        try:
            value = await check()
            if value:
                return value
        except AssertionError as exc:
            last_error = exc
        await asyncio.sleep(interval)
    raise AssertionError(f"not reached within {timeout}s") from last_error
