"""Background jobs, driven by the service clock and durable through the store:

* the **delivery worker** picks due deliveries from the ``deliveries`` read model,
  claims an attempt (recorded before sending), sends, and records the outcome;
* the **vote reminder** finds open votes about to close and reminds the electors who
  have not voted, once per vote (the notification id is derived from the vote, and the
  ``reminded`` mark is written in the same transaction), also after a restart that
  missed the due time;
* the **session reminder** does the same for consultation sessions, the day before
  (:data:`SESSION_REMINDER_LEAD`), to the council's members and the session's invited,
  once per session however often it is scheduled again. Each reminder is the platform's own command
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
from collections.abc import Callable
from datetime import timedelta
from uuid import UUID

import asyncpg
import structlog

from contracts.common import Actor
from contracts.notify import Channel, FailureReason
from services.notify import projections
from services.notify.application import GiveNotice
from services.notify.channels import Message, RateLimiter, SendFailed
from services.notify.consumers import local_time, where
from services.notify.domain import Backoff, Delivery, DeliveryStatus, source_notification_id
from yishi.clock import Clock
from yishi.commands import CommandBus
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


class VoteReminder:
    """Reminds electors who have not voted, ``lead`` before a vote closes."""

    def __init__(self, bus: CommandBus, lead: timedelta) -> None:
        self.bus = bus
        self.lead = lead

    async def run_once(self, pool: asyncpg.Pool) -> int:
        """Remind for every vote now inside its reminder window; returns how many votes' electors were reminded."""
        now = self.bus.clock.now()
        reminded = 0
        for vote in await projections.votes_due_for_reminder(pool, now + self.lead):
            async with pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(
                    "SELECT * FROM votes WHERE district = $1 AND vote_id = $2 AND NOT reminded AND NOT closed "
                    "FOR UPDATE", vote["district"], vote["vote_id"])
                if row is None:
                    continue
                if row["closes_at"] > now:  # a reminder after the close helps nobody
                    people = await projections.electors_who_have_not_voted(conn, row["district"], row["vote_id"])
                    timer = f"vote-closing-soon:{row['district']}:{row['vote_id']}"
                    command = GiveNotice(
                        district=row["district"], actor=self.bus.system_actor,
                        notification_id=source_notification_id(timer, "vote.closing_soon"),
                        template="vote.closing_soon",
                        params={"question": row["question"], "vote_id": row["vote_id"],
                                "closes_at": local_time(row["closes_at"])},
                        regarding=("VoteOpened", row["vote_id"]), people=people, expires_at=row["closes_at"])
                    await self.bus.dispatch(command, command_id=f"timer-{timer}", correlation_id=f"timer-{timer}",
                                            principal=self.bus.platform, conn=conn, key=f"timer:{timer}")
                    reminded += 1
                await conn.execute("UPDATE votes SET reminded = true WHERE district = $1 AND vote_id = $2",
                                   row["district"], row["vote_id"])
            TIMERS_FIRED.labels("notify.vote-reminder").inc()
        return reminded


SESSION_REMINDER_LEAD = timedelta(hours=24)
"""How long before a consultation session its people are reminded: the day before."""


class SessionReminder:
    """Reminds a session's council members and invited the day before it starts, once.

    Once per session: the ``reminded`` mark is written in the reminder's transaction and
    the notification id is derived from the session alone (not its time), so neither a
    session scheduled again (another time, place or chair) nor a restart reminds twice."""

    def __init__(self, bus: CommandBus, lead: timedelta = SESSION_REMINDER_LEAD) -> None:
        self.bus = bus
        self.lead = lead

    async def run_once(self, pool: asyncpg.Pool) -> int:
        """Remind for every session now inside its reminder window; returns how many sessions' people were reminded."""
        now = self.bus.clock.now()
        reminded = 0
        for session in await projections.sessions_due_for_reminder(pool, now + self.lead):
            async with pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(
                    "SELECT * FROM sessions WHERE district = $1 AND session_id = $2 AND NOT reminded AND NOT closed "
                    "FOR UPDATE", session["district"], session["session_id"])
                if row is None:
                    continue
                if row["starts_at"] > now:  # a reminder once it began helps nobody
                    timer = f"session-reminder:{row['district']}:{row['session_id']}"
                    command = GiveNotice(
                        district=row["district"], actor=self.bus.system_actor,
                        notification_id=source_notification_id(timer, "session.reminder"),
                        template="session.reminder",
                        params={"session_id": row["session_id"], "starts_at": local_time(row["starts_at"]),
                                "where": where(row["place"], row["online_link"])},
                        regarding=("SessionScheduled", row["session_id"]), members_of=row["council_id"],
                        people=tuple(await projections.session_invitees(conn, row["district"], row["session_id"])),
                        expires_at=row["starts_at"])
                    await self.bus.dispatch(command, command_id=f"timer-{timer}", correlation_id=f"timer-{timer}",
                                            principal=self.bus.platform, conn=conn, key=f"timer:{timer}")
                    reminded += 1
                await conn.execute("UPDATE sessions SET reminded = true WHERE district = $1 AND session_id = $2",
                                   row["district"], row["session_id"])
            TIMERS_FIRED.labels("notify.session-reminder").inc()
        return reminded
