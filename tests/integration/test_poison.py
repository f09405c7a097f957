"""A poison-message test per consumer: for every Kafka consumer of every service (its
event subscriptions and its command topic), bad JSON, wrong types, an unknown type, a
future schema version and missing CloudEvents headers each land on ``{topic}.dlq`` and
in ``dead_letters`` with a reason, and a valid message sent after them is processed.
On a command topic, every poison command that names a district also gets a
``CommandRejected`` reply.

Each service is started once, in its own district, and all its consumers are tested
together: the poison is published to every consumed topic before anything is awaited.
"""

from __future__ import annotations

import functools
import json
import tempfile
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

import pytest

from contracts import examples, registry
from contracts.envelope import Envelope
from services.notify.main import spec as notify_spec
from services.oversight.main import spec as oversight_spec
from services.proposals.main import spec as proposals_spec
from services.voting.main import spec as voting_spec
from tests.support.auth import kafka_token
from tests.support.kafka import read_records, read_topic
from tests.support.service import Running, eventually, running
from yishi.auth import LocalIssuer
from yishi.kafka import ensure_topics, new_producer
from yishi.names import commands_topic, dead_letter_topic, events_topic, replies_topic, source

SPECS = {"proposals": proposals_spec, "voting": voting_spec, "oversight": oversight_spec, "notify": notify_spec}

REASONS = {"bad-json": "not JSON", "wrong-types": "InvalidPayload", "unknown-type": "NoSuchType",
           "future-version": "this code reads versions 1 to", "missing-headers": "missing header",
           "other-district": "is not the district of topic"}
"""What the dead-letter reason of each kind of poison says."""
POISON_KINDS = tuple(REASONS)
COMMAND_POISON = {"missing-token": "missing header: authorization", "forged-token": "invalid token"}
"""Poison only commands can be: no credentials, or a token from another issuer."""
REASONS.update(COMMAND_POISON)
DECODABLE = ("wrong-types", "unknown-type", "future-version", *COMMAND_POISON)
"""Poison whose envelope is readable, so a command topic can answer it with a reply."""


@dataclass
class Consumer:
    """One Kafka consumer of the service under test and the messages sent to it."""

    name: str
    topic: str
    sender: str  # the service whose source the messages claim
    handled: str  # a type the consumer handles, whose sample is the valid message
    poison: dict[str, str] = field(default_factory=dict)  # message id by poison kind
    valid: str = ""


def consumers_of(r: Running) -> list[Consumer]:
    """Every consumer the service wires: its event subscriptions and its command topic."""
    ctx = r.ctx
    found = [Consumer(name, events_topic(r.district, source_service), source_service, min(types))
             for name, (source_service, types) in ctx.subscriptions.items()]
    found.append(Consumer("commands", commands_topic(r.district, ctx.service), ctx.service,
                          min(ctx.command_types)))
    assert {c.name for c in found} == set(ctx.handlers), "a consumer this test does not cover"
    assert len({c.topic for c in found}) == len(found), "two consumers share a topic: poison would be counted twice"
    return found


@functools.cache
def forger() -> LocalIssuer:
    """An issuer the services do not trust."""
    return LocalIssuer(tempfile.mkdtemp(prefix="yishi-forger-"))


def valid_envelope(consumer: Consumer, district: str) -> Envelope:
    """A valid message of a type ``consumer`` handles (the contracts' sample of it)."""
    model = examples.sample(registry.spec(consumer.handled).model).model_copy(update={"district": district})
    ident = str(uuid.uuid4())
    return registry.to_envelope(model, id=ident, source=source(district, consumer.sender), subject=f"s-{ident}",
                                time=datetime.now(timezone.utc), correlation_id=ident, token=kafka_token(model))


def poison(kind: str, good: Envelope) -> tuple[Envelope, list[tuple[str, bytes]], bytes]:
    """A poison variant of ``good`` with its own id: ``(envelope, headers, value)``."""
    ident = str(uuid.uuid4())
    env = replace(good, id=ident, correlation_id=ident)
    if kind == "unknown-type":
        env = replace(env, type="NoSuchType")
    elif kind == "future-version":
        env = replace(env, schema_version=registry.spec(good.type).latest + 1)
    elif kind == "wrong-types":
        env = replace(env, data=json.dumps({name: ["wrong"] for name in json.loads(good.data)}).encode())
    elif kind == "other-district":
        env = replace(env, district="elsewhere")
    elif kind == "missing-token":
        env = replace(env, token=None)
    elif kind == "forged-token":
        env = replace(env, token=forger().mint("w-1", env.district, ["community_worker"]))
    _, headers, value = env.to_kafka()
    if kind == "bad-json":
        value = b'{"district": "unterminated'
    elif kind == "missing-headers":
        headers = [(k, v) for k, v in headers if k not in ("ce_district", "ce_schemaversion", "ce_time")]
    return env, headers, value


