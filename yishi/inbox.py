"""Idempotent consumers: the inbox, dead letters and the Kafka edge that uses them.

A consumer's effects (appended events, read-model rows) and the inbox row saying
"consumer C processed message M" commit in one transaction. A redelivered message
finds its inbox row and changes nothing. The Kafka offset is committed only after
that transaction, so a crash in between means a redelivery, never a loss.

Failures are classified (:mod:`yishi.failures`):

* a message that cannot be decoded or fails validation is poison from the start: it
  goes to ``{topic}.dlq`` with the reason (and into the ``dead_letters`` table) at once;
* a handler failure that recurs on redelivery (a database data error, a validation error,
  ``OverflowError``, a rule that raises, a bug) is tried ``YISHI_POISON_MAX_ATTEMPTS``
  times in all, then dead-lettered with ``{type}: {message}`` as its reason;
* a transient failure (connection lost, serialization failure, deadlock, broker or token
  provider unavailable) is retried with exponential backoff, without limit, and never
  dead-lettered.

Either way the consumer then moves on. Offsets are committed in the background
(:class:`OffsetCommits`), a few times a second, for the messages that are done: a Kafka
commit per message was a round trip to the group coordinator that capped a consumer at
about a hundred messages a second. A crash between the inbox transaction and the next
commit redelivers what was done since, which the inbox (or the command bus's stored
reply) recognises: a redelivery, never a loss. Each attempt runs in a
transaction of its own, so a failed one keeps neither effects nor an inbox row; the dead
letter is written afterwards on its own, and no inbox row is written for it, so a message
re-published from the dead-letter topic after a fix is processed.

What a consumer has fetched already when it takes a message is handled with it
(:meth:`EnvelopeConsumer.many`, up to ``YISHI_CONSUMER_BATCH_MAX``): one inbox claim for
all, their effects, one commit, where each alone costs a transaction of three round
trips, so a consumer that falls behind catches up instead of staying behind. If one of
them is poison, was seen before or fails, nothing of the lot is kept and each is handled
alone as above; the one whose handling failed counts that as its first attempt.

Metrics: ``yishi_consumer_offset_commits_total`` (commits, each of many messages),
``yishi_consumer_partition_held_seconds`` (how long the current message has held
its partition), ``yishi_consumer_message_seconds`` (first attempt to done),
``yishi_consumer_retries_total`` by failure class, ``yishi_consumer_dead_letters_total``
by reason class (``invalid``, ``rejected``, ``deterministic``) and
``yishi_consumer_batch_messages`` (messages handled together).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
import structlog
from aiokafka import TopicPartition
from prometheus_client import Counter, Gauge, Histogram

from contracts.envelope import AUTHORIZATION_HEADER, Envelope, EnvelopeError
from contracts.registry import ContractError
from yishi import tracing
from yishi.db import PLANNED_ONCE, RolledBackOnCommit, text_literal
from yishi.failures import RetryPolicy, classify, describe, storable
from yishi.kafka import ensure_topics
from yishi.logging import bound_correlation
from yishi.names import dead_letter_topic, topic_district

log = structlog.get_logger("yishi.inbox")

# Tables inbox and dead_letters: yishi/migrations/versions.

PROCESSED = Counter("yishi_consumer_processed_total", "Messages processed", ["consumer"])
DUPLICATES = Counter("yishi_consumer_duplicates_total", "Redelivered messages ignored", ["consumer"])
DEAD_LETTERS = Counter("yishi_consumer_dead_letters_total", "Messages sent to the dead-letter topic",
                       ["consumer", "reason"])
RETRIES = Counter("yishi_consumer_retries_total", "Failed attempts at a message that were tried again",
                  ["consumer", "class"])
COMMITS = Counter("yishi_consumer_offset_commits_total", "Offset commits (each covers every message done since "
                  "the last)", ["outcome"])
HELD = Gauge("yishi_consumer_partition_held_seconds", "How long the message being handled has held its partition",
             ["consumer", "topic", "partition"])
HANDLING = Histogram("yishi_consumer_message_seconds", "Time from a message's first attempt to its end "
                     "(processed, duplicate or dead-lettered)", ["consumer"],
                     buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
TOGETHER = Histogram("yishi_consumer_batch_messages", "Messages handled together in one inbox transaction",
                     ["consumer"], buckets=(2, 5, 10, 20, 50, 100, 200, 500))


class Poison(ValueError):
    """Raised by a decoder or handler for a message that can never be processed.

    A handler that keeps effects for such a message (a command's rejection reply)
    returns it instead of raising it: the effects commit, then the message is parked.
    """


class ConsumerStopping(Exception):
    """The service is stopping while a message waits for a retry: it is left unacknowledged
    (delivered again after the restart) instead of holding up the shutdown."""


class _Seen(Exception):
    """A message handled together with others was processed before: start again one by one."""


class _Failed(Exception):
    """Handling messages together failed (the cause): start again one by one, the
    ``culprit`` record, where known, with that failure as its first attempt."""

    def __init__(self, culprit: tuple[Any, Exception] | None) -> None:
        super().__init__()
        self.culprit = culprit


class HandlerSwallowedError(RuntimeError):
    """A handler went on after a failed statement, so none of its effects were kept."""


class OffsetCommits:
    """Commits the offsets of messages that are done, for every consumer of a service, at
    most every ``interval`` seconds: one commit covers all that was done since the last.

    :meth:`done` only notes the next offset of a partition (never past a message not done:
    a consumer handles its partitions' messages one at a time, in order, and a message
    handled again after a failure is noted once it is done). A commit that fails (the
    partition was reassigned meanwhile, the broker is away) is logged and dropped: the
    next owner, or this consumer after the next commit, starts from an earlier offset and
    the inbox recognises what it sees again. :meth:`flush` commits at once (at shutdown,
    and before a partition is given up).
    """

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self._pending: dict[Any, dict[Any, int]] = {}
        self._due = asyncio.Event()

    def done(self, consumer: Any, topic: str, partition: int, offset: int) -> None:
        """The message at ``offset`` of ``topic``/``partition`` is done with, for
        ``consumer`` (an ``AIOKafkaConsumer``)."""
        self._pending.setdefault(consumer, {})[TopicPartition(topic, partition)] = offset + 1
        self._due.set()

    async def flush(self) -> None:
        """Commit every offset noted so far, of the partitions each consumer still has (a
        message that ended after its partition was taken away is the new owner's to commit;
        a commit naming it would be refused whole)."""
        pending, self._pending = self._pending, {}
        self._due.clear()
        for consumer, noted in pending.items():
            assigned = consumer.assignment()
            offsets = {tp: offset for tp, offset in noted.items() if tp in assigned}
            if not offsets:
                continue
            try:
                await consumer.commit(offsets)
            except Exception as exc:  # reassigned, closed, broker away: delivered again, recognised
                COMMITS.labels("failed").inc()
                log.info("offsets not committed; those messages will be delivered again and recognised",
                         partitions=len(offsets), error=repr(exc))
            else:
                COMMITS.labels("ok").inc()

    async def run(self, stop: asyncio.Event) -> None:
        """Commit what is done, every ``interval`` while there is something, until ``stop``."""
        while not stop.is_set():
            waiting = asyncio.ensure_future(self._due.wait())
            stopping = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait((waiting, stopping), return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiting.cancel()
                stopping.cancel()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
            await self.flush()


class Inbox:
    """Records which messages a consumer has processed, inside the effects' transaction."""

    def __init__(self, pool: asyncpg.Pool, consumer: str) -> None:
        self.pool = pool
        self.consumer = consumer

    async def process(self, message_id: str | None,
                      effect: Callable[[asyncpg.Connection], Awaitable[Any]], *, source: str = "") -> bool:
        """Run ``effect`` once per (``source``, ``message_id``), CloudEvents' ``ce_source``
        and ``ce_id`` (two senders may use the same id); return False for a duplicate.

        ``effect`` gets the transaction's connection and must do all its writes on it.
        With ``message_id`` None no inbox row is kept: the effect is idempotent by itself.
        """
        # A handler that caught a database error without a savepoint leaves the
        # transaction aborted, and PostgreSQL answers COMMIT with a silent ROLLBACK:
        # effects and inbox row would be gone while the offset moved on. The pool's
        # connections refuse such a COMMIT (yishi.db.RolledBackOnCommit).
        try:
            async with self.pool.acquire() as conn:
                if message_id is not None:  # claimed in the BEGIN's round trip
                    conn.with_begin(PLANNED_ONCE, "INSERT INTO inbox (consumer, source, message_id) VALUES ("
                                    f"{text_literal(self.consumer)}, {text_literal(source)}, "
                                    f"{text_literal(message_id)}) ON CONFLICT DO NOTHING")
                else:
                    conn.with_begin(PLANNED_ONCE)
                async with conn.transaction():
                    fresh = message_id is None or conn.begun() == "INSERT 0 1"
                    if fresh:
                        await effect(conn)
                if not fresh:
                    DUPLICATES.labels(self.consumer).inc()
                    return False
        except RolledBackOnCommit as exc:
            raise HandlerSwallowedError(
                "the handler caught a database error and went on; its transaction was rolled back") from exc
        PROCESSED.labels(self.consumer).inc()
        return True


Handler = Callable[[Envelope, asyncpg.Connection], Awaitable[Any]]
Refusal = Callable[[Envelope, str, asyncpg.Connection], Awaitable[Any]]
"""Answers a message about to be dead-lettered whose headers could be read (a command's
rejection reply), in the transaction it is given: its body was unreadable, or its
handling failed on every attempt."""


class EnvelopeConsumer:
    """The Kafka edge of a consumer: decode the envelope, de-duplicate, hand over, and
    classify what fails (see the module docstring).

    Call it with each raw record's fields; it returns when the message is done with
    (processed, duplicate or dead-lettered). It retries transient failures itself, so it
    raises only when even dead-lettering fails deterministically, or with
    :class:`ConsumerStopping` when ``stopping`` is set during a pause between attempts.
    A handler that is idempotent by itself (the command bus, which keys each command by
    its authenticated sender) is run with ``deduplicate=False``: an inbox row keyed by the
    message alone would let one sender's id swallow another's command. ``refuse``, where
    given, answers a message whose body cannot be read (see :data:`Refusal`).
    """

    def __init__(self, pool: asyncpg.Pool, name: str, handle: Handler, *, bootstrap: str, producer=None,
                 accepts: Callable[[Envelope], bool] | None = None, kafka_options: dict | None = None,
                 policy: RetryPolicy = RetryPolicy(), stopping: asyncio.Event | None = None,
                 deduplicate: bool = True, refuse: Refusal | None = None) -> None:
        self.inbox = Inbox(pool, name)
        self.deduplicate = deduplicate
        self.refuse = refuse
        self.accepts = accepts
        self.kafka_options = kafka_options or {}
        self.name = name
        self.handle = handle
        self.bootstrap = bootstrap
        self.producer = producer
        self.policy = policy
        self.stopping = stopping or asyncio.Event()
        self._dlq_topics: set[str] = set()
        self._held_since: dict[tuple[str, int], float] = {}

    async def __call__(self, topic: str, partition: int, offset: int,
                      headers: list[tuple[str, bytes]], value: bytes | None, *,
                      prior: Exception | None = None) -> bool:
        """Handle one record; True when it was processed now (not a duplicate, not parked).
        ``prior``: how its handling failed already (with others, :meth:`many`), its first
        attempt."""
        started = time.monotonic()
        self._hold(topic, partition, started)
        try:
            # Its span continues the trace of the command that caused it (ce_traceparent), and
            # every line logged while it is handled names its correlation id.
            with tracing.consuming(self.name, topic, partition, offset, headers), \
                    bound_correlation(_header(headers, "ce_correlationid")):
                return await self._attempts(topic, partition, offset, headers, value, prior)
        finally:
            self._held_since.pop((topic, partition), None)
            HANDLING.labels(self.name).observe(time.monotonic() - started)

    async def many(self, records: Sequence[Any], done: Callable[[Any], None]) -> None:
        """Handle ``records`` (Kafka records: ``topic``, ``partition``, ``offset``,
        ``headers``, ``value``), in order, calling ``done(record)`` as each is done with.

        A deduplicating consumer handles several together (:meth:`_together`): one inbox
        claim for all, their effects, one commit, where each alone is a transaction of
        three round trips. If anything in that fails, or a record is not a plain fresh
        event for this consumer (undecodable, misrouted, unknown, already processed, sent
        twice), none of it is kept and each record goes through :meth:`__call__` alone,
        with its retries and dead letters, exactly as if it had come by itself."""
        culprit: tuple[Any, Exception] | None = None
        if self.deduplicate and len(records) > 1:
            try:
                parked = await self._together(records)
            except _Failed as failed:  # met again, one message at a time
                parked, culprit = None, failed.culprit
                log.info("messages handled together failed; handling them one by one", consumer=self.name,
                         messages=len(records), error=repr(failed.__cause__))
            if parked is not None:
                for record, headers, outcome in parked:
                    await self._dead_letter(record.topic, record.partition, record.offset, headers, record.value,
                                            str(outcome), "rejected")
                for record in records:
                    done(record)
                return
        for record in records:
            prior = culprit[1] if culprit is not None and culprit[0] is record else None
            await self(record.topic, record.partition, record.offset, list(record.headers or ()), record.value,
                       prior=prior)
            done(record)

    async def _together(self, records: Sequence[Any]) -> list[tuple[Any, list[tuple[str, bytes]], Poison]] | None:
        """Handle ``records`` in one inbox transaction and return those to dead-letter
        (a handler's returned :class:`Poison`); None, with nothing kept, unless each is a
        readable event of its topic's district that this consumer takes or skips, none
        has been processed before and no two share an id."""
        started = time.monotonic()
        chosen: list[tuple[Any, list[tuple[str, bytes]], Envelope]] = []
        for record in records:
            headers = list(record.headers or ())
            try:
                envelope = Envelope.from_kafka(headers, record.value)
                if envelope.district != topic_district(record.topic):
                    return None
                if self.accepts is not None and not self.accepts(envelope):
                    continue
            except (EnvelopeError, ContractError):
                return None
            chosen.append((record, headers, envelope))
        claims = {(envelope.source, envelope.id) for _, _, envelope in chosen}
        if len(claims) < len(chosen):
            return None
        parked: list[tuple[Any, list[tuple[str, bytes]], Poison]] = []
        partitions = {(record.topic, record.partition) for record in records}
        for topic, partition in partitions:
            self._hold(topic, partition, started)
        handling: Any = None  # the record whose handler runs
        swallowed: Any = None  # the last whose handler went on after a failed statement

        def watch(query: Any) -> None:
            if query.exception is not None:
                failed.append(query)

        try:
            if chosen:
                values = ", ".join(f"({text_literal(self.name)}, {text_literal(source)}, {text_literal(message_id)})"
                                   for source, message_id in claims)
                async with self.inbox.pool.acquire() as conn:
                    conn.with_begin(PLANNED_ONCE, "INSERT INTO inbox (consumer, source, message_id) VALUES "
                                    f"{values} ON CONFLICT DO NOTHING")
                    async with conn.transaction():
                        if conn.begun() != f"INSERT 0 {len(claims)}":
                            raise _Seen
                        for record, headers, envelope in chosen:
                            handling, failed = record, []
                            with tracing.consuming(self.name, record.topic, record.partition, record.offset,
                                                   headers), \
                                    bound_correlation(_header(headers, "ce_correlationid")), \
                                    conn.query_logger(watch):
                                outcome = await self.handle(envelope, conn)
                            if failed:
                                swallowed = record
                            if isinstance(outcome, Poison):
                                parked.append((record, headers, outcome))
                        handling = None
        except _Seen:
            return None
        except Exception as exc:
            # Whose attempt failed, as it would have alone: a handler that went on after a
            # failed statement is found out by the next statement or the COMMIT.
            if swallowed is not None and isinstance(exc, (RolledBackOnCommit, asyncpg.InFailedSQLTransactionError)):
                culprit = (swallowed, HandlerSwallowedError(
                    "the handler caught a database error and went on; its transaction was rolled back"))
            else:
                culprit = (handling, exc) if handling is not None else None
            raise _Failed(culprit) from exc
        finally:
            for key in partitions:
                self._held_since.pop(key, None)
        PROCESSED.labels(self.name).inc(len(chosen))
        TOGETHER.labels(self.name).observe(len(records))
        elapsed = time.monotonic() - started
        for _ in records:
            HANDLING.labels(self.name).observe(elapsed)
        return parked

    def _hold(self, topic: str, partition: int, since: float) -> None:
        key = (topic, partition)
        if key not in self._held_since:
            # The gauge reads the start time when scraped, so a message that never
            # finishes shows a growing value (an alert), not its last duration.
            HELD.labels(self.name, topic, str(partition)).set_function(
                lambda: time.monotonic() - self._held_since.get(key, time.monotonic()))
        self._held_since[key] = since

    async def _attempts(self, topic: str, partition: int, offset: int,
                        headers: list[tuple[str, bytes]], value: bytes | None, prior: Exception | None) -> bool:
        deterministic = transient = 0
        while True:
            envelope: Envelope | None = None
            try:
                envelope = Envelope.from_kafka(headers, value)
                if envelope.district != topic_district(topic):
                    # Topics are per district (and so are the Kafka ACLs): a message naming
                    # another district is misrouted or forged, never acted on.
                    raise Poison(f"ce_district {envelope.district!r} is not the district of topic {topic}")
                if self.accepts is not None and not self.accepts(envelope):
                    return False
                outcome = None
                if prior is not None:  # the first attempt, made with others, failed so
                    failed, prior = prior, None
                    raise failed

                async def effect(conn: asyncpg.Connection) -> None:
                    nonlocal outcome
                    outcome = await self.handle(envelope, conn)

                fresh = await self.inbox.process(envelope.id if self.deduplicate else None, effect,
                                                 source=envelope.source)
            except (EnvelopeError, Poison, ContractError) as exc:
                await self._answer(getattr(exc, "envelope", None), str(exc), topic, partition, offset)
                await self._dead_letter(topic, partition, offset, headers, value, str(exc), "invalid")
                return False
            except Exception as exc:
                where = dict(consumer=self.name, topic=topic, partition=partition, offset=offset, error=repr(exc))
                if classify(exc) == "transient":
                    transient += 1
                    delay = self.policy.transient_delay(transient)
                    RETRIES.labels(self.name, "transient").inc()
                    log.warning("transient failure; retrying the message", attempt=transient, retry_in=delay, **where)
                    await self._pause(delay)
                    continue
                deterministic += 1
                if deterministic >= self.policy.max_attempts:
                    log.error("message failed on every attempt; dead-lettering it", attempts=deterministic,
                              exc_info=exc, **where)
                    await self._answer(envelope, describe(exc), topic, partition, offset)
                    await self._dead_letter(topic, partition, offset, headers, value, describe(exc),
                                            "deterministic")
                    return False
                delay = self.policy.deterministic_delay(deterministic)
                RETRIES.labels(self.name, "deterministic").inc()
                log.warning("message failed; trying again", attempt=deterministic, retry_in=delay, **where)
                await self._pause(delay)
                continue
            if isinstance(outcome, Poison):
                await self._dead_letter(topic, partition, offset, headers, value, str(outcome), "rejected")
            return fresh

    async def _answer(self, envelope: Envelope | None, reason: str, topic: str, partition: int,
                      offset: int) -> None:
        """Let :data:`Refusal` answer a message about to be dead-lettered, when its headers
        were read and name the topic's district; a failure to answer is only logged."""
        if self.refuse is None or envelope is None or envelope.district != topic_district(topic):
            return
        try:
            async with self.inbox.pool.acquire() as conn, conn.transaction():
                await self.refuse(envelope, reason, conn)
        except Exception as failed:  # headers too odd to answer with: parked unanswered
            log.warning("could not answer a message before dead-lettering it", consumer=self.name, topic=topic,
                        partition=partition, offset=offset, error=repr(failed))

    async def _pause(self, delay: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), delay)
        if self.stopping.is_set():
            raise ConsumerStopping("the service is stopping; the message will be delivered again")

    async def _dead_letter(self, topic: str, partition: int, offset: int, headers: list[tuple[str, bytes]],
                           value: bytes | None, reason: str, reason_class: str) -> None:
        """:meth:`dead_letter`, retried while the database or the broker is away."""
        failures = 0
        while True:
            try:
                await self.dead_letter(topic, partition, offset, headers, value, reason, reason_class)
                return
            except Exception as exc:
                if classify(exc) != "transient":
                    raise
                failures += 1
                delay = self.policy.transient_delay(failures)
                log.warning("dead-lettering failed; retrying", consumer=self.name, topic=topic, offset=offset,
                            error=repr(exc), retry_in=delay)
                await self._pause(delay)

    async def dead_letter(self, topic: str, partition: int, offset: int, headers: list[tuple[str, bytes]],
                          value: bytes | None, reason: str, reason_class: str = "invalid") -> None:
        """Park a poison message with its reason: table first (the record), then the topic.
        The sender's access token is not kept (neither stored nor forwarded)."""
        headers = [(k, v) for k, v in headers if k.lower() != AUTHORIZATION_HEADER]
        reason = storable(reason)
        log.warning("message dead-lettered", consumer=self.name, topic=topic, partition=partition,
                    offset=offset, reason=reason)
        printable = {storable(k): storable(v.decode("utf-8", "replace")) for k, v in headers}
        await self.inbox.pool.execute(
            'INSERT INTO dead_letters (consumer, topic, partition, "offset", reason, headers, value) '
            "VALUES ($1, $2, $3, $4, $5, $6, $7)",
            self.name, topic, partition, offset, reason, json.dumps(printable), value,
        )
        if self.producer is not None:
            dlq = dead_letter_topic(topic)
            if dlq not in self._dlq_topics:
                await ensure_topics(self.bootstrap, [dlq], **self.kafka_options)
                self._dlq_topics.add(dlq)
            extra = [("x-dlq-reason", reason.encode()[:4000]), ("x-dlq-consumer", self.name.encode()),
                     ("x-dlq-source", f"{topic}/{partition}/{offset}".encode())]
            fut = await self.producer.send(dlq, value=value, headers=list(headers) + extra)
            await asyncio.wait_for(fut, 30)
        DEAD_LETTERS.labels(self.name, reason_class).inc()


def _header(headers: list[tuple[str, bytes]], name: str) -> str | None:
    """A header's value as text (the first of that name), if the message has one."""
    for key, value in headers:
        if key == name:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return None
