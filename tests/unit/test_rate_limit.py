"""The per-caller command limit of the HTTP edge (``yishi.command_http.RateLimit``)."""

from __future__ import annotations

import asyncio

import pytest

from contracts.common import Role
from yishi.auth import Principal
from yishi.command_http import RateLimit

pytestmark = pytest.mark.asyncio


def caller(subject: str, district: str = "gulou") -> Principal:
    return Principal(subject=subject, district=district, roles=frozenset({Role.RESIDENT}))


async def test_each_caller_has_its_own_window_and_a_refused_command_is_not_counted():
    now = [100.0]
    limit = RateLimit("2/second;3/minute", clock=lambda: now[0])
    alice, bob = caller("alice"), caller("bob")
    assert [await limit.hit(alice), await limit.hit(alice)] == [None, None]
    assert await limit.hit(alice) == 2  # the second's third: a slot frees in 1 s (rounded up, plus one)
    assert await limit.hit(bob) is None and await limit.hit(caller("alice", "chaoyang")) is None
    now[0] += 1.0
    assert await limit.hit(alice) is None  # the third of the minute: the refusal took no slot
    now[0] += 1.0
    assert await limit.hit(alice) == 59  # the minute's first slot frees at 160 s
    now[0] += 58.0
    assert await limit.hit(alice) is None


async def test_a_command_costs_no_thread_hop_however_many_callers(monkeypatch):
    """``limits``' memory storage swept every caller's window in a thread after each hit."""
    hops = []
    real = asyncio.to_thread

    async def counted(*args, **kwargs):
        hops.append(args[0])
        return await real(*args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counted)
    limit = RateLimit("20/second;600/minute")  # the default YISHI_COMMAND_RATE_LIMIT
    for i in range(200):
        assert await limit.hit(caller(f"voter-{i}")) is None
    for _ in range(20):
        await asyncio.sleep(0)
    assert len(hops) == 0


async def test_callers_whose_windows_passed_are_forgotten():
    now = [0.0]
    limit = RateLimit("5/second", clock=lambda: now[0])
    for i in range(100):
        await limit.hit(caller(f"voter-{i}"))
    now[0] += RateLimit.SWEEP_S + 1
    await limit.hit(caller("late"))
    assert len(limit.windows) == 1
