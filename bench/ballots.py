"""Ballots end to end, open loop: what a voter and another service see, beside a floor.

On the embedded stack (PostgreSQL and Kafka; ``YISHI_DATABASE_URL`` /
``YISHI_KAFKA_BOOTSTRAP`` instead when set) this starts three server processes, each
run as ``yishi serve`` runs a service (uvicorn, one process, tokens from a local issuer
verified against its JWKS):

* **voting** — ``yishi serve voting``, its real command rate limit raised out of the way
  (``YISHI_COMMAND_RATE_LIMIT``); ballots are ``POST /{district}/commands/CastBallot``
  with each voter's own token and an ``Idempotency-Key``;
* **oversight** — ``yishi serve oversight``, the service whose read model (its audit
  trail) consumes ``BallotAccepted``: a ballot is *visible* once oversight's inbox
  transaction recorded it;
* **floor** — ``python -m bench._floor``: the same server stack and token check, then one
  ``INSERT`` transaction per request, nothing else.

Both targets are driven the same way, one rate after the other (floor, then ballots, at
each rate): an open loop, the k-th request of a phase scheduled at ``k / rate`` seconds
and sent then whatever became of the earlier ones, over a pool of keep-alive
connections large enough never to hold a request back for long. Latency is measured
from each request's *scheduled* send time, so time a request spent waiting to be sent
counts (no coordinated omission); the client's own lag (sent minus scheduled) is
reported so a slow client shows. Between phases the run waits until the servers are idle
again (requests the client gave up on are still served). The client is a few lines of
HTTP/1.1 on asyncio streams rather than httpx: on two shared cores httpx's own cost per
request would be the bottleneck before either server. It runs on uvloop, as the servers
do: the CPU the client and its Kafka watch take from the two cores (about a third of a
millisecond per ballot on asyncio's own loop) is CPU the servers do not get.

Per phase: HTTP p50 / p99 / p99.9 (all requests; a request unanswered within
``--timeout`` counts as an error at that latency), errors, achieved rate, the server
process's CPU per request, less what it uses idle (a figure a busy machine disturbs less
than latency) and the PostgreSQL backends'; the *CPU budget*: every process's CPU per
request, less its idle CPU (the server, for ballots oversight too, the PostgreSQL
backends, the embedded Kafka broker, this process: client and watch; idle as measured
again at the end of the run, all warm), their sum, and
the rate at which that sum fills every core of the machine (``cpu_bound_rate``: no
target can sustain more here, whatever its latency); for ballots also *kafka* (the ballot's ``occurred_at``, just
before its commit, to its arrival at a consumer of ``{district}.voting.events`` in this
process: the relay's commit-to-Kafka latency plus one fetch) and *e2e* (scheduled send
to oversight's inbox row for it).

Last output line: JSON with ``max_rate_p99_under_100ms`` (the highest offered rate
whose HTTP p99 stayed under 100 ms with no error), ``floor_max_rate`` (the same for the
floor), ``vs_floor`` and ``rates`` / ``floor`` (offered, achieved, p50, p99, p999,
errors, e2e_p99 …).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import orjson
import psutil

from bench._common import children_cpu, drop_schema, emit, fresh_schema, own_cpu, say, servers
from yishi.auth import LocalIssuer
from yishi.names import events_topic

ROOT = Path(__file__).resolve().parent.parent
CHOICES = ("in_favour", "against", "abstain")


# -- the client --------------------------------------------------------------


class Client:
    """A pool of up to ``size`` HTTP/1.1 keep-alive connections to one server."""

    IDLE_S = 3.0  # below uvicorn's keep-alive timeout (5 s): an older idle connection is closed, not reused

    def __init__(self, port: int, size: int) -> None:
        self.port = port
        self.slots = asyncio.Semaphore(size)
        self.idle: list[tuple[float, asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def request(self, data: bytes) -> int:
        """Send one request (complete bytes); the response's status."""
        async with self.slots:
            now = time.monotonic()
            while self.idle and now - self.idle[-1][0] > self.IDLE_S:
                self.idle.pop()[2].close()
            if self.idle:
                _, reader, writer = self.idle.pop()
            else:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.transport.set_write_buffer_limits(high=1 << 20)
            try:
                writer.write(data)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                lower = head.lower()
                at = lower.find(b"content-length:")
                length = int(lower[at + 15:lower.index(b"\r\n", at)]) if at >= 0 else 0
                await reader.readexactly(length)
            except BaseException:
                writer.close()
                raise
            if b"connection: close" in lower:
                writer.close()
            else:
                self.idle.append((time.monotonic(), reader, writer))
            return status

    def close(self) -> None:
        while self.idle:
            self.idle.pop()[2].close()


