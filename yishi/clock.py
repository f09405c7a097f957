"""Injected time: production uses :class:`SystemClock`, tests move a :class:`ManualClock`,
staging and training may run an :class:`AcceleratedClock` (the rehearsal clock).

Every service gets its clock from :func:`from_settings` (``yishi.runtime.create_app``):
what the platform dates and decides by (events' times, notice periods, vote deadlines,
reminder and escalation timers) reads it. Infrastructure pauses and intervals (retries,
polling, checkpoint intervals, token expiry, rate limits) stay on real time.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from ipaddress import ip_address
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from yishi.settings import Settings


class Clock(Protocol):
    """Anything that tells the current time as an aware UTC datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class ManualClock:
    """A clock that only moves when told to; for deterministic tests and replays."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=timezone.utc)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move forward by ``delta`` and return the new time."""
        if delta < timedelta(0):
            raise ValueError("a clock does not run backwards")
        self._now += delta
        return self._now

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (not earlier than now)."""
        self.advance(when - self._now)


class AcceleratedClock:
    """Rehearsal time: the wall clock's time at ``epoch``, then ``factor`` times as fast.

    A function of the wall clock alone (no state), so that every process given the same
    factor and epoch tells the same time, and a restarted one goes on where it stopped:
    a timer due while a service was down fires once when it is back, never again."""

    def __init__(self, factor: float, epoch: datetime, wall: Clock | None = None) -> None:
        if factor < 1:
            raise ValueError("a rehearsal clock runs at least as fast as the wall clock")
        if epoch.tzinfo is None:
            raise ValueError("the epoch must be an aware datetime")
        self.factor = factor
        self.epoch = epoch
        self.wall = wall or SystemClock()

    def now(self) -> datetime:
        return self.epoch + (self.wall.now() - self.epoch) * self.factor


DEVELOPMENT_HOSTS = ("localhost",)
"""Issuer hosts (with their subdomains, and loopback addresses) that are development
identity providers: :class:`yishi.auth.LocalIssuer` is ``https://yishi.localhost/dev-issuer``."""


def is_development_issuer(issuer: str | None) -> bool:
    """Whether tokens of ``issuer`` can only come from a development or test provider:
    unset (``yishi run`` starts its own), or a host under ``.localhost`` or on loopback.
    Any other issuer is a production issuer."""
    if not issuer:
        return True
    host = (urlsplit(issuer).hostname or "").rstrip(".").lower()
    if any(host == name or host.endswith(f".{name}") for name in DEVELOPMENT_HOSTS):
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def from_settings(settings: Settings, wall: Clock | None = None) -> Clock:
    """The clock a service runs on: the wall clock, or with ``YISHI_CLOCK_FACTOR`` above 1
    the rehearsal clock from ``YISHI_CLOCK_EPOCH``. Raises ValueError (the service does not
    start) for a rehearsal clock without an epoch, with an epoch in the future, or under a
    production issuer not listed in ``YISHI_CLOCK_REHEARSAL_ISSUERS``."""
    wall = wall or SystemClock()
    if settings.clock_factor == 1:
        return wall
    if settings.clock_epoch is None:
        raise ValueError("YISHI_CLOCK_FACTOR needs YISHI_CLOCK_EPOCH, the moment the rehearsal clock starts "
                         "running fast (the same for every service; `yishi run` sets it)")
    if settings.clock_epoch > wall.now():
        raise ValueError(f"YISHI_CLOCK_EPOCH {settings.clock_epoch.isoformat()} lies in the future")
    issuer = settings.auth_issuer
    if not is_development_issuer(issuer) and issuer not in settings.clock_rehearsal_issuers:
        raise ValueError(f"refusing a rehearsal clock (YISHI_CLOCK_FACTOR={settings.clock_factor:g}) with the "
                         f"production issuer {issuer}: list it in YISHI_CLOCK_REHEARSAL_ISSUERS if it is a "
                         "staging or training provider")
    return AcceleratedClock(settings.clock_factor, settings.clock_epoch, wall)
