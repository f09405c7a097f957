"""How long one service's consumer group takes to rebalance when a second replica joins and
when one leaves (cleanly, or killed), per partition assignment strategy aiokafka supports.

Each replica is a process of its own (so that one can be killed) running the subscriber
exactly as a service builds it: :meth:`yishi.runtime.ServiceContext.consume` on a
faststream ``KafkaBroker`` (``voting``'s ``on-proposals`` consumer of ``proposals``'s
events, in ``--districts`` districts of three partitions each), with the strategy under
test as its ``partition_assignment`` and a handler that does nothing (no messages are
sent: this measures the group protocol, not processing). A replica prints its assignment
each time it changes (polled every 5 ms) with the wall-clock time.

Per strategy, in a group of its own, replica A starts and takes every partition; then,
``--rounds`` times: B joins, B leaves cleanly (SIGTERM: faststream stops its consumer,
which sends LeaveGroup), B joins again, a third replica C joins and leaves, B is killed
(SIGKILL); each change starts 0.5-3.5 s after the last settled, anywhere in the
heartbeat cycle. A rebalance is over when
the live replicas hold disjoint assignments covering every partition, each set after the
change began; its time runs from B's ``broker.start()`` (join), from B's stop (leave) or
from the kill to the last of those assignments. Also reported: how unevenly the two
replicas share the partitions, and how many partitions changed owner when B joined
(an even share moves half) and when C joined A and B (an even share moves a third).

The broker is the embedded Apache Kafka by default (``--broker tansu``, or
``YISHI_KAFKA_BOOTSTRAP``); heartbeat and session timeouts are faststream's defaults
(3 s, 10 s), which the services use. Last output line: JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import signal
import sys
import time
import uuid

from bench._common import emit, median, say, servers

SERVICE, CONSUMER, SOURCE = "voting", "on-proposals", "proposals"


def strategies() -> dict:
    """The partition assignors aiokafka ships (``aiokafka.coordinator.assignors``)."""
    from aiokafka.coordinator.assignors.range import RangePartitionAssignor
    from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
    from aiokafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor

    return {"range": RangePartitionAssignor, "roundrobin": RoundRobinPartitionAssignor,
            "sticky": StickyPartitionAssignor}


# -- one replica (a child process) ------------------------------------------------

def _out(**fields) -> None:
    print(json.dumps(fields), flush=True)


async def replica(args: argparse.Namespace) -> None:
    """Run the service's subscriber with ``args.strategy`` until SIGTERM; print assignments."""
    from faststream.kafka import KafkaBroker

    logging.getLogger("aiokafka").setLevel(logging.ERROR)  # each rebalance's heartbeat warnings

    from yishi.clock import SystemClock
    from yishi.runtime import ServiceContext, ServiceSpec
    from yishi.settings import Settings

    broker = KafkaBroker(args.bootstrap, client_id=f"bench-rebalance-{args.name}", logger=None)
    settings = Settings(districts=args.districts, consumer_group_prefix=args.group_prefix)
    ctx = ServiceContext(spec=ServiceSpec(SERVICE), settings=settings, clock=SystemClock(), broker=broker,
                         store=None, verifier=None, partition_assignment=(strategies()[args.strategy],))

    async def handle(envelope, conn) -> None:
        pass

    ctx.consume(CONSUMER, ctx.topics(SOURCE), handle)
    (subscriber,) = broker.subscribers
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    _out(event="starting", t=time.time())
    await broker.start()
    last = None
    while not stop.is_set():
        consumer = getattr(subscriber, "consumer", None)
        now = sorted(f"{tp.topic}:{tp.partition}" for tp in consumer.assignment()) if consumer else []
        if now != last:
            _out(event="assignment", t=time.time(), partitions=now)
            last = now
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.005)
    _out(event="leaving", t=time.time())
    await broker.stop()
    _out(event="left", t=time.time())


# -- the measurement ------------------------------------------------------------