def post(path: str, body: bytes, token: str, key: str) -> bytes:
    """The bytes of one ``POST`` with a JSON body, a bearer token and an idempotency key."""
    return (f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            f"authorization: Bearer {token}\r\nidempotency-key: {key}\r\ncontent-length: {len(body)}\r\n\r\n"
            ).encode() + body


@dataclass
class Sample:
    """One request: when it was due, sent, answered (loop time), and how."""

    key: str
    due: float
    sent: float = math.nan
    done: float = math.nan
    status: int = 0


async def open_loop(client: Client, rate: float, seconds: float, make: "callable", timeout: float) -> list[Sample]:
    """Send ``rate × seconds`` requests, the k-th due at ``k / rate`` s from now, each at
    its due time whatever became of the others; wait for every answer (or ``timeout``)."""
    loop = asyncio.get_running_loop()
    count = max(1, int(rate * seconds))
    start = loop.time() + 0.05
    samples: list[Sample] = []
    tasks = []

    async def one(sample: Sample, data: bytes) -> None:
        sample.sent = loop.time()
        try:
            sample.status = await asyncio.wait_for(client.request(data), timeout)
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError):
            sample.status = 0
        sample.done = loop.time()

    for k in range(count):
        due = start + k / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        key, data = make(k)
        sample = Sample(key, due)
        samples.append(sample)
        tasks.append(asyncio.create_task(one(sample, data)))
    await asyncio.gather(*tasks)
    return samples


