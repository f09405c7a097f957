"""The event store: an append-only log per service in PostgreSQL, reached with asyncpg.

Encoding (one way): each row holds what the ``eventsourcing`` mapper produces for a
domain event (``topic`` = the event class's topic, ``state`` = its transcoded JSON
bytes), plus Yishi metadata (actor, district, correlation and causation ids,
occurred-at, recorded-at) and a hash.

Guarantees:

* **Appends** to one stream are checked against an expected version in one
  statement: a stale expectation raises :class:`ConcurrencyError` and writes nothing.
* **Reading the log** follows ``(tx_id, position)`` and only returns rows whose
  transaction id is below the oldest transaction still running
  (``pg_snapshot_xmin(pg_current_snapshot())``). A transaction that holds a low
  ``position`` but commits late therefore holds readers back instead of being
  skipped, however long it stays open; writers never wait on each other.
* **Tamper evidence**: each event's hash chains to the previous event of its stream;
  the :meth:`EventStore.seal` step chains every event in log order into
  ``log_chain``, so :meth:`EventStore.verify` finds an altered, removed, inserted or
  reordered row and names its position.

(About 590 lines on purpose: the statements and the guarantees they keep are read together.)
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from yishi.clock import Clock, SystemClock
from yishi.db import mark_appended
from yishi.tlog import log as tlog
from yishi.tracing import trace_fields

GENESIS = bytes(32)

# Tables: yishi/migrations/versions (the platform's migrations).

_APPEND = """
WITH RECURSIVE
    batch AS (
        SELECT * FROM unnest($3::int[], $4::uuid[], $5::text[], $6::bytea[], $7::jsonb[], $8::bytea[])
            AS b(version, event_id, topic, state, metadata, digest)
    ),
    head AS (SELECT hash FROM events WHERE stream_id = $1 AND version = $2),
    chain(version, hash) AS (
        SELECT $2::int, COALESCE((SELECT hash FROM head), $9::bytea)
        UNION ALL
        SELECT b.version, sha256(c.hash || b.digest) FROM chain c JOIN batch b ON b.version = c.version + 1
    )
INSERT INTO events (stream_id, version, event_id, district, topic, state, metadata, hash)
SELECT $1, b.version, b.event_id, $10, b.topic, b.state, b.metadata, c.hash
FROM batch b JOIN chain c USING (version)
WHERE $2 = 0 OR EXISTS (SELECT 1 FROM head)
ORDER BY b.version
RETURNING position
"""

# The common case, one event, without the recursive chain over a batch: the same hash
# chain in a cheaper plan (about a quarter less database CPU per append).
_APPEND_ONE = """
INSERT INTO events (stream_id, version, event_id, district, topic, state, metadata, hash)
SELECT $1, $2::int + 1, $3, $4, $5, $6, $7::jsonb, sha256(prev.hash || $8::bytea)
FROM (SELECT hash FROM events WHERE stream_id = $1 AND version = $2
      UNION ALL SELECT $9::bytea WHERE $2 = 0) AS prev
RETURNING position
"""

# Several streams, one new event each, in one statement: a command's saved aggregates and
# its reply. A stream's event chains to the hash of its head at the expected version (the
# genesis for a new stream). One stream not at its expected version stops the whole batch:
# a head missing inserts no row at all, a new stream that exists violates the unique version.
_APPEND_EACH = """
WITH b AS MATERIALIZED (
    SELECT b.*, head.hash AS head_hash
    FROM unnest($1::text[], $2::int[], $3::uuid[], $4::text[], $5::text[], $6::bytea[], $7::jsonb[], $8::bytea[])
             WITH ORDINALITY AS b(stream_id, expected, event_id, district, topic, state, metadata, digest, n)
    LEFT JOIN events head ON head.stream_id = b.stream_id AND head.version = b.expected
)
INSERT INTO events (stream_id, version, event_id, district, topic, state, metadata, hash)
SELECT stream_id, expected + 1, event_id, district, topic, state, metadata, sha256(COALESCE(head_hash, $9) || digest)
FROM b
WHERE NOT EXISTS (SELECT FROM b WHERE expected > 0 AND head_hash IS NULL)
ORDER BY n
RETURNING position
"""

# In RecordedEvent's field order.
_COLUMNS = ("position, tx_id, stream_id, version, event_id, district, topic, state, metadata, hash, "
            "metadata->>'occurred_at', metadata->>'correlation_id', metadata->>'causation_id', "
            "metadata->>'traceparent', metadata->>'tracestate'")

_READ_LOG = f"""
SELECT {_COLUMNS} FROM events
WHERE (tx_id, position) > ($1::xid8, $2::bigint)
  AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY tx_id, position
