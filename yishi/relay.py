"""The outbox relay: publishes a service's stored events to Kafka in log order.

The store is the outbox. The relay reads the log after its stored cursor, translates
each domain event to its public form (or skips private ones), sends the batch with
``acks=all`` to ``{district}.{service}.events`` keyed by stream id, waits for every
acknowledgement and only then stores the new cursor. A crash at any point therefore
re-sends at most the last unconfirmed batch (at-least-once; consumers de-duplicate by
``ce_id``) and never skips an event. Broker failures are retried with backoff and a
fresh producer, forever: the relay recovers by itself.

An idle relay waits for the notification that events were appended (LISTEN on a
connection of its own, :class:`yishi.db.CommitListener`; sent once the appending connection is
back in the pool, see :mod:`yishi.db`), and polls the log as a fallback.

One relay per service publishes; others (replicas) stand by. The publisher holds a
session advisory lock and is fenced, so that one whose lock session died (terminated,
timed out, its connection cut) stops publishing instead of racing its successor:

- a relay that takes the lock first waits the *takeover grace*, so that a predecessor
  whose session just died can finish the batch it has in flight and store its cursor;
  then it bumps the cursor row's ``epoch`` (its fencing token) and reads the cursor;
- each batch's log read goes over the lock session: a relay whose session is gone fails
  its next read, drops its producer and stands by;
- the cursor write carries the token (``WHERE epoch = ...``): a relay whose epoch was
  bumped cannot move the cursor (:class:`RelayFenced`) and stands by;
- a batch (read, send, acknowledgements, storing the previous cursor) is bounded to half
  the grace, so the grace covers the batch in flight when the lock changes hands.

What is left: a relay paused longer than the grace between its read and its send (a
stopped process, a VM frozen) still sends that one batch after its successor took over,
and the successor sends it again. That is the at-least-once case above: consumers
de-duplicate by ``ce_id``. The cursor itself never goes back nor skips.

(Over 500 lines on purpose: the lock, the fencing, the read-ahead and the send loop are one
mechanism whose correctness is the argument above; the parts that stand alone live in
:mod:`yishi.db` (the commit signal) and :mod:`yishi.translation`.)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg
import structlog
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import Counter, Gauge, Histogram

from contracts.envelope import Envelope, binary_headers, rfc3339_text
from yishi.failures import RetryPolicy, Retrying, retried, sleep_or_stop
from yishi.kafka import ensure_topics, new_producer, supports_idempotence
from yishi.names import events_topic, source
from yishi.db import CommitListener
from yishi.store import EventStore, LogCursor, RecordedEvent

log = structlog.get_logger("yishi.relay")
_PARTITIONER = DefaultPartitioner()
# Advisory locks span the whole database, where several services may keep their schemas:
# one relay per schema and name.
_LOCK_KEY = "hashtext('yishi.relay.' || current_schema() || '.' || $1)"

# Table relay_position: yishi/migrations/versions.

PUBLISHED = Counter("yishi_relay_published_total", "Events published by the relay", ["service"])
SKIPPED = Counter("yishi_relay_skipped_total", "Private events the relay did not publish", ["service"])
FAILURES = Counter("yishi_relay_failures_total", "Failed publish attempts (retried)", ["service"])
LOST = Counter("yishi_relay_lost_lock_total", "Times the relay stopped publishing: its lock session died "
               "or another relay fenced it", ["service"])
LAST_POSITION = Gauge("yishi_relay_position", "Log position of the last published event", ["service"])
LAG_EVENTS = Gauge("yishi_relay_lag_events", "Committed events after the relay's stored cursor: not yet confirmed "
                   "by the broker (counted up to a million)", ["service"])
LAG_SECONDS = Gauge("yishi_relay_lag_seconds", "Age of the oldest event after the relay's stored cursor "
                    "(0 when the relay has caught up)", ["service"])
WAKEUPS = Counter("yishi_relay_wakeups_total", "Times the idle relay read the log again: notified of a commit "
                  "(LISTEN/NOTIFY) or at the end of its poll interval", ["service", "by"])
PUBLISH_SECONDS = Histogram("yishi_relay_publish_seconds", "Time from sending a batch to the broker until it "
                            "acknowledged every message of it", ["service"],
                            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))

# The relay's lag: events after its stored cursor (a million at most, so that a long
# outage does not make the count itself slow) and the recorded-at of the first of them.
_LAG = """
WITH cursor AS (
    SELECT COALESCE((SELECT tx_id FROM relay_position WHERE name = $1), '0'::xid8) AS tx_id,
           COALESCE((SELECT position FROM relay_position WHERE name = $1), 0) AS position
)
SELECT (SELECT count(*) FROM (SELECT 1 FROM events e, cursor c WHERE (e.tx_id, e.position) > (c.tx_id, c.position)
                              LIMIT 1000000) AS behind) AS events,
       (SELECT (e.metadata->>'recorded_at')::timestamptz FROM events e, cursor c
        WHERE (e.tx_id, e.position) > (c.tx_id, c.position) ORDER BY e.tx_id, e.position LIMIT 1) AS oldest
