"""Background jobs, driven by the service clock and durable through the store:

* the **delivery worker** picks due deliveries from the ``deliveries`` read model,
  claims an attempt (recorded before sending), sends, and records the outcome;
* the **reminders**, one :class:`Reminder` loop per :class:`Reminding` kind: the vote
  reminder (:data:`VOTE_CLOSING`) finds open votes about to close and reminds the
  electors who have not voted; the session reminder (:data:`SESSION_COMING`) reminds a
  consultation session's council members and invited the day before
  (:data:`SESSION_REMINDER_LEAD`). Each row is reminded once (the notification id is
  derived from it, and its ``reminded`` mark is written in the same transaction), also
  after a restart that missed the due time, and however often a session is scheduled
  again. A row that cannot be reminded is recorded and, after its last attempt, set
  aside (:class:`yishi.jobs.JobItems`): the rows after it are reminded all the same.
  Each reminder is the platform's own command
  (:class:`~services.notify.application.GiveNotice`), dispatched through the bus like the
  notices other services' events ask for.

The delivery worker does not go through the bus: claims and outcomes are not anyone's
requests but the steps of one send, with the channel's I/O between them; a claim that
lost a race (another worker, a lapsed lease) is simply skipped, not a refusal to answer,
and a reply beside each claim and outcome would double what every attempt stores and
publishes, for no caller to read.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import structlog

from contracts.common import Actor, CommandAccepted
from contracts.notify import Channel, FailureReason
from services.notify import projections
from services.notify.application import GiveNotice
from services.notify.channels import Message, RateLimiter, SendFailed
from services.notify.consumers import local_time, where
from services.notify.domain import Backoff, Delivery, DeliveryStatus, source_notification_id
from yishi.clock import Clock
from yishi.commands import CommandBus
from yishi.failures import RetryPolicy
from yishi.jobs import JobItems
from yishi.metrics import DELIVERIES, TIMERS_FIRED
from yishi.repository import Repository
from yishi.rules import Rejected
from yishi.store import ConcurrencyError, Metadata

log = structlog.get_logger("yishi.notify.worker")


class DeliveryWorker:
    """Sends due deliveries: claim (recorded) → send → record the outcome."""

    def __init__(self, repository: Repository, clock: Clock, actor: Actor, senders: dict, limiter: RateLimiter,
                 backoff: Backoff, *, lease: timedelta, timeout: float, batch: int = 100) -> None:
        self.repository = repository
        self.clock = clock
        self.actor = actor
        """Who the claims and outcomes are recorded as (the service's system actor)."""
        self.senders = senders
        self.limiter = limiter
        self.backoff = backoff
        self.lease = lease
        self.timeout = timeout
        self.batch = batch

    @property
    def pool(self) -> asyncpg.Pool:
        return self.repository.store.pool

    async def run_once(self) -> int:
        """One pass over the due deliveries; returns how many attempts were made."""
        now = self.clock.now()
        attempts = 0
        for row in await projections.due_deliveries(self.pool, now, self.batch):
            if not self.limiter.try_acquire(Channel(row["channel"])):
                continue  # over this channel's rate: the next pass takes it
            claimed = await self._change(row["delivery_id"], lambda d: self._claim(d, now))
            if claimed is None:
                continue
            delivery, attempt = claimed
            outcome = await self._send(delivery)
            attempts += 1
            done = self.clock.now()
            DELIVERIES.labels(delivery.channel, "delivered" if outcome is None else outcome.reason.value).inc()
            if outcome is None:
                await self._change(delivery.id, lambda d: d.succeed(attempt, done))
            else:
                log.info("delivery attempt failed", delivery_id=str(delivery.id), attempt=attempt,
                         reason=str(outcome.reason), detail=outcome.detail)
                await self._change(delivery.id, lambda d: d.fail(attempt, done, outcome.reason.value, outcome.detail,
                                                                  permanent=outcome.permanent, backoff=self.backoff))
        return attempts

    def _claim(self, delivery: Delivery, now) -> int | None:
        if delivery.status is DeliveryStatus.PENDING and delivery.expired(now):
            delivery.expire(now)
            return None
        return delivery.claim(now, self.lease)

    async def _change(self, delivery_id: UUID, change: Callable[[Delivery], object]):
        """Load, change and save one delivery with its read-model row, atomically.

        Returns ``(delivery, result)``, or None when another worker changed it first or
        the change no longer applies."""
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                delivery = await self.repository.get(Delivery, delivery_id, conn=conn)
                result = change(delivery)
                meta = Metadata(actor=self.actor.id, actor_role=str(self.actor.role), district=delivery.district,
                                correlation_id=f"delivery-{delivery.id}", causation_id=None,
                                occurred_at=self.clock.now())
                await self.repository.save(delivery, meta=meta, conn=conn)
                await projections.save_delivery(conn, delivery)
        except (ConcurrencyError, Rejected) as exc:
            log.info("delivery changed meanwhile; skipped", delivery_id=str(delivery_id), error=str(exc))
            return None
        return None if result is None else (delivery, result)

    async def _send(self, delivery: Delivery) -> SendFailed | None:
        sender = self.senders.get(Channel(delivery.channel))
        if sender is None:
            return SendFailed(FailureReason.REJECTED_BY_CHANNEL, f"channel {delivery.channel} is not configured",
                              permanent=True)
        message = Message(str(delivery.id), delivery.notification_id, delivery.recipient_id, delivery.address,
                          delivery.language, delivery.template, delivery.subject, delivery.body, delivery.regarding)
        try:
            await asyncio.wait_for(sender.send(message), self.timeout)
        except SendFailed as exc:
            return exc
        except asyncio.TimeoutError:
            return SendFailed(FailureReason.UNREACHABLE, f"no answer within {self.timeout}s")
        return None


@dataclass(frozen=True)
class Reminding:
    """One kind of reminder, as :class:`Reminder` needs it: a read model whose rows each
    ask for one reminder before the time in their ``at`` column, once.

    ``due`` lists the rows due by a time, soonest first; ``notice`` gives the parts of
    the :class:`~services.notify.application.GiveNotice` a row asks for beyond the common
    ones (``params`` and who is addressed), read in the reminder's transaction."""

    job: str
    """Names the job in logs, metrics (``yishi_timers_fired_total``, the job's item
    failures) and ``failed_jobs``."""
    table: str
    key: str
    """The table's id column (with ``district``, its key)."""
    at: str
    """The time column a reminder is ahead of; once it passed, the reminder helps nobody."""
    timer: str
    """The timer's name: with the row's key, the notice's id (so never twice, also across
    releases: it must not change)."""
    template: str
    regarding: str
    """The event type the notice is about (with the row's id)."""
    due: Callable[[asyncpg.Pool, datetime], Awaitable[list[asyncpg.Record]]]
    notice: Callable[[asyncpg.Connection, asyncpg.Record], Awaitable[dict[str, Any]]]


class Reminder:
    """Reminds, ``lead`` before its time, for every row of one :class:`Reminding` kind, once.

    Once: the ``reminded`` mark is written in the reminder's transaction (row locked), and
    the notification id is derived from the row's key alone, so neither a restart nor a
    row changed meanwhile (a session scheduled again) reminds twice. A row whose time passed
    unreminded (the service was down) is marked without a notice.

    Each row is one item of :class:`yishi.jobs.JobItems`, so one that cannot be reminded
    (its notice cannot be built or rendered: a value left by a past release, a bug) does
    not stop the rows after it. Its failure is logged with the reason, counted
    (``yishi_job_item_failures_total``) and recorded in ``failed_jobs``; it is tried again
    at the next ticks (once per tick, and a tick that reminds nobody waits the job's
    interval: no hot loop), at most ``YISHI_POISON_MAX_ATTEMPTS`` times in all (a failure
    of the moment passes), then set aside (``yishi_job_items_parked_total``) until an
    operator fixes the cause and deletes its ``failed_jobs`` row (notify, restarted, tries
    it again). Why that and not a ``reminded`` mark with the reason on the row: the row is
    not reminded (nobody was told, and marking it would lose the reminder for good once
    the cause is fixed), and ``failed_jobs`` is where every background job's failed items
    are kept, with one metric and one runbook. A notice the bus refuses (a template that
    does not fit) is answered ``CommandRejected`` like any command, and the row marked.
    A transient failure (the database away) is raised to :func:`yishi.jobs.every`, which
    backs off."""

    def __init__(self, bus: CommandBus, kind: Reminding, lead: timedelta, policy: RetryPolicy = RetryPolicy()) -> None:
        self.bus = bus
        self.kind = kind
        self.lead = lead
        self.policy = policy
        self._items: JobItems | None = None

    async def run_once(self, pool: asyncpg.Pool) -> int:
        """Remind for every row now inside its reminder window; returns how many rows' people were reminded."""
        self._items = self._items or JobItems(pool, self.kind.job, self.policy)
        now = self.bus.clock.now()
        reminded = 0
        for due in await self.kind.due(pool, now + self.lead):
            district, key = due["district"], due[self.kind.key]
            reminded += await self._items.run(f"{district}/{key}",
                                              functools.partial(self._remind, pool, district, key, now)) or 0
        return reminded

    async def _remind(self, pool: asyncpg.Pool, district: str, key: str, now: datetime) -> int:
        """Remind for one row (unless reminded or closed meanwhile, or past its time) and mark it; 1 if reminded
        (the notice accepted)."""
        kind, sent = self.kind, 0
        async with pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"SELECT * FROM {kind.table} WHERE district = $1 AND {kind.key} = $2 AND NOT reminded AND NOT closed "
                "FOR UPDATE", district, key)
            if row is None:
                return 0
            if row[kind.at] > now:  # a reminder after its time helps nobody
                timer = f"{kind.timer}:{district}:{key}"
                command = GiveNotice(
                    district=district, actor=self.bus.system_actor,
                    notification_id=source_notification_id(timer, kind.template), template=kind.template,
                    regarding=(kind.regarding, key), expires_at=row[kind.at], **await kind.notice(conn, row))
                reply = await self.bus.dispatch(command, command_id=f"timer-{timer}", correlation_id=f"timer-{timer}",
                                                principal=self.bus.platform, conn=conn, key=f"timer:{timer}")
                sent = int(isinstance(reply, CommandAccepted))
            await conn.execute(f"UPDATE {kind.table} SET reminded = true WHERE district = $1 AND {kind.key} = $2",
                               district, key)
        TIMERS_FIRED.labels(kind.job).inc()
        return sent