def pct(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (nearest rank) of ``values``, None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _per(seconds: float | None, count: int) -> float | None:
    return None if seconds is None or not count else round(1000 * seconds / count, 2)


CORES = len(os.sched_getaffinity(0))
"""The cores this run shares: a CPU budget of ``1000 * CORES`` ms per second."""


def cpu(pid: int) -> float:
    """CPU seconds the process ``pid`` has used so far."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def meters(srv, processes: list["Process"]) -> dict[str, Callable[[], float | None]]:
    """What to read the CPU of, by name: the server processes, the embedded PostgreSQL's
    backends and Kafka broker (when embedded) and this process."""
    out: dict[str, Callable[[], float | None]] = {p.name: (lambda pid=p.proc.pid: cpu(pid)) for p in processes}
    if srv.postgres_pid is not None:
        out["db"] = lambda: children_cpu(srv.postgres_pid)
    if srv.kafka_pid is not None:
        out["broker"] = lambda: cpu(srv.kafka_pid)
    out["bench"] = own_cpu
    return out


def ms(value: float | None) -> float | None:
    return None if value is None else round(1000 * value, 1)


@dataclass
class Phase:
    """The figures of one target at one offered rate."""

    target: str
    offered: float
    samples: list[Sample]
    kafka: list[float] = field(default_factory=list)
    e2e: list[float] = field(default_factory=list)
    # CPU seconds over the phase (and what it left to finish), by process: the server's
    # under the target's name, "db" (the embedded PostgreSQL's backends), "broker" (the
    # embedded Kafka), "bench" (this process: client and Kafka watch); cpu_by less idle.
    cpu_used: dict[str, float] = field(default_factory=dict)
    wall: float = 0.0
    cpu_by: dict[str, float] = field(default_factory=dict)

    def less_idle(self, idle: dict[str, float]) -> None:
        """Each process's CPU less what it burns idle (a relay's poll, timers, health
        checks) over the phase's wall time."""
        self.cpu_by = {k: max(0.0, used - idle[k] * self.wall) for k, used in self.cpu_used.items()}

    @property
    def server(self) -> str:
        return "voting" if self.target == "ballots" else "floor"

    @property
    def errors(self) -> int:
        return sum(1 for s in self.samples if s.status != 200)

    def row(self) -> dict:
        if not self.samples:
            return {"offered": self.offered, "skipped": True}
        latencies = [s.done - s.due for s in self.samples]
        lag = [s.sent - s.due for s in self.samples]
        span = max(s.done for s in self.samples) - min(s.due for s in self.samples)
        ok = len(self.samples) - self.errors
        out = {"offered": self.offered, "achieved": round(ok / span, 1) if span > 0 else 0.0,
               "requests": len(self.samples), "p50": ms(pct(latencies, 0.5)), "p99": ms(pct(latencies, 0.99)),
               "p999": ms(pct(latencies, 0.999)), "errors": self.errors,
               "client_lag_p99": ms(pct(lag, 0.99)), "client_lag_max": ms(max(lag)),
               "cpu_ms_per_request": _per(self.cpu_by.get(self.server), len(self.samples)),
               "db_cpu_ms_per_request": _per(self.cpu_by.get("db"), len(self.samples))}
        if self.cpu_by:
            by = {name: _per(s, len(self.samples)) for name, s in self.cpu_by.items()}
            total = sum(by.values())
            out.update(cpu_ms_per_request_by_process=by, machine_cpu_ms_per_request=round(total, 2),
                       cpu_bound_rate=round(1000 * CORES / total) if total else None)
        if self.target == "ballots":
            out.update(kafka_p50=ms(pct(self.kafka, 0.5)), kafka_p99=ms(pct(self.kafka, 0.99)),
                       visible=len(self.e2e), e2e_p50=ms(pct(self.e2e, 0.5)), e2e_p99=ms(pct(self.e2e, 0.99)))
        return out

    @property
    def under_100ms(self) -> bool:
        if not self.samples:
            return False
        p99 = pct([s.done - s.due for s in self.samples], 0.99)
        return self.errors == 0 and p99 is not None and p99 < 0.1


# -- the servers -------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Process:
    name: str
    port: int
    proc: subprocess.Popen
    log: Path


def spawn(name: str, argv: list[str], env: dict[str, str], logs: Path) -> Process:
    port = int(env["YISHI_HTTP_PORT"])
    log = logs / f"{name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    return Process(name, port, proc, log)


async def ready(process: Process, timeout: float = 120.0) -> None:
    """Wait until ``process`` answers ``/readyz`` (or, for the floor, anything)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.proc.poll() is not None:
            raise RuntimeError(f"{process.name} exited ({process.proc.returncode}); see {process.log}:\n"
                               + process.log.read_text()[-3000:])
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", process.port)
            writer.write(b"GET /readyz HTTP/1.1\r\nhost: x\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            writer.close()
            if process.name == "floor" or head[9:12] == b"200":
                return
        except OSError:
            pass
        await asyncio.sleep(0.25)
    raise RuntimeError(f"{process.name} not ready within {timeout:.0f} s; see {process.log}")


async def settle(*processes: Process, busy: float = 25.0, timeout: float = 30.0) -> None:
    """Wait (up to ``timeout`` s) until each of ``processes`` uses under ``busy`` % of a core
    over a second: requests a client gave up on are still being served, and would burden
    the next phase."""
    watched = [psutil.Process(p.proc.pid) for p in processes]
    for w in watched:
        w.cpu_percent(None)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        if all(w.cpu_percent(None) < busy for w in watched):
            return


def read(meter: dict[str, Callable[[], float | None]]) -> dict[str, float | None]:
    return {name: f() for name, f in meter.items()}


async def idle_cpu(meter: dict[str, Callable[[], float | None]], seconds: float) -> dict[str, float]:
    """CPU seconds per second each of ``meter`` uses while no request comes: subtracted
    from each phase's CPU."""
    before = read(meter)
    started = time.monotonic()
    await asyncio.sleep(seconds)
    wall = time.monotonic() - started
    after = read(meter)
    return {k: (after[k] - before[k]) / wall for k in meter if before[k] is not None and after[k] is not None}


