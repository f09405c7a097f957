"""The pool's connections (yishi.db.Connection) against the real PostgreSQL."""

import contextlib

import asyncpg
import pytest

from yishi.db import RolledBackOnCommit


async def test_a_commit_that_rolled_back_raises_and_keeps_nothing(pool):
    """A database error caught without a savepoint aborts the transaction; PostgreSQL then
    answers COMMIT with ROLLBACK, which asyncpg returns as a success. The pool's
    connections raise instead, so that no caller replies or acks as if it had kept it."""
    await pool.execute("CREATE TABLE kept (n int)")
    with pytest.raises(RolledBackOnCommit):
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("INSERT INTO kept VALUES (1)")
            with contextlib.suppress(asyncpg.DataError):
                await conn.execute("SELECT 1 / 0")
    assert await pool.fetchval("SELECT count(*) FROM kept") == 0
    async with pool.acquire() as conn:  # the connection is usable again, outside any transaction
        assert not conn.is_in_transaction()
        async with conn.transaction():
            await conn.execute("INSERT INTO kept VALUES (2)")
    assert await pool.fetchval("SELECT array_agg(n) FROM kept") == [2]


async def test_a_savepoint_that_failed_and_was_rolled_back_commits(pool):
    """The right way to go on after a failed statement: the outer transaction commits."""
    await pool.execute("CREATE TABLE kept (n int)")
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("INSERT INTO kept VALUES (1)")
        with contextlib.suppress(asyncpg.DataError):
            async with conn.transaction():
                await conn.execute("SELECT 1 / 0")
    assert await pool.fetchval("SELECT count(*) FROM kept") == 1
