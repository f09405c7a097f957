"""Idempotent consumers: redelivery has one effect, poison goes to the dead-letter topic,
and a consumer killed between its effect and its offset commit does not repeat it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import replace
from datetime import datetime, timezone

import asyncpg
import httpx
import pytest

from contracts.envelope import Envelope
from tests.integration.test_relay import wait_until
from tests.support import echo_service
from tests.support.auth import auth_env
from tests.support.kafka import read_records
from yishi import migrations
from yishi.db import create_pool
from yishi.embedded import free_port
from yishi.inbox import Inbox
from yishi.kafka import ensure_topics, new_producer


def envelope(n: int, district: str = "gulou") -> Envelope:
    return Envelope(id=str(uuid.uuid4()), source=f"/yishi/{district}/proposals", type="ProposalRaised",
                    subject=f"p-{n}", time=datetime.now(timezone.utc), district=district,
                    correlation_id=str(uuid.uuid4()), schema_version=1, data=f'{{"n":{n}}}'.encode())


async def test_inbox_runs_an_effect_once_per_message(pool):
    await pool.execute("CREATE TABLE effects (n int)")
    inbox = Inbox(pool, "c1")

    async def effect(conn):
        await conn.execute("INSERT INTO effects VALUES (1)")

    assert await inbox.process("m1", effect) is True
    assert await inbox.process("m1", effect) is False
    assert await Inbox(pool, "c2").process("m1", effect) is True  # another consumer has its own record
    assert await pool.fetchval("SELECT count(*) FROM effects") == 2


async def test_failed_effect_leaves_no_inbox_record(pool):
    await pool.execute("CREATE TABLE effects (n int)")
    inbox = Inbox(pool, "c1")

    async def failing(conn):
        await conn.execute("INSERT INTO effects VALUES (1)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await inbox.process("m1", failing)
    assert await pool.fetchval("SELECT count(*) FROM effects") == 0

    async def effect(conn):
        await conn.execute("INSERT INTO effects VALUES (2)")

    # No record was left: the redelivered message is processed, and then only once.
    assert await inbox.process("m1", effect) is True
    assert await inbox.process("m1", effect) is False
    assert [r["n"] for r in await pool.fetch("SELECT n FROM effects")] == [2]


ODD_IDS = ["it's", "a\\'b", "'); DROP TABLE inbox; --", "$$x$$", "议事-🗳", "\\x00", " ", "\t\n"]
"""Message ids and sources as any producer may send them (CloudEvents only asks for a
non-empty string): quotes, backslashes, SQL, dollar quotes, CJK and emoji, blanks."""


async def test_odd_ids_are_claimed_as_they_are_and_once(pool):
    """The claim goes with BEGIN as a literal: each id is kept exactly, and a second
    delivery of it (or of the same id from another source) is told apart."""
    await pool.execute("CREATE TABLE effects (id text, source text)")
    inbox = Inbox(pool, "c1")
    for ident in ODD_IDS:
        for source in (ident, "/yishi/gulou/proposals"):
            async def effect(conn, ident=ident, source=source):
                await conn.execute("INSERT INTO effects VALUES ($1, $2)", ident, source)

            assert await inbox.process(ident, effect, source=source) is True, (ident, source)
            assert await inbox.process(ident, effect, source=source) is False, (ident, source)
    kept = await pool.fetch("SELECT source, message_id FROM inbox WHERE consumer = 'c1'")
    assert sorted((r["message_id"], r["source"]) for r in kept) == sorted(
        (i, s) for i in ODD_IDS for s in (i, "/yishi/gulou/proposals"))
    assert await pool.fetchval("SELECT count(*) FROM effects") == 2 * len(ODD_IDS)


async def test_a_nul_in_an_id_fails_in_the_database_and_keeps_nothing(pool):
    """No PostgreSQL text holds a NUL: the claim fails as a parameter would (a database
    error, which the consumer classifies) and no effect runs."""
    inbox = Inbox(pool, "c1")
    ran = []

    async def effect(conn):
        ran.append(1)

    with pytest.raises(asyncpg.PostgresError):
        await inbox.process("a\x00b", effect, source="/yishi/gulou/proposals")
    assert ran == []
    assert await pool.fetchval("SELECT count(*) FROM inbox") == 0
    # The claim failed inside the BEGIN's own statement: the connection went back to the
    # pool rolled back, not idle in an aborted transaction.
    assert await pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = current_setting('application_name')"
        " AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'") == 0
    assert await inbox.process("ab", effect, source="/yishi/gulou/proposals") is True  # the connection is fine


class EchoProcess:
    """The echo test service as a real process."""

    def __init__(self, servers, schema: str, **env: str) -> None:
        self.port = free_port()
        self.env = {**os.environ, "YISHI_DATABASE_URL": servers.database_url,
                    "YISHI_KAFKA_BOOTSTRAP": servers.kafka_bootstrap, "YISHI_DB_SCHEMA": schema,
                    "YISHI_HTTP_PORT": str(self.port), "YISHI_CONSUMER_GROUP_PREFIX": schema,
                    "YISHI_LOG_LEVEL": os.environ.get("ECHO_LOG_LEVEL", "WARNING"),
                    "YISHI_DISTRICTS": district_of(schema), **auth_env(), **env}
        self.proc: subprocess.Popen | None = None

    async def start(self) -> None:
        await migrations.upgrade(self.env["YISHI_DATABASE_URL"], self.env["YISHI_DB_SCHEMA"],
                                 migrations.locations(own=echo_service.MIGRATIONS))
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.support.echo_service"], env=self.env)

        async def ready() -> bool:
            assert self.proc.poll() is None, f"service exited with {self.proc.returncode}"
            try:
                async with httpx.AsyncClient() as client:
                    return (await client.get(f"http://127.0.0.1:{self.port}/readyz")).status_code == 200
            except httpx.HTTPError:
                return False

        await wait_until(ready, timeout=60, interval=0.2)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)


def district_of(schema: str) -> str:
    """Each test its own district, hence its own topics."""
    return "d" + schema.replace("_", "-")


async def publish(servers, *messages: tuple[Envelope, list | None, bytes | None]) -> None:
    producer = new_producer(servers.kafka_bootstrap)
    await producer.start()
    try:
        for env, headers, value in messages:
            key, hdrs, val = env.to_kafka()
            await (await producer.send(f"{env.district}.proposals.events", key=key, headers=headers if headers is not None
                                       else hdrs, value=value if value is not None else val))
    finally:
        await producer.stop()


async def effects(pool) -> list[str]:
    try:
        return [r["message_id"] for r in await pool.fetch("SELECT message_id FROM effects ORDER BY 1")]
    except asyncpg.UndefinedTableError:
        return []


@pytest.mark.slow
async def test_redelivered_and_poison_messages(pool, servers, schema_name):
    district = district_of(schema_name)
    await ensure_topics(servers.kafka_bootstrap, [f"{district}.proposals.events"])
    service = EchoProcess(servers, schema_name)
    await service.start()
    try:
        first, second = envelope(1, district), envelope(2, district)
        namesake = replace(first, source=f"/yishi/{district}/elsewhere", data=b'{"n":5}')
        await publish(
            servers,
            (first, None, None),
            (first, None, None),                       # the same event delivered twice
            (namesake, None, None),                    # another sender's event with the same id
            (envelope(3, district), None, b"{not json"),       # poison: bad JSON
            (envelope(4, district), [("ce_id", b"x")], None),  # poison: missing CloudEvents headers
            (second, None, None),                      # the consumer carries on
        )
        await wait_until(lambda: _count(pool, "SELECT count(*) FROM dead_letters", 2), timeout=60)
        await wait_until(lambda: _has(pool, second.id), timeout=30)
        assert sorted(await effects(pool)) == sorted([first.id, first.id, second.id])
        reasons = sorted(r["reason"] for r in await pool.fetch("SELECT reason FROM dead_letters"))
        assert reasons[0].startswith("body is not JSON") and "Missing required attribute" in reasons[1]
        parked = await read_records(servers.kafka_bootstrap, f"{district}.proposals.events.dlq", 2, timeout=30)
        assert sorted(dict(r.headers)["x-dlq-reason"].decode() for r in parked) == reasons
        assert {r.value for r in parked} >= {b"{not json"}
    finally:
        service.stop()


async def _count(pool, sql: str, n: int) -> bool:
    try:
        return await pool.fetchval(sql) >= n
    except asyncpg.UndefinedTableError:
        return False


async def _has(pool, message_id: str) -> bool:
    return message_id in await effects(pool)


@pytest.mark.slow
async def test_consumer_killed_after_effect_before_offset_commit_has_one_effect(pool, servers, schema_name, tmp_path):
    district = district_of(schema_name)
    await ensure_topics(servers.kafka_bootstrap, [f"{district}.proposals.events"])
    marker = str(tmp_path / "crash")
    service = EchoProcess(servers, schema_name, ECHO_CRASH_MARKER=marker)
    await service.start()
    message = envelope(1, district)
    await publish(servers, (message, None, None))
    await asyncio.get_running_loop().run_in_executor(None, service.proc.wait, 60)
    assert service.proc.returncode == -signal.SIGKILL
    assert os.path.exists(marker + ".crashed")
    assert await effects(pool) == [message.id]  # the effect committed before the crash

    service = EchoProcess(servers, schema_name)  # same consumer group: the offset was not committed
    await service.start()
    try:
        later = envelope(2, district)
        await publish(servers, (later, None, None))
        await wait_until(lambda: _has(pool, later.id), timeout=60)
        assert sorted(await effects(pool)) == sorted([message.id, later.id])
        assert await pool.fetchval("SELECT count(*) FROM inbox") == 2
        assert await pool.fetchval("SELECT count(*) FROM events") == 2  # one echo event each
    finally:
        service.stop()


@pytest.mark.slow
async def test_a_consumer_commits_what_it_is_done_with_all_of_it_in_few_commits(pool, servers, schema_name):
    """A Kafka offset commit per message capped a consumer near a hundred messages a
    second (a round trip to the group coordinator each): offsets of the messages done are
    committed together in the background, and every one of them is committed."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    district = district_of(schema_name)
    topic = f"{district}.proposals.events"
    await ensure_topics(servers.kafka_bootstrap, [topic])
    service = EchoProcess(servers, schema_name)
    await service.start()
    messages = [envelope(n, district) for n in range(300)]
    # Reads the group's committed offsets only: it joins no group, so it takes nothing over.
    group = AIOKafkaConsumer(bootstrap_servers=servers.kafka_bootstrap, group_id=f"{schema_name}.notify.echo",
                             enable_auto_commit=False)
    await group.start()
    producer = new_producer(servers.kafka_bootstrap)
    await producer.start()
    partitions = await producer.partitions_for(topic)
    await producer.stop()
    try:
        await publish(servers, *((m, None, None) for m in messages))
        await wait_until(lambda: _count(pool, "SELECT count(*) FROM effects", len(messages)), timeout=60)

        async def all_committed() -> bool:
            offsets = [await group.committed(TopicPartition(topic, p)) for p in partitions]
            return sum(o or 0 for o in offsets) == len(messages)

        await wait_until(all_committed, timeout=10)
        async with httpx.AsyncClient() as client:
            metrics = (await client.get(f"http://127.0.0.1:{service.port}/metrics")).text
        commits = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                      if line.startswith('yishi_consumer_offset_commits_total{outcome="ok"}'))
        assert 1 <= commits < len(messages) / 5, commits
        assert await pool.fetchval("SELECT count(*) FROM inbox") == len(messages)
    finally:
        await group.stop()
        service.stop()


