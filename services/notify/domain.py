"""Notify's aggregates: subscriptions, notifications and deliveries. Pure and synchronous;
time and randomness come in as arguments.

A *notification* is one notice caused by one source (an event, a command, a timer). It
fans out into *deliveries*, one per recipient, channel and address, each with its own
lifecycle: pending → sending (claimed) → delivered, or failed and retried with backoff,
or dead-lettered after the last try. A claim is recorded before a send and the outcome
after it, so a restart never loses a send and two workers never send the same attempt.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from enum import StrEnum
from zoneinfo import ZoneInfo

from eventsourcing.domain import Aggregate, event

from contracts.common import RejectionReason
from yishi.rules import Rejected

NAMESPACE = uuid.UUID("6f1f3b0e-2d63-4c5e-9a40-2f3c7b9d6a11")


def subscription_uuid(district: str, subscription_id: str) -> uuid.UUID:
    """Stream id of a subscription; district-scoped so districts never share one."""
    return uuid.uuid5(NAMESPACE, f"{district}:subscription:{subscription_id}")


def default_contact_uuid(district: str, party_id: str) -> uuid.UUID:
    """Stream id of a party's entry in the district's directory of default contacts."""
    return uuid.uuid5(NAMESPACE, f"{district}:default-contact:{party_id}")


def notification_uuid(district: str, notification_id: str) -> uuid.UUID:
    """Stream id of a notification."""
    return uuid.uuid5(NAMESPACE, f"{district}:notification:{notification_id}")


def source_notification_id(source_id: str, template: str) -> str:
    """The notification id for a notice caused by ``source_id`` (an event id or a timer
    key): the same source always yields the same notification."""
    return str(uuid.uuid5(NAMESPACE, f"source:{source_id}:{template}"))


def delivery_uuid(district: str, notification_id: str, recipient_id: str, channel: str, address: str) -> uuid.UUID:
    """Stream id of one delivery: deterministic, so a repeated source cannot send twice."""
    return uuid.uuid5(NAMESPACE, f"{district}:delivery:{notification_id}:{recipient_id}:{channel}:{address}")


# -- subscriptions ---------------------------------------------------------------


class Subscription(Aggregate):
    """A person's or a system's contact on one channel, with what it follows."""

    @staticmethod
    def create_id(district: str, subscription_id: str) -> uuid.UUID:
        return subscription_uuid(district, subscription_id)

    def __init__(self, district: str, subscription_id: str, terms: dict) -> None:
        self.district = district
        self.subscription_id = subscription_id
        self.terms = terms
        self.active = True

    def cancel(self) -> None:
        """End the subscription; cancelling twice changes nothing."""
        if self.active:
            self._cancelled()

    @event("Cancelled")
    def _cancelled(self) -> None:
        self.active = False


class DefaultContact(Aggregate):
    """A party's default channel and address, kept by the district: how a person, an
    organisation or a council is reached when it subscribed to nothing."""

    @staticmethod
    def create_id(district: str, party_id: str) -> uuid.UUID:
        return default_contact_uuid(district, party_id)

    def __init__(self, district: str, party_id: str, terms: dict) -> None:
        self.district = district
        self.party_id = party_id
        self.terms = terms  # channel, address, language
        self.active = True

    def change(self, terms: dict) -> bool:
        """Replace the entry (or restore a removed one); False when nothing changes."""
        if self.active and terms == self.terms:
            return False
        self._changed(terms=terms)
        return True

    @event("Changed")
    def _changed(self, terms: dict) -> None:
        self.terms = terms
        self.active = True

    def remove(self) -> None:
        """Take the party out of the directory."""
        if not self.active:
            raise Rejected(RejectionReason.NOT_FOUND, f"{self.party_id} has no default contact", self.party_id)
        self._removed()

    @event("Removed")
    def _removed(self) -> None:
        self.active = False


# -- notifications ---------------------------------------------------------------


class Notification(Aggregate):
    """One notice and who it goes to; recorded once per source."""

    @staticmethod
    def create_id(district: str, notification_id: str) -> uuid.UUID:
        return notification_uuid(district, notification_id)

    def __init__(self, district: str, notification_id: str, template: str, params: dict[str, str],
                 recipients: list[list[str]], channels: list[str], regarding: list[str] | None) -> None:
        self.district = district
        self.notification_id = notification_id
        self.template = template
        self.params = params
        self.recipients = recipients  # [kind, id] pairs
        self.channels = channels
        self.regarding = regarding  # [type, subject] or None
        self.unreached: list[str] = []

    def no_recipient(self, recipient_id: str) -> None:
        """Record that ``recipient_id``, whom the notice is for, could not be reached at all
        (no subscription, no default contact): a failure, not silence."""
        if recipient_id not in self.unreached:
            self._no_recipient(recipient_id=recipient_id, notification_id=self.notification_id)

    @event("NoRecipient")
    def _no_recipient(self, recipient_id: str, notification_id: str) -> None:
        self.unreached.append(recipient_id)


# -- deliveries ------------------------------------------------------------------


class DeliveryStatus(StrEnum):
    """Where a delivery is in its lifecycle."""

    PENDING = "pending"
    SENDING = "sending"
    DELIVERED = "delivered"
    DEAD_LETTERED = "dead_lettered"


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with equal jitter: attempt n waits between half and all of
    ``base * 2**(n-1)``, capped at ``maximum``; ``rng`` returns a float in [0, 1)."""

    base: timedelta
    maximum: timedelta
    rng: Callable[[], float]

    def delay(self, attempt: int) -> timedelta:
        """How long to wait after failed attempt ``attempt`` (1-based)."""
        # In float seconds: a timedelta overflows long before the cap would apply.
        ceiling = min(self.maximum.total_seconds(), self.base.total_seconds() * 2.0 ** min(attempt - 1, 64))
        return timedelta(seconds=ceiling / 2 + ceiling / 2 * self.rng())


