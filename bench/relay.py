"""Outbox relay events/s against raw aiokafka produce to the same broker, and the relay's
commit-to-ack latency at a steady rate.

In one run against one broker (the embedded Apache Kafka by default, the embedded Tansu
with ``--broker tansu``, or ``YISHI_KAFKA_BOOTSTRAP``) and one PostgreSQL (embedded
unless ``YISHI_DATABASE_URL``), per round:

1. ``--events`` events (~200-byte JSON state) are appended to many streams in a fresh
   schema with the project store (not timed);
2. the :class:`yishi.relay.Relay` publishes all of them, timed from its first
   ``publish_batch`` (which starts its producer) until ``publish_batch`` returns 0,
   once per batch size in ``--batch-sizes``, each to a fresh topic (a different
   service name) with its own stored position;
3. raw aiokafka produces the very same messages (key, CloudEvents headers, value, built
   beforehand by the relay's own ``to_envelope``) to a fresh topic, pipelined the way the
   relay pipelines: per chunk of the same size, ``send`` every message without awaiting
   its delivery, then ``gather`` the acknowledgements. Same producer as the relay's
   (``yishi.kafka.new_producer``: ``acks=all``, ``linger_ms=5``, idempotent exactly when
   the broker grants producer ids, as the relay decides: on Apache Kafka, not on Tansu),
   timed from ``producer.start()``. So the comparison is the relay's whole loop (read the
   log from PostgreSQL, translate, encode, send, wait for the acknowledgements, store
   the position) against producing ready-made messages alone.

The order of the contenders rotates from round to round; medians are reported. First come
``--warmup`` rounds that are not counted: a freshly started Apache Kafka runs its JVM's
first minute interpreted, and whichever contender went first into the cold broker lost
up to half its rate. Target:
relay ≥ 0.8× raw produce, compared at the relay's default batch size.

Then, once (``--steady-seconds``, 0 to skip): the relay runs as a service runs it
(``Relay.run``: advisory lock, default batch size and idle wait) while single-stream
appends of ``--steady-per-append`` events are started by the clock at ``--steady-rate``
events/s (open loop: each append is started at its scheduled time, whether or not the
earlier ones have finished). Each event's latency is from its append's commit (when
``append`` returned) to the broker's acknowledgement of the batch holding it, as the
relay sees it (when its ``_send`` got the acknowledgements). Reported: p50, p99, p99.9
and max, and how late the appends committed against their schedule.
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
from yishi.relay import Relay

TARGET_VS_RAW = 0.8
SERVICES_FOR_TRIALS = ("proposals", "voting", "oversight", "notify")


def _deployed(setting: str, parameter: str, kind: type):
    """What a deployed relay uses: the setting's default (else the ``Relay`` parameter's)."""
    try:
        from yishi.settings import Settings

        return kind(Settings.model_fields[setting].default)
    except (ImportError, KeyError, AttributeError, TypeError, ValueError):
        return inspect.signature(Relay.__init__).parameters[parameter].default


def default_batch_size() -> int:
    """The batch size a deployed relay uses: ``YISHI_RELAY_BATCH_SIZE``'s default."""
    return _deployed("relay_batch_size", "batch_size", int)


def default_idle_wait() -> float:
    """The poll interval a deployed relay uses when the log is idle: ``YISHI_RELAY_IDLE_WAIT_S``'s default."""
    return _deployed("relay_idle_wait_s", "idle_wait", float)


