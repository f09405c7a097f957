"""The sealer's cost per event: :meth:`yishi.store.EventStore.seal` over a backlog, which
chains each event into ``log_chain`` and appends it to the Merkle log (``merkle_nodes``,
:mod:`yishi.tlog.log`) in one transaction per batch.

In one run on one PostgreSQL (embedded unless ``YISHI_DATABASE_URL``), in a fresh migrated
schema per round: ``--events`` events (~200 bytes, on streams of ``--per-stream``) are
appended, then sealed ``--batch`` at a time until none is left, timed; ``--rounds`` rounds,
the median reported as µs per event (wall time and this process's CPU). With
``--chain-only`` the Merkle log's part is left out (the sealer as it was before it), for
the difference. Last output line: JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import datetime, timezone
from unittest import mock

from bench._common import drop_schema, emit, fresh_schema, median, own_cpu, payloads, say, servers
from yishi import migrations
from yishi.db import create_pool
from yishi.store import EventStore, Metadata, NewEvent


async def one_round(dsn: str, args: argparse.Namespace) -> tuple[float, float]:
    schema = fresh_schema("seal")
    await migrations.upgrade(dsn, schema, migrations.locations())
    pool = await create_pool(dsn, schema, max_size=4)
    try:
        store = EventStore(pool)
        states = payloads()
        meta = Metadata(actor="bench", district="gulou", correlation_id="bench",
                        occurred_at=datetime(2026, 1, 1, tzinfo=timezone.utc))
        for s in range(args.events // args.per_stream):
            batch = [NewEvent("bench:Happened", states[(s + i) % len(states)]) for i in range(args.per_stream)]
            await store.append(f"stream-{s}", 0, batch, meta)
        wall, cpu = time.perf_counter(), own_cpu()
        sealed = 0
        while n := await store.seal(limit=args.batch):
            sealed += n
        wall, cpu = time.perf_counter() - wall, own_cpu() - cpu
        assert sealed == args.events // args.per_stream * args.per_stream, sealed
        return wall / sealed * 1e6, cpu / sealed * 1e6
    finally:
        await pool.close()
        await drop_schema(dsn, schema)


async def main(args: argparse.Namespace) -> None:
    with servers(kafka=False) as srv:
        walls, cpus = [], []
        for r in range(args.rounds):
            if args.chain_only:
                with mock.patch("yishi.tlog.log.extend", mock.AsyncMock(return_value=0)), \
                        mock.patch("yishi.tlog.log.size", _chain_size), \
                        mock.patch("yishi.tlog.log.leaf_hash", lambda *leaf: b""):
                    wall, cpu = await one_round(srv.database_url, args)
            else:
                wall, cpu = await one_round(srv.database_url, args)
            walls.append(wall)
            cpus.append(cpu)
            say(f"round {r + 1}: {wall:.1f} µs/event wall, {cpu:.1f} µs/event CPU (this process)")
    what = "chain only" if args.chain_only else "chain + Merkle log"
    result = {"benchmark": "seal", "what": what, "events": args.events, "batch": args.batch,
              "rounds": args.rounds, "us_per_event": round(median(walls), 1),
              "cpu_us_per_event": round(median(cpus), 1), "rounds_us_per_event": [round(w, 1) for w in walls]}
    emit(f"Sealing {args.events:,} events, {args.batch:,} a transaction ({what})", ["", "µs/event"],
         [["wall (median)", f"{median(walls):.1f}"], ["CPU, this process", f"{median(cpus):.1f}"]], [], result)


async def _chain_size(conn) -> int:
    """What the tree's size would be if it followed the chain (so the sealer skips it)."""
    return await conn.fetchval("SELECT COALESCE(max(seq), 0) FROM log_chain")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run seal", description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=50_000, help="events appended, then sealed")
    p.add_argument("--per-stream", type=int, default=10, help="events per stream")
    p.add_argument("--batch", type=int, default=5000, help="events sealed per transaction (the sealer's default)")
    p.add_argument("--rounds", type=int, default=3, help="rounds; the median is reported")
    p.add_argument("--chain-only", action="store_true", help="leave the Merkle log out (the sealer before it)")
    return p.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
