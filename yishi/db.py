"""PostgreSQL access: one asyncpg pool per service, in the service's own schema, and the
signal that events were appended (the relay's wake-up): notified by the pool, listened to by
:class:`CommitListener`.

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
import contextlib
import re

import asyncpg
import structlog


log = structlog.get_logger(__name__)

LOG_CHANNEL = "left('yishi.log.' || current_schema(), 63)"
"""SQL naming the channel of a service's log (one per schema; channel names hold 63 bytes)."""


_LOCK_NAME = re.compile(r"[A-Za-z0-9._:/-]{1,200}")


def advisory_key(name: str) -> str:
    """SQL computing the advisory lock key of the lock ``name`` as every release has,
    ``hashtextextended(name, 0)``: pods of two releases, side by side in a rolling update,
    still exclude each other. The name becomes a literal, so that the lock can be taken in
    the very statement that starts a transaction (:meth:`Connection.with_begin`, a
    simple query, which takes no parameters); it may hold only the characters of ids and
    lock prefixes, so no quoting can go wrong."""
    if not _LOCK_NAME.fullmatch(name):
        raise ValueError(f"an advisory lock name holds only [A-Za-z0-9._:/-]: {name!r}")
    return f"hashtextextended('{name}', 0)"


class RolledBackOnCommit(asyncpg.InterfaceError):
    """``COMMIT`` answered ``ROLLBACK``: a statement of the transaction had failed and the
    code went on (a database error caught without a savepoint), so PostgreSQL rolled all of
    it back. Raised by the ``COMMIT`` itself, so that nothing acts as if it had been kept."""


def text_literal(value: str) -> str:
    """SQL for the text ``value``, for a statement sent with ``BEGIN``
    (:meth:`Connection.with_begin`, a simple query, which takes no parameters): written as
    the hex of its UTF-8, so that no value, a Kafka header's included, can break out of it;
    a NUL byte, which no PostgreSQL text holds, fails in the server as a parameter would."""
    return f"convert_from(decode('{value.encode('utf-8').hex()}', 'hex'), 'UTF8')"


class Connection(asyncpg.Connection):
    """A pooled connection that remembers whether events were appended on it since it was
    taken from the pool, can send a statement with the next ``BEGIN`` (a lock, an inbox
    claim), and refuses a ``COMMIT`` that rolled back (:class:`RolledBackOnCommit`)
    instead of returning as if it had committed, as asyncpg does: PostgreSQL's answer to
    it says so, no extra round trip."""

    appended = False
    _with_begin: str | None = None
    _begun: str | None = None

    def note_appended(self) -> None:
        """Events were appended on this connection (told to the relay on release)."""
        self.appended = True

    def with_begin(self, *statements: str) -> None:
        """Send ``statements`` (SQL without parameters: literals from :func:`advisory_key`
        or :func:`text_literal`) in the same simple query as the statement that starts the
        next transaction (``BEGIN``, or ``SAVEPOINT`` inside one): one round trip for
        all, the statements inside the transaction. The last one's status is
        :meth:`begun` after. The next statement on this connection must be that start."""
        self._with_begin = "; ".join(statements)

    def begun(self) -> str | None:
        """The status of the statement last sent with a transaction's start (``INSERT 0 1``)."""
        return self._begun

    async def execute(self, query: str, *args: object, timeout: float | None = None) -> str:
        """asyncpg's ``execute``; the transaction's start carries the statement asked for
        by :meth:`with_begin`, and a ``COMMIT`` answered ``ROLLBACK`` raises."""
        with_begin, self._with_begin = self._with_begin, None
        if with_begin is not None:
            if args or not query.startswith(("BEGIN", "SAVEPOINT")):
                raise asyncpg.InterfaceError(f"a statement meant to go with BEGIN met another first: {query!r}")
            query = f"{query} {with_begin};"
        status = await super().execute(query, *args, timeout=timeout)
        if with_begin is not None:
            self._begun = status
        if status == "ROLLBACK" and query.rstrip("; ").upper() == "COMMIT":
            raise RolledBackOnCommit("the transaction had failed and was rolled back at its COMMIT")
        return status


PLANNED_ONCE = "SET LOCAL plan_cache_mode = force_generic_plan"
"""The first statement of a command's or a consumed message's transaction (sent with its
``BEGIN``, :meth:`Connection.with_begin`): until it ends, a prepared statement is planned
once per connection, not again at every execution.

PostgreSQL plans a prepared statement anew each time while a plan made for the values
at hand looks cheaper than the generic one. For a statement over array parameters (the
store's appends and stream reads, ``unnest($1::text[])``) it always does: the planner
counts the elements of the values it is given, and assumes more for a parameter. The
event store's append was planned at every execution, which cost the database more than
executing it (about 160 against 200 us; 0.2 ms of database CPU per ballot). What these
transactions run is keyed (stream ids, record ids), planned alike for any value; a
listing with optional filters (``$2::text IS NULL OR ...``), read outside them, still
gets a plan for its values. ``SET LOCAL`` ends with the transaction: a pooled
connection is given back as it was."""


