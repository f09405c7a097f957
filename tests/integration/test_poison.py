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

import contextlib
import functools
import gc
import json
import tempfile
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

import asyncpg
import pydantic
import pytest

from contracts import examples, registry
from contracts.common import Actor
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

REASONS = {"bad-json": "not JSON", "nan-body": "not JSON within the limits", "deep-body": "nested deeper than",
           "binary-header": "can't decode byte 0xff",
           "wrong-types": "InvalidPayload", "unknown-type": "NoSuchType",
           "future-version": "this code reads versions 1 to", "missing-headers": "missing header",
           "other-district": "is not the district of topic"}
"""What the dead-letter reason of each kind of poison says."""
POISON_KINDS = tuple(REASONS)
COMMAND_POISON = {"missing-token": "missing header: authorization", "forged-token": "invalid token"}
"""Poison only commands can be: no credentials, or a token from another issuer."""
REASONS.update(COMMAND_POISON)
DECODABLE = ("bad-json", "nan-body", "deep-body", "wrong-types", "unknown-type", "future-version",
             *COMMAND_POISON)
"""Poison whose headers are readable, so a command topic can answer it with a reply."""


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
    elif kind == "nan-body":
        value = value[:-1] + b', "amount": NaN}'
    elif kind == "deep-body":
        value = b"[" * 100_000 + b"]" * 100_000
    elif kind == "binary-header":
        headers = [*headers, ("ce_weird", b"\xff\xfe")]
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
                "SELECT consumer FROM inbox WHERE message_id = ANY($1)",
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


# -- failures while handling: classified, bounded, and the stream moves on -------------------------

FAST_RETRIES = {"poison_max_attempts": 3, "poison_retry_delay_s": 0.01, "transient_backoff_initial_s": 0.01}
"""Retry settings of the tests below: three attempts, short pauses."""


def _validation_error() -> Exception:
    try:
        pydantic.TypeAdapter(int).validate_python("not a number")
    except pydantic.ValidationError as exc:
        return exc
    raise AssertionError("unreachable")


async def _swallow(conn) -> None:
    """A handler bug: it catches a failed statement and goes on (no savepoint)."""
    with contextlib.suppress(asyncpg.DataError):
        await conn.execute("SELECT 1 / 0")


DETERMINISTIC = {
    "data-error": (lambda: asyncpg.exceptions.UntranslatableCharacterError(
        'unsupported Unicode escape sequence'), "UntranslatableCharacterError: unsupported Unicode escape"),
    "overflow": (lambda: OverflowError("date value out of range"), "OverflowError: date value out of range"),
    "validation": (_validation_error, "ValidationError: 1 validation error"),
    "swallowed": (None, "HandlerSwallowedError"),
}
"""Handler failures that recur on every attempt, and what their dead-letter reason says."""


@dataclass
class Doubled:
    """The messages sent to one consumer whose handler is wrapped by a test double."""

    consumer: Consumer
    poison: dict[str, str] = field(default_factory=dict)  # message id by failure kind
    transient: str = ""
    valid: str = ""
    attempts: dict[str, int] = field(default_factory=dict)  # handler calls by message id


def double(r: Running, doubled: Doubled) -> None:
    """Make the consumer's handler fail for the poison ids and, twice, for the transient one."""
    consumer = r.ctx.consumers[doubled.consumer.name]
    real = consumer.handle
    failures = {ident: kind for kind, ident in doubled.poison.items()}

    async def handle(envelope: Envelope, conn):
        doubled.attempts[envelope.id] = doubled.attempts.get(envelope.id, 0) + 1
        if envelope.id in failures:
            kind = failures[envelope.id]
            if kind == "swallowed":
                return await _swallow(conn)
            raise DETERMINISTIC[kind][0]()
        if envelope.id == doubled.transient and doubled.attempts[envelope.id] <= 2:
            raise asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation")
        return await real(envelope, conn)

    consumer.handle = handle


async def send_in_order(bootstrap: str, topic: str, envelopes: list[Envelope]) -> None:
    """Send ``envelopes`` to one partition of ``topic`` (one key), in order."""
    await ensure_topics(bootstrap, [topic])
    producer = new_producer(bootstrap)
    await producer.start()
    try:
        for env in envelopes:
            _, headers, value = env.to_kafka()
            await (await producer.send(topic, key=b"one-partition", headers=headers, value=value))
    finally:
        await producer.stop()


def another(good: Envelope) -> Envelope:
    ident = str(uuid.uuid4())
    return replace(good, id=ident, correlation_id=ident)


