"""The fault suite's harness, shared by ``tests/faults/test_chaos.py`` and ``bench/run chaos``.

:class:`Platform` starts PostgreSQL, a three-node Apache Kafka cluster (or Tansu), an
identity provider and two replicas each of proposals, voting and oversight as processes,
serving two districts. :class:`Load` sends a steady, bounded mix of commands (ballots,
proposals, task progress) over HTTP and over the command topics, each under its own
``Idempotency-Key`` / ``ce_id`` and resent unchanged on a timeout, a connection error or
a 5xx, as a real client does. :class:`Chaos` kills the targets in turn (a service
replica, the relay in the middle of a batch, one broker, PostgreSQL, a broker stalled
past its session timeout), then, with the load paused, verifies from outside (HTTP, the
topics, the database) until every check holds or the bound runs out:

* every command answered 2xx is in its store (its events carry the command's id);
* every stored event is on its topic (event ids compared; duplicates counted);
* every consumer's read model equals a rebuild from the log by the project's own code;
* no effect happened twice (a ballot counted, a resolution registered, a reminder
  fired, a progress report recorded);
* every consumer group has caught up (lag 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import json
import logging
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import httpx
import psutil
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from rich.console import Console

from contracts import registry
from contracts.common import Actor, Role
from contracts.envelope import Envelope
from contracts.oversight import AcceptTask, AssignTask, Implementer, ImplementerKind, PolicyScope, \
    ReportProgress, SetReminderPolicy
from contracts.permissions import ANY_PARTY
from contracts.registry import Kind
from contracts.proposals import RaiseProposal
from contracts.voting import BallotChoice, CastBallot, OpenVote
from yishi import demo, migrations
from yishi.auth import ActingAs, LocalIssuer
from yishi.clock import SystemClock
from yishi.commands import REPLY_TOPIC_PREFIX, with_replies
from yishi.db import create_pool
from yishi.embedded import EmbeddedApacheKafka, EmbeddedKafkaCluster, EmbeddedPostgres, EmbeddedTansu, \
    _runtime_root, describe_broker, free_port
from yishi.kafka import ensure_topics, new_producer
from yishi.names import commands_topic, events_topic, replies_topic
from yishi.repository import Repository
from yishi.store import EventStore, RecordedEvent

SERVICES = ("proposals", "voting", "oversight")
DISTRICTS = ("gulou", "jianye")
TARGETS = ("voting", "proposals", "oversight", "relay", "broker", "postgres", "stall")
"""The fault targets, in the order they are hit each round: a replica of each service
(SIGKILL), the relay mid-batch (SIGKILL of the replica holding its lock while it has a
backlog), one broker of three (SIGKILL), PostgreSQL (SIGKILL, restarted on the same data
directory), one broker stalled (SIGSTOP past its session timeout, then SIGCONT)."""
GROUP_PREFIX = "chaos"
RELAY_BATCH = 20
"""Events per relay batch: small, so that a burst of commands spans several batches."""
STALL_S = 6.0
"""How long a broker stays stopped: more than its ``broker.session.timeout.ms`` (4 s)."""
TASKS_PER_DISTRICT = 4
POLICY_DAY_S = 2.0
IMPLEMENTER = Actor(id="staff-2201", role=Role.IMPLEMENTER)


def _say(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the platform ------------------------------------------------------------------------


class Replica:
    """One service process on its own port; both replicas of a service share schema and
    consumer groups."""

    def __init__(self, service: str, index: int, env: dict[str, str], logdir: Path) -> None:
        self.service, self.index = service, index
        self.port = free_port()
        self.env = {**env, "YISHI_DB_SCHEMA": service, "YISHI_HTTP_PORT": str(self.port)}
        self.log = logdir / f"{service}-{index}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def name(self) -> str:
        return f"{self.service}-{self.index}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "yishi.cli", "serve", self.service], env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    async def ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.url}/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready within {timeout:.0f} s:\n{self.tail()}")

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"


class Platform:
    """PostgreSQL, the broker, the identity provider and two replicas of each service."""

    def __init__(self, broker: str = "apache", replicas: int = 2) -> None:
        self.broker_engine = broker
        self.workdir = Path(tempfile.mkdtemp(prefix="chaos-", dir=_runtime_root()) if os.geteuid() == 0
                            else tempfile.mkdtemp(prefix="yishi-chaos-"))
        self.postgres = EmbeddedPostgres(self.workdir)
        self.kafka = EmbeddedKafkaCluster(self.workdir, size=3) if broker == "apache" else EmbeddedTansu(self.workdir)
        self.issuer = LocalIssuer(self.workdir / "issuer")
        self.replica_count = replicas
        self.replicas: dict[str, list[Replica]] = {}

    @property
    def brokers(self) -> list[EmbeddedApacheKafka]:
        return list(getattr(self.kafka, "nodes", []))

    @property
    def dsn(self) -> str:
        return self.postgres.url

    def describe(self) -> str:
        return describe_broker(self.kafka)

    def topics(self) -> list[str]:
        return [make(d, s) for d in DISTRICTS for s in SERVICES for make in (events_topic, replies_topic,
                                                                              commands_topic)]

    async def start(self) -> None:
        _say(f"starting PostgreSQL and {self.describe()} in {self.workdir}")
        await asyncio.to_thread(self.postgres.start)
        await asyncio.to_thread(self.kafka.start)
        await self._create_topics()
        self.issuer.serve()
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("YISHI_")},
               "YISHI_DATABASE_URL": self.dsn, "YISHI_KAFKA_BOOTSTRAP": self.kafka.bootstrap,
               "YISHI_DISTRICTS": ",".join(DISTRICTS), "YISHI_CONSUMER_GROUP_PREFIX": GROUP_PREFIX,
               "YISHI_LOG_LEVEL": "WARNING", "YISHI_LOG_JSON": "false", "YISHI_COMMAND_RATE_LIMIT": "100000/second",
               "YISHI_RELAY_BATCH_SIZE": str(RELAY_BATCH), "YISHI_OVERSIGHT_POLICY_DAY_S": str(POLICY_DAY_S),
               **self.issuer.settings()}
        for service in SERVICES:
            # As a release does before its pods start (the migration Job): schema first.
            await migrations.upgrade(self.dsn, service, migrations.locations(service))
            self.replicas[service] = [Replica(service, i, env, self.workdir) for i in range(self.replica_count)]
        # One replica of each first, then the others.
        for group in zip(*self.replicas.values()):
            for replica in group:
                replica.start()
            await asyncio.gather(*(r.ready(120) for r in group))
        _say("services ready: " + ", ".join(f"{r.name} :{r.port}" for rs in self.replicas.values() for r in rs))

    async def _create_topics(self) -> None:
        """Every topic up front (as Strimzi ``KafkaTopic``s are), a replica on each broker."""
        await ensure_topics(self.kafka.bootstrap, self.topics())

    def urls(self, index: int = 0) -> dict[str, str]:
        return {service: replicas[index % len(replicas)].url for service, replicas in self.replicas.items()}

    def stop(self) -> None:
        for replicas in self.replicas.values():
            for replica in replicas:
                replica.stop()
        self.kafka.stop()
        self.postgres.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


# --- the load -------------------------------------------------------------------------------


@dataclass
class Sent:
    """One logical command: its kind, channel, key and what became of it."""

    kind: str  # ballot, proposal, progress
    channel: str  # http or kafka
    service: str
    district: str
    key: str  # Idempotency-Key, or ce_id
    effect: str  # what identifies its effect in the store (voter, proposal id, progress tag)
    model: object
    status: str = "pending"  # accepted, rejected, unanswered
    command_id: str | None = None  # the causation id of its events
    attempts: int = 0
    detail: str = ""


@dataclass
class District:
    """What the setup made in one district for the load to use."""

    name: str
    council: str
    vote_id: str
    tasks: list[str]
    resolution: str


class Topics:
    """One reader of every events and replies topic from the beginning, for as long as
    the run lasts: the ids on each topic, duplicates seen, and the replies to commands
    sent over Kafka."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.ids: dict[str, set[str]] = defaultdict(set)
        self.records: dict[str, list[Envelope]] = defaultdict(list)  # the consumed events, per topic
        self.duplicates = 0
        self.replies: dict[str, Envelope] = {}
        self._task: asyncio.Task | None = None
        self.consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        self.consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                         auto_offset_reset="earliest", request_timeout_ms=10_000)
        await self.consumer.start()
        self.partitions = [TopicPartition(t, p) for t in self.topics for p in range(3)]
        self.consumer.assign(self.partitions)
        await self.consumer.seek_to_beginning(*self.partitions)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                batch = await self.consumer.getmany(timeout_ms=200)
            except KafkaError:
                await asyncio.sleep(0.5)
                continue
            for records in batch.values():
                for r in records:
                    envelope = Envelope.from_kafka(r.headers, r.value, r.key)
                    if envelope.id in self.ids[r.topic]:
                        self.duplicates += 1
                        continue
                    self.ids[r.topic].add(envelope.id)
                    if r.topic.endswith(".replies"):
                        self.replies.setdefault(envelope.correlation_id, envelope)
                    else:
                        self.records[r.topic].append(envelope)

    async def at_end(self) -> bool:
        """Whether everything on the topics right now has been read."""
        ends = await self.consumer.end_offsets(self.partitions)
        return all(await asyncio.gather(*(self._reached(tp, end) for tp, end in ends.items())))

    async def _reached(self, tp: TopicPartition, end: int) -> bool:
        return await self.consumer.position(tp) >= end

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.consumer:
            await self.consumer.stop()