class Replica:
    """A replica process and what it printed."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.proc: asyncio.subprocess.Process | None = None
        self.events: list[dict] = []
        self._reader: asyncio.Task | None = None

    async def start(self, bootstrap: str, strategy: str, districts: str, prefix: str) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.rebalance", "--replica", self.name, "--bootstrap", bootstrap,
            "--strategy", strategy, "--districts", districts, "--group-prefix", prefix,
            stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.events.append(json.loads(line))

    def last(self, kind: str) -> dict | None:
        return next((e for e in reversed(self.events) if e["event"] == kind), None)

    @property
    def assignment(self) -> tuple[float, set[str]]:
        e = self.last("assignment")
        return (e["t"], set(e["partitions"])) if e else (0.0, set())

    async def wait_for(self, kind: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while (e := self.last(kind)) is None:
            if time.monotonic() > deadline or (self.proc.returncode is not None and self._reader.done()):
                raise RuntimeError(f"replica {self.name}: no {kind!r} after {timeout}s")
            await asyncio.sleep(0.01)
        return e

    async def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        await self.proc.wait()
        await self._reader

    async def kill(self) -> float:
        at = time.time()
        self.proc.kill()
        await self.proc.wait()
        await self._reader
        return at


async def settled(live: list[Replica], every: set[str], since: float, timeout: float = 60) -> float:
    """When the live replicas hold disjoint assignments covering ``every`` partition, each
    set after ``since``: the time of the last of those assignments."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        held = [r.assignment for r in live]
        sets = [s for _, s in held]
        if all(t >= since for t, _ in held) and set().union(*sets) == every and sum(map(len, sets)) == len(every):
            return max(t for t, _ in held)
        await asyncio.sleep(0.01)
    raise RuntimeError(f"no settled assignment {timeout}s after the change: {[r.assignment for r in live]}")


def owners(live: list[Replica]) -> dict[str, str]:
    """Which replica holds each partition."""
    return {p: r.name for r in live for p in r.assignment[1]}


def moved(before: dict[str, str], after: dict[str, str]) -> int:
    """Partitions whose owner changed."""
    return sum(before.get(p) != owner for p, owner in after.items())


async def measure(bootstrap: str, strategy: str, districts: str, every: set[str], rounds: int) -> dict:
    prefix = f"bench-{strategy}-{uuid.uuid4().hex[:6]}"
    runs: dict[str, list] = {"join_s": [], "leave_s": [], "kill_s": [], "moved_on_join": [], "spread": [],
                             "moved_on_third": []}

    async def pause() -> None:
        # A change right after a rebalance would always meet the others' heartbeats in the
        # same phase (3 s apart): start it anywhere in that cycle instead.
        await asyncio.sleep(random.uniform(0.5, 3.5))

    async def join(replica: Replica, live: list[Replica]) -> float:
        await replica.start(bootstrap, strategy, districts, prefix)
        began = (await replica.wait_for("starting"))["t"]
        return await settled(live + [replica], every, began) - began

    a = Replica("a")
    await join(a, [])
    try:
        for r in range(rounds):
            for ending in ("leave", "kill"):
                await pause()
                before = owners([a])
                b = Replica(f"b{r}{ending[0]}")
                runs["join_s"].append(await join(b, [a]))
                runs["moved_on_join"].append(moved(before, owners([a, b])))
                runs["spread"].append(abs(len(a.assignment[1]) - len(b.assignment[1])))
                await pause()
                if ending == "leave":
                    await b.stop()
                    began = b.last("leaving")["t"]
                    runs["leave_s"].append(await settled([a], every, began) - began)
                else:
                    # First a third replica joins and leaves: what a strategy moves beyond two.
                    before = owners([a, b])
                    c = Replica(f"c{r}")
                    await join(c, [a, b])
                    runs["moved_on_third"].append(moved(before, owners([a, b, c])))
                    await pause()
                    await c.stop()
                    await settled([a, b], every, c.last("leaving")["t"])
                    await pause()
                    began = await b.kill()
                    runs["kill_s"].append(await settled([a], every, began) - began)
                say(f"    {strategy} round {r + 1}: join {runs['join_s'][-1]:.2f}s (moved {runs['moved_on_join'][-1]}, "
                    f"uneven by {runs['spread'][-1]}), " + (f"leave {runs['leave_s'][-1]:.2f}s" if ending == "leave"
                    else f"third replica moved {runs['moved_on_third'][-1]}, kill {runs['kill_s'][-1]:.2f}s"))
    finally:
        if a.proc.returncode is None:
            await a.stop()
    return runs


def summary(runs: dict) -> dict:
    """Medians and worst cases of one strategy's runs."""
    return {
        "join_s": round(median(runs["join_s"]), 2), "join_max_s": round(max(runs["join_s"]), 2),
        "leave_s": round(median(runs["leave_s"]), 2), "leave_max_s": round(max(runs["leave_s"]), 2),
        "kill_s": round(median(runs["kill_s"]), 2), "kill_max_s": round(max(runs["kill_s"]), 2),
        "moved_on_join": max(runs["moved_on_join"]), "spread": max(runs["spread"]),
        "moved_on_third": max(runs["moved_on_third"]),
    }