async def dead_letters_of(r: Running) -> dict[tuple[str, str], list[str]]:
    """Reasons in ``dead_letters`` by (consumer, ce_id)."""
    parked: dict[tuple[str, str], list[str]] = {}
    for row in await r.ctx.pool.fetch("SELECT consumer, headers, reason FROM dead_letters ORDER BY id"):
        parked.setdefault((row["consumer"], json.loads(row["headers"]).get("ce_id")), []).append(row["reason"])
    return parked


async def processed(r: Running, consumer: str, message_ids: list[str]) -> bool:
    """Whether each message was processed: an event consumer's inbox row, or the reply
    the command bus (which keeps no inbox row) recorded for a command; not the refusal
    a command about to be dead-lettered is answered with (``reply-refused-…``)."""
    if consumer.endswith(".commands"):
        rows = await r.ctx.pool.fetch(
            "SELECT DISTINCT metadata->>'causation_id' FROM events WHERE stream_id LIKE 'reply-%' "
            "AND stream_id NOT LIKE 'reply-refused-%' AND metadata->>'causation_id' = ANY($1)", message_ids)
    else:
        rows = await r.ctx.pool.fetch("SELECT message_id FROM inbox WHERE consumer = $1 AND message_id = ANY($2)",
                                      consumer, message_ids)
    return len(rows) == len(message_ids)


@pytest.mark.parametrize("service", sorted(SPECS))
async def test_every_consumer_dead_letters_a_recurring_failure_and_retries_a_transient_one(service, servers):
    """Per consumer, on one partition: four messages whose handling fails on every attempt
    (a database data error, an OverflowError, a ValidationError, a swallowed database
    error), one whose handling loses its connection twice, then a valid one. The four are
    dead-lettered with their reasons after three attempts each; the others are processed."""
    async with running(SPECS[service](), servers, **FAST_RETRIES) as r:
        plan = []
        for consumer in consumers_of(r):
            good = valid_envelope(consumer, r.district)
            d = Doubled(consumer, poison={kind: another(good).id for kind in DETERMINISTIC})
            d.transient, d.valid = another(good).id, good.id
            double(r, d)
            envelopes = [replace(good, id=i, correlation_id=i) for i in [*d.poison.values(), d.transient]] + [good]
            await send_in_order(servers.kafka_bootstrap, consumer.topic, envelopes)
            plan.append(d)

        for d in plan:
            name = f"{service}.{d.consumer.name}"
            await eventually(lambda: processed(r, name, [d.valid]), timeout=60)
            assert await processed(r, name, [d.transient]), f"{name}: the transient failure was not retried"
            assert d.attempts[d.transient] == 3
            parked = await dead_letters_of(r)
            assert (name, d.transient) not in parked, f"{name}: a transient failure was dead-lettered"
            assert (name, d.valid) not in parked
            on_dlq = {dict(rec.headers)["ce_id"].decode(): dict(rec.headers) for rec in await read_records(
                servers.kafka_bootstrap, dead_letter_topic(d.consumer.topic), len(d.poison), timeout=30)}
            for kind, ident in d.poison.items():
                reason = DETERMINISTIC[kind][1]
                assert d.attempts[ident] == 3, f"{name} {kind}: {d.attempts[ident]} attempts, not 3"
                assert [x for x in parked.get((name, ident), []) if reason in x], f"{name} {kind}: not parked"
                assert reason in on_dlq[ident]["x-dlq-reason"].decode(), f"{name} {kind}: not on the DLQ"
                assert not await processed(r, name, [ident]), f"{name} {kind}: marked processed"

        metrics = (await r.client.get("/metrics")).text
        for d in plan:
            name = f"{service}.{d.consumer.name}"
            assert f'yishi_consumer_dead_letters_total{{consumer="{name}",reason="deterministic"}}' in metrics
            assert f'yishi_consumer_retries_total{{class="transient",consumer="{name}"}}' in metrics
            assert f'yishi_consumer_partition_held_seconds{{consumer="{name}",partition=' in metrics


FAR = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc)


def _with(model, **changes):
    return model.model_copy(update=changes)


WORKER = {"id": "worker-0102", "role": "community_worker"}


def _council(m) -> list[tuple[str, dict]]:
    """Commands over HTTP that let a RaiseProposal reach the store: its council."""
    return [("FormCouncil", {"district": m.district, "actor": WORKER, "council_id": m.council_id, "name": "议事会",
                             "level": "community", "area_id": "xikang",
                             "seats": [{"seat_id": "seat-1", "kind": "expert"}],
                             "rules": {"seconds_required": 1, "notice_period_days": 7}})]


