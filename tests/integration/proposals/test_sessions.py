"""The sessions' timer is durable: a council's monthly sessions are scheduled (the next
chair from the rota) and opened at their start by the platform, a start that passed
while the service was down is acted on once after the restart, and no session is
scheduled or opened twice; over HTTP, a session's check-in code is for its staff only."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from services.proposals.main import spec
from tests.support.auth import bearer
from tests.support.kafka import read_topic
from tests.support.service import eventually, new_district, running
from yishi.clock import ManualClock
from yishi.names import events_topic

T0 = datetime(2026, 4, 1, 1, 0, tzinfo=timezone.utc)
SHANGHAI = ZoneInfo("Asia/Shanghai")
WORKER = {"id": "worker-0102", "role": "community_worker"}
RESIDENT = {"id": "resident-4211", "role": "resident"}


def session_of(month: int) -> str:
    return f"c-1-session-2026{month:02d}15"


async def post(r, command: str, status: int = 200, **fields) -> dict:
    response = await r.client.post(f"/{r.district}/commands/{command}", json={"district": r.district, **fields})
    assert response.status_code == status, response.text
    return response.json()


async def stored(r, what: str) -> list[str]:
    """The ids of the sessions a ``Session.<what>`` event is stored for, in log order."""
    rows = await r.ctx.pool.fetch("SELECT state FROM events WHERE topic LIKE $1 ORDER BY position",
                                  f"%:Session.{what}")
    return [json.loads(row["state"])["session_id"] for row in rows]


async def test_the_timer_schedules_and_opens_monthly_sessions_across_a_restart_without_doubles(servers):
    d, schema, clock = new_district(), f"s_{uuid.uuid4().hex[:12]}", ManualClock(T0)
    async with running(spec(session_interval=0.05), servers, district=d, schema=schema, clock=clock) as r:
        await post(r, "FormCouncil", actor=WORKER, council_id="c-1", name="西康社区议事会", level="community",
                   area_id="xikang", seats=[{"seat_id": "s-1", "kind": "expert"}],
                   rules={"forms": ["council", "consultation_day"]})
        await post(r, "SetChairRota", actor=WORKER, council_id="c-1", chairs=["chair-a", "chair-b"])
        await post(r, "SetSessionSchedule", actor=WORKER, council_id="c-1", form="consultation_day",
                   day_of_month=15, local_time="19:00", place="西康社区党群服务中心")
        await eventually(lambda: stored(r, "Scheduled"))
        april = (await r.client.get(f"/{d}/sessions/{session_of(4)}")).json()
        assert (april["chair"], april["from_rota"], april["status"], april["starts_at"]) == (
            "chair-a", True, "scheduled", "2026-04-15T19:00:00+08:00")
        assert "code" not in april
        for _ in range(10):  # more ticks before the start: nothing more
            await r.ctx.pool.fetchval("SELECT pg_sleep(0.02)")
        assert (await stored(r, "Scheduled"), await stored(r, "Opened")) == ([session_of(4)], [])
    # Down while April's session starts.
    clock.set(datetime(2026, 4, 15, 20, 0, tzinfo=SHANGHAI))
    async with running(spec(session_interval=0.05), servers, district=d, schema=schema, clock=clock) as r:
        await eventually(lambda: _count(r, "Scheduled", 2))
        for _ in range(20):  # many more ticks at the same time: nothing new
            await r.ctx.pool.fetchval("SELECT pg_sleep(0.02)")
        assert await stored(r, "Opened") == [session_of(4)]
        assert await stored(r, "Scheduled") == [session_of(4), session_of(5)]
        may = (await r.client.get(f"/{d}/sessions/{session_of(5)}")).json()
        assert (may["chair"], may["status"]) == ("chair-b", "scheduled")
        clock.set(datetime(2026, 5, 15, 19, 0, tzinfo=SHANGHAI))
        await eventually(lambda: _count(r, "Scheduled", 3))
        assert await stored(r, "Opened") == [session_of(4), session_of(5)]
        calendar = (await r.client.get(f"/{d}/councils/c-1/calendar")).json()
        assert (calendar["sessions"], calendar["pending"], calendar["next_chair"]) == (
            [session_of(4), session_of(5), session_of(6)], session_of(6), "chair-b")
        published = await read_topic(servers.kafka_bootstrap, events_topic(d, "proposals"), 8, timeout=30)
        sessions = [(e.type, e.payload()["session_id"], e.payload()["chair"]) for e in published
                    if e.type in ("SessionScheduled", "SessionOpened")]
        # Ordered per session (its key, its partition), once each.
        assert sorted(sessions, key=lambda s: s[1]) == [
            ("SessionScheduled", session_of(4), "chair-a"), ("SessionOpened", session_of(4), "chair-a"),
            ("SessionScheduled", session_of(5), "chair-b"), ("SessionOpened", session_of(5), "chair-b"),
            ("SessionScheduled", session_of(6), "chair-a")]


async def _count(r, what: str, n: int) -> bool:
    return len(await stored(r, what)) >= n


async def test_a_sessions_check_in_code_is_for_its_councils_staff_and_checks_people_in(servers):
    d, clock = new_district(), ManualClock(T0)
    async with running(spec(session_interval=0.05), servers, district=d, clock=clock) as r:
        await post(r, "FormCouncil", actor=WORKER, council_id="c-1", name="西康社区议事会", level="community",
                   area_id="xikang", seats=[{"seat_id": "s-1", "kind": "expert"}])
        await post(r, "ScheduleSession", actor=WORKER, session_id="s-1", council_id="c-1", form="council",
                   starts_at=(T0 + timedelta(hours=2)).isoformat(), chair="chair-a")
        path = f"/{d}/sessions/s-1/check-in-code"
        assert (await r.client.get(path, headers=bearer("resident-4211", d, "resident"))).status_code == 403
        assert (await r.client.get(path, headers=bearer("worker-9", d, "community_worker",
                                                        acts_for=["c-other"]))).status_code == 403
        code = (await r.client.get(path, headers=bearer("worker-0102", d, "community_worker",
                                                        acts_for=["c-1"]))).json()["code"]
        clock.advance(timedelta(hours=2))
        await eventually(lambda: stored(r, "Opened"))
        refused = await post(r, "CheckIn", 403, actor=RESIDENT, session_id="s-1", code="WRONG2")
        assert refused["reason"] == "not_authorised"
        await post(r, "CheckIn", actor=RESIDENT, session_id="s-1", code=code)
        session = (await r.client.get(f"/{d}/sessions/s-1")).json()
        assert session["attendance"] == [{"person_id": "resident-4211", "by": "self", "proxy_for": None}]
