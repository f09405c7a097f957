"""Shared by the benchmarks: where the servers are, progress lines, payloads, results."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import asyncpg

_T0 = time.monotonic()

#: The event topic (what the ``eventsourcing`` mapper would record) used by every benchmark.
TOPIC = "services.voting.domain:Ballot.Cast"


def say(message: str) -> None:
    """One progress line on stderr, with the time since start."""
    print(f"[{time.monotonic() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


@dataclass
class Servers:
    database_url: str
    kafka_bootstrap: str | None
    embedded: bool
    postgres_pid: int | None = None  # the embedded postmaster, for CPU accounting
    kafka_pid: int | None = None  # the embedded broker's process (one node), for CPU accounting
    kafka_embedded: bool = False
    broker: str | None = None  # "apache", "tansu" (embedded) or "external"; None without a broker
    broker_description: str | None = None


@contextlib.contextmanager
def servers(*, kafka: bool, engine: str | None = None) -> Iterator[Servers]:
    """The database (and broker): ``YISHI_DATABASE_URL`` / ``YISHI_KAFKA_BOOTSTRAP`` when set,
    otherwise the embedded servers, stopped again on the way out. ``engine`` (``apache`` or
    ``tansu``) chooses the embedded broker; None leaves it to :func:`yishi.embedded.kafka_engine`."""
    from yishi.embedded import EmbeddedStack, describe_broker

    db = os.environ.get("YISHI_DATABASE_URL")
    bootstrap = os.environ.get("YISHI_KAFKA_BOOTSTRAP") if kafka else None
    stack = None
    broker = description = None
    try:
        if not db or (kafka and not bootstrap):
            stack = EmbeddedStack(kafka=engine)
        if not db:
            say("starting embedded PostgreSQL")
            stack.postgres.start()
            db = stack.postgres.url
        else:
            say("using PostgreSQL from YISHI_DATABASE_URL")
        if kafka and not bootstrap:
            broker, description = stack.kafka.engine, describe_broker(stack.kafka)
            say(f"starting embedded broker: {description}")
            stack.kafka.start()
            bootstrap = stack.kafka.bootstrap
        elif kafka:
            broker, description = "external", f"YISHI_KAFKA_BOOTSTRAP={bootstrap}"
            say(f"using the broker at {description}")
        own_pg = stack is not None and stack.postgres.proc is not None
        yield Servers(db, bootstrap, embedded=own_pg, postgres_pid=stack.postgres.proc.pid if own_pg else None,
                      kafka_embedded=stack is not None and stack.kafka.proc is not None,
                      kafka_pid=stack.kafka.proc.pid if stack is not None and stack.kafka.proc is not None else None,
                      broker=broker, broker_description=description)
    finally:
        if stack is not None:
            say("stopping embedded servers")
            stack.stop()


def own_cpu() -> float:
    """CPU seconds used by this process so far (all threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def children_cpu(parent: int | None) -> float | None:
    """CPU seconds used so far by the live children of ``parent`` (the PostgreSQL backends
    of the embedded postmaster); None when unknown (external database, no /proc)."""
    if parent is None:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return None
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:  # ppid; utime and stime follow at 11 and 12
            total += int(fields[11]) + int(fields[12])
    return total / tick


def fresh_schema(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


async def drop_schema(dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def payloads(count: int = 256, size: int = 200) -> list[bytes]:
    """``count`` distinct JSON event states of exactly ``size`` bytes (a cast ballot, padded)."""
    out = []
    for i in range(count):
        body = {
            "ballot_id": str(uuid.UUID(int=i + 1)),
            "voter": f"resident-{i:06d}",
            "choice": ["yes", "no", "abstain"][i % 3],
            "class_version": 1,
            "note": "",
        }
        raw = json.dumps(body, separators=(",", ":"))
        body["note"] = "x" * max(0, size - len(raw))
        data = json.dumps(body, separators=(",", ":")).encode()
        assert len(data) == size or len(raw) > size, len(data)
        out.append(data)
    return out


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def emit(table_title: str, columns: list[str], rows: list[list[str]], notes: list[str], result: dict | None) -> None:
    """The human-readable table (rich when available), notes, then the JSON line last
    (none when ``result`` is None: a table before the last one)."""
    try:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=table_title)
        for i, c in enumerate(columns):
            table.add_column(c, justify="left" if i == 0 else "right")
        for r in rows:
            table.add_row(*r)
        console = Console(file=sys.stdout, width=130)
        console.print(table)
        for n in notes:
            console.print(n, highlight=False, markup=False)
    except ImportError:  # pragma: no cover - rich is a project dependency
        print(table_title)
        widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
        print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
        for r in rows:
            print("  ".join(v.ljust(w) for v, w in zip(r, widths)))
        for n in notes:
            print(n)
    sys.stdout.flush()
    sys.stderr.flush()
    if result is not None:
        print(json.dumps(result, separators=(", ", ": ")), flush=True)
