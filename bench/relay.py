"""Outbox relay events/s against raw aiokafka produce to the same broker.

In one run against one broker (the embedded Tansu unless ``YISHI_KAFKA_BOOTSTRAP``) and
one PostgreSQL (embedded unless ``YISHI_DATABASE_URL``), per round:

1. ``--events`` events (~200-byte JSON state) are appended to many streams in a fresh
   schema with the project store (not timed);
2. the :class:`yishi.relay.Relay` publishes all of them, timed from its first
   ``publish_batch`` (which starts its producer) until ``publish_batch`` returns 0,
   once per batch size in ``--batch-sizes``, each to a fresh topic (a different
   service name) with its own stored position;
3. raw aiokafka produces the very same messages (key, CloudEvents headers, value, built
   beforehand by the relay's own ``to_envelope``) to a fresh topic, pipelined the way the
   relay pipelines: per chunk of the same size, ``send`` every message without awaiting
   its delivery, then ``gather`` the acknowledgements. Same producer settings as the
   relay's (``yishi.kafka.new_producer``: ``acks=all``, no idempotence, ``linger_ms=5``),
   timed from ``producer.start()``.

The order of the contenders rotates from round to round; medians are reported. Target
(DESIGN.md): relay ≥ 0.7× raw produce, compared at the relay's default batch size.
Last output line: JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import inspect
import os
import time
import uuid
from datetime import datetime, timezone

from bench._common import TOPIC, drop_schema, emit, fresh_schema, median, own_cpu, payloads, say, servers

TARGET_VS_RAW = 0.7
SERVICES_FOR_TRIALS = ("proposals", "voting", "oversight", "notify")


def default_batch_size() -> int:
    """The batch size a deployed relay uses: ``YISHI_RELAY_BATCH_SIZE``'s default (else the class default)."""
    from yishi.relay import Relay

    try:
        from yishi.settings import Settings

        return int(Settings.model_fields["relay_batch_size"].default)
    except (ImportError, KeyError, AttributeError, TypeError, ValueError):
        return inspect.signature(Relay.__init__).parameters["batch_size"].default


def kafka_options(embedded: bool) -> dict:
    """aiokafka security options for an external broker (from the ``YISHI_KAFKA_*`` settings)."""
    if embedded:
        return {}
    try:
        from yishi.kafka import client_options
        from yishi.settings import Settings
    except ImportError:
        return {}
    return client_options(Settings())


async def generate(store, count: int, per_append: int, district: str, states: list[bytes], tasks: int = 8) -> int:
    """Append ``count`` events to ``count / (2 * per_append)`` streams, two appends of
    ``per_append`` events each, from ``tasks`` concurrent tasks that own disjoint streams."""
    from yishi.store import Metadata, NewEvent

    streams = count // (2 * per_append)
    written = 0

    async def worker(first: int) -> None:
        nonlocal written
        for stream in range(first, streams, tasks):
            for half in range(2):
                base = (2 * stream + half) * per_append
                events = [NewEvent(TOPIC, states[(base + j) % len(states)]) for j in range(per_append)]
                meta = Metadata(actor=f"resident-{stream % 997}", district=district,
                                correlation_id=str(uuid.uuid4()), occurred_at=datetime.now(timezone.utc))
                await store.append(f"ballot-box-{stream}", half * per_append, events, meta)
                written += per_append

    await asyncio.gather(*(worker(t) for t in range(tasks)))
    return written


async def time_relay(store, bootstrap: str, service: str, batch_size: int, expect: int,
                     options: dict) -> tuple[float, int]:
    """Seconds for the relay to publish everything, and how many events it reported."""
    from yishi.relay import Relay
    from yishi.store import LogCursor

    extra = {"kafka_options": options} if options else {}
    relay = Relay(store, bootstrap, service, batch_size=batch_size, name=f"bench-{service}-{batch_size}", **extra)
    cursor, total, first = LogCursor(), 0, None
    try:
        t0 = time.perf_counter()
        while True:
            count, cursor = await relay.publish_batch(cursor)
            if first is None:
                first = time.perf_counter() - t0
            if count == 0:
                break
            total += count
        elapsed = time.perf_counter() - t0
    finally:
        # The relay closes its producer when run() ends; publish_batch alone leaves it open.
        close = getattr(relay, "close", None) or relay._drop_producer
        await close()
    if total != expect:
        raise RuntimeError(f"relay published {total} events, expected {expect}")
    say(f"        first batch (includes starting the producer and checking topics) took {1000 * first:.0f} ms")
    return elapsed, total