def shared_lock(key: str) -> str:
    """The statement taking the advisory lock ``key`` (SQL from :func:`advisory_key`)
    shared until the transaction ends; sent with the transaction's start
    (:meth:`Connection.with_begin`), every later statement's snapshot sees what the lock's
    exclusive holders committed."""
    return f"SELECT pg_advisory_xact_lock_shared({key})"


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
        if not isinstance(conn, Connection):
            return
        conn._with_begin = conn._begun = None  # a statement meant for a transaction that never started
        if conn.appended:
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


_DATABASE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)
_LISTEN_TIMEOUT_S = 5.0  # at most this long waiting for a pool connection to LISTEN on


class CommitListener:
    """LISTENs, on a connection of its own taken from the pool, to the channel the
    pool notifies after appends (:data:`yishi.db.LOG_CHANNEL`), so that an idle
    relay reads the log as soon as new events commit instead of at its next poll.

    The poll stays the fallback: a notification can be lost (the connection dropped) or
    come early (the events are held back behind an older transaction still open, see
    ``EventStore.read_log``). A connection that dropped is replaced at the next wait, and
    that wait returns at once, so that what committed while nobody listened is read.
    """

    def __init__(self, pool: asyncpg.Pool, service: str) -> None:
        self.pool = pool
        self.service = service
        self._conn: asyncpg.Connection | None = None
        self._channel: str | None = None
        self._committed = asyncio.Event()
        self._failed = False

    @property
    def listening(self) -> bool:
        """Whether its connection is open and LISTENing."""
        if self._conn is None:
            return False
        try:
            return not self._conn.is_closed()
        except asyncpg.InterfaceError:  # the pool took back a connection that closed: its session is gone
            return False

    def _notified(self, *_args: object) -> None:
        self._committed.set()

    async def listen(self, timeout: float = _LISTEN_TIMEOUT_S) -> bool:
        """LISTEN if not listening (waiting at most ``timeout`` for a pool connection);
        True when it started listening now. A failure is logged and leaves the relay
        polling."""
        if self.listening:
            return False
        await self.close()
        try:
            conn = await self.pool.acquire(timeout=timeout)
        except (OSError, asyncio.TimeoutError, *_DATABASE_ERRORS) as exc:
            return self._cannot_listen(exc)
        try:
            self._channel = await conn.fetchval(f"SELECT {LOG_CHANNEL}")
            await conn.add_listener(self._channel, self._notified)
        except BaseException as exc:
            await self._release(conn)
            if isinstance(exc, (OSError, *_DATABASE_ERRORS)):
                return self._cannot_listen(exc)
            raise
        self._conn, self._failed = conn, False
        return True

    def _cannot_listen(self, exc: BaseException) -> bool:
        if not self._failed:  # once per outage: the relay tries again at every idle wait
            log.warning("relay cannot listen for commits; polling", service=self.service, error=repr(exc))
        self._failed = True
        return False

    def clear(self) -> None:
        """Forget notifications so far: call before reading the log, so that a commit
        during the read wakes the next :meth:`wait`."""
        self._committed.clear()

    async def wait(self, stop: asyncio.Event, timeout: float) -> str | None:
        """Until a commit is notified (``"notify"``), ``timeout`` passes (``"poll"``) or
        ``stop`` is set (None); at once (``"listen"``) when it had to LISTEN again."""
        if await self.listen(min(timeout, _LISTEN_TIMEOUT_S)):
            return "listen"
        stopping = asyncio.ensure_future(stop.wait())
        committed = asyncio.ensure_future(self._committed.wait())
        try:
            await asyncio.wait((stopping, committed), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            committed.cancel()
        if stop.is_set():
            return None
        return "notify" if self._committed.is_set() else "poll"

    async def close(self) -> None:
        """Stop listening and give the connection back."""
        listening, conn, self._conn = self.listening, self._conn, None
        if conn is not None:
            if listening:
                with contextlib.suppress(OSError, *_DATABASE_ERRORS):
                    await conn.remove_listener(self._channel, self._notified)  # UNLISTEN: the pool keeps sessions
            await self._release(conn)

    async def _release(self, conn: asyncpg.Connection) -> None:
        with contextlib.suppress(OSError, *_DATABASE_ERRORS):
            await self.pool.release(conn)
