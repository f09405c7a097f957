"""PostgreSQL access: one asyncpg pool per service, in the service's own schema, and the
signal that events were appended (the relay's wake-up).

An idle relay LISTENs on :data:`LOG_CHANNEL`. A pooled connection on which events were
appended (:func:`mark_appended`, called by the store) tells it when it is given back to
the pool, that is after its transaction ended: one short ``NOTIFY`` of its own, sent in
the background by the pool's :class:`CommitNotifier`. Not inside the appending
transaction: PostgreSQL commits transactions that notify one at a time, under one lock
for the whole database, which halved append throughput (``bench/run store`` 0.38x raw
inserts with a NOTIFY in every append, 1.05x without). A rolled-back append wakes the
relay for nothing, which is harmless; the relay's poll covers a notification lost.
"""

from __future__ import annotations

import asyncio

import asyncpg
import structlog


log = structlog.get_logger(__name__)

LOG_CHANNEL = "left('yishi.log.' || current_schema(), 63)"
"""SQL naming the channel of a service's log (one per schema; channel names hold 63 bytes)."""


class Connection(asyncpg.Connection):
    """A pooled connection that remembers whether events were appended on it since it was
    taken from the pool."""

    appended = False

    def note_appended(self) -> None:
        """Events were appended on this connection (told to the relay on release)."""
        self.appended = True


def mark_appended(conn: object) -> None:
    """Note that events were appended on ``conn``: a pooled :class:`Connection`, reached
    through the pool's proxy, which forwards the call. Others, such as a test's own
    connection, are not followed and leave the relay to its poll."""
    note = getattr(conn, "note_appended", None)
    if note is not None:
        note()


class CommitNotifier:
    """Sends the log channel's NOTIFY after appends, at most one at a time per pool: the
    appends that end while one is on its way are told by the next one."""

    def __init__(self) -> None:
        self.pool: asyncpg.Pool | None = None
        self._task: asyncio.Task | None = None
        self._again = False

    async def released(self, conn: asyncpg.Connection) -> None:
        """The pool's reset hook: a connection given back (its transaction over)."""
        if isinstance(conn, Connection) and conn.appended:
            conn.appended = False
            self.poke()

    def poke(self) -> None:
        """Tell the relay, now or right after the notification on its way."""
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        while True:
            self._again = False
            try:
                assert self.pool is not None
                await self.pool.execute(f"SELECT pg_notify({LOG_CHANNEL}, '')")
            except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
                log.debug("log notification not sent; the relay's poll covers it", error=str(exc))
                return
            if not self._again:
                return


async def create_pool(dsn: str, schema: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections use ``schema`` first on their search path.

    The schema is created if missing. ``idle_in_transaction_session_timeout`` stops a
    forgotten transaction from holding back every log reader for ever. The pool's reset
    hook (:meth:`CommitNotifier.released`) replaces asyncpg's reset query on release
    (``RESET ALL``, ``UNLISTEN *``, unlocking session advisory locks): that query costs a
    round trip per use, and nothing here keeps session state on a pooled connection
    (asyncpg still rolls back an open transaction; the relay's advisory lock has its own
    connection, and the relay's listener removes its listener itself).
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
    notifier = CommitNotifier()
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        connection_class=Connection,
        reset=notifier.released,
        server_settings={
            "search_path": f'"{schema}"',
            "idle_in_transaction_session_timeout": "60000",
            "application_name": f"yishi-{schema}",
        },
    )
    notifier.pool = pool
    return pool