class KafkaWatch:
    """Reads ``{district}.voting.events`` from the start: when each ballot arrived, less
    its ``occurred_at``."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        from aiokafka import AIOKafkaConsumer

        # fetch_max_wait_ms stays aiokafka's 500: the broker answers a fetch as soon as a
        # record is there, so the wait only bounds an empty one. At 5 ms the empty fetches
        # alone cost the broker a fifth of a core, taken from the servers measured.
        self.consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                         enable_auto_commit=False)
        self.seen: dict[str, float] = {}
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        await self.consumer.start()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=100, max_records=5000)
            now = time.time()
            for records in batches.values():
                for r in records:
                    if (dict(r.headers).get("ce_type") or b"") != b"BallotAccepted":
                        continue
                    body = orjson.loads(r.value)
                    self.seen[body["ballot_id"]] = now - datetime.fromisoformat(body["occurred_at"]).timestamp()

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self.consumer.stop()


# -- the run -------------------------------------------------------------------


async def run(args, srv) -> dict:
    district = f"b{os.urandom(4).hex()}"
    schemas = {"voting": fresh_schema("bench_voting"), "oversight": fresh_schema("bench_oversight"),
               "floor": fresh_schema("bench_floor")}
    logs = Path(tempfile.mkdtemp(prefix="yishi-bench-ballots-"))
    issuer = LocalIssuer(logs / "issuer")
    issuer.serve()
    base = {k: v for k, v in os.environ.items() if not k.startswith("YISHI_")}
    common = {**base, **issuer.settings(), "YISHI_DATABASE_URL": srv.database_url,
              "YISHI_KAFKA_BOOTSTRAP": srv.kafka_bootstrap, "YISHI_DISTRICTS": district,
              "YISHI_LOG_JSON": "false", "YISHI_LOG_LEVEL": "WARNING",
              "YISHI_CONSUMER_GROUP_PREFIX": f"bench{district}",
              "YISHI_COMMAND_RATE_LIMIT": "1000000/second"}
    processes: list[Process] = []
    watch: KafkaWatch | None = None
    try:
        for name in ("voting", "oversight"):
            env = {**common, "YISHI_DB_SCHEMA": schemas[name], "YISHI_HTTP_PORT": str(free_port())}
            subprocess.run([sys.executable, "-m", "yishi.cli", "migrate", name], env=env, cwd=ROOT, check=True,
                           stdout=subprocess.DEVNULL)
            processes.append(spawn(name, [sys.executable, "-m", "yishi.cli", "serve", name], env, logs))
        floor_env = {**common, "YISHI_DB_SCHEMA": schemas["floor"], "YISHI_HTTP_PORT": str(free_port())}
        processes.append(spawn("floor", [sys.executable, "-m", "bench._floor"], floor_env, logs))
        say(f"starting voting, oversight and the floor (pids {', '.join(str(p.proc.pid) for p in processes)}; "
            f"district {district}; logs in {logs})")
        voters = args.voters
        say(f"minting {voters} voters' tokens")
        tokens = [issuer.for_actor({"id": f"res-{i:06d}", "role": "resident"}, district, ttl=6 * 3600)
                  for i in range(voters)]
        await asyncio.gather(*(ready(p) for p in processes))
        voting, oversight, floor = processes

        client = {"ballots": Client(voting.port, args.connections), "floor": Client(floor.port, args.connections)}
        phases = [(args.warmup_rate, args.warmup)] if args.warmup > 0 else []
        phases += [(rate, args.seconds) for rate in args.rates]
        total = sum(int(rate * seconds) for rate, seconds in phases)
        votes = math.ceil(total / voters)
        worker = issuer.mint("worker-1", district, ["community_worker"], acts_for=["council-1"])
        closes = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
        for v in range(votes):
            body = orjson.dumps({
                "district": district, "actor": {"id": "worker-1", "role": "community_worker"},
                "vote_id": f"vote-{v}", "council_id": "council-1", "matter": {"kind": "question", "id": f"q-{v}"},
                "terms": {"question": "bench", "method": "online", "majority": "simple", "quorum_percent": 50,
                          "secrecy": "secret" if args.secret else "open", "closes_at": closes,
                          # far more electors than voters: no vote closes because everyone voted
                          "electorate": {"kind": "residents_meeting", "scope_id": "community-1",
                                         "size": 100 * voters}}})
            status = await client["ballots"].request(post(f"/{district}/commands/OpenVote", body, worker, f"open-{v}"))
            if status != 200:
                raise RuntimeError(f"OpenVote answered {status}")
        say(f"{votes} votes open; {args.connections} client connections per target")
        watch = KafkaWatch(srv.kafka_bootstrap, events_topic(district, "voting"))
        await watch.start()
        meter = meters(srv, processes)
        idle = await idle_cpu(meter, seconds=args.idle)
        say("idle CPU, % of a core: " + ", ".join(f"{k} {100 * v:.1f}" for k, v in idle.items())
            + f"; {CORES} cores")

        ballot_path = f"/{district}/commands/CastBallot"
        sent = 0  # ballots so far: the k-th is voter k mod voters on vote k div voters

        def ballot(tag: str):
            def make(k: int) -> tuple[str, bytes]:
                n = sent + k
                voter, vote, ballot_id = n % voters, n // voters, f"{tag}-{n}"
                body = orjson.dumps({"district": district, "actor": {"id": f"res-{voter:06d}", "role": "resident"},
                                     "vote_id": f"vote-{vote}", "ballot_id": ballot_id, "choice": CHOICES[n % 3]})
                return ballot_id, post(ballot_path, body, tokens[voter], ballot_id)
            return make

        def floor_request(k: int) -> tuple[str, bytes]:
            body = orjson.dumps({"district": district, "vote_id": "vote-floor", "ballot_id": f"f-{k}",
                                 "choice": CHOICES[k % 3]})
            return f"f-{k}", post("/floor", body, tokens[k % voters], f"f-{k}")

        ov = await asyncpg.connect(srv.database_url, server_settings={"search_path": schemas["oversight"]})
        results: dict[str, list[Phase]] = {"floor": [], "ballots": []}
        broken: set[str] = set()  # targets that failed a rate (over 10 % errors)
        try:
            for i, (rate, seconds) in enumerate(phases):
                warm = args.warmup > 0 and i == 0
                for target in ("floor", "ballots"):
                    if not warm and target in broken:
                        say(f"{target}: {rate:g}/s skipped (a lower rate already failed)")
                        results[target].append(Phase(target, rate, []))
                        continue
                    tag = f"p{i}"
                    client[target].close()  # fresh connections per phase
                    say(f"{'warm-up ' if warm else ''}{target}: {rate:g}/s for {seconds:g} s")
                    make = floor_request if target == "floor" else ballot(tag)
                    # The floor's phase spends nothing in oversight or the broker: their idle.
                    metered = [k for k in idle if k not in (("floor",) if target == "ballots" else
                                                              ("voting", "oversight", "broker"))]
                    cpu0, wall0 = read({k: meter[k] for k in metered}), time.monotonic()
                    samples = await open_loop(client[target], rate, seconds, make, args.timeout)
                    phase = Phase(target, rate, samples)
                    if target == "ballots":
                        sent += len(samples)
                        await collect(phase, watch, ov, district, tag, args.drain)
                    await settle(*((voting, oversight) if target == "ballots" else (floor,)))
                    cpu1 = read({k: meter[k] for k in metered})
                    phase.wall = time.monotonic() - wall0
                    phase.cpu_used = {k: cpu1[k] - cpu0[k] for k in metered}
                    phase.less_idle(idle)
                    row = phase.row()
                    say("    " + ", ".join(f"{k} {v}" for k, v in row.items() if k != "offered"))
                    if not warm:
                        results[target].append(phase)
                        if phase.errors > len(samples) // 10:
                            broken.add(target)  # a higher rate would only queue longer
            # Idle again, now that everything is warm: the first measure, just after the start,
            # caught the broker's JVM still compiling (16 % of a core then, 4 % once warm),
            # which would be taken off every phase.
            idle = await idle_cpu(meter, seconds=args.idle)
            say("idle CPU at the end, % of a core: " + ", ".join(f"{k} {100 * v:.1f}" for k, v in idle.items()))
            for phase in results["floor"] + results["ballots"]:
                phase.less_idle(idle)
        finally:
            await ov.close()
        return {"district": district, "results": results, "votes": votes, "voters": voters}
    finally:
        if watch is not None:
            await watch.stop()
        for p in processes:
            p.proc.terminate()
        for p in processes:
            try:
                p.proc.wait(15)
            except subprocess.TimeoutExpired:
                p.proc.kill()
        for schema in schemas.values():
            await drop_schema(srv.database_url, schema)


async def collect(phase: Phase, watch: KafkaWatch, ov: asyncpg.Connection, district: str, tag: str,
                  drain: float) -> None:
    """Wait (up to ``drain`` s without progress) until every accepted ballot of ``phase``
    reached the Kafka watch and oversight's read model; keep their latencies."""
    offset = time.time() - asyncio.get_running_loop().time()  # loop time → wall clock
    accepted = {s.key: s for s in phase.samples if s.status == 200}
    visible: dict[str, float] = {}
    last, progress = -1, time.monotonic()
    while time.monotonic() - progress < drain:
        rows = await ov.fetch(
            "SELECT a.body->>'ballot_id' AS ballot, extract(epoch FROM i.processed_at)::float8 AS at "
            "FROM ov_audit a JOIN inbox i ON i.message_id = a.message_id "
            "WHERE a.district = $1 AND a.type = 'BallotAccepted' AND a.body->>'ballot_id' LIKE $2",
            district, f"{tag}-%")
        visible = {r["ballot"]: r["at"] for r in rows}
        arrived = sum(1 for key in accepted if key in watch.seen)
        if len(visible) >= len(accepted) and arrived >= len(accepted):
            break
        if len(visible) + arrived != last:
            last, progress = len(visible) + arrived, time.monotonic()
        await asyncio.sleep(0.5)
    phase.kafka = [watch.seen[k] for k in accepted if k in watch.seen]
    phase.e2e = [visible[k] - (s.due + offset) for k, s in accepted.items() if k in visible]


