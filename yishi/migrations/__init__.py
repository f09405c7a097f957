"""Versioned schema migrations, with Alembic: one history per service schema.

A service's schema holds the platform's tables (event store, relay, inbox, jobs,
checkpoints: the ``yishi`` branch, ``yishi/migrations/versions``) and its own (the
branch named after the service, ``services/SERVICE/migrations``). Both branches are
upgraded together to their heads; Alembic's ``alembic_version`` table in the schema
records one row per branch. Migrations are plain SQL (``op.execute``) on an asyncpg
connection (SQLAlchemy's asyncpg dialect, no ORM, no second driver).

:func:`upgrade` runs once per release (``yishi migrate SERVICE``: the Kubernetes Job,
``yishi run`` locally, the test fixtures); a service only checks the schema at start
(:func:`check`) and refuses to run on one that lacks a revision it needs.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import asyncpg
import structlog

log = structlog.get_logger("yishi.migrations")
# Alembic announces each of its plugins at INFO when first imported: noise in every log.
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)

HERE = Path(__file__).resolve().parent
PLATFORM = HERE / "versions"
"""The ``yishi`` branch: the tables every service schema has."""

# Two Jobs (or a Job and a developer) never upgrade the same schema at once; advisory
# locks span the database, where several services may keep their schemas.
_LOCK_KEY = "hashtext('yishi.migrate.' || :schema)"


class SchemaOutOfDate(RuntimeError):
    """The schema lacks revisions this release needs: run ``yishi migrate``."""


def locations(service: str | None = None, own: Path | None = None) -> list[Path]:
    """The version folders of a schema: the platform's, then the service's own
    (``own``, by default ``services/SERVICE/migrations``). No service: the platform only."""
    if own is None and service is not None:
        own = Path(importlib.import_module(f"services.{service}").__file__).resolve().parent / "migrations"
    return [PLATFORM] + ([own] if own is not None else [])


def _config(versions: Sequence[Path], schema: str):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", os.pathsep.join(str(v) for v in versions))
    config.attributes["schema"] = schema
    return config


def _script(versions: Sequence[Path]):
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config(versions, ""))


def _check_schema(schema: str) -> str:
    if schema != "public" and not schema.replace("_", "").isalnum():
        raise ValueError(f"invalid schema name {schema!r}")
    return schema


async def upgrade(dsn: str, schema: str, versions: Sequence[Path]) -> list[str]:
    """Upgrade ``schema`` (created if missing) to the heads of ``versions``, in one
    transaction under an advisory lock; returns the revisions applied, oldest first."""
    from alembic import command
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    _check_schema(schema)
    engine = create_async_engine(
        "postgresql+asyncpg://", poolclass=NullPool,
        async_creator=lambda: asyncpg.connect(dsn, server_settings={
            "search_path": f'"{schema}"', "application_name": f"yishi-migrate-{schema}"}))
    config = _config(versions, schema)
    applied: list[str] = []
    config.attributes["applied"] = applied
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})"), {"schema": schema})
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))

            def run(sync_conn) -> None:
                config.attributes["connection"] = sync_conn
                command.upgrade(config, "heads")

            await conn.run_sync(run)
    finally:
        await engine.dispose()
    if applied:
        log.info("schema migrated", schema=schema, applied=applied)
    return applied


async def current(conn: asyncpg.Connection | asyncpg.Pool, schema: str) -> set[str]:
    """The revisions recorded in ``schema`` (empty if it was never migrated)."""
    _check_schema(schema)
    if await conn.fetchval("SELECT to_regclass($1)", f'"{schema}".alembic_version') is None:
        return set()
    return {r["version_num"] for r in await conn.fetch(f'SELECT version_num FROM "{schema}".alembic_version')}


async def check_database(dsn: str, schema: str, versions: Sequence[Path], service: str) -> None:
    """:func:`check` on a connection of its own."""
    conn = await asyncpg.connect(dsn)
    try:
        await check(conn, schema, versions, service)
    finally:
        await conn.close()


async def check(conn: asyncpg.Connection | asyncpg.Pool, schema: str, versions: Sequence[Path],
                service: str) -> None:
    """Raise :class:`SchemaOutOfDate` unless ``schema`` has every revision of
    ``versions``. A schema ahead of this release (revisions it does not know, written
    by a newer release's migration) is accepted: migrations only add, so the previous
    release keeps running during a rollout."""
    script = _script(versions)
    known = {rev.revision for rev in script.walk_revisions()}
    recorded = await current(conn, schema)
    if recorded - known:
        log.warning("schema is ahead of this release", schema=schema, unknown=sorted(recorded - known))
        return
    applied = {rev.revision for rev in script.iterate_revisions(tuple(recorded), "base")} if recorded else set()
    missing = sorted(known - applied)
    if missing:
        raise SchemaOutOfDate(
            f"schema {schema!r} lacks migrations {', '.join(missing)}"
            f" (it has {', '.join(sorted(recorded)) or 'none'}): run `yishi migrate {service}` first")
