"""The sessions' durable timer: schedules each council's next session from its monthly
schedule, and opens every scheduled session when its start has come.

Nothing is kept in memory between ticks, as in oversight's reminder scheduler: each tick
reads what is due from the read models (:func:`projections.due_calendars`,
:func:`projections.due_sessions`) against the service's clock and sends the platform's
own command for it through the bus (:class:`~services.proposals.sessions.ScheduleFromCalendar`,
:class:`~services.proposals.sessions.OpenDueSession`), keyed by what it is about. So a
start that passed while the service was down is acted on at the first tick after the
restart, and nothing happens twice: a second firing (another tick, another replica, a
restart) is answered from the recorded reply of the same key, or refused by the
aggregate, which holds the session as scheduled or open. The leader (:func:`yishi.jobs.every`)
runs the ticks; an item that fails deterministically is recorded and skipped
(:class:`yishi.jobs.JobItems`), the others go on.
"""

from __future__ import annotations

import asyncpg

from contracts.common import CommandAccepted

from services.proposals import projections
from services.proposals.sessions import OpenDueSession, ScheduleFromCalendar
from yishi.commands import CommandBus
from yishi.failures import RetryPolicy
from yishi.jobs import JobItems, every
from yishi.metrics import TIMERS_FIRED

JOB = "proposals.sessions"


async def fire_due_sessions(bus: CommandBus, pool: asyncpg.Pool, items: JobItems | None = None) -> int:
    """One tick: schedule every calendar's due session, then open every session whose
    start has come, as the bus's platform. Returns how many were accepted."""
    items = items or JobItems(pool, JOB)
    fired = 0
    for district, council_id, starts_at in await projections.due_calendars(pool):
        timer = f"schedule:{district}:{council_id}:{starts_at.isoformat()}"
        command = ScheduleFromCalendar(district=district, actor=bus.system_actor, council_id=council_id,
                                       starts_at=starts_at)
        fired += await items.run(f"{district}/{council_id}", lambda: _send(bus, command, timer)) or 0
    for district, session_id in await projections.due_sessions(pool, bus.clock.now()):
        timer = f"open:{district}:{session_id}"
        command = OpenDueSession(district=district, actor=bus.system_actor, session_id=session_id)
        fired += await items.run(f"{district}/{session_id}", lambda: _send(bus, command, timer)) or 0
    TIMERS_FIRED.labels("proposals.session").inc(fired)
    return fired


async def _send(bus: CommandBus, command: ScheduleFromCalendar | OpenDueSession, timer: str) -> int:
    reply = await bus.dispatch(command, command_id=f"timer-{timer}", correlation_id=f"timer-{timer}",
                               principal=bus.platform, key=f"timer:{timer}")
    return 1 if isinstance(reply, CommandAccepted) else 0


def session_job(bus: CommandBus, interval: float, policy: RetryPolicy = RetryPolicy()):
    """A background job for ``ServiceContext.background``: tick every ``interval`` seconds
    of real time (what is due is decided by the bus's clock)."""
    items: JobItems | None = None

    async def tick() -> int:
        nonlocal items
        pool = bus.store.pool  # exists once the service has started
        items = items or JobItems(pool, JOB, policy)
        await fire_due_sessions(bus, pool, items)
        return 0  # bounded by what is due: the next tick waits ``interval``

    return every(interval, tick, JOB, policy)
