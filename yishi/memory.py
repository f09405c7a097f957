"""An event store in memory, with the semantics of :class:`yishi.store.EventStore`, for fast
tests of application handlers without PostgreSQL.

Both stores pass one contract suite (``tests/contract/test_event_store.py``). What the
PostgreSQL store guarantees, this one does the same way:

* **Transactions.** ``store.pool.acquire()`` yields a :class:`MemoryConnection` whose
  ``transaction()`` nests as asyncpg's does (a savepoint inside an open transaction).
  What is appended inside one is visible on that connection only, and kept at commit or
  dropped at rollback (a savepoint's rollback drops only its own part), as under
  PostgreSQL's read committed. Without a connection, or outside a transaction, each call
  commits at once.
* **Appends** are checked against the expected version, all or nothing. A stream version
  or event id that another open transaction has written makes the append wait for that
  transaction's end, as PostgreSQL's unique index does; then it succeeds or conflicts.
* **The log** is read in ``(tx_id, position)`` order, only below the oldest transaction
  still open: a transaction is numbered at its first append, positions at each append,
  so a transaction that commits late holds readers back instead of being skipped.
* Events carry the hash chain of their stream as the PostgreSQL store computes it.
* Advisory locks are not held (a connection here has no ``execute``): the handlers
  tested here run one command at a time.

The tamper-evidence steps (:meth:`EventStore.seal`, :meth:`EventStore.verify`) are
PostgreSQL only. SQL is not understood: a handler that writes a projection with
``conn.execute`` needs PostgreSQL. Values PostgreSQL cannot hold (a NUL in text, which the
command bus answers as ``invalid_command``) are stored here as they are.
"""

from __future__ import annotations

import asyncio
import bisect
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from yishi.clock import Clock
from yishi.store import (
    GENESIS,
    Append,
    ConcurrencyError,
    EventStore,
    LogCursor,
    Metadata,
    NewEvent,
    RecordedEvent,
    Snapshot,
    StoreError,
    VerifyReport,
    canonical_metadata,
    chain_hash,
    event_digest,
)
from yishi.tracing import trace_fields

_Key = tuple[str, Any]
"""A unique key an append takes: ``("version", (stream, version))`` or ``("event", id)``."""


class _Frame:
    """What one transaction or savepoint wrote, not yet committed."""

    def __init__(self) -> None:
        self.events: list[RecordedEvent] = []
        self.snapshots: list[Snapshot] = []
        self.keys: list[_Key] = []


class MemoryTransaction:
    """A transaction (or savepoint) on a :class:`MemoryConnection`, used as asyncpg's:
    ``async with conn.transaction():`` or ``start()``, then ``commit()`` or ``rollback()``."""

    def __init__(self, conn: "MemoryConnection") -> None:
        self._conn = conn
        self._frame: _Frame | None = None

    async def start(self) -> None:
        if self._frame is not None:
            raise StoreError("this transaction was already started")
        self._frame = self._conn._begin()

    async def commit(self) -> None:
        self._conn._end(self._frame, commit=True)

    async def rollback(self) -> None:
        self._conn._end(self._frame, commit=False)

    async def __aenter__(self) -> "MemoryTransaction":
        await self.start()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            await self.commit()
        else:
            await self.rollback()


class MemoryConnection:
    """One session on a :class:`MemoryEventStore`: its open transaction and savepoints."""

    def __init__(self, store: "MemoryEventStore") -> None:
        self._store = store
        self._frames: list[_Frame] = []
        self.tx_id: int | None = None
        """The transaction's number, taken at its first append (as PostgreSQL's xid)."""

    def transaction(self, *, isolation: str | None = None, readonly: bool = False,
                    deferrable: bool = False) -> MemoryTransaction:
        """A transaction, or a savepoint inside the open one (the options are asyncpg's,
        accepted and ignored: there is one isolation level here)."""
        return MemoryTransaction(self)

    def is_in_transaction(self) -> bool:
        return bool(self._frames)

    def note_appended(self) -> None:
        """What :func:`yishi.db.mark_appended` calls; there is no relay to wake here."""

    # -- transactions ----------------------------------------------------------

    def _begin(self) -> _Frame:
        frame = _Frame()
        self._frames.append(frame)
        return frame

    def _end(self, frame: _Frame | None, *, commit: bool) -> None:
        if frame is None or not self._frames or self._frames[-1] is not frame:
            raise StoreError("this transaction is not the innermost open one of its connection")
        self._frames.pop()
        if not commit:
            self._store._release(frame.keys)
        elif self._frames:  # a savepoint: its writes become the enclosing transaction's
            outer = self._frames[-1]
            outer.events += frame.events
            outer.snapshots += frame.snapshots
            outer.keys += frame.keys
        else:
            self._store._commit(frame)
        if not self._frames:
            self._finish()

    def _finish(self) -> None:
        if self.tx_id is not None:
            self._store._running.discard(self.tx_id)
        self.tx_id = None

    def _number(self) -> int:
        if self.tx_id is None:
            self.tx_id = self._store._next_tx()
            self._store._running.add(self.tx_id)
        return self.tx_id

    def _pending(self) -> tuple[list[RecordedEvent], list[Snapshot]]:
        events = [e for f in self._frames for e in f.events]
        return events, [s for f in self._frames for s in f.snapshots]

    def _release_all(self) -> None:
        """Given back to the pool: roll back what is open (as asyncpg does)."""
        while self._frames:
            self._end(self._frames[-1], commit=False)