class Load:
    """A steady, bounded mix of commands in two districts, over HTTP and the command
    topics; every command resent unchanged until answered (or ``give_up_s``)."""

    def __init__(self, platform: Platform, topics: Topics, districts: list[District], *, rate: float = 10.0,
                 kafka_share: float = 0.3, give_up_s: float = 120.0, seed: int = 7) -> None:
        self.platform, self.topics, self.districts = platform, topics, districts
        self.rate, self.kafka_share, self.give_up_s = rate, kafka_share, give_up_s
        self.rng = random.Random(seed)
        self.sent: list[Sent] = []
        self.inflight: set[asyncio.Task] = set()
        self.max_inflight = 48
        self.running = asyncio.Event()
        self.http = httpx.AsyncClient(timeout=10, auth=ActingAs(platform.issuer))
        self.producer = None
        self._voters = itertools.count()
        self._serial = itertools.count()
        self._generator: asyncio.Task | None = None

    async def start(self) -> None:
        self.producer = new_producer(self.platform.kafka.bootstrap, client_id="chaos-load")
        await self.producer.start()
        self.running.set()
        self._generator = asyncio.create_task(self._generate())

    async def _generate(self) -> None:
        while True:
            await self.running.wait()
            if len(self.inflight) < self.max_inflight:  # bounded: a stalled platform is not flooded
                self.submit(self.next_command())
            await asyncio.sleep(1 / self.rate)

    def submit(self, sent: Sent) -> asyncio.Task:
        self.sent.append(sent)
        task = asyncio.create_task(self._send(sent))
        self.inflight.add(task)
        task.add_done_callback(self.inflight.discard)
        return task

    def next_command(self, kind: str | None = None) -> Sent:
        d = self.rng.choice(self.districts)
        n = next(self._serial)
        kind = kind or self.rng.choices(("ballot", "proposal", "progress"), (5, 2, 3))[0]
        channel = "kafka" if self.rng.random() < self.kafka_share else "http"
        if kind == "ballot":
            voter = f"res-{next(self._voters):06d}"
            model = CastBallot(district=d.name, actor=Actor(id=voter, role=Role.RESIDENT), vote_id=d.vote_id,
                               ballot_id=f"b-{voter}", choice=list(BallotChoice)[n % 3])
            return Sent(kind, channel, "voting", d.name, f"k-{uuid.uuid4()}", voter, model)
        if kind == "proposal":
            pid = f"prop-load-{n:06d}"
            model = RaiseProposal(district=d.name, actor=demo.member("member-wang"), proposal_id=pid,
                                  council_id=d.council, title=f"第{n}号提案:楼道照明", summary="更换楼道照明为感应灯。")
            return Sent(kind, channel, "proposals", d.name, f"k-{uuid.uuid4()}", pid, model)
        tag = f"progress-{n:06d}"
        model = ReportProgress(district=d.name, actor=IMPLEMENTER, task_id=self.rng.choice(d.tasks),
                               percent_complete=n % 100, summary=f"进展 {tag}")
        return Sent(kind, channel, "oversight", d.name, f"k-{uuid.uuid4()}", tag, model)

    async def _send(self, sent: Sent) -> None:
        deadline = time.monotonic() + self.give_up_s
        try:
            if sent.channel == "http":
                await self._send_http(sent, deadline)
            else:
                await self._send_kafka(sent, deadline)
        except asyncio.CancelledError:
            sent.status = "unanswered"
            raise

    async def _send_http(self, sent: Sent, deadline: float) -> None:
        name = registry.type_name(type(sent.model))
        replicas = self.platform.replicas[sent.service]
        body = sent.model.model_dump_json()
        headers = {"Content-Type": "application/json", "Idempotency-Key": sent.key}
        while time.monotonic() < deadline:
            replica = replicas[sent.attempts % len(replicas)]  # a resend goes to the other replica
            sent.attempts += 1
            try:
                response = await self.http.post(f"{replica.url}/{sent.district}/commands/{name}", content=body,
                                                headers=headers)
            except httpx.HTTPError as exc:
                sent.detail = repr(exc)
                await asyncio.sleep(0.3)
                continue
            if response.status_code >= 500 or response.status_code == 429:
                sent.detail = f"{response.status_code} {response.text[:200]}"
                await asyncio.sleep(0.3)
                continue
            reply = response.json()
            if response.status_code == 200:
                sent.status, sent.command_id = "accepted", reply["correlation_id"]
            else:
                sent.status, sent.detail = "rejected", f"{response.status_code} {response.text[:300]}"
            return
        sent.status = "unanswered"

    async def _send_kafka(self, sent: Sent, deadline: float) -> None:
        # The load's people act for the whole district, as over HTTP (ActingAs).
        token = self.platform.issuer.for_actor(sent.model.actor.model_dump(mode="json"), sent.district,
                                               acts_for=[ANY_PARTY])
        envelope = registry.to_envelope(sent.model, id=sent.key, source=f"/chaos/{sent.district}", subject=sent.effect,
                                        time=datetime.now(timezone.utc), correlation_id=sent.key, token=token)
        key, headers, value = envelope.to_kafka()
        topic = commands_topic(sent.district, sent.service)
        while time.monotonic() < deadline:
            sent.attempts += 1
            try:
                await asyncio.wait_for(self.producer.send_and_wait(topic, key=key, headers=headers, value=value), 15)
            except (KafkaError, asyncio.TimeoutError) as exc:
                sent.detail = repr(exc)
                await asyncio.sleep(0.5)
                continue
            answer_by = min(deadline, time.monotonic() + 20)  # then resend, as a client would
            while time.monotonic() < answer_by:
                reply = self.topics.replies.get(sent.key)
                if reply is not None:
                    if reply.type == "CommandAccepted":
                        sent.status, sent.command_id = "accepted", sent.key
                    else:
                        sent.status, sent.detail = "rejected", reply.data.decode(errors="replace")[:300]
                    return
                await asyncio.sleep(0.1)
        sent.status = "unanswered"

    async def pause(self, timeout: float) -> None:
        """Stop sending new commands and wait (at most ``timeout``) for those in flight."""
        self.running.clear()
        if self.inflight:
            await asyncio.wait(set(self.inflight), timeout=timeout)

    def resume(self) -> None:
        self.running.set()

    async def stop(self) -> None:
        self.running.clear()
        if self._generator:
            self._generator.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._generator
        for task in list(self.inflight):
            task.cancel()
        await asyncio.gather(*self.inflight, return_exceptions=True)
        await self.http.aclose()
        if self.producer:
            await self.producer.stop()