async def test_a_consumed_messages_statements_are_planned_once_not_at_every_execution(pool, servers,
                                                                                      schema_name):
    """A consumer's effects run in the inbox transaction, their prepared statements
    planned once per connection (see yishi.db.PLANNED_ONCE), claimed or not; the
    connection is given back planning as before."""
    await pool.execute("CREATE TABLE effects (ids text[])")
    one = await create_pool(servers.database_url, schema_name, max_size=1)
    try:
        async def effect(conn):
            await conn.execute("INSERT INTO effects SELECT array_agg(x) FROM unnest($1::text[]) AS x", ["a", "b"])

        for n in range(8):
            assert await Inbox(one, "c1").process(f"m{n}", effect) is True
            assert await Inbox(one, "c1").process(None, effect) is True
        plans = await one.fetchrow("SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                                   "WHERE statement LIKE 'INSERT INTO effects%'")
        assert (plans["generic_plans"], plans["custom_plans"]) == (16, 0)
        assert await one.fetchval("SELECT current_setting('plan_cache_mode')") == "auto"
    finally:
        await one.close()


class Record:
    """A Kafka record as a consumer hands it over."""

    def __init__(self, env: Envelope, offset: int, value: bytes | None = None) -> None:
        key, self.headers, self.value = env.to_kafka()
        if value is not None:
            self.value = value
        self.topic, self.partition, self.offset = f"{env.district}.proposals.events", 0, offset


async def test_messages_fetched_together_are_handled_in_one_transaction_each_once(pool):
    """What a consumer has fetched already is handled together: one inbox claim, the
    effects, one commit (one transaction id on every row), each message once."""
    from yishi.inbox import EnvelopeConsumer

    await pool.execute("CREATE TABLE effects (message_id text, body bytea)")

    async def handle(env, conn):
        await conn.execute("INSERT INTO effects VALUES ($1, $2)", env.id, env.data)

    consumer = EnvelopeConsumer(pool, "c1", handle, bootstrap="")
    messages = [envelope(n) for n in range(50)]
    done = []
    await consumer.many([Record(m, n) for n, m in enumerate(messages)], lambda r: done.append(r.offset))
    assert done == list(range(50))
    assert sorted(await effects(pool)) == sorted(m.id for m in messages)
    assert await pool.fetchval("SELECT count(DISTINCT xmin::text) FROM inbox") == 1
    assert await pool.fetchval("SELECT count(DISTINCT xmin::text) FROM effects") == 1
    assert await pool.fetchval("SELECT xmin::text FROM inbox LIMIT 1") == \
        await pool.fetchval("SELECT xmin::text FROM effects LIMIT 1")


async def test_a_lot_with_a_resent_a_poison_or_a_failing_message_is_handled_one_by_one(pool):
    """If any message of a lot was seen before, is sent twice, is poison or fails, nothing
    of the lot is kept from handling it together: each is handled alone, as if it came by
    itself, so the others' effects are there once, the poison and the failure are
    dead-lettered with their reasons, and every one is done, in order."""
    from yishi.failures import RetryPolicy
    from yishi.inbox import EnvelopeConsumer

    await pool.execute("CREATE TABLE effects (message_id text, body bytea)")
    failing = envelope(99)

    async def handle(env, conn):
        await conn.execute("INSERT INTO effects VALUES ($1, $2)", env.id, env.data)
        if env.id == failing.id:
            raise ZeroDivisionError("a bug")

    consumer = EnvelopeConsumer(pool, "c1", handle, bootstrap="",
                                policy=RetryPolicy(max_attempts=2, retry_delay=0.01))
    seen = envelope(0)
    await consumer.many([Record(seen, 0)], lambda r: None)  # processed before
    lots = {
        "seen before": [envelope(1), seen, envelope(2)],
        "sent twice": [envelope(3), envelope(4)],
        "poison": [envelope(5), envelope(6), envelope(7)],
        "failing": [envelope(8), failing, envelope(9)],
    }
    lots["sent twice"].append(lots["sent twice"][0])
    values = {lots["poison"][1].id: b"{not json"}
    expected = [seen.id]
    for name, lot in lots.items():
        done = []
        records = [Record(m, n, values.get(m.id)) for n, m in enumerate(lot)]
        await consumer.many(records, lambda r: done.append(r.offset))
        assert done == list(range(len(lot))), name
        expected += [i for i in dict.fromkeys(m.id for m in lot) if i not in values and i not in (failing.id, seen.id)]
    assert sorted(await effects(pool)) == sorted(expected)
    reasons = sorted(r["reason"] for r in await pool.fetch("SELECT reason FROM dead_letters"))
    assert len(reasons) == 2 and reasons[0].startswith("ZeroDivisionError: a bug") and "not JSON" in reasons[1]


@pytest.mark.slow
async def test_a_consumer_catching_up_handles_what_it_has_fetched_together(pool, servers, schema_name):
    """A consumer started behind its topic (after an outage, a new subscription) takes
    the messages it has fetched in few inbox transactions, not one each, and each
    message's effects are there once."""
    district = district_of(schema_name)
    await ensure_topics(servers.kafka_bootstrap, [f"{district}.proposals.events"])
    messages = [envelope(n, district) for n in range(300)]
    await publish(servers, *((m, None, None) for m in messages))
    service = EchoProcess(servers, schema_name)
    await service.start()
    try:
        await wait_until(lambda: _count(pool, "SELECT count(*) FROM effects", len(messages)), timeout=60)
        assert sorted(await effects(pool)) == sorted(m.id for m in messages)
        assert await pool.fetchval("SELECT count(*) FROM events") == len(messages)
        transactions = await pool.fetchval("SELECT count(DISTINCT xmin::text) FROM inbox")
        assert transactions <= len(messages) / 10, transactions
        async with httpx.AsyncClient() as client:
            metrics = (await client.get(f"http://127.0.0.1:{service.port}/metrics")).text
        assert 'yishi_consumer_processed_total{consumer="notify.echo"} 300.0' in metrics
    finally:
        service.stop()