"""


class BrokerLostData(KafkaError):
    """The broker acknowledged offsets lower than ones it acknowledged before."""


class RelayFenced(Exception):
    """Another relay claimed the cursor (bumped its epoch): this one must not move it."""


# What ends a relay's turn (it stands by and tries the lock again). asyncpg raises
# InternalClientError ("another operation is in progress") when a query meets a session
# whose backend was just terminated.
_DATABASE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)
_LOST = (RelayFenced, *_DATABASE_ERRORS, OSError)
_BUILD_SLICE = 250  # events translated between two turns of the event loop (see Relay._prepare)


@dataclass(frozen=True, slots=True)
class Publication:
    """The public form of a stored event: type name, schema version, JSON body, the
    topic when it is not the service's events topic (replies), and the subject (Kafka
    key) when the public id differs from the stream id. One stream must map to one
    subject, so that its events stay in order."""

    type: str
    schema_version: int
    data: bytes
    topic: str | None = None
    subject: str | None = None


Translator = Callable[[RecordedEvent], Publication | None]


class _Batch(NamedTuple):
    """Events read from the log, and the messages of the public ones.

    The messages are held as the producer's closed record batches (:class:`_Records`) for
    topics whose partitions were known when the batch was built, else (``pending``) as
    ``(topic, (key, headers, value))`` until :meth:`Relay._publish` knows them: a message
    held as itself is a dozen objects for the garbage collector (headers list and tuples),
    a record batch's bytes none, and a batch read ahead is held for a whole send."""

    events: list[RecordedEvent]
    records: "_Records | None"
    pending: list[tuple[str, tuple[bytes, list, bytes]]]
    published: int


class _Records:
    """Public messages encoded into the producer's record batches, per topic and partition.

    Partitions are chosen exactly as aiokafka's default partitioner does (murmur2 of the
    key, hashed once per key), over the partitions each topic had when the batch was
    built (:attr:`partitions`); a partition's messages stay in the order they were added,
    across record batches when one fills."""

    def __init__(self, create_batch: Callable[[], Any], partitions: dict[str, list[int]]) -> None:
        self.create_batch = create_batch
        self.partitions = partitions
        self.batches: dict[tuple[str, int], list] = {}
        self._chosen: dict[tuple[str, bytes], int] = {}

    def add(self, topic: str, key: bytes, headers: list, value: bytes) -> None:
        partition = self._chosen.get((topic, key))
        if partition is None:
            every = self.partitions[topic]
            partition = self._chosen[(topic, key)] = _PARTITIONER(key, every, every)
        batches = self.batches.get((topic, partition))
        if batches is None:
            batches = self.batches[(topic, partition)] = [self.create_batch()]
        if batches[-1].append(key=key, value=value, timestamp=None, headers=headers) is None:  # full: closed
            batches.append(self.create_batch())
            if batches[-1].append(key=key, value=value, timestamp=None, headers=headers) is None:
                raise ValueError(f"event {key!r} is larger than a producer batch")

    def topics(self) -> set[str]:
        """The topics of the messages added."""
        return {topic for topic, _ in self.batches}

    def closed(self) -> list[tuple[str, int, Any]]:
        """Every record batch, closed, round by round: each partition's first, then each
        one's second... (a partition's next batch waits until its previous one is
        acknowledged, and must not hold up another partition's first)."""
        rounds = max((len(b) for b in self.batches.values()), default=0)
        out = []
        for n in range(rounds):
            for (topic, partition), batches in self.batches.items():
                if n < len(batches):
                    batches[n].close()
                    out.append((topic, partition, batches[n]))
        return out