async def set_up(platform: Platform) -> list[District]:
    """In each district, through the public APIs: councils, a proposal deliberated and
    adopted (so voting, proposals and oversight consumers all take part), the resolution's
    tasks accepted by their implementer, a reminder policy under which an idle task
    stalls, and a vote open to the district's residents for the ballots of the load."""
    made = []
    quiet = Console(file=io.StringIO())
    for district in DISTRICTS:
        tag = uuid.uuid4().hex[:6]
        async with demo.Api(platform.urls(), district, timeout=90, auth=ActingAs(platform.issuer)) as api:
            councils = await demo.form_councils(api, tag, quiet)
            proposal = f"prop-{district}-{tag}"
            await demo.raise_and_deliberate(api, councils, proposal, quiet)
            await demo.vote(api, councils, proposal, f"vote-{tag}", quiet)
            resolution = f"res-{proposal}"
            await api.until("the resolution's registration", "oversight", f"resolutions/{resolution}")
            await api.send(SetReminderPolicy(district=district, actor=demo.WORKER, scope=PolicyScope.RESOLUTION,
                                             scope_id=resolution, not_accepted_days=30, stall_days=1,
                                             deadline_warning_days=7, escalate_after_days=1,
                                             supervisor_id=demo.SUPERVISOR.id))
            tasks = [f"task-{tag}-{i}" for i in range(TASKS_PER_DISTRICT + 1)]  # the last one stays idle
            for task in tasks:
                await api.send(AssignTask(district=district, actor=demo.WORKER, task_id=task,
                                          resolution_id=resolution, description="楼道照明改造。",
                                          implementer=Implementer(kind=ImplementerKind.SOCIAL_ORGANISATION,
                                                                  id="org-green-home", name="鼓楼绿色家园服务中心"),
                                          acceptance_standards=("全部感应灯可用",),
                                          due_at=datetime.now(timezone.utc) + timedelta(days=60)))
                await api.send(AcceptTask(district=district, actor=IMPLEMENTER, task_id=task))
            vote_id = f"vote-residents-{tag}"
            await api.send(OpenVote.model_validate({
                "district": district, "actor": {"id": demo.WORKER.id, "role": "community_worker"},
                "vote_id": vote_id, "council_id": councils.community,
                "matter": {"kind": "question", "id": f"priorities-{proposal}"},
                "terms": {"question": "楼道照明改造的优先次序", "method": "online", "majority": "simple",
                          "quorum_percent": 10, "secrecy": "open",
                          "closes_at": (datetime.now(timezone.utc) + timedelta(days=7)).isoformat(),
                          "electorate": {"kind": "residents_meeting", "scope_id": councils.community,
                                         "size": 1_000_000}}}))
            made.append(District(district, councils.community, vote_id, tasks[:-1], resolution))
        _say(f"set up {district}: council {councils.community}, vote {vote_id}, {len(tasks)} tasks")
    return made