def schedule(rate: float, seconds: float, per_append: int) -> list[float]:
    """When each append of ``per_append`` events is due (seconds from the start), for
    ``rate`` events/s during ``seconds``: by the clock, not by completion."""
    return [i * per_append / rate for i in range(int(rate * seconds) // per_append)]


def _percentile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile of sorted values, interpolated linearly between closest ranks."""
    at = q * (len(ordered) - 1)
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def latency_figures(seconds: list[float]) -> dict:
    """p50, p99, p99.9 and max of latencies given in seconds, in ms."""
    if not seconds:
        return {"count": 0, "p50_ms": None, "p99_ms": None, "p99_9_ms": None, "max_ms": None}
    ordered = sorted(seconds)
    ms = {name: round(1000 * _percentile(ordered, q), 3)
          for name, q in (("p50_ms", 0.5), ("p99_ms", 0.99), ("p99_9_ms", 0.999))}
    return {"count": len(ordered), **ms, "max_ms": round(1000 * ordered[-1], 3)}


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


async def time_raw(bootstrap: str, topic: str, messages: list, chunk: int, options: dict,
                   idempotent: bool) -> float:
    """Seconds for raw aiokafka to produce ``messages`` to ``topic``, pipelined per chunk."""
    from yishi.kafka import new_producer

    # A plain AIOKafkaProducer with the relay's own settings (acks=all, the same linger and
    # batch size, idempotent when the relay's is), so only what the relay does around it differs.
    producer = new_producer(bootstrap, client_id="bench-raw", idempotent=idempotent, **options)
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


class AckTimedRelay(Relay):
    """The relay as deployed, noting when the broker acknowledged each event (by ``ce_id``)."""

    def __init__(self, *args, acked: dict[str, float], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.acked = acked

    async def _send(self, producer, batch) -> list:
        acks = await super()._send(producer, batch)
        now = time.perf_counter()
        for event in batch.events:  # passthrough publishes every event, its ce_id its event id
            self.acked.setdefault(str(event.event_id), now)  # the first acknowledgement counts
        return acks


async def steady(store, bootstrap: str, service: str, district: str, states: list[bytes], *, rate: float,
                 seconds: float, per_append: int, options: dict) -> dict:
    """Run the relay while appends are started by the clock; per-event commit-to-ack latency."""
    from yishi.store import Metadata, NewEvent

    acked: dict[str, float] = {}
    committed: dict[str, float] = {}
    late: list[float] = []  # commit time minus the time the append was due
    extra = {"kafka_options": options} if options else {}
    relay = AckTimedRelay(store, bootstrap, service, batch_size=default_batch_size(), idle_wait=default_idle_wait(),
                          name=f"bench-steady-{service}", acked=acked, **extra)

    async def append(stream: str, at: float | None) -> list[str]:
        events = [NewEvent(TOPIC, states[(len(committed) + j) % len(states)]) for j in range(per_append)]
        meta = Metadata(actor="resident-1", district=district, correlation_id=str(uuid.uuid4()),
                        occurred_at=datetime.now(timezone.utc))
        await store.append(stream, 0, events, meta)
        done = time.perf_counter()
        ids = [str(e.event_id) for e in events]
        if at is not None:
            committed.update((i, done) for i in ids)
            late.append(done - at)
        return ids

    async def until_acked(ids, timeout: float) -> None:
        deadline = time.perf_counter() + timeout
        while not all(i in acked for i in ids):
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{sum(i not in acked for i in ids)} events not acknowledged after {timeout}s")
            await asyncio.sleep(0.01)

    stop = asyncio.Event()
    running = asyncio.create_task(relay.run(stop))
    try:
        # Warm-up, not measured: the relay holds its lock, its producer is started, the topic exists.
        await until_acked(await append("steady-warmup", None), 60)
        due = schedule(rate, seconds, per_append)
        say(f"    steady: {len(due) * per_append:,} events at {rate:,.0f} events/s for {seconds:g}s "
            f"({per_append} per append), relay batch size {relay.batch_size}, idle wait {relay.idle_wait:g}s")
        appends = []
        start = time.perf_counter() + 0.05
        for i, offset in enumerate(due):
            at = start + offset
            pause = at - time.perf_counter()
            if pause > 0:
                await asyncio.sleep(pause)
            appends.append(asyncio.create_task(append(f"steady-{i}", at)))
        await asyncio.gather(*appends)
        appended = time.perf_counter() - start
        await until_acked(list(committed), 60)
    finally:
        stop.set()
        await running
    latencies = [acked[i] - t for i, t in committed.items()]
    return {"rate": rate, "seconds": seconds, "per_append": per_append, "events": len(committed),
            "achieved_rate": round(len(committed) / appended, 1), "batch_size": relay.batch_size,
            "idle_wait_s": relay.idle_wait, "commit_to_ack": latency_figures(latencies),
            "append_late": latency_figures(late)}


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

    from yishi.kafka import supports_idempotence

    with servers(kafka=True, engine=args.broker) as srv:
        options = kafka_options(srv.kafka_embedded)
        # The relay asks the broker the same question and is idempotent exactly when it may be.
        idempotent = await supports_idempotence(srv.kafka_bootstrap, **options)
        say(f"broker {srv.broker_description}: producers {'idempotent' if idempotent else 'not idempotent'} "
            f"(acks=all)")
        for r in range(-args.warmup, args.rounds):
            counted = r >= 0  # warm-up rounds: the same work, not counted
            tag = uuid.uuid4().hex[:6]
            district = f"bench{tag}"
            schema = fresh_schema("bench_relay")
            await migrations.upgrade(srv.database_url, schema, migrations.locations())
            pool = await create_pool(srv.database_url, schema, min_size=2, max_size=8)
            try:
                store = ys.EventStore(pool)
                label = f"round {r + 1}/{args.rounds}" if counted else "warm-up round (not counted)"
                say(f"{label}: appending {n:,} events ({n // (2 * args.per_append):,} streams) "
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
                        rate = relay_rates[size]
                    else:
                        say(f"    raw aiokafka, chunks of {size}: producing {n:,} messages to {raw_topics[size]}")
                        elapsed = await time_raw(srv.kafka_bootstrap, raw_topics[size], messages, size, options,
                                                 idempotent)
                        rate = raw_rates[size]
                    used = 1e6 * (own_cpu() - cpu0) / n
                    if counted:
                        rate.append(n / elapsed)
                        cpu.setdefault((kind, size), []).append(used)
                    say(f"        {n / elapsed:,.0f} events/s ({elapsed:.2f}s; {used:.0f} µs of Python CPU per event)")
            finally:
                await pool.close()
                await drop_schema(srv.database_url, schema)
                if not srv.kafka_embedded:
                    await delete_topics(srv.kafka_bootstrap, options, [events_topic(district, s) for s in
                                                                       SERVICES_FOR_TRIALS] + [
                        f"{district}.bench-raw-{s}" for s in sizes])
        latency = None
        if args.steady_seconds > 0:
            district = f"bench{uuid.uuid4().hex[:6]}"
            schema = fresh_schema("bench_relay")
            await migrations.upgrade(srv.database_url, schema, migrations.locations())
            pool = await create_pool(srv.database_url, schema, min_size=2, max_size=16)
            try:
                latency = await steady(ys.EventStore(pool), srv.kafka_bootstrap, "proposals", district, states,
                                       rate=args.steady_rate, seconds=args.steady_seconds,
                                       per_append=args.steady_per_append, options=options)
            finally:
                await pool.close()
                await drop_schema(srv.database_url, schema)
                if not srv.kafka_embedded:
                    await delete_topics(srv.kafka_bootstrap, options, [events_topic(district, "proposals")])

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
        f"Broker: {srv.broker_description}; producers acks=all, "
        f"{'idempotent' if idempotent else 'not idempotent (the broker grants no producer ids)'}, the relay's and "
        f"the raw baseline's alike.",
        f"{n:,} events of ~200 bytes (+ CloudEvents headers), {args.rounds} round(s) after {args.warmup} "
        f"warm-up, medians; "
        f"relay vs raw at the same batch/chunk size; CPU = this Python process per event (median); "
        f"{os.cpu_count()} CPUs shared with PostgreSQL and the broker.",
        f"Target relay ≥ {TARGET_VS_RAW:g}× raw at the default batch size {default_bs}: "
        f"{vs_raw:.2f}× — {'met' if met else 'MISSED'}. Fastest relay batch size here: {best}.",
    ]
    if latency is not None:
        ack, late = latency["commit_to_ack"], latency["append_late"]
        notes.append(
            f"Steady {latency['rate']:,.0f} events/s for {latency['seconds']:g}s ({latency['achieved_rate']:,.0f} "
            f"achieved; {latency['events']:,} events, {latency['per_append']} per append, started by the clock): "
            f"commit → broker acknowledgement as the relay sees it p50 {ack['p50_ms']:.1f} ms, "
            f"p99 {ack['p99_ms']:.1f} ms, p99.9 {ack['p99_9_ms']:.1f} ms, max {ack['max_ms']:.1f} ms "
            f"(relay batch size {latency['batch_size']}, idle wait {1000 * latency['idle_wait_s']:g} ms; "
            f"appends committed p50 {late['p50_ms']:.1f} ms, p99 {late['p99_ms']:.1f} ms after they were due).")
    columns = ["publisher", "median events/s", "per round", "CPU µs/event", "relay / raw"]
    emit("Relay events/s vs raw aiokafka produce", columns, rows, notes, {
             "bench": "relay",
             "broker": srv.broker,
             "broker_description": srv.broker_description,
             "idempotent": idempotent,
             "events": n,
             "rounds": args.rounds,
             "warmup_rounds": args.warmup,
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
             "latency": latency,
             "targets": {"vs_raw": TARGET_VS_RAW},
             "met": met,
         })


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run relay", description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=100_000,
                   help="events to relay per round (default 100000: at 50000 a trial lasts about a second)")
    p.add_argument("--per-append", type=int, default=5, help="events per append when generating (default 5)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[500, 2000],
                   help="relay batch sizes to try (default 500 2000; the relay's default is always included)")
    p.add_argument("--rounds", type=int, default=5, help="rounds, in rotating order; medians reported (default 5)")
    p.add_argument("--warmup", type=int, default=1,
                   help="rounds run first and not counted: the broker's JVM and PostgreSQL warm up (default 1)")
    p.add_argument("--broker", choices=("apache", "tansu"), default="apache",
                   help="the embedded broker (default apache: Apache Kafka; ignored with YISHI_KAFKA_BOOTSTRAP)")
    p.add_argument("--steady-rate", type=float, default=1000, help="events/s of the steady phase (default 1000)")
    p.add_argument("--steady-seconds", type=float, default=20, help="length of the steady phase (default 20; 0 skips)")
    p.add_argument("--steady-per-append", type=int, default=1, help="events per append in the steady phase (default 1)")
    return p.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