class Delivery(Aggregate):
    """One message to one recipient on one channel and address."""

    @staticmethod
    def create_id(district: str, notification_id: str, recipient_id: str, channel: str,
                  address: str) -> uuid.UUID:
        return delivery_uuid(district, notification_id, recipient_id, channel, address)

    def __init__(self, district: str, notification_id: str, recipient_id: str, channel: str, address: str,
                 recipient_kind: str, language: str, template: str, subject: str, body: str,
                 regarding: list[str] | None, requested_at: datetime, not_before: datetime,
                 expires_at: datetime | None, max_attempts: int) -> None:
        self.district = district
        self.notification_id = notification_id
        self.recipient_id = recipient_id
        self.recipient_kind = recipient_kind
        self.channel = channel
        self.address = address
        self.language = language
        self.template = template
        self.subject = subject
        self.body = body
        self.regarding = regarding
        self.requested_at = requested_at
        self.expires_at = expires_at
        self.max_attempts = max_attempts
        self.status = DeliveryStatus.PENDING
        self.attempts = 0
        self.next_attempt_at: datetime | None = not_before
        self.claimed_until: datetime | None = None
        self.history: list[dict] = []

    @property
    def finished(self) -> bool:
        return self.status in (DeliveryStatus.DELIVERED, DeliveryStatus.DEAD_LETTERED)

    def is_due(self, now: datetime) -> bool:
        """Whether a worker may claim it now (a pending retry is due, or a claim's lease ran out)."""
        if self.status is DeliveryStatus.PENDING:
            return self.next_attempt_at is None or self.next_attempt_at <= now
        return self.status is DeliveryStatus.SENDING and self.claimed_until is not None and self.claimed_until <= now

    def claim(self, now: datetime, lease: timedelta) -> int:
        """Take the next attempt before sending; returns its number.

        A claim whose lease ran out (its worker died mid-send) may be taken again: the
        message may then reach the channel twice, which idempotency keys let receivers drop.
        """
        if not self.is_due(now):
            raise Rejected(RejectionReason.INVALID_STATE, f"delivery is {self.status} and not due", str(self.id))
        self._claimed(attempt=self.attempts + 1, at=now, until=now + lease)
        return self.attempts

    @event("Claimed")
    def _claimed(self, attempt: int, at: datetime, until: datetime) -> None:
        self.status = DeliveryStatus.SENDING
        self.attempts = attempt
        self.claimed_until = until
        self.next_attempt_at = None

    def _ref(self) -> dict[str, str]:
        # Outcome events name their notification, recipient and channel, so each one can
        # be published on its own.
        return {"notification_id": self.notification_id, "recipient_id": self.recipient_id,
                "channel": self.channel}

    def _require_sending(self, attempt: int) -> None:
        if self.status is not DeliveryStatus.SENDING or attempt != self.attempts:
            raise Rejected(RejectionReason.CONFLICT, f"attempt {attempt} is not the current claim", str(self.id))

    def succeed(self, attempt: int, now: datetime) -> None:
        """The channel accepted the message."""
        self._require_sending(attempt)
        self._delivered(attempt=attempt, at=now, **self._ref())

    @event("Delivered")
    def _delivered(self, attempt: int, at: datetime, notification_id: str, recipient_id: str,
                   channel: str) -> None:
        self.status = DeliveryStatus.DELIVERED
        self.claimed_until = None
        self.history.append({"attempt": attempt, "at": at.isoformat(), "outcome": "delivered"})

    def fail(self, attempt: int, now: datetime, reason: str, detail: str | None, *, permanent: bool,
             backoff: Backoff) -> None:
        """The attempt failed: retry after a backoff, or dead-letter after the last try
        or a failure retrying cannot fix."""
        self._require_sending(attempt)
        if permanent or attempt >= self.max_attempts:
            self._dead_lettered(attempt=attempt, at=now, reason=reason, detail=detail, **self._ref())
        else:
            self._failed(attempt=attempt, at=now, reason=reason, detail=detail,
                         retry_at=now + backoff.delay(attempt), **self._ref())

    def expire(self, now: datetime) -> None:
        """Give up on a message that stopped mattering before it could be sent."""
        if self.finished or self.status is DeliveryStatus.SENDING:
            raise Rejected(RejectionReason.INVALID_STATE, f"delivery is {self.status}", str(self.id))
        self._dead_lettered(attempt=max(self.attempts, 1), at=now, reason="expired",
                            detail="not sent before it stopped mattering", **self._ref())

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    @event("Failed")
    def _failed(self, attempt: int, at: datetime, reason: str, detail: str | None, retry_at: datetime,
                notification_id: str, recipient_id: str, channel: str) -> None:
        self.status = DeliveryStatus.PENDING
        self.claimed_until = None
        self.next_attempt_at = retry_at
        self.history.append({"attempt": attempt, "at": at.isoformat(), "outcome": "failed", "reason": reason,
                             "detail": detail, "retry_at": retry_at.isoformat()})

    @event("DeadLettered")
    def _dead_lettered(self, attempt: int, at: datetime, reason: str, detail: str | None, notification_id: str,
                       recipient_id: str, channel: str) -> None:
        self.status = DeliveryStatus.DEAD_LETTERED
        self.claimed_until = None
        self.next_attempt_at = None
        self.history.append({"attempt": attempt, "at": at.isoformat(), "outcome": "dead_lettered",
                             "reason": reason, "detail": detail})


# -- quiet hours -----------------------------------------------------------------


def after_quiet_hours(now: datetime, start: time, end: time, zone: str) -> datetime:
    """``now`` if it is outside the quiet hours ``[start, end)`` in ``zone``, else the end
    of those quiet hours (as UTC). ``start > end`` spans midnight; ``start == end`` is none."""
    if start == end:
        return now
    tz = ZoneInfo(zone)
    local = now.astimezone(tz)
    clock = local.time().replace(tzinfo=None)
    quiet = start <= clock < end if start < end else (clock >= start or clock < end)
    if not quiet:
        return now
    release = local.replace(hour=end.hour, minute=end.minute, second=end.second, microsecond=0)
    if release <= local:
        release = (release + timedelta(days=1)).replace(tzinfo=tz)
    return release.astimezone(timezone.utc)