async def time_raw(bootstrap: str, topic: str, messages: list, chunk: int, options: dict) -> float:
    """Seconds for raw aiokafka to produce ``messages`` to ``topic``, pipelined per chunk."""
    from yishi.kafka import new_producer

    # A plain AIOKafkaProducer with the relay's own settings (acks=all, no idempotence,
    # the same linger and batch size), so only what the relay does around it differs.
    producer = new_producer(bootstrap, client_id="bench-raw", **options)
    t0 = time.perf_counter()
    await producer.start()
    try:
        acked = 0
        for i in range(0, len(messages), chunk):
            futures = [await producer.send(topic, value=value, key=key, headers=headers)
                       for key, headers, value in messages[i:i + chunk]]
            acked += len(await asyncio.gather(*futures))
        elapsed = time.perf_counter() - t0
    finally:
        await producer.stop()
    if acked != len(messages):
        raise RuntimeError(f"raw produce acknowledged {acked} of {len(messages)}")
    return elapsed


async def delete_topics(bootstrap: str, options: dict, topics: list[str]) -> None:
    """Best effort: remove this run's topics from an external broker."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    admin = AIOKafkaAdminClient(**options, bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        mine = [t for t in topics if t in existing]
        if mine:
            await admin.delete_topics(mine)
    except (KafkaError, OSError) as exc:
        say(f"    could not delete benchmark topics: {exc!r}")
    finally:
        await admin.close()


async def main(args) -> None:
    from yishi import migrations
    from yishi import relay as yr
    from yishi import store as ys
    from yishi.db import create_pool
    from yishi.kafka import ensure_topics
    from yishi.names import events_topic

    default_bs = default_batch_size()
    sizes = sorted(set(args.batch_sizes) | {default_bs})
    if len(sizes) > len(SERVICES_FOR_TRIALS):
        raise SystemExit(f"at most {len(SERVICES_FOR_TRIALS)} batch sizes")
    states = payloads()
    relay_rates: dict[int, list[float]] = {s: [] for s in sizes}
    raw_rates: dict[int, list[float]] = {s: [] for s in sizes}
    cpu: dict[tuple[str, int], list[float]] = {}  # µs of this process's CPU per event
    n = args.events - args.events % (2 * args.per_append)

    with servers(kafka=True) as srv:
        options = kafka_options(srv.kafka_embedded)
        for r in range(args.rounds):
            tag = uuid.uuid4().hex[:6]
            district = f"bench{tag}"
            schema = fresh_schema("bench_relay")
            await migrations.upgrade(srv.database_url, schema, migrations.locations())
            pool = await create_pool(srv.database_url, schema, min_size=2, max_size=8)
            try:
                store = ys.EventStore(pool)
                say(f"round {r + 1}/{args.rounds}: appending {n:,} events ({n // (2 * args.per_append):,} streams) "
                    f"in schema {schema} (not timed)")
                t0 = time.perf_counter()
                written = await generate(store, n, args.per_append, district, states)
                say(f"    {written:,} events stored in {time.perf_counter() - t0:.1f}s")
                messages = []
                async for event in store.iter_log():
                    messages.append(yr.to_envelope(event, "proposals", yr.passthrough(event)).to_kafka())
                if len(messages) != n:
                    raise RuntimeError(f"read {len(messages)} events back, expected {n}")
                services = dict(zip(sizes, SERVICES_FOR_TRIALS))
                raw_topics = {s: f"{district}.bench-raw-{s}" for s in sizes}
                await ensure_topics(srv.kafka_bootstrap,
                                    [events_topic(district, services[s]) for s in sizes] + list(raw_topics.values()),
                                    **options)
                trials = [("relay", s) for s in sizes] + [("raw", s) for s in sizes]
                k = r % len(trials)
                for kind, size in trials[k:] + trials[:k]:
                    gc.collect()
                    cpu0 = own_cpu()
                    if kind == "relay":
                        say(f"    relay, batch size {size}: publishing {n:,} events to "
                            f"{events_topic(district, services[size])}")
                        elapsed, _ = await time_relay(store, srv.kafka_bootstrap, services[size], size, n, options)
                        relay_rates[size].append(n / elapsed)
                    else:
                        say(f"    raw aiokafka, chunks of {size}: producing {n:,} messages to {raw_topics[size]}")
                        elapsed = await time_raw(srv.kafka_bootstrap, raw_topics[size], messages, size, options)
                        raw_rates[size].append(n / elapsed)
                    used = 1e6 * (own_cpu() - cpu0) / n
                    cpu.setdefault((kind, size), []).append(used)
                    say(f"        {n / elapsed:,.0f} events/s ({elapsed:.2f}s; {used:.0f} µs of Python CPU per event)")
            finally:
                await pool.close()
                await drop_schema(srv.database_url, schema)
                if not srv.kafka_embedded:
                    await delete_topics(srv.kafka_bootstrap, options, [events_topic(district, s) for s in
                                                                       SERVICES_FOR_TRIALS] + [
                        f"{district}.bench-raw-{s}" for s in sizes])

    relay_med = {s: median(v) for s, v in relay_rates.items()}
    raw_med = {s: median(v) for s, v in raw_rates.items()}
    ratio = {s: relay_med[s] / raw_med[s] if raw_med[s] else float("inf") for s in sizes}
    best = max(sizes, key=lambda s: relay_med[s])
    vs_raw = ratio[default_bs]
    met = vs_raw >= TARGET_VS_RAW

    def per_round(values: list[float]) -> str:
        return ", ".join(f"{x:,.0f}" for x in values)

    rows = []
    for s in sizes:
        mark = " (default)" if s == default_bs else ""
        rows.append([f"relay, batch size {s}{mark}", f"{relay_med[s]:,.0f}", per_round(relay_rates[s]),
                     f"{median(cpu[('relay', s)]):.0f}", f"{ratio[s]:.2f}×"])
        rows.append([f"raw aiokafka, chunks of {s}", f"{raw_med[s]:,.0f}", per_round(raw_rates[s]),
                     f"{median(cpu[('raw', s)]):.0f}", "1.00×"])
    notes = [
        f"{n:,} events of ~200 bytes (+ CloudEvents headers), {args.rounds} round(s), medians; "
        f"relay vs raw at the same batch/chunk size; CPU = this Python process per event (median); "
        f"{os.cpu_count()} CPUs shared with PostgreSQL and the broker.",
        f"Target relay ≥ {TARGET_VS_RAW:g}× raw at the default batch size {default_bs}: "
        f"{vs_raw:.2f}× — {'met' if met else 'MISSED'}. Fastest relay batch size here: {best}.",
    ]
    columns = ["publisher", "median events/s", "per round", "CPU µs/event", "relay / raw"]
    emit("Relay events/s vs raw aiokafka produce", columns, rows, notes, {
             "bench": "relay",
             "events": n,
             "rounds": args.rounds,
             "batch_size": default_bs,
             "relay_events_per_s": round(relay_med[default_bs], 1),
             "raw_produce_per_s": round(raw_med[default_bs], 1),
             "vs_raw": round(vs_raw, 3),
             "by_batch_size": {str(s): {"relay_events_per_s": round(relay_med[s], 1),
                                        "raw_produce_per_s": round(raw_med[s], 1),
                                        "vs_raw": round(ratio[s], 3)} for s in sizes},
             "best_batch_size": best,
             "cpu_us_per_event": {"relay": round(median(cpu[("relay", default_bs)]), 1),
                                  "raw": round(median(cpu[("raw", default_bs)]), 1)},
             "targets": {"vs_raw": TARGET_VS_RAW},
             "met": met,
         })


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run relay", description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=50_000, help="events to relay per round (default 50000)")
    p.add_argument("--per-append", type=int, default=5, help="events per append when generating (default 5)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[500, 2000],
                   help="relay batch sizes to try (default 500 2000; the relay's default is always included)")
    p.add_argument("--rounds", type=int, default=2, help="rounds, in rotating order; medians reported (default 2)")
    return p.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