# --- verification ---------------------------------------------------------------------------


@dataclass
class Report:
    """One verification: what failed (empty when all checks hold) and the figures."""

    problems: list[str] = field(default_factory=list)
    accepted: int = 0
    lost: int = 0
    stored: int = 0
    published: int = 0
    missing: int = 0
    duplicate_effects: int = 0
    lag: int = 0
    rebuild_mismatches: int = 0


def _state(row) -> dict:
    return json.loads(bytes(row["state"]))


async def _stored(pool: asyncpg.Pool, schema: str) -> list[asyncpg.Record]:
    return await pool.fetch(f'SELECT event_id, district, stream_id, version, topic, state, metadata::text AS metadata, '
                            f'metadata->>\'causation_id\' AS causation FROM "{schema}".events ORDER BY position')


class Verifier:
    """The five checks, from outside: the database, the topics and the services' HTTP."""

    def __init__(self, platform: Platform, topics: Topics, load: Load, districts: list[District]) -> None:
        self.platform, self.topics, self.load, self.districts = platform, topics, load, districts
        self.translators = {s: with_replies(_spec(s).translate, s) for s in SERVICES}
        self._rebuilds = itertools.count()

    async def check(self) -> Report:
        report = Report()
        try:
            pool = await asyncpg.create_pool(self.platform.dsn, min_size=1, max_size=4)
        except (OSError, asyncpg.PostgresError) as exc:
            report.problems.append(f"database: {exc!r}")
            return report
        try:
            stored = {s: await _stored(pool, s) for s in SERVICES}
            await self._commands_stored(stored, report)
            await self._events_published(stored, report)
            self._effects_once(stored, report)
            await self._caught_up(report)
            if not report.problems:  # rebuilds compare settled state only
                await self._read_models(pool, stored, report)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, KafkaError) as exc:
            report.problems.append(f"unavailable: {exc!r}")
        finally:
            await pool.close()
        return report

    async def _commands_stored(self, stored, report: Report) -> None:
        caused = {s: {r["causation"] for r in rows if not r["topic"].startswith(REPLY_TOPIC_PREFIX)}
                  for s, rows in stored.items()}
        accepted = [c for c in self.load.sent if c.status == "accepted"]
        report.accepted = len(accepted)
        lost = [c for c in accepted if c.command_id not in caused[c.service]]
        report.lost = len(lost)
        if lost:
            report.problems.append(f"{len(lost)} accepted commands not in their store, e.g. "
                                   f"{[(c.kind, c.channel, c.key) for c in lost[:3]]}")

    async def _events_published(self, stored, report: Report) -> None:
        if not await self.topics.at_end():
            report.problems.append("the topic reader has not reached the end of the topics")
        for service, rows in stored.items():
            for row in rows:
                topic = self._topic_of(service, row)
                if topic is None:
                    continue
                report.stored += 1
                if str(row["event_id"]) in self.topics.ids.get(topic, ()):
                    report.published += 1
                else:
                    report.missing += 1
        if report.missing:
            report.problems.append(f"{report.missing} stored events not on their topics")

    def _topic_of(self, service: str, row) -> str | None:
        event = RecordedEvent(position=0, tx_id=0, stream_id=row["stream_id"], version=row["version"],
                              event_id=row["event_id"], district=row["district"], topic=row["topic"],
                              state=bytes(row["state"]), metadata_json=row["metadata"], hash=b"")
        publication = self.translators[service](event)
        if publication is None:
            return None
        return publication.topic or events_topic(row["district"], service)

    def _effects_once(self, stored, report: Report) -> None:
        effects: Counter = Counter()
        for row in stored["voting"]:
            if row["topic"].endswith(":Ballot.Cast"):
                s = _state(row)
                effects["ballot", row["district"], s["vote_id"], s["voter_id"]] += 1
        for row in stored["oversight"]:
            if row["topic"].endswith(":Resolution.Registered"):
                effects["resolution", row["district"], _state(row)["resolution_id"]] += 1
            elif row["topic"].endswith(":Task.ReminderFired"):
                effects["reminder", row["stream_id"], _state(row)["key"]] += 1
            elif row["topic"].endswith(":Task.ProgressReported"):
                effects["progress", row["district"], _state(row)["summary"]] += 1
        for row in stored["proposals"]:
            if row["topic"].endswith(":Proposal.Raised"):
                effects["proposal", row["district"], _state(row)["proposal_id"]] += 1
        twice = {k: n for k, n in effects.items() if n > 1}
        report.duplicate_effects = sum(n - 1 for n in twice.values())
        if twice:
            report.problems.append(f"{len(twice)} effects happened more than once, e.g. {list(twice.items())[:3]}")

    async def _caught_up(self, report: Report) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.platform.kafka.bootstrap, request_timeout_ms=10_000)
        await admin.start()
        try:
            groups = [g[0] for g in await admin.list_consumer_groups() if g[0].startswith(GROUP_PREFIX + ".")]
            ends = await self.topics.consumer.end_offsets(
                [TopicPartition(t, p) for t in self.platform.topics() for p in range(3)])
            lag = 0
            for group in groups:
                committed = await admin.list_consumer_group_offsets(group)
                for tp, meta in committed.items():
                    lag += max(0, ends.get(tp, meta.offset) - meta.offset)
                subscribed = {tp.topic for tp in committed}
                for tp, end in ends.items():  # a partition never committed is behind by all it holds
                    if tp.topic in subscribed and tp not in committed:
                        lag += end
            report.lag = lag
            if lag:
                report.problems.append(f"consumers {lag} messages behind")
        finally:
            await admin.close()

    async def _read_models(self, pool: asyncpg.Pool, stored, report: Report) -> None:
        mismatches = []
        mismatches += await self._voting_model(pool, stored)
        mismatches += await self._proposals_model()
        mismatches += await self._oversight_model(pool)
        report.rebuild_mismatches = len(mismatches)
        report.problems += mismatches

    async def _voting_model(self, pool: asyncpg.Pool, stored) -> list[str]:
        """Who has voted (``participants``) against the ballots in the log, and each vote's
        turnout over HTTP against the ballots answered 2xx."""
        from services.voting.domain import vote_stream

        logged = set()
        for row in stored["voting"]:
            if row["topic"].endswith(":Ballot.Cast"):
                s = _state(row)
                logged.add((vote_stream(row["district"], s["vote_id"]), s["voter_id"]))
        live = {(r["vote_id"], r["voter_id"]) for r in await pool.fetch("SELECT vote_id, voter_id FROM "
                                                                         "voting.participants")}
        problems = [] if live == logged else [f"voting participants differ from the log: {len(live ^ logged)} rows"]
        accepted = {(c.district, c.effect) for c in self.load.sent if c.kind == "ballot" and c.status == "accepted"}
        async with httpx.AsyncClient(timeout=10, auth=ActingAs(self.platform.issuer)) as client:
            for d in self.districts:
                url = f"{self.platform.urls()['voting']}/{d.name}/votes/{d.vote_id}/tally"
                turnout = (await client.get(url)).json()["turnout"]
                counted = sum(1 for c in stored["voting"] if c["district"] == d.name
                              and c["topic"].endswith(":Ballot.Cast") and _state(c)["vote_id"] == d.vote_id)
                want = sum(1 for dist, _ in accepted if dist == d.name)
                if turnout != counted or turnout < want:
                    problems.append(f"vote {d.name}/{d.vote_id}: turnout {turnout}, {counted} ballots in the log, "
                                    f"{want} answered 2xx")
        return problems

    async def _proposals_model(self) -> list[str]:
        """The proposals read models against the project's own rebuild from the log."""
        from services.proposals import projections

        pool = await create_pool(self.platform.dsn, "proposals", max_size=2)
        try:
            query = "SELECT kind, district, id, council_id, status, doc FROM read_models ORDER BY 1, 2, 3"
            before = [tuple(r) for r in await pool.fetch(query)]
            for d in self.districts:
                await projections.rebuild(pool, Repository(EventStore(pool, SystemClock())), d.name)
            after = [tuple(r) for r in await pool.fetch(query)]
        finally:
            await pool.close()
        if before == after:
            return []
        return [f"proposals read models differ from a rebuild: {len(set(before) ^ set(after))} documents"]

    async def _oversight_model(self, pool: asyncpg.Pool) -> list[str]:
        """Oversight's consumed read models (audit steps, councils, registered resolutions)
        against a rebuild: the proposals and voting events read back from their topics and
        handed, once each, to oversight's own consumer handlers in a fresh schema."""
        from services.oversight import consumers
        from services.oversight.application import build_bus

        schema = f"chaos_rebuild_{next(self._rebuilds)}"
        handlers: dict[str, dict] = {}

        class Wiring:  # what wire_consumers needs of a ServiceContext
            def on_events(self, name: str, service: str, table: dict) -> None:
                handlers[service] = table

        await migrations.upgrade(self.platform.dsn, schema, migrations.locations("oversight"))
        fresh = await create_pool(self.platform.dsn, schema, max_size=2)
        try:
            repository = Repository(EventStore(fresh, SystemClock()))
            consumers.wire_consumers(Wiring(), build_bus(repository, SystemClock()))
            for service, table in handlers.items():
                for d in DISTRICTS:
                    for envelope in list(self.topics.records[events_topic(d, service)]):
                        if envelope.type in table:
                            model = registry.decode(envelope, Kind.EVENT)
                            async with fresh.acquire() as conn, conn.transaction():
                                await table[envelope.type](model, envelope, conn)
            problems = []
            for name, query in (
                ("audit steps", "SELECT district, source, message_id, type, occurred_at, actor_id, actor_role, seat_id, "
                                "proposal_id, vote_id, resolution_id, task_id, body::text FROM {}.ov_audit "
                                "WHERE source IN ('proposals', 'voting')"),
                ("councils", "SELECT district, council_id, level, area_id, parent_council_id FROM {}.ov_councils"),
                ("resolutions", "SELECT district, resolution_id, proposal_id, council_id, community_id, vote_id, "
                                "title, budget_fen FROM {}.ov_resolutions"),
            ):
                live = {tuple(r) for r in await pool.fetch(query.format("oversight"))}
                rebuilt = {tuple(r) for r in await pool.fetch(query.format(f'"{schema}"'))}
                if live != rebuilt:
                    problems.append(f"oversight {name} differ from a rebuild: {len(live - rebuilt)} only live, "
                                    f"{len(rebuilt - live)} only rebuilt")
            return problems
        finally:
            await fresh.close()
            await pool.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _spec(service: str):
    from yishi.cli import load_spec

    return load_spec(service)