@dataclass(frozen=True, slots=True)
class _ReadAhead:
    """The next batch, being read (over ``conn``) and built since ``started`` (loop time)."""

    cursor: LogCursor
    conn: Any
    started: float
    task: asyncio.Task


async def _drop_read_ahead(ahead: _ReadAhead | None) -> None:
    """Wait for a batch read ahead that will not be sent, and drop it (and its error)."""
    if ahead is not None:
        await asyncio.wait([ahead.task])
        if not ahead.task.cancelled():
            ahead.task.exception()

_CLASS_VERSION = re.compile(rb'"class_version":(\d+)')


def passthrough(event: RecordedEvent) -> Publication:
    """Publish the stored state as it is, typed by the event class name.

    For infrastructure tests and benchmarks; services install a translator to their
    public contracts instead, so domain events stay private.
    """
    match = _CLASS_VERSION.search(event.state)
    return Publication(_type_name(event.topic), int(match.group(1)) if match else 1, event.state)


@functools.lru_cache(maxsize=1024)
def _type_name(topic: str) -> str:
    """The event class name of a stored topic (``module:Class.Event`` → ``Event``)."""
    return topic.rsplit(":", 1)[-1].rsplit(".", 1)[-1]


def to_envelope(event: RecordedEvent, service: str, publication: Publication) -> Envelope:
    """The CloudEvent for a stored event: id = event id, subject = stream id (or the public id)."""
    occurred_at, correlation_id, causation_id = event.envelope_fields()
    trace_context = zip(("traceparent", "tracestate"), event.trace_context())
    return Envelope(
        id=str(event.event_id),
        source=source(event.district, service),
        type=publication.type,
        subject=publication.subject or event.stream_id,
        time=datetime.fromisoformat(occurred_at),
        district=event.district,
        correlation_id=correlation_id,
        causation_id=causation_id,
        schema_version=publication.schema_version,
        data=publication.data,
        extra={name: value for name, value in trace_context if value},
    )


def kafka_message(event: RecordedEvent, service: str, publication: Publication) -> tuple[bytes, list, bytes]:
    """What :func:`to_envelope` then ``to_kafka`` give, without the round trip through a
    datetime: ``(key, headers, value)``. The relay's hot path."""
    occurred_at, correlation_id, causation_id = event.envelope_fields()
    traceparent, tracestate = event.trace_context()
    subject = publication.subject or event.stream_id
    headers = binary_headers(
        id=str(event.event_id), source=source(event.district, service), type=publication.type, subject=subject,
        time=rfc3339_text(occurred_at), district=event.district, correlation_id=correlation_id,
        schema_version=publication.schema_version, causation_id=causation_id,
        traceparent=traceparent, tracestate=tracestate,
    )
    return subject.encode(), headers, publication.data


