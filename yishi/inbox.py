"""Idempotent consumers: the inbox, dead letters and the Kafka edge that uses them.

A consumer's effects (appended events, read-model rows) and the inbox row saying
"consumer C processed message M" commit in one transaction. A redelivered message
finds its inbox row and changes nothing. The Kafka offset is committed only after
that transaction, so a crash in between means a redelivery, never a loss.

Messages that cannot be decoded or fail validation are poison: retrying cannot help.
They go to ``{topic}.dlq`` with the reason (and into the ``dead_letters`` table), and
the consumer carries on. Other errors (database down, a bug) are not acknowledged, so
the message is delivered again after a pause.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import structlog
from prometheus_client import Counter

from contracts.envelope import AUTHORIZATION_HEADER, Envelope, EnvelopeError
from contracts.registry import ContractError
from yishi.kafka import ensure_topics
from yishi.names import dead_letter_topic, topic_district

log = structlog.get_logger("yishi.inbox")

DDL = (
    """
    CREATE TABLE IF NOT EXISTS inbox (
        consumer      text NOT NULL,
        message_id    text NOT NULL,
        processed_at  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (consumer, message_id)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS dead_letters (
        id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        consumer    text NOT NULL,
        topic       text NOT NULL,
        partition   integer NOT NULL,
        "offset"    bigint NOT NULL,
        reason      text NOT NULL,
        headers     jsonb NOT NULL,
        value       bytea,
        recorded_at timestamptz NOT NULL DEFAULT now()
    )
    """,
)

PROCESSED = Counter("yishi_consumer_processed_total", "Messages processed", ["consumer"])
DUPLICATES = Counter("yishi_consumer_duplicates_total", "Redelivered messages ignored", ["consumer"])
DEAD_LETTERS = Counter("yishi_consumer_dead_letters_total", "Messages sent to the dead-letter topic", ["consumer"])


class Poison(ValueError):
    """Raised by a decoder or handler for a message that can never be processed.

    A handler that keeps effects for such a message (a command's rejection reply)
    returns it instead of raising it: the effects commit, then the message is parked.
    """


class Inbox:
    """Records which messages a consumer has processed, inside the effects' transaction."""

    def __init__(self, pool: asyncpg.Pool, consumer: str) -> None:
        self.pool = pool
        self.consumer = consumer

    async def process(self, message_id: str, effect: Callable[[asyncpg.Connection], Awaitable[Any]]) -> bool:
        """Run ``effect`` once per ``message_id``; return False for a duplicate.

        ``effect`` gets the transaction's connection and must do all its writes on it.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            fresh = await conn.fetchval(
                "INSERT INTO inbox (consumer, message_id) VALUES ($1, $2) "
                "ON CONFLICT DO NOTHING RETURNING true",
                self.consumer, message_id,
            )
            if not fresh:
                DUPLICATES.labels(self.consumer).inc()
                return False
            await effect(conn)
        PROCESSED.labels(self.consumer).inc()
        return True

    async def seen(self, message_id: str) -> bool:
        return bool(await self.pool.fetchval(
            "SELECT true FROM inbox WHERE consumer = $1 AND message_id = $2", self.consumer, message_id
        ))


Handler = Callable[[Envelope, asyncpg.Connection], Awaitable[Any]]


def message_key(envelope: Envelope) -> str:
    """A message's inbox key: (``ce_source``, ``ce_id``), as CloudEvents makes the pair
    unique; two senders may use the same id."""
    return f"{envelope.source}\x1f{envelope.id}"


class EnvelopeConsumer:
    """The Kafka edge of a consumer: decode the envelope, de-duplicate, hand over.

    Call it with each raw record's fields; it returns normally when the message is
    done with (processed, duplicate or dead-lettered) and raises to ask for
    redelivery. A handler that is idempotent by itself (the command bus, which keys each
    command by its authenticated sender) is run with ``deduplicate=False``: an inbox row
    keyed by the message alone would let one sender's id swallow another's command.
    """

    def __init__(self, pool: asyncpg.Pool, name: str, handle: Handler, *, bootstrap: str, producer=None,
                 accepts: Callable[[Envelope], bool] | None = None, kafka_options: dict | None = None,
                 deduplicate: bool = True) -> None:
        self.inbox = Inbox(pool, name)
        self.deduplicate = deduplicate
        self.accepts = accepts
        self.kafka_options = kafka_options or {}
        self.name = name
        self.handle = handle
        self.bootstrap = bootstrap
        self.producer = producer
        self._dlq_topics: set[str] = set()

    async def __call__(self, topic: str, partition: int, offset: int,
                      headers: list[tuple[str, bytes]], value: bytes | None) -> bool:
        try:
            envelope = Envelope.from_kafka(headers, value)
            if envelope.district != topic_district(topic):
                # Topics are per district (and so are the Kafka ACLs): a message naming
                # another district is misrouted or forged, never acted on.
                raise Poison(f"ce_district {envelope.district!r} is not the district of topic {topic}")
            if self.accepts is not None and not self.accepts(envelope):
                return False
            outcome = None

            async def effect(conn: asyncpg.Connection) -> None:
                nonlocal outcome
                outcome = await self.handle(envelope, conn)

            if self.deduplicate:
                fresh = await self.inbox.process(message_key(envelope), effect)
            else:
                async with self.inbox.pool.acquire() as conn, conn.transaction():
                    await effect(conn)
                fresh = True
        except (EnvelopeError, Poison, ContractError) as exc:
            await self.dead_letter(topic, partition, offset, headers, value, str(exc))
            return False
        if isinstance(outcome, Poison):
            await self.dead_letter(topic, partition, offset, headers, value, str(outcome))
        return fresh

    async def dead_letter(self, topic: str, partition: int, offset: int,
                          headers: list[tuple[str, bytes]], value: bytes | None, reason: str) -> None:
        """Park a poison message with its reason: table first (the record), then the topic.
        The sender's access token is not kept (neither stored nor forwarded)."""
        import json

        headers = [(k, v) for k, v in headers if k.lower() != AUTHORIZATION_HEADER]
        DEAD_LETTERS.labels(self.name).inc()
        log.warning("message dead-lettered", consumer=self.name, topic=topic, partition=partition,
                    offset=offset, reason=reason)
        printable = {k: v.decode("utf-8", "replace") for k, v in headers}
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