LIMIT $3
"""


class StoreError(Exception):
    """Base class of event store errors."""


class ConcurrencyError(StoreError):
    """The stream is not at the expected version: someone else appended first."""

    def __init__(self, stream_id: str, expected_version: int) -> None:
        super().__init__(
            f"stream {stream_id!r} is not at expected version {expected_version}: "
            "it was changed concurrently; reload and retry"
        )
        self.stream_id = stream_id
        self.expected_version = expected_version


@dataclass(frozen=True, slots=True)
class Metadata:
    """Who did it, for which district, in reply to what, and when."""

    actor: str
    district: str
    correlation_id: str
    occurred_at: datetime
    causation_id: str | None = None
    actor_role: str | None = None
    actor_seat: str | None = None  # the council seat a council member acted from
    extra: dict[str, str] = field(default_factory=dict)

    def to_dict(self, recorded_at: datetime) -> dict[str, Any]:
        data: dict[str, Any] = {
            "actor": self.actor,
            "district": self.district,
            "correlation_id": self.correlation_id,
            "occurred_at": self.occurred_at.isoformat(),
            "recorded_at": recorded_at.isoformat(),
        }
        if self.causation_id:
            data["causation_id"] = self.causation_id
        if self.actor_role:
            data["actor_role"] = self.actor_role
        if self.actor_seat:
            data["actor_seat"] = self.actor_seat
        data.update(self.extra)
        return data


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append: what the mapper produced (topic, state) and its id."""

    topic: str
    state: bytes
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True, slots=True)
class Append:
    """One stream's part of :meth:`EventStore.append_each`: ``events`` appended to
    ``stream_id`` if it is at ``expected_version``, with ``meta``."""

    stream_id: str
    expected_version: int
    events: Sequence[NewEvent]
    meta: Metadata


@dataclass(frozen=True, slots=True)
class LogCursor:
    """A place in the log; the log is ordered by ``(tx_id, position)``."""

    tx_id: int = 0
    position: int = 0


class _Decoded:
    """:attr:`RecordedEvent.metadata`: ``metadata_json`` decoded on first read and kept in
    the instance, as ``functools.cached_property`` does but without the lock it takes on
    Python 3.11 (each event of a replay or a relay batch is read once)."""

    def __get__(self, event: Any, owner: type | None = None) -> Any:
        if event is None:
            return self
        raw = event.metadata_json
        value = event.__dict__["metadata"] = orjson.loads(raw) if isinstance(raw, str) else raw
        return value


@dataclass(frozen=True)
class RecordedEvent:
    """An event as stored.

    The metadata JSON is decoded on first use of :attr:`metadata`: the relay needs only
    the envelope fields (``occurred_at``, ``correlation_id``, ``causation_id``), which
    log reads select as columns.
    """

    position: int
    tx_id: int
    stream_id: str
    version: int
    event_id: uuid.UUID
    district: str
    topic: str
    state: bytes
    metadata_json: str | dict[str, Any]
    hash: bytes
    occurred_at: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None

    metadata = _Decoded()  # not a field: decoded from metadata_json on first read

    @property
    def cursor(self) -> LogCursor:
        return LogCursor(self.tx_id, self.position)

    def envelope_fields(self) -> tuple[str, str, str | None]:
        """``(occurred_at, correlation_id, causation_id)``, from columns when read from the log."""
        if self.occurred_at is not None:
            return self.occurred_at, self.correlation_id, self.causation_id
        meta = self.metadata
        return meta["occurred_at"], meta["correlation_id"], meta.get("causation_id")

    def trace_context(self) -> tuple[str | None, str | None]:
        """``(traceparent, tracestate)`` of the command that caused the event, if traced."""
        if self.occurred_at is not None:
            return self.traceparent, self.tracestate
        meta = self.metadata
        return meta.get("traceparent"), meta.get("tracestate")

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> "RecordedEvent":
        """The event of a row holding the fields in order (the first ten at least; the
        rest keep their defaults). Filled in without the frozen dataclass's ``__init__``,
        which sets each field through ``object.__setattr__``: half the cost, for every
        event the relay, a replay or a load reads."""
        event = object.__new__(cls)
        event.__dict__.update(zip(_FIELDS, row))
        return event