class _Acquire:
    """``pool.acquire()``: an async context manager, or awaited (then ``pool.release``)."""

    def __init__(self, pool: "MemoryPool") -> None:
        self._pool = pool
        self._conn: MemoryConnection | None = None

    def __await__(self):
        async def acquired() -> MemoryConnection:
            return MemoryConnection(self._pool.store)
        return acquired().__await__()

    async def __aenter__(self) -> MemoryConnection:
        self._conn = MemoryConnection(self._pool.store)
        return self._conn

    async def __aexit__(self, *exc: Any) -> None:
        assert self._conn is not None
        await self._pool.release(self._conn)


class MemoryPool:
    """The ``pool`` of a :class:`MemoryEventStore`: a fresh connection per ``acquire()``."""

    def __init__(self, store: "MemoryEventStore") -> None:
        self.store = store

    def acquire(self) -> _Acquire:
        return _Acquire(self)

    async def release(self, conn: MemoryConnection) -> None:
        conn._release_all()

    async def close(self) -> None:
        """Nothing to close; for code that closes its pool."""


def _newer(current: Snapshot | None, candidate: Snapshot) -> Snapshot:
    """The snapshot kept of the two: the later version (an equal one does not replace)."""
    return candidate if current is None or current.version < candidate.version else current


class MemoryEventStore(EventStore):
    """The event store of one service, in memory (see the module docstring)."""

    def __init__(self, clock: Clock | None = None) -> None:
        super().__init__(MemoryPool(self), clock)
        self._streams: dict[str, list[RecordedEvent]] = {}
        self._event_ids: set[uuid.UUID] = set()
        self._log: list[RecordedEvent] = []  # committed, in (tx_id, position) order
        self._log_keys: list[tuple[int, int]] = []
        self._snapshots: dict[str, Snapshot] = {}
        self._keys: dict[_Key, MemoryConnection] = {}  # written by a transaction still open
        self._released = asyncio.Event()  # set (and replaced) whenever keys are released
        self._running: set[int] = set()
        self._tx = self._position = 0

    # -- writing ---------------------------------------------------------------

    async def append(self, stream_id: str, expected_version: int, events: Sequence[NewEvent], meta: Metadata,
                     *, conn: MemoryConnection | None = None) -> list[int]:
        """Append ``events`` to ``stream_id`` if it is at ``expected_version`` (0 = new).

        All or nothing; inside ``conn``'s transaction when one is open. Returns the global
        positions. Raises :class:`ConcurrencyError`, or :class:`StoreError` for an event
        id already stored."""
        if not events:
            return []
        if expected_version < 0:
            raise ValueError("expected_version must be >= 0")
        if conn is None:
            async with self.pool.acquire() as own:
                return await self.append(stream_id, expected_version, events, meta, conn=own)
        meta_json = canonical_metadata({**trace_fields(), **meta.to_dict(self.clock.now())}).decode()
        keys: list[_Key] = [("version", (stream_id, expected_version + 1 + i)) for i in range(len(events))]
        keys += [("event", e.event_id) for e in events]
        while True:
            stream = self._visible(stream_id, conn)
            if len(stream) != expected_version:
                raise ConcurrencyError(stream_id, expected_version)
            if len({e.event_id for e in events}) < len(events) or any(
                    e.event_id in self._event_ids or self._keys.get(("event", e.event_id)) is conn for e in events):
                raise StoreError("an event id in this batch was already stored")
            # A key another open transaction wrote: wait until it is released (that
            # transaction or savepoint ended), as a unique index does, then look again.
            if not any(self._keys.get(k, conn) is not conn for k in keys):
                break
            await self._released.wait()
        implicit = not conn.is_in_transaction()
        frame = conn._begin() if implicit else conn._frames[-1]
        tx_id = conn._number()
        previous = stream[-1].hash if stream else GENESIS
        positions = []
        for version, e in enumerate(events, expected_version + 1):
            self._position += 1
            positions.append(self._position)
            digest = event_digest(stream_id, version, e.event_id, meta.district, e.topic, e.state,
                                  meta_json.encode())
            previous = chain_hash(previous, digest)
            frame.events.append(self._recorded(self._position, tx_id, stream_id, version, e, meta.district,
                                               meta_json, previous))
        frame.keys += keys
        for k in keys:
            self._keys[k] = conn
        if implicit:
            conn._end(frame, commit=True)
        return positions

    async def append_each(self, appends: Sequence[Append], *, conn: MemoryConnection | None = None) -> list[int]:
        """Each of ``appends`` as :meth:`append` does it, all or nothing (in a savepoint of
        ``conn``'s transaction, or in a transaction of its own); the positions, in order."""
        if conn is None:
            async with self.pool.acquire() as own:
                return await self.append_each(appends, conn=own)
        async with conn.transaction():
            return [p for a in appends
                    for p in await self.append(a.stream_id, a.expected_version, a.events, a.meta, conn=conn)]

    async def save_snapshot(self, snapshot: Snapshot, *, conn: MemoryConnection | None = None) -> None:
        """Keep the newest snapshot of a stream (snapshots are a cache, not the record)."""
        if conn is not None and conn.is_in_transaction():
            conn._frames[-1].snapshots.append(snapshot)
        else:
            self._snapshots[snapshot.stream_id] = _newer(self._snapshots.get(snapshot.stream_id), snapshot)

    # -- reading ---------------------------------------------------------------

    async def read_stream(self, stream_id: str, after_version: int = 0, *,
                          conn: MemoryConnection | None = None) -> list[RecordedEvent]:
        """Events of one stream with version > ``after_version``, in order."""
        return self._visible(stream_id, conn)[after_version:]

    async def read_streams(self, stream_ids: Sequence[str], *, conn: MemoryConnection | None = None
                           ) -> dict[str, list[RecordedEvent]]:
        """Every event of each of ``stream_ids``, in order; a stream without events maps to []."""
        return {stream_id: self._visible(stream_id, conn) for stream_id in stream_ids}

    async def latest_snapshot(self, stream_id: str, *, conn: MemoryConnection | None = None) -> Snapshot | None:
        """The newest snapshot of ``stream_id`` that ``conn`` (or anyone, without it) sees."""
        found = self._snapshots.get(stream_id)
        for snapshot in conn._pending()[1] if conn is not None else ():
            if snapshot.stream_id == stream_id:
                found = _newer(found, snapshot)
        return found

    async def read_log(self, after: LogCursor = LogCursor(), limit: int = 1000,
                       conn: MemoryConnection | None = None) -> list[RecordedEvent]:
        """Up to ``limit`` committed events after ``after``, in log order, none of a
        transaction numbered at or after the oldest one still open (``conn`` is accepted
        for the signature's sake: the log shows committed events only, on any connection)."""
        horizon = min(self._running, default=None)
        start = bisect.bisect_right(self._log_keys, (after.tx_id, after.position))
        found = []
        for event in self._log[start:start + limit]:
            if horizon is not None and event.tx_id >= horizon:
                break
            found.append(event)
        return found

    iter_log = EventStore.iter_log  # the same paging over read_log

    async def head(self) -> int:
        """The highest position committed so far (0 when empty); for progress, not ordering."""
        return max((e.position for e in self._log), default=0)

    async def seal(self, limit: int = 5000) -> int:
        """PostgreSQL only: the log chain is a table there."""
        raise NotImplementedError("sealing the log needs the PostgreSQL store")

    async def verify(self, progress: Callable[..., None] | None = None) -> VerifyReport:
        """PostgreSQL only: verification reads the stored rows and the sealed chain."""
        raise NotImplementedError("verifying the log needs the PostgreSQL store")

    # -- inside ----------------------------------------------------------------

    def _visible(self, stream_id: str, conn: MemoryConnection | None) -> list[RecordedEvent]:
        """The stream as ``conn`` sees it: committed events, then its own not yet committed."""
        committed = self._streams.get(stream_id, [])
        if conn is None or not conn.is_in_transaction():
            return list(committed)
        return committed + [e for e in conn._pending()[0] if e.stream_id == stream_id]

    @staticmethod
    def _recorded(position: int, tx_id: int, stream_id: str, version: int, event: NewEvent, district: str,
                  meta_json: str, hash_: bytes) -> RecordedEvent:
        """The event as the PostgreSQL store reads it back, envelope columns included."""
        meta = orjson.loads(meta_json)
        return RecordedEvent(position, tx_id, stream_id, version, event.event_id, district, event.topic,
                             event.state, meta_json, hash_, meta["occurred_at"], meta["correlation_id"],
                             meta.get("causation_id"), meta.get("traceparent"), meta.get("tracestate"))

    def _next_tx(self) -> int:
        self._tx += 1
        return self._tx

    def _commit(self, frame: _Frame) -> None:
        for event in frame.events:
            self._streams.setdefault(event.stream_id, []).append(event)
            self._event_ids.add(event.event_id)
            key = (event.tx_id, event.position)
            i = bisect.bisect_right(self._log_keys, key)
            self._log_keys.insert(i, key)
            self._log.insert(i, event)
        for snapshot in frame.snapshots:
            self._snapshots[snapshot.stream_id] = _newer(self._snapshots.get(snapshot.stream_id), snapshot)
        self._release(frame.keys)

    def _release(self, keys: Sequence[_Key]) -> None:
        if not keys:
            return
        for k in keys:
            self._keys.pop(k, None)
        released, self._released = self._released, asyncio.Event()
        released.set()