# --- the faults -----------------------------------------------------------------------------


@dataclass
class Round:
    target: str
    detail: str
    recovery_s: float | None
    problems: list[str]


class Chaos:
    """Kills the targets in turn under the load and verifies after each one."""

    def __init__(self, platform: Platform, load: Load, verifier: Verifier, *, bound_s: float = 90.0,
                 say: Callable[[str], None] = _say) -> None:
        self.platform, self.load, self.verifier = platform, load, verifier
        self.bound_s, self.say = bound_s, say
        self.kills: Counter = Counter()
        self.rounds: list[Round] = []
        self._turn: Counter = Counter()
        self._back = time.monotonic()
        self.mid_batch = 0  # relay kills that caught it behind the log

    def targets(self) -> list[str]:
        if self.platform.brokers:
            return list(TARGETS)
        return [t for t in TARGETS if t not in ("broker", "stall")]  # Tansu: one node, memory only

    async def run(self, rounds: int) -> None:
        for n in range(1, rounds + 1):
            for target in self.targets():
                await self.hit(target, n)

    async def hit(self, target: str, round_no: int) -> Round:
        """Hit ``target`` under the load, then pause the load and check until every check
        holds; the recovery time runs from the moment the target is back (restarted,
        continued) until the start of the first check that held (the load is paused then,
        so the state it finds is the state at its start)."""
        await asyncio.sleep(2.0)  # under load before the fault
        turn = self._turn[target]
        self._turn[target] += 1
        fault = getattr(self, f"_{target}", None) or (lambda turn: self._replica(target, turn))
        detail = await fault(turn)
        self.kills[target] += 1
        await asyncio.sleep(1.0)  # under load after the recovery
        await self.load.pause(self.bound_s)
        while True:
            checked_at = time.monotonic()  # the state the check then finds held at its start
            report = await self.verifier.check()
            if not report.problems or checked_at - self._back > self.bound_s:
                break
            await asyncio.sleep(1.0)
        recovery = checked_at - self._back if not report.problems else None
        self.last = report
        done = Round(target, detail, recovery, report.problems)
        self.rounds.append(done)
        self.say(f"round {round_no} {target}: {detail}; "
                 + (f"recovered in {recovery:.1f} s" if recovery is not None else f"NOT RECOVERED: {report.problems}")
                 + f" (accepted {report.accepted}, stored {report.stored}, on topics {report.published}, "
                   f"duplicate deliveries {self.verifier.topics.duplicates})")
        self.load.resume()
        return done

    def _restarted(self) -> None:
        self._back = time.monotonic()

    async def _replica(self, service: str, turn: int) -> str:
        replica = self.platform.replicas[service][turn % self.platform.replica_count]
        replica.kill()
        await asyncio.sleep(2.0)
        replica.start()
        self._restarted()
        await replica.ready(self.bound_s)
        return f"SIGKILL {replica.name}, restarted"

    async def _relay(self, turn: int) -> str:
        """A burst of ballots, then SIGKILL of the voting replica holding the relay's lock
        while the relay's stored position is behind the log: it has events read or sent
        but not confirmed (a batch under way)."""
        service = "voting"
        for _ in range(RELAY_BATCH * 6):
            self.load.submit(self.load.next_command("ballot"))
        conn = await asyncpg.connect(self.platform.dsn)
        try:
            deadline, lag, holder = time.monotonic() + 30, 0, None
            while time.monotonic() < deadline and holder is None:
                lag = await conn.fetchval(
                    f"SELECT coalesce((SELECT max(position) FROM {service}.events), 0) - coalesce((SELECT position "
                    f"FROM {service}.relay_position WHERE name = 'kafka'), 0)")
                holder = await self._relay_holder(conn, service) if lag > 0 else None
                if holder is None:
                    await asyncio.sleep(0.01)
        finally:
            await conn.close()
        if holder is not None:
            self.mid_batch += 1
            what = f"holding the relay {lag} events behind the log"
        else:
            holder = self.platform.replicas[service][turn % self.platform.replica_count]
            what = "(the relay was never caught behind the log)"
        holder.kill()
        await asyncio.sleep(1.0)
        holder.start()
        self._restarted()
        await holder.ready(self.bound_s)
        return f"SIGKILL {holder.name} {what}, restarted"

    async def _relay_holder(self, conn: asyncpg.Connection, service: str) -> Replica | None:
        ports = await conn.fetch(
            "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE l.locktype = 'advisory' "
            "AND l.granted AND l.objid = (hashtext($1)::bigint & 4294967295)::oid", f"yishi.relay.{service}.kafka")
        wanted = {r["client_port"] for r in ports}
        for replica in self.platform.replicas[service]:
            with contextlib.suppress(psutil.Error):
                if any(c.laddr and c.laddr.port in wanted for c in psutil.Process(replica.proc.pid).net_connections()):
                    return replica
        return None

    async def _broker(self, turn: int) -> str:
        node = self.platform.brokers[turn % len(self.platform.brokers)]
        node.kill()
        await asyncio.sleep(3.0)
        self._restarted()
        await asyncio.to_thread(node.start)
        return f"SIGKILL {node.name}, restarted"

    async def _stall(self, turn: int) -> str:
        node = self.platform.brokers[(turn + 1) % len(self.platform.brokers)]
        node.pause()
        await asyncio.sleep(STALL_S)
        node.resume()
        self._restarted()
        return f"SIGSTOP {node.name} for {STALL_S:.0f} s, SIGCONT"

    async def _postgres(self, turn: int) -> str:
        pg = self.platform.postgres
        pg.kill()
        await asyncio.sleep(2.0)
        self._restarted()
        deadline = time.monotonic() + self.bound_s
        while True:  # the killed postmaster's backends may hold the data directory a moment
            try:
                await asyncio.to_thread(pg.start, 30)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(1.0)
        return "SIGKILL postgres, restarted on the same data directory"