async def main(args) -> None:
    with servers(kafka=True) as srv:
        say(f"ballots, open loop: rates {', '.join(f'{r:g}' for r in args.rates)}/s, {args.seconds:g} s each; "
            f"broker {srv.broker_description}")
        out = await run(args, srv)
        database = "embedded PostgreSQL" if srv.embedded else "YISHI_DATABASE_URL"
        broker = srv.broker_description
    floor, ballots = out["results"]["floor"], out["results"]["ballots"]
    best = max((p.offered for p in ballots if p.under_100ms), default=0)
    floor_best = max((p.offered for p in floor if p.under_100ms), default=0)
    rows, floor_rows = [b.row() for b in ballots], [f.row() for f in floor]
    table = []
    for fr, br in zip(floor_rows, rows):
        fr, br = ({k: "-" for k in ("achieved", "p50", "p99", "p999", "errors", "kafka_p99", "e2e_p99",
                                    "client_lag_p99", "cpu_ms_per_request")} | r for r in (fr, br))
        table.append([f"{br['offered']:g}", f"{br['achieved']}", f"{br['p50']}", f"{br['p99']}", f"{br['p999']}",
                      str(br["errors"]), f"{br['kafka_p99']}", f"{br['e2e_p99']}", f"{br['client_lag_p99']}",
                      f"{br['cpu_ms_per_request']}", f"{fr['achieved']}", f"{fr['p50']}", f"{fr['p99']}",
                      f"{fr['p999']}", str(fr["errors"]), f"{fr['cpu_ms_per_request']}"])
    def budget(cells: list[dict], names: tuple[str, ...]) -> list[list[str]]:
        return ([[name, *(f"{c.get('cpu_ms_per_request_by_process', {}).get(name, '-')}" for c in cells)]
                 for name in names]
                + [["all", *(f"{c.get('machine_cpu_ms_per_request', '-')}" for c in cells)],
                   ["cpu-bound rate/s", *(f"{c.get('cpu_bound_rate', '-')}" for c in cells)]])
    emit("CPU per request by process (ms, less idle), by offered rate",
         ["process", *(f"{p.offered:g}/s" for p in ballots)],
         budget(rows, ("voting", "oversight", "db", "broker", "bench"))
         + [["floor:", *("" for _ in floor)]] + budget(floor_rows, ("floor", "db", "bench")),
         ["db = every PostgreSQL backend (for ballots voting's commands and relay, oversight's inbox); broker = the "
          "embedded Kafka; bench = this process (the client and its Kafka watch); "
          f"cpu-bound rate = {CORES} cores / all: no latency target can pass it here"], None)
    emit("Ballots over HTTP, open loop (ms from scheduled send)",
         ["offered/s", "achieved", "p50", "p99", "p99.9", "errors", "kafka p99", "e2e p99", "client lag p99",
          "cpu ms/req", "floor ach.", "floor p50", "floor p99", "floor p99.9", "floor err", "floor cpu ms/req"],
         table,
         [f"voting and oversight as `yishi serve` processes, floor = uvicorn + token check + one INSERT "
          f"transaction; {out['voters']} voters on {out['votes']} {'secret' if args.secret else 'open'} votes; "
          f"database: {database}; broker: {broker}. kafka = occurred_at to arrival at a consumer of the voting "
          "events topic; e2e = scheduled send to oversight's inbox row for the ballot; cpu ms/req = the server "
          "process's CPU per request, less its idle CPU (for voting: relay, timer, health checks), "
          "db_cpu_ms_per_request in the JSON the "
          "PostgreSQL backends' (all of them: for ballots also oversight's and the relay's).",
          f"highest rate with p99 < 100 ms and no error: ballots {best:g}/s, floor {floor_best:g}/s"
          + (" (the highest rate tried: the true limit may be higher)" if best == max(args.rates) else "")],
         {"bench": "ballots", "max_rate_p99_under_100ms": best, "floor_max_rate": floor_best,
          "vs_floor": round(best / floor_best, 3) if floor_best else None,
          "seconds_per_rate": args.seconds, "secret": args.secret, "broker": broker,
          "rates": rows, "floor": floor_rows})


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run ballots", description=__doc__.split("\n\n")[0],
                                epilog="Profile the voting process during a run: see bench/README.md.")
    p.add_argument("--rates", type=lambda s: [float(r) for r in s.split(",")], default=[250, 500, 1000, 1500],
                   help="offered rates per second, comma-separated, each for --seconds (default 250,500,1000,1500)")
    p.add_argument("--seconds", type=float, default=15.0, help="duration of each rate (default 15)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of an unreported warm-up phase (default 3)")
    p.add_argument("--warmup-rate", type=float, default=100.0, help="its rate (default 100/s)")
    p.add_argument("--voters", type=int, default=2000, help="distinct voters (tokens), reused across votes "
                                                            "(default 2000)")
    p.add_argument("--connections", type=int, default=256, help="client connections per target (default 256)")
    p.add_argument("--timeout", type=float, default=10.0, help="a request unanswered after this is an error "
                                                               "(default 10 s)")
    p.add_argument("--drain", type=float, default=15.0, help="how long to wait for ballots to reach oversight "
                                                             "without progress (default 15 s)")
    p.add_argument("--idle", type=float, default=5.0, help="seconds the servers' idle CPU is measured, to be "
                                                          "subtracted from each phase's (default 5)")
    p.add_argument("--secret", action="store_true", help="secret votes (default: open)")
    return p.parse_args(argv)


if __name__ == "__main__":
    import uvloop

    uvloop.run(main(parse()))
