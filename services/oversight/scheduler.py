"""The durable reminder scheduler: stall detection and the escalation ladder.

Nothing is kept in memory between ticks. Each tick derives what is due from stored
state (the open tasks, their policies, ``ctx.clock``) and records every fired rung as an
event on the task with an expected-version append, in one transaction with the read
models. So a due time that passed while the service was down fires on the first tick
after the restart, and a rung can never fire twice: it is in the task's history, and a
concurrent writer loses the append. A task whose tick fails deterministically (a due
date the calendar cannot extend, say) is recorded and skipped by :class:`yishi.jobs.JobItems`;
the other tasks keep firing.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from datetime import timedelta

import asyncpg
import structlog

from yishi.commands import CommandBus, Saved
from yishi.failures import RetryPolicy
from yishi.jobs import JobItems, every
from yishi.metrics import TIMERS_FIRED
from yishi.store import ConcurrencyError, Metadata

from services.oversight.domain import Authority, Policy, Task

log = structlog.get_logger("oversight.scheduler")


async def policy_for(conn: asyncpg.Connection, district: str, resolution_id: str, council_id: str) -> Policy:
    """The resolution's own policy, else its council's, else the defaults."""
    row = await conn.fetchrow(
        "SELECT settings FROM ov_policies WHERE district=$1 AND ((scope='resolution' AND scope_id=$2)"
        " OR (scope='council' AND scope_id=$3)) ORDER BY scope = 'resolution' DESC LIMIT 1",
        district, resolution_id, council_id)
    return Policy(**json.loads(row["settings"])) if row else Policy()


async def council_above(conn: asyncpg.Connection, district: str, council_id: str) -> Authority:
    """The council above the resolution's council; the district itself when none is known."""
    row = await conn.fetchrow(
        "SELECT p.council_id, p.level FROM ov_councils c JOIN ov_councils p"
        " ON p.district = c.district AND p.council_id = c.parent_council_id"
        " WHERE c.district=$1 AND c.council_id=$2", district, council_id)
    return Authority(row["level"], row["council_id"]) if row else Authority("district", district)


JOB = "oversight.reminders"


async def fire_due_reminders(bus: CommandBus, pool: asyncpg.Pool, day: timedelta = timedelta(days=1),
                             items: JobItems | None = None) -> int:
    """One tick: fire every due, unfired rung of every task of an open resolution, with
    policies counted in days of length ``day`` against ``bus``'s clock, saved as the
    bus's system actor with its read models. Each task is one of ``items``."""
    items = items or JobItems(pool, JOB)
    now = bus.clock.now()
    rows = await pool.fetch(
        "SELECT t.district, t.task_id, r.resolution_id, r.council_id FROM ov_tasks t"
        " JOIN ov_resolutions r USING (district, resolution_id) WHERE r.status = 'open'"
        " ORDER BY t.district, t.task_id")
    fired = 0
    for row in rows:
        fire = functools.partial(_fire, bus, pool, row, now, day)
        fired += await items.run(f"{row['district']}/{row['task_id']}", fire) or 0
    TIMERS_FIRED.labels("oversight.reminder").inc(fired)
    return fired


async def _fire(bus: CommandBus, pool: asyncpg.Pool, row: asyncpg.Record, now, day: timedelta) -> int:
    """Fire the due rungs of one task; how many fired."""
    district, task_id = row["district"], row["task_id"]
    repository = bus.repository
    try:
        async with pool.acquire() as conn, conn.transaction():
            task = await repository.get(Task, Task.create_id(district, task_id), conn=conn)
            policy = dataclasses.replace(
                await policy_for(conn, district, row["resolution_id"], row["council_id"]), day=day)
            steps = task.due_reminders(now, policy, await council_above(conn, district, row["council_id"]))
            if not steps:
                return 0
            for step in steps:
                task.fire(step, policy.stall_days, now)
            # The timer's own writes, not a command's: no reply is recorded for them.
            actor = bus.system_actor
            meta = Metadata(actor=actor.id, actor_role=str(actor.role), district=district,
                            correlation_id=f"timer-{task_id}", occurred_at=now)
            saved = Saved(meta, [task], await repository.save(task, meta=meta, conn=conn))
            if bus.project is not None:
                await bus.project(conn, saved)
            return len(steps)
    except ConcurrencyError:
        # A command changed the task meanwhile; the next tick re-derives from its new state.
        log.info("task changed during the tick; retrying next tick", task_id=task_id)
        return 0


def reminder_job(bus: CommandBus, interval: float, day: timedelta = timedelta(days=1),
                 policy: RetryPolicy = RetryPolicy()):
    """A background job for ``ServiceContext.background``: tick every ``interval`` seconds
    (of real time; what is due is decided by the bus's clock and policy days of length
    ``day``)."""
    items: JobItems | None = None

    async def tick() -> int:
        nonlocal items
        pool = bus.store.pool  # exists once the service has started
        items = items or JobItems(pool, JOB, policy)
        await fire_due_reminders(bus, pool, day, items)
        return 0  # firing is bounded by what is due: the next tick waits ``interval``

    return every(interval, tick, JOB, policy)