async def send_all(bootstrap: str, district: str, consumers: list[Consumer]) -> None:
    """All poison, then one valid message, to every consumed topic."""
    await ensure_topics(bootstrap, [c.topic for c in consumers])
    producer = new_producer(bootstrap)
    await producer.start()
    try:
        for consumer in consumers:
            good = valid_envelope(consumer, district)
            for kind in POISON_KINDS + (tuple(COMMAND_POISON) if consumer.name == "commands" else ()):
                env, headers, value = poison(kind, good)
                consumer.poison[kind] = env.id
                await (await producer.send(consumer.topic, key=env.subject.encode(), headers=headers, value=value))
            key, headers, value = good.to_kafka()
            consumer.valid = good.id
            await (await producer.send(consumer.topic, key=key, headers=headers, value=value))
    finally:
        await producer.stop()


@pytest.mark.parametrize("service", sorted(SPECS))
async def test_every_consumer_parks_poison_and_carries_on(service, servers):
    async with running(SPECS[service](), servers) as r:
        consumers = consumers_of(r)
        await send_all(servers.kafka_bootstrap, r.district, consumers)

        async def all_valid_processed() -> bool:
            # Event consumers keep an inbox row keyed by (ce_source, ce_id); the command bus
            # answers each command with a reply caused by it.
            seen = {row["consumer"] for row in await r.ctx.pool.fetch(
                "SELECT consumer FROM inbox WHERE split_part(message_id, E'\\x1f', 2) = ANY($1)",
                [c.valid for c in consumers])}
            answered = await r.ctx.pool.fetchval(
                "SELECT count(*) FROM events WHERE stream_id LIKE 'reply-%' AND metadata->>'causation_id' = $1",
                next(c.valid for c in consumers if c.name == "commands"))
            return seen | ({f"{service}.commands"} if answered else set()) == {f"{service}.{c.name}" for c in consumers}

        await eventually(all_valid_processed, timeout=60)

        parked = {(row["consumer"], json.loads(row["headers"]).get("ce_id")): row["reason"]
                  for row in await r.ctx.pool.fetch("SELECT consumer, headers, reason FROM dead_letters")}
        for consumer in consumers:
            records = await read_records(servers.kafka_bootstrap, dead_letter_topic(consumer.topic),
                                         len(consumer.poison), timeout=30)
            on_dlq = {dict(rec.headers)["ce_id"].decode(): dict(rec.headers) for rec in records}
            for kind, message_id in consumer.poison.items():
                where = f"{service}.{consumer.name} {kind}"
                assert REASONS[kind] in parked.get((f"{service}.{consumer.name}", message_id), ""), \
                    f"{where}: not in dead_letters with its reason"
                assert message_id in on_dlq, f"{where}: not on {dead_letter_topic(consumer.topic)}"
                assert REASONS[kind] in on_dlq[message_id]["x-dlq-reason"].decode(), f"{where}: no reason"
                assert on_dlq[message_id]["x-dlq-consumer"] == f"{service}.{consumer.name}".encode()
                assert "authorization" not in on_dlq[message_id], f"{where}: the token was forwarded"
            assert (f"{service}.{consumer.name}", consumer.valid) not in parked, \
                f"{service}.{consumer.name}: the valid message was parked"

        commands = next(c for c in consumers if c.name == "commands")
        rejected = {commands.poison[kind] for kind in DECODABLE}
        replies = await read_topic(servers.kafka_bootstrap, replies_topic(r.district, service),
                                   len(rejected) + 1, timeout=30)
        by_correlation = {e.correlation_id: e for e in replies}
        for message_id in rejected:
            assert by_correlation[message_id].type == "CommandRejected"
        for kind in COMMAND_POISON:
            assert json.loads(by_correlation[commands.poison[kind]].data)["reason"] == "not_authorised"
        # The sender's token is neither kept in the dead-letter table nor forwarded.
        stored = [json.loads(row["headers"]) for row in await r.ctx.pool.fetch("SELECT headers FROM dead_letters")]
        assert stored and not any("authorization" in h for h in stored)
        assert commands.valid in by_correlation, "the valid command got no reply"