# --- the figures ----------------------------------------------------------------------------


def figures(platform: Platform, load: Load, chaos: Chaos, verifier: Verifier) -> dict:
    """The run's figures; the keys the fault suite and ``bench/run chaos`` report."""
    last = chaos.last
    status = Counter(c.status for c in load.sent)
    recoveries = [r.recovery_s for r in chaos.rounds if r.recovery_s is not None]
    return {
        "bench": "chaos",
        "broker": platform.describe(),
        "rounds": len(chaos.rounds) // max(1, len(chaos.targets())),
        "kills": sum(chaos.kills.values()),
        "sigkills": sum(n for target, n in chaos.kills.items() if target != "stall"),
        "kills_by_target": dict(chaos.kills),
        "relay_kills_mid_batch": chaos.mid_batch,
        "sent": len(load.sent),
        "accepted": status["accepted"],
        "rejected": status["rejected"],
        "unanswered": status["unanswered"] + status["pending"],
        "lost": last.lost,
        "events_stored": last.stored,
        "events_published": last.published,
        "missing_events": last.missing,
        "duplicate_deliveries": verifier.topics.duplicates,
        "duplicate_effects": last.duplicate_effects,
        "rebuild_mismatches": last.rebuild_mismatches,
        "unrecovered_rounds": sum(1 for r in chaos.rounds if r.recovery_s is None),
        "recovery_s_p50": round(statistics.median(recoveries), 2) if recoveries else None,
        "recovery_s_max": round(max(recoveries), 2) if recoveries else None,
        "bound_s": chaos.bound_s,
    }


@contextlib.asynccontextmanager
async def chaos_run(broker: str = "apache", *, rate: float = 10.0, bound_s: float = 90.0):
    """The platform set up and under load; yields ``(platform, load, chaos, verifier)``."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # the faults make it loud; the rounds tell
    platform = Platform(broker)
    topics = load = None
    try:
        await platform.start()
        topics = Topics(platform.kafka.bootstrap, [make(d, s) for d in DISTRICTS for s in SERVICES
                                                   for make in (events_topic, replies_topic)])
        await topics.start()
        districts = await set_up(platform)
        load = Load(platform, topics, districts, rate=rate)
        verifier = Verifier(platform, topics, load, districts)
        chaos = Chaos(platform, load, verifier, bound_s=bound_s)
        await load.start()
        yield platform, load, chaos, verifier
    finally:
        if load is not None:
            await load.stop()
        if topics is not None:
            await topics.stop()
        await asyncio.to_thread(platform.stop)
