"""Chaos: kill, in turn and over many rounds, every part of the platform under a steady
mixed load, and verify from outside after each kill that nothing was lost or done twice.

The platform is PostgreSQL, three Apache Kafka brokers (replication factor 3, min ISR 2)
and two replicas each of proposals, voting and oversight, serving two districts. The
load (``--rate`` commands/s: ballots, proposals and task progress, 30 % over the command
topics, the rest over HTTP) resends each command unchanged, under its own key, on a
timeout, a connection error or a 5xx. Each round hits every target once: a replica of
each service (SIGKILL), the relay in the middle of a batch (SIGKILL of the replica
holding its lock while it is behind the log), one broker (SIGKILL), PostgreSQL (SIGKILL,
restarted on the same data directory), one broker stalled (SIGSTOP past its session
timeout, then SIGCONT). After each kill the load pauses and the run checks, until all
hold or ``--bound`` seconds pass: every command answered 2xx is in its store; every
stored event is on its topic (ids compared); the read models equal a rebuild from the
log (proposals: its own rebuild; oversight: its consumer handlers replayed from the
topics into a fresh schema; voting: who voted against the ballots in the log and the
tally); no effect happened twice (ballot, resolution, reminder, progress report); every
consumer group has caught up. The time until then is the round's recovery time.

Last output line: JSON with ``kills``, ``accepted``, ``lost``, ``missing_events``,
``duplicate_deliveries``, ``duplicate_effects``, ``recovery_s_max``, ``broker`` and more.
The exit status is 1 when a command was lost, an event is missing, an effect doubled or
a round did not recover within the bound.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from bench._common import emit, say
from tests.support.chaos import TARGETS, chaos_run, figures


async def main(args) -> int:
    async with chaos_run(args.broker, rate=args.rate, bound_s=args.bound) as (platform, load, chaos, verifier):
        say(f"chaos: {args.rounds} rounds over {', '.join(chaos.targets())} on {platform.describe()}, "
            f"{args.rate:g} commands/s")
        await chaos.run(args.rounds)
        await load.pause(args.bound)
        result = figures(platform, load, chaos, verifier)
    rows = [[target, str(result["kills_by_target"].get(target, 0))] for target in TARGETS]
    rows += [["  relay kills that caught it behind the log", str(result["relay_kills_mid_batch"])]]
    rows += [["", ""],
             ["rounds", str(result["rounds"])], ["kills (SIGKILL)", f"{result['kills']} ({result['sigkills']})"],
             ["commands sent", str(result["sent"])], ["accepted (2xx)", str(result["accepted"])],
             ["rejected", str(result["rejected"])], ["unanswered", str(result["unanswered"])],
             ["lost (accepted, not stored)", str(result["lost"])],
             ["events stored", str(result["events_stored"])], ["events published", str(result["events_published"])],
             ["events missing from topics", str(result["missing_events"])],
             ["duplicate deliveries seen", str(result["duplicate_deliveries"])],
             ["duplicate effects", str(result["duplicate_effects"])],
             ["read models differing from a rebuild", str(result["rebuild_mismatches"])],
             ["rounds not recovered", str(result["unrecovered_rounds"])],
             ["recovery p50 / max (s)", f"{result['recovery_s_p50']} / {result['recovery_s_max']}"]]
    failures = [f"round {i + 1} ({r.target}): {r.problems}" for i, r in enumerate(chaos.rounds) if r.problems]
    emit(f"Chaos on {result['broker']}", ["kills by target / figure", "count"], rows,
         [f"recovery bound {args.bound:g} s; duplicate deliveries are repeated ids on the events and replies "
          "topics (at-least-once), duplicate effects must be 0.", *failures], result)
    bad = result["lost"] or result["missing_events"] or result["duplicate_effects"] or result["unrecovered_rounds"]
    return 1 if bad else 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run chaos", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds, each hitting every target once (default 3: 21 faults, 18 of them SIGKILLs and "
                        "3 stalls; --rounds 4 gives 24 SIGKILLs)")
    p.add_argument("--broker", choices=("apache", "tansu"), default="apache",
                   help="three Apache Kafka brokers (default), or one memory-only Tansu (no broker faults)")
    p.add_argument("--rate", type=float, default=10.0, help="commands per second of the load (default 10)")
    p.add_argument("--bound", type=float, default=90.0,
                   help="seconds within which every check must hold after a kill (default 90)")
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))
