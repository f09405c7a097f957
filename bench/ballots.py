"""Ballots/s accepted on one vote with many concurrent electors, and command latency.

In one run on one PostgreSQL (embedded unless ``YISHI_DATABASE_URL``), each contender in
its own fresh schema:

* **ballots** — the voting service's ``CastBallot`` handler through its command bus
  (the path of ``POST /{district}/commands/CastBallot`` and of the command topic):
  per-vote shared advisory lock, the vote loaded, one new ballot stream appended at
  version 0, read models and the recorded reply, all in one transaction. ``--concurrency``
  electors at a time, each a different voter, on a single vote; every dispatch timed.
* **raw** — the foundation's baseline from ``bench/store.py``: raw asyncpg
  ``BEGIN; INSERT one row; COMMIT`` with as many connections as the ballots' pool.

Last output line: JSON with ``ballots_per_s``, ``p50_ms``, ``p99_ms`` and the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import timedelta
from types import SimpleNamespace

from bench import store as store_bench
from bench._common import drop_schema, emit, fresh_schema, payloads, say, servers
from contracts.common import Actor, CommandAccepted, Role
from contracts.voting import BallotChoice, CastBallot, OpenVote
from services.voting.application import create_bus
from yishi import migrations
from yishi import store as ys
from yishi.auth import Principal
from yishi.clock import SystemClock
from yishi.db import create_pool

DISTRICT = "bench"
CHOICES = list(BallotChoice)


def _open(electors: int, secret: bool, clock: SystemClock) -> OpenVote:
    return OpenVote.model_validate({
        "district": DISTRICT, "actor": {"id": "worker-1", "role": "community_worker"}, "vote_id": "vote-bench",
        "council_id": "council-1", "matter": {"kind": "question", "id": "q-bench"},
        "terms": {"question": "bench", "method": "online", "majority": "simple", "quorum_percent": 50,
                  "secrecy": "secret" if secret else "open",
                  "closes_at": (clock.now() + timedelta(days=1)).isoformat(),
                  # a residents' meeting: the district's register, so no roll is loaded per ballot
                  "electorate": {"kind": "residents_meeting", "scope_id": "community-1", "size": electors}},
    })


def _percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))] if sorted_values else 0.0


async def bench_ballots(dsn: str, schema: str, args) -> dict:
    """Cast ``args.electors`` ballots on one vote, ``args.concurrency`` at a time."""
    await migrations.upgrade(dsn, schema, migrations.locations("voting"))
    pool = await create_pool(dsn, schema, min_size=args.connections, max_size=args.connections)
    try:
        clock = SystemClock()
        bus = create_bus(ys.EventStore(pool, clock), clock)
        opened = await bus.dispatch(_open(args.electors, args.secret, clock), command_id="open", correlation_id="o",
                                    principal=Principal.of_platform("voting"))
        assert isinstance(opened, CommandAccepted), opened
        latencies: list[float] = []
        voters = iter(range(args.electors))
        accepted = 0

        async def elector() -> None:
            nonlocal accepted
            for i in voters:
                command = CastBallot(district=DISTRICT, actor=Actor(id=f"res-{i:07d}", role=Role.RESIDENT),
                                     vote_id="vote-bench", ballot_id=f"b-{i}", choice=CHOICES[i % 3])
                t0 = time.perf_counter()
                reply = await bus.dispatch(command, command_id=f"c-{i}", correlation_id=f"c-{i}",
                                          principal=Principal.of_actor(command.actor, command.district))
                latencies.append(time.perf_counter() - t0)
                accepted += isinstance(reply, CommandAccepted)

        t0 = time.perf_counter()
        await asyncio.gather(*(elector() for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - t0
        latencies.sort()
        return {"ballots_per_s": accepted / elapsed, "accepted": accepted,
                "p50_ms": 1000 * _percentile(latencies, 0.50), "p99_ms": 1000 * _percentile(latencies, 0.99)}
    finally:
        await pool.close()


async def main(args) -> None:
    with servers(kafka=False) as srv:
        schema = fresh_schema("bench_ballots")
        say(f"ballots: {args.electors} electors, {args.concurrency} at a time, {args.connections} connections, "
            f"{'secret' if args.secret else 'open'} vote (schema {schema})")
        try:
            ballots = await bench_ballots(srv.database_url, schema, args)
        finally:
            await drop_schema(srv.database_url, schema)
        say(f"    {ballots['ballots_per_s']:,.0f} ballots/s, p50 {ballots['p50_ms']:.1f} ms, "
            f"p99 {ballots['p99_ms']:.1f} ms")
        raw_args = SimpleNamespace(writers=args.connections, streams=16, warmup=1.0, seconds=args.raw_seconds,
                                   postgres_pid=getattr(srv, "postgres_pid", None))
        schema = fresh_schema("bench_ballots_raw")
        say(f"raw asyncpg single-row INSERT transactions, {args.connections} connections (schema {schema})")
        try:
            raw = await store_bench.bench_raw(srv.database_url, schema, raw_args, payloads())
        finally:
            await drop_schema(srv.database_url, schema)
        say(f"    {raw.rate:,.0f} inserts/s")
        database = "embedded PostgreSQL" if srv.embedded else "YISHI_DATABASE_URL"
    ratio = ballots["ballots_per_s"] / raw.rate if raw.rate else float("inf")
    emit("Ballots on one vote",
         ["contender", "per s", "p50 ms", "p99 ms", "ballots / raw"],
         [["CastBallot via command bus", f"{ballots['ballots_per_s']:,.0f}", f"{ballots['p50_ms']:.1f}",
           f"{ballots['p99_ms']:.1f}", f"{ratio:.2f}×"],
          ["raw asyncpg INSERT txns", f"{raw.rate:,.0f}", "", "", "1.00×" if raw.rate else ""]],
         [f"{args.electors} distinct electors on one {'secret' if args.secret else 'open'} vote, "
          f"{args.concurrency} concurrent; database: {database}. A ballot is one transaction with several "
          "statements (lock, vote load, stream append, read models, reply), the baseline one INSERT."],
         {"bench": "ballots", "electors": args.electors, "concurrency": args.concurrency,
          "secret": args.secret, "accepted": ballots["accepted"],
          "ballots_per_s": round(ballots["ballots_per_s"], 1), "p50_ms": round(ballots["p50_ms"], 2),
          "p99_ms": round(ballots["p99_ms"], 2), "raw_inserts_per_s": round(raw.rate, 1),
          "vs_raw": round(ratio, 3)})


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run ballots", description=__doc__.split("\n\n")[0])
    p.add_argument("--electors", type=int, default=5000, help="ballots cast, one per elector (default 5000)")
    p.add_argument("--concurrency", type=int, default=64, help="electors casting at once (default 64)")
    p.add_argument("--connections", type=int, default=16, help="database connections (default 16)")
    p.add_argument("--secret", action="store_true", help="a secret vote (default: open)")
    p.add_argument("--raw-seconds", type=float, default=3.0, help="measured seconds of the baseline (default 3)")
    return p.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