_FIELDS = tuple(f.name for f in fields(RecordedEvent))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A stored aggregate state at a stream version."""

    stream_id: str
    version: int
    topic: str
    state: bytes


@dataclass(frozen=True, slots=True)
class Problem:
    """One integrity problem found by :meth:`EventStore.verify`."""

    position: int
    reason: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Result of :meth:`EventStore.verify`."""

    events_checked: int
    sealed: int
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        return min(self.problems, key=lambda p: p.position) if self.problems else None


def _stream_of(appends: Sequence[Append], detail: str | None) -> str:
    """The stream of ``appends`` that a unique violation's ``detail`` names, else them all."""
    return next((a.stream_id for a in appends if detail and a.stream_id in detail),
                ", ".join(a.stream_id for a in appends))


def canonical_metadata(meta: dict[str, Any]) -> bytes:
    """The exact bytes of metadata that an event's digest covers."""
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_digest(
    stream_id: str, version: int, event_id: uuid.UUID, district: str, topic: str, state: bytes, meta: bytes
) -> bytes:
    """SHA-256 over an event's content, each field length-prefixed so none can bleed into another."""
    h = hashlib.sha256()
    for part in (stream_id.encode(), str(version).encode(), event_id.bytes, district.encode(), topic.encode(),
                 state, meta):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.digest()


def chain_hash(previous: bytes, digest: bytes) -> bytes:
    """The link of a hash chain: what ``sha256(previous || digest)`` computes in SQL too."""
    return hashlib.sha256(previous + digest).digest()


def seal_link(previous: bytes, event_hash: bytes, position: int) -> bytes:
    """One link of the log chain (``log_chain.chain``): the event's hash at its position."""
    return hashlib.sha256(previous + event_hash + position.to_bytes(8, "big")).digest()


