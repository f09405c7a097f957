"""Versioned migrations: a schema as an older release left it is migrated forward with its
data kept; a fresh one gets the same shape; services refuse a schema that lacks a revision."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from tests.support.auth import auth_settings
from yishi import migrations
from yishi.runtime import create_app
from yishi.settings import Settings

# As the release before the relay's fencing epoch created it (no `epoch` column).
OLD_RELAY_POSITION = """
    CREATE TABLE relay_position (
        name        text PRIMARY KEY,
        tx_id       xid8 NOT NULL,
        position    bigint NOT NULL,
        updated_at  timestamptz NOT NULL DEFAULT now()
    )
"""
# As voting created it before ids were scoped by district (no `public_id`: the stream id
# was the vote's id).
OLD_VOTES = """
    CREATE TABLE votes (
        vote_id         text PRIMARY KEY,
        district        text NOT NULL,
        council_id      text NOT NULL,
        matter          jsonb NOT NULL,
        terms           jsonb NOT NULL,
        secret          boolean NOT NULL,
        electorate_size integer NOT NULL,
        opened_at       timestamptz NOT NULL,
        closes_at       timestamptz NOT NULL,
        closed_at       timestamptz,
        result          jsonb
    )
"""
ALL_VOTING = ["yishi_0001", "yishi_0002", "yishi_0003", "voting_0001", "voting_0002", "voting_0003"]


@pytest.fixture
async def db(servers):
    """A connection, and fresh schema names dropped at the end."""
    conn = await asyncpg.connect(servers.database_url)
    made: list[str] = []

    def schema() -> str:
        made.append(f"m_{uuid.uuid4().hex[:12]}")
        return made[-1]

    try:
        yield conn, schema
    finally:
        for name in made:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        await conn.close()


async def columns(conn, schema: str, table: str) -> dict[str, tuple[str, str, str | None]]:
    rows = await conn.fetch("SELECT column_name, data_type, is_nullable, column_default "
                            "FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2",
                            schema, table)
    return {r["column_name"]: (r["data_type"], r["is_nullable"], r["column_default"]) for r in rows}


async def tables(conn, schema: str) -> set[str]:
    return {r["table_name"] for r in await conn.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema)}


async def test_an_old_schema_is_migrated_forward_with_its_data(servers, db):
    conn, new_schema = db
    old, fresh = new_schema(), new_schema()
    await conn.execute(f'CREATE SCHEMA "{old}"')
    await conn.execute(f'SET search_path = "{old}"')
    await conn.execute(OLD_RELAY_POSITION)
    await conn.execute(OLD_VOTES)
    await conn.execute("INSERT INTO relay_position (name, tx_id, position) VALUES ('voting', '812', 42)")
    await conn.execute(
        "INSERT INTO votes VALUES ('vote-7', 'gulou', 'c-1', '{}', '{}', false, 9, now(), now(), NULL, NULL)")
    await conn.execute("RESET search_path")

    applied = await migrations.upgrade(servers.database_url, old, migrations.locations("voting"))

    assert sorted(applied) == sorted(ALL_VOTING)
    relay = await conn.fetchrow(f'SELECT name, tx_id::text, position, epoch FROM "{old}".relay_position')
    assert dict(relay) == {"name": "voting", "tx_id": "812", "position": 42, "epoch": 0}
    vote = await conn.fetchrow(f'SELECT vote_id, public_id, electorate_size FROM "{old}".votes')
    assert dict(vote) == {"vote_id": "vote-7", "public_id": "vote-7", "electorate_size": 9}
    assert (await columns(conn, old, "votes"))["public_id"] == ("text", "NO", None)
    assert (await columns(conn, old, "relay_position"))["epoch"] == ("bigint", "NO", "0")
    # The tables the old release did not have are there too, the same as on a fresh schema.
    await migrations.upgrade(servers.database_url, fresh, migrations.locations("voting"))
    assert await tables(conn, old) == await tables(conn, fresh)
    for table in await tables(conn, fresh):
        assert await columns(conn, old, table) == await columns(conn, fresh, table), table
    await migrations.check(conn, old, migrations.locations("voting"), "voting")
    # Once is enough: a second run applies nothing.
    assert await migrations.upgrade(servers.database_url, old, migrations.locations("voting")) == []


async def test_migrations_running_at_once_apply_each_revision_once(servers, db):
    conn, new_schema = db
    schema = new_schema()
    runs = await asyncio.gather(*(migrations.upgrade(servers.database_url, schema, migrations.locations("voting"))
                                  for _ in range(3)))
    assert sorted(len(r) for r in runs) == [0, 0, len(ALL_VOTING)]
    assert await migrations.current(conn, schema) == {"yishi_0003", "voting_0003"}


async def test_secret_choices_of_open_votes_get_a_tracking_code_when_codes_arrive(servers, db):
    """voting_0003 draws a code for every choice of a vote still open (verifiable by
    default, it publishes a board at its close), in the format the service draws."""
    conn, new_schema = db
    schema = new_schema()
    await migrations.upgrade(servers.database_url, schema, migrations.locations("voting"))
    await conn.execute(f'SET search_path = "{schema}"')
    await conn.execute("INSERT INTO votes (vote_id, district, council_id, matter, terms, secret, electorate_size, "
                       "opened_at, closes_at, closed_at, public_id) VALUES "
                       "('v-open', 'gulou', 'c-1', '{}', '{}', true, 9, now(), now(), NULL, 'v-open'), "
                       "('v-closed', 'gulou', 'c-1', '{}', '{}', true, 9, now(), now(), now(), 'v-closed')")
    await conn.execute("INSERT INTO secret_choices (receipt, vote_id, choice) VALUES "
                       "('\\x01', 'v-open', 'against'), ('\\x02', 'v-closed', 'against')")
    await conn.execute("INSERT INTO pending_choices (receipt, vote_id, choice) VALUES ('\\x03', 'v-open', 'abstain')")
    # As before this release: the revision before, the choices without codes.
    await conn.execute("UPDATE alembic_version SET version_num = 'voting_0002' WHERE version_num = 'voting_0003'")
    await conn.execute("RESET search_path")
    assert await migrations.upgrade(servers.database_url, schema, migrations.locations("voting")) == ["voting_0003"]
    codes = {r["vote_id"] + "/" + r["choice"]: r["tracking_code"] for r in await conn.fetch(
        f'SELECT vote_id, choice, tracking_code FROM "{schema}".secret_choices UNION ALL '
        f'SELECT vote_id, choice, tracking_code FROM "{schema}".pending_choices')}
    assert codes["v-closed/against"] is None
    assert all(len(c) == 20 and int(c, 16) >= 0 for c in (codes["v-open/against"], codes["v-open/abstain"]))
    assert codes["v-open/against"] != codes["v-open/abstain"]


async def test_a_schema_lacking_a_revision_is_refused(servers, db):
    conn, new_schema = db
    never, behind = new_schema(), new_schema()
    voting = migrations.locations("voting")
    with pytest.raises(migrations.SchemaOutOfDate, match="yishi migrate voting"):
        await migrations.check(conn, never, voting, "voting")
    # The release before voting_0002: the platform's and voting's baselines only.
    await migrations.upgrade(servers.database_url, behind, migrations.locations("voting"))
    await conn.execute(f"UPDATE \"{behind}\".alembic_version SET version_num = 'voting_0001' "
                       "WHERE version_num = 'voting_0003'")
    with pytest.raises(migrations.SchemaOutOfDate,
                       match=r"lacks migrations voting_0002, voting_0003 .*yishi migrate voting"):
        await migrations.check(conn, behind, voting, "voting")
    # A newer release's revision (unknown here) is accepted: the previous release keeps running.
    await conn.execute(f"UPDATE \"{behind}\".alembic_version SET version_num = 'voting_0099' "
                       "WHERE version_num = 'voting_0001'")
    await migrations.check(conn, behind, voting, "voting")


async def test_a_service_does_not_start_on_an_unmigrated_schema(servers, db):
    from services.voting.main import spec

    conn, new_schema = db
    schema = new_schema()
    app = create_app(spec(), Settings(database_url=servers.database_url, kafka_bootstrap=servers.kafka_bootstrap,
                                      db_schema=schema, log_json=False, log_level="WARNING", **auth_settings()))
    with pytest.raises(migrations.SchemaOutOfDate, match="run `yishi migrate voting` first"):
        async with app.router.lifespan_context(app):
            pass
    assert await tables(conn, schema) == set()  # no DDL at start
