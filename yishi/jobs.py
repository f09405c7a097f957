"""Background jobs that process items (timers, reminders, workers), written once.

:func:`every` runs a job's step until stopped. :class:`JobItems` runs the work on each
item of a step so that one item cannot stop the others: an item whose work fails
deterministically (see :mod:`yishi.failures`) is logged, counted and recorded in
``failed_jobs`` (job, item, attempts, reason); after ``YISHI_POISON_MAX_ATTEMPTS`` such
failures it is skipped by every later step, until an operator deletes its row (after
fixing the cause). A transient failure is raised to :func:`every`, which backs off
(``YISHI_TRANSIENT_BACKOFF_*``) and runs the step again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
import structlog
from prometheus_client import Counter

from yishi.failures import RetryPolicy, classify, describe, storable

log = structlog.get_logger("yishi.jobs")

T = TypeVar("T")

DDL = (
    """
    CREATE TABLE IF NOT EXISTS failed_jobs (
        job        text NOT NULL,
        item       text NOT NULL,
        attempts   integer NOT NULL,
        reason     text NOT NULL,
        failed_at  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (job, item)
    )
    """,
)

STEP_FAILURES = Counter("yishi_job_failures_total", "Failed steps of a background job", ["job", "class"])
ITEM_FAILURES = Counter("yishi_job_item_failures_total", "Items whose work failed deterministically", ["job"])
ITEMS_SKIPPED = Counter("yishi_job_items_parked_total", "Items set aside after their last allowed attempt", ["job"])


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


def every(interval: float, step: Callable[[], Awaitable[int]], name: str, policy: RetryPolicy = RetryPolicy()):
    """A background job running ``step`` until stopped: again at once while it finds work
    (returns a truthy count), else after ``interval`` seconds. A transient failure backs
    off exponentially; any other failure of the step as a whole is logged and the step
    runs again after ``interval`` (items that fail are :class:`JobItems`' business)."""
    async def job(stop: asyncio.Event) -> None:
        transient = 0
        while not stop.is_set():
            busy, pause = 0, interval
            try:
                busy = await step()
                transient = 0
            except Exception as exc:
                kind = classify(exc)
                STEP_FAILURES.labels(name, kind).inc()
                if kind == "transient":
                    transient += 1
                    pause = max(interval, policy.transient_delay(transient))
                    log.warning("background job failed; backing off", job=name, error=repr(exc), retry_in=pause)
                else:
                    log.exception("background job failed; will retry", job=name)
            if not busy:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)
    job.__qualname__ = name
    return job
