"""Failures classified once for every consumer and background job: transient or deterministic.

A **transient** failure says nothing about the message or item being handled; the same
work succeeds once the world recovers, so it is retried with exponential backoff
(``YISHI_TRANSIENT_BACKOFF_INITIAL_S`` doubling up to ``YISHI_TRANSIENT_BACKOFF_MAX_S``)
without limit, and never dead-lettered:

* the connection to PostgreSQL lost or refused: ``asyncpg.PostgresConnectionError``
  (SQLSTATE class 08), an ``asyncpg.InterfaceError`` saying the connection or pool is
  closed, ``ConnectionError`` and every other ``OSError`` (``TimeoutError`` included);
* the database asking for a retry: serialization failure (40001), deadlock detected
  (40P01), statement completion unknown (40003), lock not available (55P03), query
  canceled (57014), admin or crash shutdown and cannot connect now (57P01-57P03), an
  idle session ended by the server (25P03, 57P05), insufficient resources (class 53),
  system errors (class 58), a cached statement plan gone stale;
* the event store's :class:`yishi.store.ConcurrencyError`: another writer appended to
  the stream first, and the next attempt reloads it;
* the broker unavailable: an aiokafka error marked ``retriable`` (``KafkaConnectionError``,
  no leader, not enough replicas, coordinator moving ...), ``KafkaTimeoutError``,
  ``KafkaUnavailableError``, broker or replica not available;
* the token provider unreachable: :class:`yishi.auth.ProviderUnavailable`.

Everything else is **deterministic**: it happens again on redelivery. That covers
``asyncpg.DataError`` and its subclasses (NUL in a text column, a number out of int64
range), integrity errors the code does not handle, pydantic ``ValidationError`` raised
anywhere, ``OverflowError`` (a date beyond 9999-12-31), ``ValueError``, ``TypeError``,
``KeyError``, and bugs in general. A deterministic failure is tried
``YISHI_POISON_MAX_ATTEMPTS`` times in all, with a pause of ``YISHI_POISON_RETRY_DELAY_S``
doubling between attempts, and then parked with its reason (``{type}: {message}``): a
consumer dead-letters the message (:mod:`yishi.inbox`), a background job records the item
in ``failed_jobs`` and skips it (:mod:`yishi.jobs`). So no single message or item holds a
partition or a timer for longer than those attempts take.

Long-running loops (the relay, background jobs, their supervisor) retry through
:func:`retried`: each failure it retries is handed to ``before_sleep`` (to log and count
it), then a pause cut short by the loop's stop event.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

import asyncpg
from aiokafka import errors as kafka_errors

from yishi.auth import ProviderUnavailable
from yishi.store import ConcurrencyError

T = TypeVar("T")
FailureClass = Literal["transient", "deterministic"]

TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "53", "58"})
"""Connection exceptions, insufficient resources, system errors (I/O)."""
TRANSIENT_SQLSTATES = frozenset({
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "40003",  # statement_completion_unknown
    "55P03",  # lock_not_available
    "57014",  # query_canceled (statement_timeout, pg_cancel_backend)
    "57P01",  # admin_shutdown (pg_terminate_backend, a restart)
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now (starting up, recovering)
    "57P05",  # idle_session_timeout
    "25P03",  # idle_in_transaction_session_timeout
})
TRANSIENT_KAFKA = (kafka_errors.KafkaTimeoutError, kafka_errors.KafkaUnavailableError,
                   kafka_errors.BrokerNotAvailableError, kafka_errors.ReplicaNotAvailableError)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or the error it was explicitly raised from) will likely not recur."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if _transient(exc):
            return True
        exc = exc.__cause__
    return False


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, asyncpg.PostgresError):
        state = exc.sqlstate or ""
        return state[:2] in TRANSIENT_SQLSTATE_CLASSES or state in TRANSIENT_SQLSTATES
    if isinstance(exc, asyncpg.InterfaceError):
        # Only a connection or pool that went away; other interface errors (a client-side
        # DataError such as "value out of int64 range", misuse) recur.
        text = str(exc)
        return "closed" in text or "closing" in text
    if isinstance(exc, asyncpg.exceptions.OutdatedSchemaCacheError):
        return True
    if isinstance(exc, ConcurrencyError):
        # Someone else appended to the stream first: reloaded on the next attempt, the
        # work goes through (a consumer racing the HTTP commands on one proposal).
        return True
    if isinstance(exc, kafka_errors.KafkaError):
        return bool(exc.retriable) or isinstance(exc, TRANSIENT_KAFKA)
    return isinstance(exc, (OSError, ProviderUnavailable))


def classify(exc: BaseException) -> FailureClass:
    """``"transient"`` or ``"deterministic"`` (see the module docstring)."""
    return "transient" if is_transient(exc) else "deterministic"


def describe(exc: BaseException, limit: int = 2000) -> str:
    """The reason recorded for a parked message or item: ``{type}: {message}``, cut to
    ``limit`` characters and made storable (no NUL, no lone surrogates), since the
    message often repeats the very value that could not be stored."""
    return storable(f"{type(exc).__name__}: {exc}")[:limit]


def storable(text: str) -> str:
    """``text`` as PostgreSQL text and jsonb can hold it: NUL and lone surrogates escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how fast failed work is tried again (see the module docstring)."""

    max_attempts: int = 3
    retry_delay: float = 0.2
    backoff_initial: float = 0.1
    backoff_max: float = 30.0

    @classmethod
    def from_settings(cls, settings) -> RetryPolicy:
        """The policy of :class:`yishi.settings.Settings`' ``poison_*`` and ``transient_*``."""
        return cls(max_attempts=settings.poison_max_attempts, retry_delay=settings.poison_retry_delay_s,
                   backoff_initial=settings.transient_backoff_initial_s,
                   backoff_max=settings.transient_backoff_max_s)

    def deterministic_delay(self, failures: int) -> float:
        """The pause after the ``failures``-th deterministic failure (1-based)."""
        return min(self.backoff_max, self.retry_delay * 2 ** min(failures - 1, 62))

    def transient_delay(self, failures: int) -> float:
        """The pause after the ``failures``-th transient failure in a row (1-based)."""
        return min(self.backoff_max, self.backoff_initial * 2 ** min(failures - 1, 62))


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``stop`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):  # wait_for (Python 3.11) may swallow a cancellation
            await stop.wait()


@dataclass(frozen=True, slots=True)
class Retrying:
    """A failure :func:`retried` is about to retry, as its ``before_sleep`` is told of it."""

    exception: BaseException
    failures: int
    """Failures in a row, this one included."""
    delay: float
    """The pause before the next attempt, in seconds."""


async def retried(work: Callable[[], Awaitable[T]], stop: asyncio.Event, delay: Callable[[int], float], *,
                  retry: Callable[[BaseException], bool] = is_transient,
                  before_sleep: Callable[[Retrying], object] | None = None) -> T | None:
    """``await work()`` until it succeeds (its result) or fails with an error ``retry``
    rejects (raised); None once ``stop`` is set, which also cuts a pause short. After the
    n-th failure in a row it calls ``before_sleep`` (awaited if it returns an awaitable)
    and pauses ``delay(n)`` seconds.

    A loop of its own, not tenacity's: the relay calls this once per batch, and each
    ``AsyncRetrying`` is a reference cycle (its actions refer back to it) left to the
    garbage collector, hundreds a second, which made the voting service's full
    collections frequent and long (up to 87 ms of CPU at 400 ballots/s)."""
    failures = 0
    while not stop.is_set():
        try:
            return await work()
        except BaseException as exc:
            if not retry(exc):
                raise
            failures += 1
            pause = delay(failures)
            if before_sleep is not None:
                told = before_sleep(Retrying(exc, failures, pause))
                if inspect.isawaitable(told):
                    await told
        await sleep_or_stop(stop, pause)
    return None