class Relay:
    """Publishes one service's log to Kafka; run one per service (an advisory lock
    keeps a second instance idle until the first dies, and fencing stops the first once
    the second took over; see the module docstring).

    ``takeover_grace`` is how long a relay that takes the lock waits before it claims the
    cursor; each batch must be published within half of it (or is retried).
    """

    def __init__(
        self,
        store: EventStore,
        bootstrap: str,
        service: str,
        translate: Translator = passthrough,
        *,
        name: str = "kafka",
        batch_size: int = 500,
        idle_wait: float = 0.5,
        max_backoff: float = 5.0,
        kafka_options: dict | None = None,
        takeover_grace: float = 5.0,
    ) -> None:
        self.store = store
        self.bootstrap = bootstrap
        self.service = service
        self.translate = translate
        self.name = name
        self.batch_size = batch_size
        self.idle_wait = idle_wait
        self.max_backoff = max_backoff
        self.kafka_options = kafka_options or {}
        self.takeover_grace = takeover_grace
        self.batch_timeout = takeover_grace / 2
        self.active = False  # holds the lock and has claimed the cursor
        self.losses = 0  # times it stopped publishing: lock session lost or fenced
        self._epoch: int | None = None
        self._producer = None
        self.idempotent: bool | None = None  # asked of the broker on first connection
        self._topics: set[str] = set()
        self._partitions: dict[str, list[int]] = {}  # of each topic, for the producer's metadata
        self._offsets: dict = {}
        self._saving: asyncio.Task | None = None
        self._ahead: _ReadAhead | None = None  # the next batch, read while the broker acknowledges one
        self._commits: CommitListener | None = None  # while publishing
        # How the idle relay came to read the log again (see _idle).
        self.wakeups = {"notify": 0, "poll": 0, "listen": 0}

    @property
    def listening(self) -> bool:
        """Whether the relay is LISTENing for commits (it polls meanwhile either way)."""
        return self._commits is not None and self._commits.listening

    async def position(self) -> LogCursor:
        """The cursor after the last event confirmed by the broker."""
        row = await self.store.pool.fetchrow(
            "SELECT tx_id, position FROM relay_position WHERE name = $1", self.name
        )
        return LogCursor(row["tx_id"], row["position"]) if row else LogCursor()

    async def measure_lag(self) -> tuple[int, float]:
        """(events after the stored cursor, age in seconds of the first of them by the
        store's clock); sets ``yishi_relay_lag_events`` and ``yishi_relay_lag_seconds``.
        Any replica can measure: the cursor is in the database."""
        row = await self.store.pool.fetchrow(_LAG, self.name)
        events = row["events"]
        age = max(0.0, (self.store.clock.now() - row["oldest"]).total_seconds()) if row["oldest"] else 0.0
        LAG_EVENTS.labels(self.service).set(events)
        LAG_SECONDS.labels(self.service).set(age)
        return events, age

    async def claim(self, conn: asyncpg.Connection | None = None) -> LogCursor:
        """Take the cursor over: bump its epoch, fencing off every relay that claimed it
        before, and return the stored cursor. :meth:`run` claims after the takeover grace;
        :meth:`publish_batch` claims if this relay has not."""
        row = await (conn or self.store.pool).fetchrow(
            """
            INSERT INTO relay_position (name, tx_id, position, epoch) VALUES ($1, '0'::xid8, 0, 1)
            ON CONFLICT (name) DO UPDATE SET epoch = relay_position.epoch + 1
            RETURNING epoch, tx_id, position
            """,
            self.name,
        )
        self._epoch = row["epoch"]
        return LogCursor(row["tx_id"], row["position"])

    async def _save_position(self, cursor: LogCursor, epoch: int) -> None:
        status = await self.store.pool.execute(
            """
            UPDATE relay_position SET tx_id = $2::xid8, position = $3, updated_at = now()
            WHERE name = $1 AND epoch = $4
            """,
            self.name, cursor.tx_id, cursor.position, epoch,
        )
        if status != "UPDATE 1":
            raise RelayFenced(f"relay {self.name!r} of {self.service} was fenced: its epoch {epoch} is not current")

    async def flush(self) -> None:
        """Wait until the last confirmed position is stored."""
        saving, self._saving = self._saving, None
        if saving is not None:
            await saving

    async def _ensure_producer(self):
        if self._producer is None:
            if self.idempotent is None:
                self.idempotent = await supports_idempotence(self.bootstrap, **self.kafka_options)
                log.info("relay producer", service=self.service, idempotent=self.idempotent)
            producer = new_producer(self.bootstrap, client_id=f"yishi-relay-{self.service}",
                                    idempotent=self.idempotent, **self.kafka_options)
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _producer_and_topics(self, topics: set[str]):
        """The started producer, once ``topics`` exist: a new producer is started while
        the topics are checked, not after (each is a connection to the broker and a
        round trip or two, paid when the relay starts and after every failure)."""
        new_topics = topics - self._topics
        if not new_topics:
            return await self._ensure_producer()
        producer, created = await asyncio.gather(
            self._ensure_producer(), ensure_topics(self.bootstrap, new_topics, **self.kafka_options),
            return_exceptions=True)
        for outcome in (producer, created):
            if isinstance(outcome, BaseException):
                raise outcome
        self._topics |= new_topics
        return producer

    async def _drop_producer(self) -> None:
        """Close the producer, and drop the batch read ahead (its read is waited for)."""
        ahead, self._ahead = self._ahead, None
        await _drop_read_ahead(ahead)
        producer, self._producer = self._producer, None
        self._topics.clear()  # a restarted broker may have lost them
        self._partitions.clear()
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), 5)
            except (KafkaError, asyncio.TimeoutError, OSError):
                pass

    def _check_offsets(self, acks) -> None:
        """Raise :class:`BrokerLostData` when a partition's offsets went backwards.

        That only happens when the broker lost acknowledged messages (an unclean leader
        election, or a memory-only broker restarted) and may then be acknowledging
        writes to partitions that no longer exist. Failing the batch makes the relay
        recreate its producer and topics and publish the batch again.
        """
        regressed = []
        for ack in acks:
            last = self._offsets.get(ack.topic_partition)
            if last is not None and ack.offset <= last:
                regressed.append((ack.topic_partition, last, ack.offset))
            self._offsets[ack.topic_partition] = ack.offset
        if regressed:
            for tp, _, _ in regressed:
                self._offsets = {k: v for k, v in self._offsets.items() if k.topic != tp.topic}
            raise BrokerLostData(", ".join(f"{tp.topic}[{tp.partition}] offset {old} -> {new}"
                                           for tp, old, new in regressed))

    async def _send(self, producer, batch: _Batch) -> list:
        """Send a batch's record batches; return their acknowledgements.

        Handing the producer whole record batches rather than calling ``send`` per message
        cuts the relay's CPU per event by half or more; a partition's batches are handed
        over in order, so each key's events stay in order.
        """
        futures = [await producer.send_batch(records, topic, partition=partition)
                   for topic, partition, records in batch.records.closed()]
        return await asyncio.gather(*futures)

    async def _partitions_of(self, producer, topics) -> dict[str, list[int]]:
        """The partitions of ``topics`` as the producer's metadata has them now."""
        return {topic: sorted(await producer.partitions_for(topic)) for topic in topics}

    def _encode(self, batch: _Batch, producer, partitions: dict[str, list[int]]) -> _Batch:
        """``batch`` with its pending messages encoded into its record batches."""
        records = batch.records or _Records(producer.create_batch, {})
        records.partitions.update(partitions)
        for topic, (key, headers, value) in batch.pending:
            records.add(topic, key, headers, value)
        return batch._replace(records=records, pending=[])

    async def publish_batch(self, cursor: LogCursor, conn: asyncpg.Connection | None = None) -> tuple[int, LogCursor]:
        """Publish the next batch after ``cursor``, reading it over ``conn`` (the lock
        session) if given; return (events read, new cursor).

        The new cursor is stored only after the broker acknowledged every message, and
        only if no other relay claimed it since (else :class:`RelayFenced`, here or from
        :meth:`flush`). Everything up to storing the cursor takes at most
        ``batch_timeout`` (else :class:`TimeoutError`).
        """
        if self._epoch is None:
            await self.claim(conn)
        epoch = self._epoch
        ahead = await self._take_read_ahead(cursor, conn)
        # A batch read ahead counts its time from its read: read to stored cursor stays
        # within batch_timeout, which the takeover grace relies on.
        started = ahead.started if ahead is not None else asyncio.get_running_loop().time()
        async with asyncio.timeout_at(started + self.batch_timeout):
            events = await self._publish(cursor, conn, ahead)
        if not events:
            return 0, cursor
        new_cursor = events[-1].cursor
        # Saved while the next batch is read and sent: the commit's disk sync overlaps
        # useful work. Safe because the position only limits re-sending after a crash.
        self._saving = asyncio.create_task(self._save_position(new_cursor, epoch))
        LAST_POSITION.labels(self.service).set(events[-1].position)
        return len(events), new_cursor

    async def _prepare(self, cursor: LogCursor, conn: asyncpg.Connection | None) -> _Batch:
        """Read the batch after ``cursor`` and build its messages: encoded into record
        batches at once where the producer is started and knows the topic's partitions
        (a batch read ahead), else left pending for :meth:`_publish`.

        A batch read ahead is built while the producer sends the one before on the same
        event loop: building pauses every ``_BUILD_SLICE`` events so that the producer's
        sender is never held up for a whole batch's translation."""
        events = await self.store.read_log(cursor, self.batch_size, conn)
        producer, known = self._producer, dict(self._partitions)
        records = _Records(producer.create_batch, known) if producer is not None and known else None
        pending = []
        published = 0
        for n, event in enumerate(events, 1):
            if n % _BUILD_SLICE == 0:
                await asyncio.sleep(0)
            publication = self.translate(event)
            if publication is not None:
                published += 1
                topic = publication.topic or events_topic(event.district, self.service)
                if records is not None and topic in known:
                    records.add(topic, *kafka_message(event, self.service, publication))
                else:
                    pending.append((topic, kafka_message(event, self.service, publication)))
        return _Batch(events, records, pending, published)

    async def _take_read_ahead(self, cursor: LogCursor, conn: asyncpg.Connection | None) -> _ReadAhead | None:
        """The batch read ahead if it starts at ``cursor`` (over ``conn``) and is at most
        half a ``batch_timeout`` old, so that at least that much of its time is left to
        send it: one read from elsewhere (the batch before it failed and is sent again),
        or behind a slow acknowledgement, is waited for and dropped (and read again)."""
        ahead, self._ahead = self._ahead, None
        if (ahead is not None and ahead.cursor == cursor and ahead.conn is conn
                and asyncio.get_running_loop().time() - ahead.started <= self.batch_timeout / 2):
            return ahead
        await _drop_read_ahead(ahead)
        return None

    async def _publish(self, cursor: LogCursor, conn: asyncpg.Connection | None,
                       ahead: _ReadAhead | None = None) -> list[RecordedEvent]:
        """Read (unless read ahead), send and confirm the batch after ``cursor``, then
        wait for the previous batch's cursor to be stored; return the events read.

        When the batch is full, the next one is read and built while the broker
        acknowledges this one (it is sent only after): the database read and the
        translation no longer add to each batch's time.
        """
        batch = await (ahead.task if ahead is not None else self._prepare(cursor, conn))
        events = batch.events
        if not events:
            await self.flush()
            return events
        if len(events) == self.batch_size:
            after = events[-1].cursor
            self._ahead = _ReadAhead(after, conn, asyncio.get_running_loop().time(),
                                     asyncio.create_task(self._prepare(after, conn)))
        if batch.published:
            while True:
                topics = {t for t, _ in batch.pending} | (batch.records.topics() if batch.records else set())
                producer = await self._producer_and_topics(topics)
                partitions = await self._partitions_of(producer, topics)
                self._partitions.update(partitions)
                if batch.records is None or all(partitions[t] == batch.records.partitions[t]
                                                for t in batch.records.topics()):
                    break
                # Built ahead over partitions that changed since: read and built again (the
                # same events, and any committed since if the batch was not full). The read
                # ahead of the next batch goes first: it would read over the same
                # connection at the same time (one query at a time), and after this read
                # it would not start where the next batch does anyway.
                ahead, self._ahead = self._ahead, None
                await _drop_read_ahead(ahead)
                batch = await self._prepare(cursor, conn)
                events = batch.events
            batch = self._encode(batch, producer, partitions)
            with PUBLISH_SECONDS.labels(self.service).time():
                acks = await self._send(producer, batch)
            self._check_offsets(acks)
        SKIPPED.labels(self.service).inc(len(events) - batch.published)
        PUBLISHED.labels(self.service).inc(batch.published)
        await self.flush()
        return events

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Relay until ``stop`` is set, surviving broker and database outages; stand by
        while another relay holds the lock, and after losing it."""
        stop = stop or asyncio.Event()
        try:
            while not stop.is_set():
                await retried(lambda: self._run_holding_lock(stop), stop, lambda _: 1.0,
                              retry=lambda exc: isinstance(exc, _LOST), before_sleep=self._lost)
        finally:
            self.active = False
            await self._drop_producer()

    async def _lost(self, failed: Retrying) -> None:
        error = repr(failed.exception)
        lost, self.active = self.active, False
        if lost:
            self.losses += 1
            LOST.labels(self.service).inc()
            log.warning("relay lost its lock; standing by", service=self.service, error=error)
            await self._drop_producer()
        else:
            log.warning("relay lost the database; retrying", service=self.service, error=error)

    async def _run_holding_lock(self, stop: asyncio.Event) -> None:
        # The pool does not reset connections on release (see yishi.db), so this session
        # lock is released explicitly below; when relaying failed the session is closed
        # instead, which releases it too (it may be in no state to run the unlock).
        async with self.store.pool.acquire() as lock_conn:
            if not await lock_conn.fetchval(f"SELECT pg_try_advisory_lock({_LOCK_KEY})", self.name):
                await sleep_or_stop(stop, 1.0)  # another instance relays; stand by
                return
            self._commits = CommitListener(self.store.pool, self.service)
            try:
                await self._relay_under_lock(lock_conn, stop)
            except BaseException:
                with contextlib.suppress(asyncpg.InterfaceError):  # already closed and detached
                    lock_conn.terminate()
                raise
            finally:
                ahead, self._ahead = self._ahead, None
                await _drop_read_ahead(ahead)  # its read must end before the session is unlocked or closed
                commits, self._commits = self._commits, None
                await commits.close()
                await self.flush()
            await lock_conn.execute(f"SELECT pg_advisory_unlock({_LOCK_KEY})", self.name)

    async def _relay_under_lock(self, lock_conn: asyncpg.Connection, stop: asyncio.Event) -> None:
        cursor = await self._take_over(lock_conn, stop)
        if cursor is None:
            return
        self.active = True
        if self._commits is not None:
            await self._commits.listen()  # before the first read: no commit after it goes unnoticed
        log.info("relay started", service=self.service, tx_id=cursor.tx_id, position=cursor.position,
                 epoch=self._epoch, listening=self.listening)
        backoff = RetryPolicy(backoff_initial=0.1, backoff_max=self.max_backoff).transient_delay
        while not stop.is_set():
            if self._commits is not None:
                self._commits.clear()
            batch = await retried(lambda: self.publish_batch(cursor, lock_conn), stop, backoff,
                                  retry=lambda exc: isinstance(exc, (KafkaError, asyncio.TimeoutError)),
                                  before_sleep=self._publish_failed)
            if batch is None:
                return
            count, cursor = batch
            if count < self.batch_size:
                await self._idle(stop)

    async def _idle(self, stop: asyncio.Event) -> None:
        """Wait for more events: until the store notifies a commit, else for the poll
        interval (``idle_wait``); counted in :attr:`wakeups` and ``yishi_relay_wakeups_total``."""
        if self._commits is None:
            await sleep_or_stop(stop, self.idle_wait)
            by = None if stop.is_set() else "poll"
        else:
            by = await self._commits.wait(stop, self.idle_wait)
        if by is not None:
            self.wakeups[by] += 1
            WAKEUPS.labels(self.service, by).inc()

    async def _publish_failed(self, failed: Retrying) -> None:
        """Count and log a failed batch, drop the producer, and surface a fenced cursor
        write of the previous batch before the pause (:class:`RelayFenced` ends the turn)."""
        FAILURES.labels(self.service).inc()
        log.warning("relay publish failed; retrying", service=self.service, error=repr(failed.exception),
                    retry_in_s=failed.delay)
        await self._drop_producer()
        await self.flush()

    async def _take_over(self, lock_conn: asyncpg.Connection, stop: asyncio.Event) -> LogCursor | None:
        """Claim the cursor once the lock is held: after the takeover grace if a relay
        claimed it before (it may still be storing the cursor of its last batch), at once
        on a fresh database (nobody can have read a batch without claiming first).
        None when stopped meanwhile."""
        if await lock_conn.fetchval("SELECT epoch FROM relay_position WHERE name = $1", self.name) is not None:
            await sleep_or_stop(stop, self.takeover_grace)
            if stop.is_set():
                return None
        return await self.claim(lock_conn)