async def _vote_notice(conn: asyncpg.Connection, row: asyncpg.Record) -> dict[str, Any]:
    return {"params": {"question": row["question"], "vote_id": row["vote_id"],
                       "closes_at": local_time(row["closes_at"])},
            "people": await projections.electors_who_have_not_voted(conn, row["district"], row["vote_id"])}


VOTE_CLOSING = Reminding(
    job="notify.vote-reminder", table="votes", key="vote_id", at="closes_at", timer="vote-closing-soon",
    template="vote.closing_soon", regarding="VoteOpened", due=projections.votes_due_for_reminder, notice=_vote_notice)
"""The electors of an open vote who have not voted, before it closes (lead:
``vote_reminder_lead_s``), once per vote."""


async def _session_notice(conn: asyncpg.Connection, row: asyncpg.Record) -> dict[str, Any]:
    return {"params": {"session_id": row["session_id"], "starts_at": local_time(row["starts_at"]),
                       "where": where(row["place"], row["online_link"])},
            "members_of": row["council_id"],
            "people": tuple(await projections.session_invitees(conn, row["district"], row["session_id"]))}


SESSION_COMING = Reminding(
    job="notify.session-reminder", table="sessions", key="session_id", at="starts_at", timer="session-reminder",
    template="session.reminder", regarding="SessionScheduled", due=projections.sessions_due_for_reminder,
    notice=_session_notice)
"""A consultation session's council members and invited, the day before it starts
(:data:`SESSION_REMINDER_LEAD`), once per session however often it is scheduled again:
the notice's id is derived from the session alone, not its time."""

SESSION_REMINDER_LEAD = timedelta(hours=24)
"""How long before a consultation session its people are reminded: the day before."""