class EventStore:
    """Append-only event log of one service, in the schema its pool points at."""

    def __init__(self, pool: asyncpg.Pool | None, clock: Clock | None = None) -> None:
        # A service builds its store before its pool exists; the runtime sets ``pool``
        # when the service starts.
        self.pool = pool
        self.clock = clock or SystemClock()

    # -- writing ---------------------------------------------------------------

    async def append(
        self,
        stream_id: str,
        expected_version: int,
        events: Sequence[NewEvent],
        meta: Metadata,
        *,
        conn: asyncpg.Connection | None = None,
    ) -> list[int]:
        """Append ``events`` to ``stream_id`` if it is at ``expected_version`` (0 = new).

        All or nothing, in one statement; runs inside ``conn``'s transaction when a
        connection is given. Returns the global positions. Raises :class:`ConcurrencyError`.
        """
        if not events:
            return []
        if expected_version < 0:
            raise ValueError("expected_version must be >= 0")
        # The trace of the command (or message) that caused the events, for the relay to
        # publish later as their ce_traceparent (see yishi.tracing).
        meta_dict = {**trace_fields(), **meta.to_dict(self.clock.now())}
        meta_json = canonical_metadata(meta_dict).decode()
        versions = list(range(expected_version + 1, expected_version + 1 + len(events)))
        digests = [
            event_digest(stream_id, v, e.event_id, meta.district, e.topic, e.state, meta_json.encode())
            for v, e in zip(versions, events)
        ]
        if len(events) == 1:
            e = events[0]
            sql, args = _APPEND_ONE, (stream_id, expected_version, e.event_id, meta.district, e.topic, e.state,
                                      meta_json, digests[0], GENESIS)
        else:
            sql, args = _APPEND, (stream_id, expected_version, versions, [e.event_id for e in events],
                                  [e.topic for e in events], [e.state for e in events],
                                  [meta_json] * len(events), digests, GENESIS, meta.district)
        try:
            if conn is None:
                async with self.pool.acquire() as c:
                    rows = await c.fetch(sql, *args)
                    mark_appended(c)
            else:
                rows = await conn.fetch(sql, *args)
                mark_appended(conn)
        except asyncpg.UniqueViolationError as exc:
            if "event_id" in (exc.constraint_name or ""):
                raise StoreError(f"an event id in this batch was already stored: {exc.detail}") from exc
            raise ConcurrencyError(stream_id, expected_version) from exc
        if len(rows) != len(events):
            raise ConcurrencyError(stream_id, expected_version)
        return [r["position"] for r in rows]

    async def append_each(self, appends: Sequence[Append], *, conn: asyncpg.Connection | None = None
                          ) -> list[int]:
        """Each of ``appends`` as :meth:`append` does it, all or nothing; returns the
        positions, in order. Streams given one event each, all different, go in one statement (one round
        trip for a command's aggregates and its reply), others one statement per stream,
        on one transaction. Raises :class:`ConcurrencyError` when any stream is not at its
        expected version, writing nothing."""
        appends = [a for a in appends if a.events]
        if len(appends) <= 1 or any(len(a.events) != 1 for a in appends) or \
                len({a.stream_id for a in appends}) < len(appends):
            if conn is None and len(appends) > 1:
                async with self.pool.acquire() as own, own.transaction():
                    return await self.append_each(appends, conn=own)
            return [p for a in appends for p in await self.append(a.stream_id, a.expected_version, a.events, a.meta,
                                                                  conn=conn)]
        if any(a.expected_version < 0 for a in appends):
            raise ValueError("expected_version must be >= 0")
        trace = trace_fields()
        columns: tuple[list[Any], ...] = ([], [], [], [], [], [], [], [])
        for a in appends:
            (e,) = a.events
            meta_json = canonical_metadata({**trace, **a.meta.to_dict(self.clock.now())}).decode()
            digest = event_digest(a.stream_id, a.expected_version + 1, e.event_id, a.meta.district, e.topic,
                                  e.state, meta_json.encode())
            for column, value in zip(columns, (a.stream_id, a.expected_version, e.event_id, a.meta.district,
                                               e.topic, e.state, meta_json, digest)):
                column.append(value)
        try:
            if conn is None:
                async with self.pool.acquire() as c:
                    rows = await c.fetch(_APPEND_EACH, *columns, GENESIS)
                    mark_appended(c)
            else:
                rows = await conn.fetch(_APPEND_EACH, *columns, GENESIS)
                mark_appended(conn)
        except asyncpg.UniqueViolationError as exc:
            if "event_id" in (exc.constraint_name or ""):
                raise StoreError(f"an event id in this batch was already stored: {exc.detail}") from exc
            raise ConcurrencyError(_stream_of(appends, exc.detail), 0) from exc
        if len(rows) != len(appends):  # a stream not at its expected version: nothing was inserted
            raise ConcurrencyError(", ".join(a.stream_id for a in appends), appends[0].expected_version)
        return [r["position"] for r in rows]

    async def save_snapshot(self, snapshot: Snapshot, *, conn: asyncpg.Connection | None = None) -> None:
        """Keep the newest snapshot of a stream (snapshots are a cache, not the record)."""
        sql = """
            INSERT INTO snapshots (stream_id, version, topic, state) VALUES ($1, $2, $3, $4)
            ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version, topic = EXCLUDED.topic,
                state = EXCLUDED.state WHERE snapshots.version < EXCLUDED.version
        """
        args = (snapshot.stream_id, snapshot.version, snapshot.topic, snapshot.state)
        if conn is None:
            await self.pool.execute(sql, *args)
        else:
            await conn.execute(sql, *args)

    # -- reading ---------------------------------------------------------------

    async def read_stream(
        self, stream_id: str, after_version: int = 0, *, conn: asyncpg.Connection | None = None
    ) -> list[RecordedEvent]:
        """Events of one stream with version > ``after_version``, in order."""
        sql = f"SELECT {_COLUMNS} FROM events WHERE stream_id = $1 AND version > $2 ORDER BY version"
        rows = await (conn or self.pool).fetch(sql, stream_id, after_version)
        return [RecordedEvent.from_row(r) for r in rows]

    async def read_streams(
        self, stream_ids: Sequence[str], *, conn: asyncpg.Connection | None = None
    ) -> dict[str, list[RecordedEvent]]:
        """Every event of each of ``stream_ids``, in order, in one statement (one round trip
        for a command that needs several aggregates); a stream without events maps to []."""
        rows = await (conn or self.pool).fetch(
            f"SELECT {_COLUMNS} FROM events WHERE stream_id = ANY($1::text[]) ORDER BY stream_id, version",
            list(stream_ids))
        found: dict[str, list[RecordedEvent]] = {stream_id: [] for stream_id in stream_ids}
        for r in rows:
            found[r["stream_id"]].append(RecordedEvent.from_row(r))
        return found

    async def latest_snapshot(self, stream_id: str, *, conn: asyncpg.Connection | None = None) -> Snapshot | None:
        row = await (conn or self.pool).fetchrow(
            "SELECT stream_id, version, topic, state FROM snapshots WHERE stream_id = $1", stream_id
        )
        return Snapshot(**dict(row)) if row else None

    async def read_log(self, after: LogCursor = LogCursor(), limit: int = 1000,
                       conn: asyncpg.Connection | None = None) -> list[RecordedEvent]:
        """Up to ``limit`` committed events after ``after``, in log order, never skipping one
        whose transaction is still open (see the module docstring). Over ``conn`` if given
        (the relay reads over the session holding its lock), else over the pool."""
        rows = await (conn or self.pool).fetch(_READ_LOG, after.tx_id, after.position, limit)
        return [RecordedEvent.from_row(r) for r in rows]

    async def iter_log(self, after: LogCursor = LogCursor(), batch: int = 5000) -> AsyncIterator[RecordedEvent]:
        """Every event currently readable after ``after``, in log order."""
        while True:
            events = await self.read_log(after, batch)
            for e in events:
                yield e
            if len(events) < batch:
                return
            after = events[-1].cursor

    async def head(self) -> int:
        """The highest position written so far (0 when empty); for progress, not ordering."""
        return await self.pool.fetchval("SELECT COALESCE(max(position), 0) FROM events")

    # -- tamper evidence -------------------------------------------------------

    async def seal(self, limit: int = 5000) -> int:
        """Chain the next readable events, in log order, into ``log_chain``, and append them
        to the Merkle log (:mod:`yishi.tlog.log`) in the same transaction.

        Single writer by an advisory lock; returns how many events were sealed.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock(hashtext('yishi.seal.' || current_schema()))"):
                return 0
            last = await conn.fetchrow(
                "SELECT seq, position, tx_id, chain FROM log_chain ORDER BY seq DESC LIMIT 1"
            )
            seq, cursor, prev = (
                (last["seq"], LogCursor(last["tx_id"], last["position"]), last["chain"]) if last
                else (0, LogCursor(), GENESIS)
            )
            tree_size = await tlog.size(conn)
            if tree_size < seq:  # a log sealed before the Merkle log existed: its tree first
                return await tlog.catch_up(conn, tree_size, seq, limit)
            if tree_size > seq:  # the chain was cut back: signed checkpoints keep what was
                tree_size = await tlog.truncate(conn, seq)
            rows = await conn.fetch(_READ_LOG, cursor.tx_id, cursor.position, limit)
            records, leaves = [], []
            for r in rows:
                seq += 1
                prev = seal_link(prev, r["hash"], r["position"])
                records.append((seq, r["position"], r["tx_id"], prev))
                leaves.append(tlog.leaf_hash(r["position"], r["stream_id"], r["version"], r["hash"]))
            if records:
                await conn.executemany(
                    "INSERT INTO log_chain (seq, position, tx_id, chain) VALUES ($1, $2, $3::xid8, $4)",
                    records,
                )
                await tlog.extend(conn, tree_size, leaves)
            return len(records)

    async def verify(self, progress: Callable[..., None] | None = None) -> VerifyReport:
        """Recompute every stream chain and the sealed log chain; report every problem.
        ``progress(0, total)`` is told how many rows there are to check (events plus
        sealed links), then ``progress(n)`` as each n are checked."""
        problems: list[Problem] = []
        checked = 0
        tick = progress or (lambda n, total=None: None)
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            if progress is not None:
                tick(0, await conn.fetchval("SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM log_chain)"))
            stream, expected_version, prev = None, 0, GENESIS
            async for r in conn.cursor(
                "SELECT position, stream_id, version, event_id, district, topic, state, metadata, hash "
                "FROM events ORDER BY stream_id, version", prefetch=5000
            ):
                checked += 1
                if checked % 1000 == 0:
                    tick(1000)
                if r["stream_id"] != stream:
                    stream, expected_version, prev = r["stream_id"], 0, GENESIS
                expected_version += 1
                if r["version"] != expected_version:
                    problems.append(Problem(r["position"], f"stream {stream!r} jumps from version "
                                            f"{expected_version - 1} to {r['version']}: an event is missing"))
                    expected_version = r["version"]
                meta = json.loads(r["metadata"]) if isinstance(r["metadata"], str) else r["metadata"]
                digest = event_digest(r["stream_id"], r["version"], r["event_id"], r["district"], r["topic"],
                                      r["state"], canonical_metadata(meta))
                link = chain_hash(prev, digest)
                if link != r["hash"]:
                    problems.append(Problem(r["position"], f"event {stream!r} v{r['version']} does not match "
                                            "its hash: content altered or events reordered"))
                prev = r["hash"]

            sealed = removed = 0
            prev = GENESIS
            async for r in conn.cursor(
                "SELECT c.seq, c.position, c.chain, e.hash, e.log_rank FROM log_chain c LEFT JOIN "
                "(SELECT position, hash, row_number() OVER (ORDER BY tx_id, position) AS log_rank FROM events) e "
                "USING (position) ORDER BY c.seq", prefetch=5000
            ):
                sealed += 1
                if sealed % 1000 == 0:
                    tick(1000)
                if r["hash"] is None:
                    removed += 1
                    problems.append(Problem(r["position"], f"sealed event at position {r['position']} "
                                            f"(log seq {r['seq']}) was removed"))
                    prev = r["chain"]
                    continue
                if r["log_rank"] != r["seq"] - removed:
                    problems.append(Problem(r["position"], f"event at position {r['position']} is no longer "
                                            f"at its sealed place (log seq {r['seq']}): the log was reordered"))
                prev = seal_link(prev, r["hash"], r["position"])
                if prev != r["chain"]:
                    problems.append(Problem(r["position"], f"log chain broken at seq {r['seq']}: "
                                            "an event was altered, reordered or the chain rewritten"))
                    prev = r["chain"]
            tick(checked % 1000 + sealed % 1000)
            last = await conn.fetchrow("SELECT tx_id, position FROM log_chain ORDER BY seq DESC LIMIT 1")
            if last is not None:
                rows = await conn.fetch(
                    "SELECT e.position FROM events e LEFT JOIN log_chain c ON c.position = e.position "
                    "WHERE c.position IS NULL AND (e.tx_id, e.position) <= ($1::xid8, $2::bigint)",
                    last["tx_id"], last["position"],
                )
                problems.extend(Problem(r["position"], f"event at position {r['position']} was inserted "
                                        "into the sealed part of the log") for r in rows)
        return VerifyReport(events_checked=checked, sealed=sealed, problems=sorted(problems, key=lambda p: p.position))