REAL_POISON = {
    # Events are read tolerantly: a far date decodes, and notify's handler cannot show it in Beijing time.
    "notify-notice-ends-9999": ("notify", "proposals", "ProposalPublished",
                                lambda m: _with(m, notice_ends_at=FAR), None),
    "notify-vote-closes-9999": ("notify", "voting", "VoteOpened",
                                lambda m: _with(m, terms=_with(m.terms, closes_at=FAR)), None),
    # Commands that reach the database with what it cannot store.
    "proposals-title-nul": ("proposals", "commands", "RaiseProposal",
                            lambda m: _with(m, title="议事\u0000会", catalogue_item_id=None), _council),
    "oversight-fund-2^63": ("oversight", "commands", "EstablishFund",
                            lambda m: _with(m, actor=Actor(**WORKER), amount_fen=2**63), None),
}
"""Case: (service, consumer, type, how to spoil the type's sample, HTTP commands to send first)."""

TRIVIAL_REJECTIONS = {"not_found", "not_authorised", "already_exists", "wrong_district"}
"""Rejections that would mean the spoiled command never reached the point under test."""


@pytest.mark.parametrize("case", sorted(REAL_POISON))
async def test_a_real_poison_value_does_not_stop_the_stream(case, servers):
    """A message with a value the handler or the database cannot take, then a valid one on
    the same partition: the poison is dead-lettered (a command may instead be refused at
    the edge with CommandRejected) and the valid message is processed."""
    service, consumer_name, type_name, spoil, setup = REAL_POISON[case]
    async with running(SPECS[service](), servers, **FAST_RETRIES) as r:
        consumer = next(c for c in consumers_of(r) if c.name == consumer_name)
        consumer.handled = type_name
        good = valid_envelope(consumer, r.district)
        model = spoil(registry.decode(good, registry.spec(type_name).kind))
        for name, body in (setup(model) if setup else []):
            response = await r.client.post(f"/{r.district}/commands/{name}", json=body)
            assert response.status_code == 200, response.text
        ident = str(uuid.uuid4())
        bad = registry.to_envelope(model, id=ident, source=good.source, subject=good.subject, time=good.time,
                                   correlation_id=ident, token=kafka_token(model))
        await send_in_order(servers.kafka_bootstrap, consumer.topic, [bad, good])
        name = f"{service}.{consumer.name}"
        await eventually(lambda: processed(r, name, [good.id]), timeout=60)
        reasons = (await dead_letters_of(r)).get((name, bad.id), [])
        if consumer_name == "commands" and not reasons:
            replies = await read_topic(servers.kafka_bootstrap, replies_topic(r.district, service), 2, timeout=30)
            answer = [json.loads(e.data) for e in replies if e.correlation_id == bad.id]
            assert answer and answer[0]["reason"] not in TRIVIAL_REJECTIONS, f"{case}: neither dead-lettered nor refused"
        else:
            assert reasons, f"{case}: not dead-lettered"
            if consumer_name != "commands":
                assert "OverflowError" in reasons[0]


