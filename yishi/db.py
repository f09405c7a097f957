"""PostgreSQL access: one asyncpg pool per service, in the service's own schema."""

from __future__ import annotations

import asyncpg

from yishi.names import check_service


async def create_pool(dsn: str, schema: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections use ``schema`` first on their search path.

    The schema is created if missing. ``idle_in_transaction_session_timeout`` stops a
    forgotten transaction from holding back every log reader for ever.
    """
    if schema != "public" and not schema.replace("_", "").isalnum():
        raise ValueError(f"invalid schema name {schema!r}")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    except asyncpg.UniqueViolationError:  # two processes creating it at once
        pass
    finally:
        await conn.close()
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        reset=_keep_session,
        server_settings={
            "search_path": f'"{schema}"',
            "idle_in_transaction_session_timeout": "60000",
            "application_name": f"yishi-{schema}",
        },
    )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Skip asyncpg's reset query on release (``RESET ALL``, ``UNLISTEN *``, unlocking
    session advisory locks): it costs a round trip per use, and nothing here keeps
    session state on a pooled connection. asyncpg still rolls back an open transaction.
    Code that needs session state (the relay's advisory lock) uses its own connection."""


async def service_pool(dsn: str, service: str, **kwargs: int) -> asyncpg.Pool:
    """The pool of one of the four services (schema = service name)."""
    return await create_pool(dsn, check_service(service), **kwargs)

