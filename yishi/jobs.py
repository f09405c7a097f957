"""Background jobs that process items (timers, reminders, workers), written once.

:func:`every` runs a job's step until stopped. :class:`JobItems` runs the work on each
item of a step so that one item cannot stop the others: an item whose work fails
deterministically (see :mod:`yishi.failures`) is logged, counted and recorded in
``failed_jobs`` (job, item, attempts, reason); after ``YISHI_POISON_MAX_ATTEMPTS`` such
failures it is skipped by every later step, until an operator deletes its row (after
fixing the cause). A transient failure is raised to :func:`every`, which backs off
(``YISHI_TRANSIENT_BACKOFF_*``) and runs the step again.

With several replicas of a service on one database, each job runs on one of them: the
replica holding the job's :class:`Leadership` (a session advisory lock per schema and job
name) runs the steps; the others stand by and try the lock again every interval. So
each item is scanned and acted on by one replica, and one replica takes over when the
leader stops or its database session dies.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
import structlog
from prometheus_client import Counter, Gauge

from yishi.failures import RetryPolicy, Retrying, classify, describe, retried, sleep_or_stop, storable

log = structlog.get_logger("yishi.jobs")

T = TypeVar("T")

# Table failed_jobs: yishi/migrations/versions.

STEP_FAILURES = Counter("yishi_job_failures_total", "Failed steps of a background job", ["job", "class"])
ITEM_FAILURES = Counter("yishi_job_item_failures_total", "Items whose work failed deterministically", ["job"])
ITEMS_SKIPPED = Counter("yishi_job_items_parked_total", "Items set aside after their last allowed attempt", ["job"])
LEADER = Gauge("yishi_job_leader", "1 while this replica runs the background job (holds its lock), else 0", ["job"])

_LOCK_KEY = "hashtext('yishi.job.' || current_schema() || '.' || $1)"
_ALIVE_TIMEOUT = 10.0
"""Longest wait for the lock session to answer before the leader gives the lock up."""


class JobItems:
    """Per-item failure handling of one background job (``job`` names it in logs, metrics
    and ``failed_jobs``)."""

    def __init__(self, pool: asyncpg.Pool, job: str, policy: RetryPolicy = RetryPolicy()) -> None:
        self.pool = pool
        self.job = job
        self.policy = policy
        self._parked: set[str] | None = None  # loaded from failed_jobs on first use
        self._failing: set[str] = set()

    async def run(self, item: str, work: Callable[[], Awaitable[T]]) -> T | None:
        """``await work()`` for ``item``; None when the item is parked or its work failed
        deterministically (recorded), the error itself when it is transient."""
        item = storable(item)
        if self._parked is None:
            self._parked = {row["item"] for row in await self.pool.fetch(
                "SELECT item FROM failed_jobs WHERE job = $1 AND attempts >= $2", self.job, self.policy.max_attempts)}
        if item in self._parked:
            return None
        try:
            result = await work()
        except Exception as exc:
            if classify(exc) == "transient":
                raise
            await self._failed(item, exc)
            return None
        if item in self._failing:
            self._failing.discard(item)
            await self.pool.execute("DELETE FROM failed_jobs WHERE job = $1 AND item = $2", self.job, item)
        return result

    async def _failed(self, item: str, exc: Exception) -> None:
        ITEM_FAILURES.labels(self.job).inc()
        reason = describe(exc)
        attempts = await self.pool.fetchval(
            "INSERT INTO failed_jobs (job, item, attempts, reason) VALUES ($1, $2, 1, $3) "
            "ON CONFLICT (job, item) DO UPDATE SET attempts = failed_jobs.attempts + 1, reason = excluded.reason, "
            "failed_at = now() RETURNING attempts", self.job, item, reason)
        self._failing.add(item)
        parked = attempts >= self.policy.max_attempts
        log.error("background job item failed" + ("; skipped from now on" if parked else ""),
                  job=self.job, item=item, attempts=attempts, reason=reason, exc_info=exc)
        if parked:
            ITEMS_SKIPPED.labels(self.job).inc()
            self._parked.add(item)


class Leadership:
    """Whether this replica runs job ``name``: a session advisory lock on
    ``hashtext('yishi.job.' || schema || '.' || name)``, held on a connection taken from
    ``pool`` for as long as this replica leads (a replica standing by holds none).

    The pool does not reset connections on release (see :mod:`yishi.db`), so the lock is
    released explicitly, and a connection whose unlock cannot be confirmed is closed
    (which ends its session and the lock) rather than returned to the pool with it."""

    def __init__(self, pool: asyncpg.Pool, name: str) -> None:
        self.pool = pool
        self.name = name
        self._conn: asyncpg.Connection | None = None
        LEADER.labels(name).set(0)

    @property
    def leading(self) -> bool:
        return self._conn is not None

    async def lead(self) -> bool:
        """Whether to run the next step: the lock's session answers (while leading), or
        the lock was free and is now held. A leader whose session is gone stands by for
        this step; another replica may take the lock meanwhile."""
        if self._conn is not None:
            try:
                if await self._conn.fetchval("SELECT true", timeout=_ALIVE_TIMEOUT):
                    return True
            except Exception as exc:  # whatever the driver says, the lock can no longer be vouched for
                await self._drop("its database session is gone", repr(exc))
            return False
        conn = await self.pool.acquire()
        try:
            held = await conn.fetchval(f"SELECT pg_try_advisory_lock({_LOCK_KEY})", self.name)
        except BaseException:
            await self._discard(conn)  # the lock may have been taken: never pool a connection holding it
            raise
        if not held:
            await self.pool.release(conn)
            return False
        self._conn = conn
        LEADER.labels(self.name).set(1)
        log.info("replica became the leader of a background job", job=self.name)
        return True

    async def resign(self) -> None:
        """Release the lock (when held) and its connection."""
        if self._conn is None:
            return
        try:
            await self._conn.execute(f"SELECT pg_advisory_unlock({_LOCK_KEY})", self.name, timeout=_ALIVE_TIMEOUT)
        except Exception as exc:
            await self._drop("its lock could not be released", repr(exc))
            return
        conn, self._conn = self._conn, None
        await self.pool.release(conn)
        LEADER.labels(self.name).set(0)
        log.info("replica stopped leading a background job", job=self.name, reason="stopping")

    async def _drop(self, reason: str, error: str) -> None:
        conn, self._conn = self._conn, None
        await self._discard(conn)
        LEADER.labels(self.name).set(0)
        log.warning("replica stopped leading a background job", job=self.name, reason=reason, error=error)

    async def _discard(self, conn: asyncpg.Connection) -> None:
        """Close ``conn``'s session, so no lock outlives it on a pooled connection. A
        connection the server closed is already back in the pool (asyncpg releases it)."""
        with contextlib.suppress(asyncpg.InterfaceError):
            conn.terminate()
            await self.pool.release(conn)


def every(interval: float, step: Callable[[], Awaitable[int]], name: str, policy: RetryPolicy = RetryPolicy()):
    """A background job running ``step`` until stopped: again at once while it finds work
    (returns a truthy count), else after ``interval`` seconds. A transient failure backs
    off exponentially; any other failure of the step as a whole is logged and the step
    runs again after ``interval`` (items that fail are :class:`JobItems`' business).

    The job is called with the stop event and the service's pool; among replicas on one
    schema only the :class:`Leadership` holder of ``name`` runs steps, the others try to
    take it over every ``interval``."""
    async def job(stop: asyncio.Event, pool: asyncpg.Pool) -> None:
        leadership = Leadership(pool, name)

        async def lead_and_step() -> int:
            return await step() if await leadership.lead() else 0

        def backing_off(failed: Retrying) -> None:
            STEP_FAILURES.labels(name, "transient").inc()
            log.warning("background job failed; backing off", job=name, error=repr(failed.exception),
                        retry_in=failed.delay)

        try:
            while not stop.is_set():
                busy = 0
                try:
                    busy = await retried(lead_and_step, stop, lambda n: max(interval, policy.transient_delay(n)),
                                         before_sleep=backing_off)
                except Exception:
                    STEP_FAILURES.labels(name, "deterministic").inc()
                    log.exception("background job failed; will retry", job=name)
                if not busy:
                    await sleep_or_stop(stop, interval)
        finally:
            await leadership.resign()
    job.__qualname__ = name
    return job