def best(by_strategy: dict) -> str:
    """An even share first, then the fewest partitions moved when a replica joins (the
    second, then a third), then the quickest join + leave (medians). A moved partition is
    re-read from its committed offset by its new owner."""
    return min(by_strategy, key=lambda s: (by_strategy[s]["spread"], by_strategy[s]["moved_on_join"],
                                           by_strategy[s]["moved_on_third"],
                                           by_strategy[s]["join_s"] + by_strategy[s]["leave_s"]))


async def main(args: argparse.Namespace) -> None:
    from yishi.kafka import DEFAULT_PARTITIONS, ensure_topics
    from yishi.names import events_topic
    from yishi.runtime import PARTITION_ASSIGNMENT

    chosen = [name for name, cls in strategies().items() if (cls,) == PARTITION_ASSIGNMENT]
    districts = [f"rb{uuid.uuid4().hex[:6]}{i}" for i in range(args.districts)]
    topics = [events_topic(d, SOURCE) for d in districts]
    every = {f"{t}:{p}" for t in topics for p in range(DEFAULT_PARTITIONS)}
    by_strategy: dict[str, dict] = {}
    raw: dict[str, dict] = {}
    with servers(kafka=True, engine=args.broker) as srv:
        if not srv.kafka_embedded:
            raise SystemExit("bench/run rebalance creates topics and groups: use the embedded broker")
        await ensure_topics(srv.kafka_bootstrap, topics)
        for strategy in args.strategies:
            say(f"{strategy}: {len(every)} partitions ({len(topics)} topics), {args.rounds} round(s)")
            raw[strategy] = await measure(srv.kafka_bootstrap, strategy, ",".join(districts), every, args.rounds)
            by_strategy[strategy] = summary(raw[strategy])
    pick = best(by_strategy)
    rows = [[s + (" (in use)" if s in chosen else ""), f"{v['join_s']:.2f} / {v['join_max_s']:.2f}",
             f"{v['leave_s']:.2f} / {v['leave_max_s']:.2f}", f"{v['kill_s']:.2f} / {v['kill_max_s']:.2f}",
             str(v["spread"]), f"{v['moved_on_join']}", f"{v['moved_on_third']}"] for s, v in by_strategy.items()]
    notes = [
        f"Broker: {srv.broker_description}. Consumer group of {SERVICE}'s {CONSUMER} subscriber "
        f"(yishi.runtime.ServiceContext.consume), two replica processes, {len(every)} partitions; "
        f"faststream's heartbeat 3 s and session timeout 10 s; seconds, median / max of {args.rounds * 2} joins, "
        f"{args.rounds} leaves and {args.rounds} kills.",
        f"Partitions moved when the second replica joins (an even share moves {len(every) // 2}) and when a third "
        f"joins two (an even share moves {len(every) // 3} at least).",
        f"Best (even share, then fewest partitions moved, then quickest join + leave): {pick}; "
        f"in use in yishi/runtime.py: {', '.join(chosen) or 'another'}.",
    ]
    emit("Consumer group rebalance with two replicas", ["strategy", "join s", "clean leave s", "killed s",
                                                         "uneven by", "moved 2nd", "moved 3rd"], rows, notes, {
        "bench": "rebalance", "broker": srv.broker, "broker_description": srv.broker_description,
        "partitions": len(every), "rounds": args.rounds, "by_strategy": by_strategy, "runs": raw,
        "best": pick, "in_use": chosen,
    })


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run rebalance", description=__doc__.split("\n\n")[0])
    p.add_argument("--broker", choices=("apache", "tansu"), default="apache",
                   help="the embedded broker (default apache: Apache Kafka)")
    p.add_argument("--strategies", nargs="+", choices=tuple(strategies()), default=list(strategies()),
                   help="assignment strategies to measure (default: all three)")
    p.add_argument("--rounds", type=int, default=3, help="rounds per strategy (default 3)")
    p.add_argument("--districts", type=int, default=2,
                   help="districts, one three-partition topic each (default 2: Range shares them unevenly)")
    return p.parse_args(argv)


def parse_replica(argv: list[str] | None = None) -> argparse.Namespace:
    """A replica's arguments (``main`` starts replicas with them)."""
    p = argparse.ArgumentParser(prog="bench.rebalance --replica")
    for flag in ("--replica", "--bootstrap", "--strategy", "--districts", "--group-prefix"):
        p.add_argument(flag, required=True)
    args = p.parse_args(argv)
    args.name = args.replica
    return args


if __name__ == "__main__":
    if "--replica" in sys.argv:
        asyncio.run(replica(parse_replica()))
    else:
        asyncio.run(main(parse()))
