"""Event store appends/s with concurrent writers on distinct streams, against two baselines.

In one run on one PostgreSQL (embedded unless ``YISHI_DATABASE_URL``), each contender
in its own fresh schema, measured for a fixed time after a warm-up, in several rounds
whose order rotates; the medians are reported:

* **project** — :class:`yishi.store.EventStore`: ``writers`` asyncio tasks on a pool of
  ``writers`` connections, each appending one ~200-byte event per call with its
  expected version to its own streams (round-robin over ``--streams`` streams).
* **library** — the ``eventsourcing`` library's PostgreSQL recorder as an application
  uses it by default (``PostgresApplicationRecorder``: one transaction per call that
  takes an EXCLUSIVE table lock, NOTIFYs and inserts), ``writers`` threads, each
  inserting one ``StoredEvent`` per call with the next ``originator_version``.
* **raw** — raw asyncpg: ``writers`` connections, each running
  ``BEGIN; INSERT one row; COMMIT`` into a plain table with the same columns as the
  project's ``events`` table (identity primary key, no other index).

Targets (DESIGN.md): project ≥ 5× library and ≥ 0.75× raw. Last output line: JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from bench._common import (TOPIC, children_cpu, drop_schema, emit, fresh_schema, median, own_cpu, payloads, say,
                           servers)

TARGET_VS_LIBRARY = 5.0
TARGET_VS_RAW = 0.75
DISTRICT = "gulou"

RAW_DDL = """
CREATE TABLE raw_events (
    position   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_id  text NOT NULL,
    version    integer NOT NULL,
    event_id   uuid NOT NULL,
    district   text NOT NULL,
    topic      text NOT NULL,
    state      bytea NOT NULL,
    metadata   jsonb NOT NULL
)
"""
RAW_INSERT = (
    "INSERT INTO raw_events (stream_id, version, event_id, district, topic, state, metadata) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7)"
)


@dataclass
class Measurement:
    rate: float  # appends per second in the measured window
    client_us: float  # CPU of this process per append (µs)
    server_us: float | None  # CPU of the PostgreSQL backends per append (µs; embedded only)


class Window:
    """Counts appends per writer; the measured window starts after the warm-up."""

    def __init__(self, writers: int, postgres_pid: int | None) -> None:
        self.counts = [0] * writers
        self.stop = threading.Event()
        self.postgres_pid = postgres_pid
        self._start: tuple | None = None

    def _snapshot(self) -> tuple:
        return sum(self.counts), time.perf_counter(), own_cpu(), children_cpu(self.postgres_pid)

    def begin(self) -> None:
        self._start = self._snapshot()

    def end(self) -> Measurement:
        (c0, t0, m0, p0), (c1, t1, m1, p1) = self._start, self._snapshot()
        self.stop.set()
        n = max(c1 - c0, 1)
        server = 1e6 * (p1 - p0) / n if p0 is not None and p1 is not None else None
        return Measurement((c1 - c0) / (t1 - t0), 1e6 * (m1 - m0) / n, server)


async def _measure_async(window: Window, warmup: float, seconds: float) -> Measurement:
    await asyncio.sleep(warmup)
    window.begin()
    await asyncio.sleep(seconds)
    return window.end()


async def _run_async_writers(
    args, writer: Callable[[int, Window], Awaitable[None]]
) -> Measurement:
    window = Window(args.writers, args.postgres_pid)
    tasks = [asyncio.create_task(writer(w, window)) for w in range(args.writers)]
    measure = asyncio.create_task(_measure_async(window, args.warmup, args.seconds))
    await asyncio.wait([measure, *tasks], return_when=asyncio.FIRST_EXCEPTION)
    window.stop.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            measure.cancel()
            raise r
    return await measure


# -- the project store ---------------------------------------------------------------


async def bench_project(dsn: str, schema: str, args, states: list[bytes]) -> Measurement:
    from yishi import migrations
    from yishi import store as ys
    from yishi.db import create_pool

    await migrations.upgrade(dsn, schema, migrations.locations())
    pool = await create_pool(dsn, schema, min_size=args.writers, max_size=args.writers)
    try:
        es = ys.EventStore(pool)

        async def writer(w: int, window: Window) -> None:
            versions = [0] * args.streams
            correlation = str(uuid.uuid4())
            i = 0
            while not window.stop.is_set():
                k = i % args.streams
                meta = ys.Metadata(actor=f"bench-{w}", district=DISTRICT, correlation_id=correlation,
                                   occurred_at=datetime.now(timezone.utc))
                await es.append(f"w{w}-s{k}", versions[k], [ys.NewEvent(TOPIC, states[i % len(states)])], meta)
                versions[k] += 1
                window.counts[w] += 1
                i += 1

        return await _run_async_writers(args, writer)
    finally:
        await pool.close()


# -- raw asyncpg ---------------------------------------------------------------------


async def bench_raw(dsn: str, schema: str, args, states: list[bytes]) -> Measurement:
    import json

    from yishi.db import create_pool

    pool = await create_pool(dsn, schema, min_size=args.writers, max_size=args.writers)
    try:
        await pool.execute(RAW_DDL)

        async def writer(w: int, window: Window) -> None:
            versions = [0] * args.streams
            meta = json.dumps({"actor": f"bench-{w}", "district": DISTRICT, "correlation_id": str(uuid.uuid4()),
                               "occurred_at": datetime.now(timezone.utc).isoformat(),
                               "recorded_at": datetime.now(timezone.utc).isoformat()})
            i = 0
            async with pool.acquire() as conn:
                while not window.stop.is_set():
                    k = i % args.streams
                    versions[k] += 1
                    async with conn.transaction():
                        await conn.execute(RAW_INSERT, f"w{w}-s{k}", versions[k], uuid.uuid4(), DISTRICT, TOPIC,
                                           states[i % len(states)], meta)
                    window.counts[w] += 1
                    i += 1

        return await _run_async_writers(args, writer)
    finally:
        await pool.close()


# -- the eventsourcing library's recorder ------------------------------------------


def psycopg_impl() -> str:
    import psycopg

    return psycopg.pq.__impl__


def _libpq_params(dsn: str) -> dict:
    from psycopg.conninfo import conninfo_to_dict

    p = conninfo_to_dict(dsn)
    return {
        "dbname": p.get("dbname") or "postgres",
        "host": p.get("host") or "127.0.0.1",
        "port": p.get("port") or "5432",
        "user": p.get("user") or "postgres",
        "password": p.get("password") or "",
    }


def _bench_library_sync(dsn: str, schema: str, args, states: list[bytes]) -> Measurement:
    from eventsourcing.persistence import StoredEvent
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

    datastore = PostgresDatastore(**_libpq_params(dsn), pool_size=args.writers, schema=schema)
    try:
        recorder = PostgresApplicationRecorder(datastore)
        recorder.create_table()
        window = Window(args.writers, args.postgres_pid)
        errors: list[BaseException] = []

        def writer(w: int) -> None:
            try:
                ids = [uuid.uuid4() for _ in range(args.streams)]
                versions = [0] * args.streams
                i = 0
                while not window.stop.is_set():
                    k = i % args.streams
                    versions[k] += 1
                    recorder.insert_events([StoredEvent(originator_id=ids[k], originator_version=versions[k],
                                                        topic=TOPIC, state=states[i % len(states)])])
                    window.counts[w] += 1
                    i += 1
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)
                window.stop.set()

        threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(args.writers)]
        for t in threads:
            t.start()
        window.stop.wait(args.warmup)
        window.begin()
        window.stop.wait(args.seconds)
        result = window.end()
        for t in threads:
            t.join(30)
        if errors:
            raise errors[0]
        return result
    finally:
        datastore.close()


async def bench_library(dsn: str, schema: str, args, states: list[bytes]) -> Measurement:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()
    return await asyncio.to_thread(_bench_library_sync, dsn, schema, args, states)


CONTENDERS = {
    "project": ("project EventStore", bench_project),
    "library": ("eventsourcing app. recorder", bench_library),
    "raw": ("raw asyncpg INSERT txns", bench_raw),
}


async def main(args) -> None:
    states = payloads()
    runs: dict[str, list[Measurement]] = {k: [] for k in CONTENDERS}
    order = list(CONTENDERS)
    with servers(kafka=False) as srv:
        args.postgres_pid = srv.postgres_pid
        for r in range(args.rounds):
            rotated = order[r % len(order):] + order[: r % len(order)]
            for key in rotated:
                label, fn = CONTENDERS[key]
                schema = fresh_schema(f"bench_store_{key}")
                say(f"round {r + 1}/{args.rounds}: {label}, {args.writers} writers, "
                    f"{args.warmup:g}s warm-up + {args.seconds:g}s measured (schema {schema})")
                gc.collect()
                try:
                    m = await fn(srv.database_url, schema, args, states)
                finally:
                    await drop_schema(srv.database_url, schema)
                runs[key].append(m)
                cpu = f"client CPU {m.client_us:.0f} µs/append"
                if m.server_us is not None:
                    cpu += f", PostgreSQL CPU {m.server_us:.0f} µs/append"
                say(f"    {m.rate:,.0f} appends/s ({cpu})")
        database = "embedded PostgreSQL" if srv.embedded else "YISHI_DATABASE_URL"

    rate = {k: median([m.rate for m in v]) for k, v in runs.items()}
    client = {k: median([m.client_us for m in v]) for k, v in runs.items()}
    server = {k: (median([m.server_us for m in v]) if all(m.server_us is not None for m in v) else None)
              for k, v in runs.items()}
    project, library, raw = rate["project"], rate["library"], rate["raw"]
    vs_library = project / library if library else float("inf")
    vs_raw = project / raw if raw else float("inf")
    met = vs_library >= TARGET_VS_LIBRARY and vs_raw >= TARGET_VS_RAW

    def verdict(value: float, target: float) -> str:
        return f"{value:.2f}× (target ≥ {target:g}×: {'met' if value >= target else 'MISSED'})"

    def row(key: str, ratio: str) -> list[str]:
        return [CONTENDERS[key][0], f"{rate[key]:,.0f}", ", ".join(f"{m.rate:,.0f}" for m in runs[key]),
                f"{client[key]:.0f}", "n/a" if server[key] is None else f"{server[key]:.0f}", ratio]

    rows = [
        row("project", "1.00×"),
        row("library", verdict(vs_library, TARGET_VS_LIBRARY)),
        row("raw", verdict(vs_raw, TARGET_VS_RAW)),
    ]
    notes = [
        f"{args.writers} concurrent writers on distinct streams ({args.streams} streams each), one "
        f"{len(states[0])}-byte JSON event per append; {args.rounds} rounds of {args.seconds:g}s after "
        f"{args.warmup:g}s warm-up in rotating order, medians; database: {database}; {os.cpu_count()} CPUs.",
        f"The library runs on psycopg {psycopg_impl()} ({'C' if psycopg_impl() != 'python' else 'pure Python'}) "
        "implementation, as installed; 8 threads, one connection each.",
        "project / this: the project store's rate divided by this one's. CPU columns: medians per append "
        "(client = this Python process, PostgreSQL = its backends; n/a for an external database).",
    ]
    emit("Event store appends/s",
         ["contender", "median appends/s", "per round", "client CPU µs", "PostgreSQL CPU µs", "project / this"],
         rows, notes, {
             "bench": "store",
             "writers": args.writers,
             "rounds": args.rounds,
             "seconds": args.seconds,
             "project_appends_per_s": round(project, 1),
             "library_appends_per_s": round(library, 1),
             "raw_inserts_per_s": round(raw, 1),
             "vs_library": round(vs_library, 3),
             "vs_raw": round(vs_raw, 3),
             "cpu_us_per_append": {k: {"client": round(client[k], 1),
                                       "postgres": None if server[k] is None else round(server[k], 1)}
                                   for k in CONTENDERS},
             "library_psycopg_impl": psycopg_impl(),
             "targets": {"vs_library": TARGET_VS_LIBRARY, "vs_raw": TARGET_VS_RAW},
             "met": met,
         })


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run store", description=__doc__.split("\n\n")[0])
    p.add_argument("--writers", type=int, default=8, help="concurrent writers (default 8)")
    p.add_argument("--streams", type=int, default=16, help="streams per writer, appended round-robin (default 16)")
    p.add_argument("--seconds", type=float, default=3.0, help="measured seconds per contender and round (default 3)")
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds before measuring (default 1)")
    p.add_argument("--rounds", type=int, default=5, help="rounds, in rotating order; medians reported (default 5)")
    return p.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