async def test_the_reminder_job_skips_a_task_it_cannot_compute_and_keeps_firing(servers, monkeypatch):
    """A task due 9999-12-31 (seeded through the application as history recorded before
    the contracts' window and the deadline horizon would hold it) and a normal one: the
    far task is recorded in failed_jobs and skipped after three ticks; the normal task's
    reminders fire, rung after rung."""
    import services.oversight.domain.resolution as rules  # where the deadline horizon is checked
    from contracts.common import CommandAccepted
    from contracts.oversight import AssignTask
    from services.oversight.domain import Task
    from services.oversight.main import spec as oversight
    from yishi.auth import Principal
    from yishi.clock import ManualClock

    t0 = datetime(2026, 3, 1, 1, tzinfo=timezone.utc)
    clock = ManualClock(t0)
    worker = {"id": "worker-0102", "role": "community_worker"}
    async with running(oversight(reminder_interval=0.02), servers, clock=clock, **FAST_RETRIES) as r:
        d = r.district

        async def post(name: str, **fields) -> None:
            response = await r.client.post(f"/{d}/commands/{name}", json={"district": d, "actor": worker, **fields})
            assert response.status_code == 200, response.text

        await post("RegisterResolution", resolution_id="res-1", proposal_id="p-1", council_id="council-1",
                   title="充电棚", text="建设")
        await post("SetReminderPolicy", scope="council", scope_id="council-1", not_accepted_days=2, stall_days=5,
                   deadline_warning_days=3, escalate_after_days=2, supervisor_id="supervisor-01")
        task = {"resolution_id": "res-1", "implementer": {"kind": "local_unit", "id": "unit-7", "name": "物业"},
                "description": "建设", "acceptance_standards": ["可用"]}
        await post("AssignTask", task_id="task-b", due_at=(t0 + timedelta(days=30)).isoformat(), **task)
        far = AssignTask.model_validate({"district": d, "actor": worker, "task_id": "task-a",
                                         "due_at": t0 + timedelta(days=30), **task}).model_copy(update={"due_at": FAR})
        bus = r.ctx.consumers["commands"].handle.__self__
        monkeypatch.setattr(rules, "within_horizon", lambda *args: None)
        reply = await bus.dispatch(far, command_id="seed-far-task", correlation_id="seed-far-task",
                                   principal=Principal.of_actor(far.actor, d, acts_for=["council-1"]))
        assert isinstance(reply, CommandAccepted), reply
        monkeypatch.undo()

        async def reminders_of(task_id: str) -> list[str]:
            rows = await r.ctx.pool.fetch(
                "SELECT state FROM events WHERE topic LIKE '%Task.ReminderFired' AND stream_id = $1 ORDER BY position",
                str(Task.create_id(d, task_id)))
            return [row["state"].decode() for row in rows]

        async def failed() -> list:
            return await r.ctx.pool.fetch("SELECT item, attempts, reason FROM failed_jobs WHERE job = $1",
                                          "oversight.reminders")

        clock.advance(timedelta(days=3))  # task-b's not-accepted reminder is due
        await eventually(lambda: reminders_of("task-b"), timeout=30)
        await eventually(lambda: _attempts_reached(failed, 3), timeout=30)
        for _ in range(30):  # many more ticks: the far task is skipped, not tried again
            await r.ctx.pool.fetchval("SELECT pg_sleep(0.01)")
        rows = await failed()
        assert [(row["item"], row["attempts"]) for row in rows] == [(f"{d}/task-a", 3)]
        assert "OverflowError" in rows[0]["reason"]
        clock.advance(timedelta(days=2))  # the second rung of task-b: the supervisor
        await eventually(lambda: _more_than(reminders_of("task-b"), 1), timeout=30)
        assert await reminders_of("task-a") == []
        metrics = (await r.client.get("/metrics")).text
        assert 'yishi_job_item_failures_total{job="oversight.reminders"}' in metrics


async def _attempts_reached(failed, n: int) -> bool:
    rows = await failed()
    return bool(rows) and rows[0]["attempts"] >= n


async def _more_than(fired, n: int) -> bool:
    return len(await fired) > n


async def test_a_consumed_message_is_in_no_reference_cycle_of_its_own(servers):
    """A handled message is freed by its reference count, not left to the cyclic garbage
    collector: thousands a second would cost a consumer the collector's pauses (the
    relay's cost before it built record batches was mostly such collections). The
    subscriber is handed the message itself, which faststream keeps as the message's
    decoded body unless told otherwise: a cycle per message."""
    from faststream.message import StreamMessage

    async with running(oversight_spec(), servers) as r:
        consumer = next(c for c in consumers_of(r) if c.name != "commands")
        await ensure_topics(servers.kafka_bootstrap, [consumer.topic])
        envelopes = [valid_envelope(consumer, r.district) for _ in range(30)]
        gc.collect()
        gc.disable()
        try:
            producer = new_producer(servers.kafka_bootstrap)
            await producer.start()
            try:
                for env in envelopes:
                    key, headers, value = env.to_kafka()
                    await (await producer.send(consumer.topic, key=key, headers=headers, value=value))
            finally:
                await producer.stop()

            async def all_processed() -> bool:
                return await r.ctx.pool.fetchval("SELECT count(*) FROM inbox WHERE message_id = ANY($1)",
                                                 [e.id for e in envelopes]) == len(envelopes)

            await eventually(all_processed)
            # Messages still referenced from elsewhere a while (faststream's context
            # variables, in contexts that outlive them) are not the point; one referenced
            # by its own decode cache is.
            alive = [o for o in gc.get_objects() if isinstance(o, StreamMessage)]
            own = sum(1 for o in alive if any(ref is o._StreamMessage__decoded_caches for ref in gc.get_referrers(o)))
        finally:
            gc.enable()
    assert own == 0, f"{own} of {len(alive)} consumed messages alive are referenced by their own decode cache"
