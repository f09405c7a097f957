"""Delivery lifecycle, backoff and quiet hours: pure rules, no I/O."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.notify.domain import Backoff, Delivery, DeliveryStatus, after_quiet_hours, delivery_uuid
from yishi.rules import Rejected

T0 = datetime(2026, 3, 1, 2, 0, tzinfo=timezone.utc)
BACKOFF = Backoff(timedelta(seconds=30), timedelta(hours=1), rng=lambda: 0.5)


def delivery(max_attempts: int = 3, expires_at: datetime | None = None) -> Delivery:
    return Delivery(district="gulou", notification_id="n-1", recipient_id="member-7", channel="webhook",
                    address="https://example.cn/hook", recipient_kind="system", language="en",
                    template="vote.closed", subject="s", body="b", regarding=["VoteClosed", "vote-1"],
                    requested_at=T0, not_before=T0, expires_at=expires_at, max_attempts=max_attempts)


def test_id_is_derived_from_notification_recipient_channel_and_address():
    d = delivery()
    assert d.id == delivery_uuid("gulou", "n-1", "member-7", "webhook", "https://example.cn/hook")
    assert d.id != delivery_uuid("gulou", "n-1", "member-7", "email", "https://example.cn/hook")


def test_claim_then_success():
    d = delivery()
    assert d.claim(T0, timedelta(minutes=5)) == 1
    assert d.status is DeliveryStatus.SENDING and not d.is_due(T0 + timedelta(minutes=4))
    d.succeed(1, T0)
    assert d.status is DeliveryStatus.DELIVERED
    assert [type(e).__name__ for e in d.collect_events()] == ["Created", "Claimed", "Delivered"]
    with pytest.raises(Rejected):
        d.claim(T0 + timedelta(days=1), timedelta(minutes=5))


def test_failures_back_off_then_dead_letter_after_the_last_try():
    d = delivery(max_attempts=3)
    now = T0
    for attempt in (1, 2):
        d.claim(now, timedelta(minutes=5))
        d.fail(attempt, now, "unreachable", "down", permanent=False, backoff=BACKOFF)
        assert d.status is DeliveryStatus.PENDING
        assert d.next_attempt_at == now + BACKOFF.delay(attempt)
        assert not d.is_due(now + BACKOFF.delay(attempt) - timedelta(seconds=1))
        now = d.next_attempt_at
    d.claim(now, timedelta(minutes=5))
    d.fail(3, now, "unreachable", "down", permanent=False, backoff=BACKOFF)
    assert d.status is DeliveryStatus.DEAD_LETTERED and d.attempts == 3
    assert [h["outcome"] for h in d.history] == ["failed", "failed", "dead_lettered"]
    assert not d.is_due(now + timedelta(days=365))


def test_permanent_failure_dead_letters_at_once():
    d = delivery(max_attempts=5)
    d.claim(T0, timedelta(minutes=5))
    d.fail(1, T0, "rejected_by_channel", "HTTP 410", permanent=True, backoff=BACKOFF)
    assert d.status is DeliveryStatus.DEAD_LETTERED


def test_a_lapsed_claim_can_be_taken_again_and_the_stale_outcome_is_refused():
    d = delivery()
    d.claim(T0, timedelta(minutes=5))
    assert d.is_due(T0 + timedelta(minutes=5))
    assert d.claim(T0 + timedelta(minutes=5), timedelta(minutes=5)) == 2
    with pytest.raises(Rejected):
        d.succeed(1, T0)  # the first worker's late record
    d.succeed(2, T0 + timedelta(minutes=6))
    assert d.status is DeliveryStatus.DELIVERED


def test_expiry():
    d = delivery(expires_at=T0 + timedelta(hours=1))
    assert not d.expired(T0) and d.expired(T0 + timedelta(hours=1))
    d.expire(T0 + timedelta(hours=1))
    assert d.status is DeliveryStatus.DEAD_LETTERED and d.history[-1]["reason"] == "expired"


@given(attempt=st.integers(1, 60), jitter=st.floats(0, 1, exclude_max=True),
       base=st.integers(1, 600), maximum=st.integers(1, 86_400))
def test_backoff_is_capped_exponential_with_bounded_jitter(attempt, jitter, base, maximum):
    b = Backoff(timedelta(seconds=base), timedelta(seconds=maximum), rng=lambda: jitter)
    ceiling = timedelta(seconds=min(maximum, base * 2 ** (attempt - 1)))
    assert ceiling / 2 - timedelta(microseconds=1) <= b.delay(attempt) <= ceiling + timedelta(microseconds=1)
    never_jittered = Backoff(b.base, b.maximum, rng=lambda: 0.0)
    assert never_jittered.delay(attempt) <= never_jittered.delay(attempt + 1)


@given(now=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(timezone.utc)),
       start=st.times(), end=st.times())
def test_quiet_hours_release_is_never_quiet_and_within_a_day(now, start, end):
    start, end = start.replace(microsecond=0), end.replace(microsecond=0)
    release = after_quiet_hours(now, start, end, "Asia/Shanghai")
    assert now <= release <= now + timedelta(days=1)
    local = release.astimezone(ZoneInfo("Asia/Shanghai")).time()
    if start != end and release != now:
        assert local == end
    if release == now and start != end:
        clock = now.astimezone(ZoneInfo("Asia/Shanghai")).time()
        assert not (start <= clock < end if start < end else (clock >= start or clock < end))


def test_quiet_hours_across_midnight():
    night = datetime(2026, 3, 1, 15, 30, tzinfo=timezone.utc)  # 23:30 in Beijing
    assert after_quiet_hours(night, time(22), time(7), "Asia/Shanghai") == datetime(2026, 3, 1, 23, 0, tzinfo=timezone.utc)
    noon = datetime(2026, 3, 1, 4, 0, tzinfo=timezone.utc)
    assert after_quiet_hours(noon, time(22), time(7), "Asia/Shanghai") == noon
