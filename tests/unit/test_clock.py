"""The rehearsal clock: a function of the wall clock, its factor and its epoch, and refused
where it could mislead (no epoch, an epoch to come, a production issuer)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from yishi.clock import AcceleratedClock, ManualClock, SystemClock, from_settings, is_development_issuer
from yishi.settings import Settings

T0 = datetime(2026, 3, 1, 8, tzinfo=timezone.utc)
DEV = "https://yishi.localhost/dev-issuer"


def settings(**values) -> Settings:
    return Settings(auth_issuer=DEV, **values)


def test_the_rehearsal_clock_runs_factor_times_as_fast_from_its_epoch():
    wall = ManualClock(T0 + timedelta(minutes=1))
    clock = from_settings(settings(clock_factor=2016, clock_epoch=T0), wall)
    assert isinstance(clock, AcceleratedClock)
    assert clock.now() == T0 + timedelta(days=1.4)  # a minute at factor 2016
    wall.advance(timedelta(minutes=4))
    assert clock.now() == T0 + timedelta(days=7)  # a seven-day notice in five minutes
    again = from_settings(settings(clock_factor=2016, clock_epoch=T0), wall)  # a restarted service
    assert again.now() == clock.now()


def test_factor_one_is_the_wall_clock():
    assert isinstance(from_settings(settings()), SystemClock)


@pytest.mark.parametrize("values, message", [
    ({"clock_factor": 60}, "needs YISHI_CLOCK_EPOCH"),
    ({"clock_factor": 60, "clock_epoch": T0 + timedelta(days=1)}, "lies in the future"),
])
def test_a_rehearsal_clock_needs_an_epoch_that_has_come(values, message):
    with pytest.raises(ValueError, match=message):
        from_settings(settings(**values), ManualClock(T0))


@pytest.mark.parametrize("issuer, development", [
    (None, True), (DEV, True), ("http://127.0.0.1:8080/realms/yishi", True), ("http://[::1]:8080", True),
    ("https://localhost/realms/dev", True), ("https://auth.gulou.gov.cn/realms/yishi", False),
    ("https://keycloak.example/realms/yishi", False), ("https://localhost.example.com/", False),
])
def test_only_local_issuers_are_development_issuers(issuer, development):
    assert is_development_issuer(issuer) is development


def test_a_production_issuer_refuses_the_rehearsal_clock_unless_listed():
    production = "https://auth.gulou.gov.cn/realms/yishi"
    with pytest.raises(ValueError, match="production issuer https://auth.gulou.gov.cn/realms/yishi"):
        from_settings(Settings(auth_issuer=production, clock_factor=60, clock_epoch=T0), ManualClock(T0))
    staging = Settings(auth_issuer=production, clock_factor=60, clock_epoch=T0,
                       clock_rehearsal_issuers="https://staging.example, " + production)
    assert isinstance(from_settings(staging, ManualClock(T0)), AcceleratedClock)


def test_a_factor_below_one_is_refused():
    with pytest.raises(ValueError):
        Settings(clock_factor=0.5)
