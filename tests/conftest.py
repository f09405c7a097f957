"""Test fixtures: one PostgreSQL and one broker per test session.

Without ``YISHI_DATABASE_URL`` / ``YISHI_KAFKA_BOOTSTRAP`` the embedded stack is started
(and stopped at the end); with them, the same tests run against external servers.
Each test gets its own database schema, so tests never see each other's events.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

import asyncpg
import pytest

from yishi import migrations
from yishi.db import create_pool
from yishi.embedded import EmbeddedKafka, EmbeddedPostgres, EmbeddedStack, kafka_engine, kafka_version


def pytest_report_header(config) -> str:
    """The CI log's banner line: which broker the suite runs on."""
    if os.environ.get("YISHI_DATABASE_URL") and os.environ.get("YISHI_KAFKA_BOOTSTRAP"):
        return f"broker: external, YISHI_KAFKA_BOOTSTRAP={os.environ['YISHI_KAFKA_BOOTSTRAP']}"
    engine = kafka_engine()
    return ("broker: embedded Apache Kafka " + kafka_version() + " (KRaft, one node)" if engine == "apache"
            else "broker: embedded Tansu (memory-only; Apache Kafka needs Java 17+ and Maven)")


@dataclass
class Servers:
    """Where the test servers are; the embedded handles are None for external servers."""

    database_url: str
    kafka_bootstrap: str
    postgres: EmbeddedPostgres | None = None
    kafka: EmbeddedKafka | None = None


@pytest.fixture(scope="session")
def servers():
    db, kafka = os.environ.get("YISHI_DATABASE_URL"), os.environ.get("YISHI_KAFKA_BOOTSTRAP")
    if db and kafka:
        yield Servers(db, kafka)
        return
    stack = EmbeddedStack().start()
    try:
        yield Servers(stack.postgres.url, stack.kafka.bootstrap, stack.postgres, stack.kafka)
    finally:
        stack.stop()


@pytest.fixture
def embedded(servers: Servers) -> Servers:
    """For fault tests that kill and restart servers: needs the embedded stack."""
    if servers.postgres is None or servers.kafka is None:
        pytest.skip("fault tests kill servers and need the embedded stack (YISHI_* variables are set)")
    return servers


@pytest.fixture
def schema_name() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def pool(servers: Servers, schema_name: str):
    """A pool on a fresh schema migrated to the platform's tables (event store, relay, inbox…)."""
    await migrations.upgrade(servers.database_url, schema_name, migrations.locations())
    p = await create_pool(servers.database_url, schema_name, max_size=20)
    try:
        yield p
    finally:
        await p.close()
        conn = await asyncpg.connect(servers.database_url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema_name}" CASCADE')
        finally:
            await conn.close()
