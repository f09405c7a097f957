"""Notify's reminder loops and an item they cannot remind, over the real PostgreSQL and
broker and a real SMTP server: a vote whose notice cannot be built and a session whose
notice cannot be rendered, each due before a good one. The good ones are reminded; the
bad ones are logged with why, counted, recorded in ``failed_jobs`` and, after their last
allowed attempt, left alone instead of being tried on every tick."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from contracts.proposals import MemberSeated
from contracts.sessions import SessionScheduled
from contracts.voting import VoteOpened
from services.notify import worker
from services.notify.main import spec
from services.notify.settings import NotifySettings
from tests.integration.notify.test_sessions import Notify, mailbox  # noqa: F401 (the fixture)
from tests.support.logs import logs_of
from tests.support.service import eventually, new_district, running
from yishi import jobs
from yishi.clock import ManualClock
from yishi.kafka import ensure_topics
from yishi.names import events_topic

pytestmark = pytest.mark.asyncio(loop_scope="session")

T0 = datetime(2026, 4, 1, 1, 0, tzinfo=timezone.utc)  # 09:00 in Beijing
WORKER = {"id": "worker-0102", "role": "community_worker"}
COUNCIL = "council-ninghai"
MEMBER, ELECTOR = "member-a", "elector-a"
BAD_PLACE = "宁海路社区三楼(已拆除)"
ATTEMPTS = 3


async def test_a_vote_or_session_that_cannot_be_reminded_is_recorded_and_set_aside_while_the_others_are_reminded(
        servers, mailbox, monkeypatch):
    box, port = mailbox
    district = new_district()
    await ensure_topics(servers.kafka_bootstrap, [events_topic(district, s) for s in ("proposals", "voting")])
    clock = ManualClock(T0)
    real_where = worker.where

    def where(place, online_link):  # this session's place cannot be rendered
        if place == BAD_PLACE:
            raise ValueError(f"cannot render the place {place!r}")
        return real_where(place, online_link)

    monkeypatch.setattr(worker, "where", where)
    settings = NotifySettings(smtp_host="127.0.0.1", smtp_port=port, mail_from="notify@yishi.test",
                              worker_interval_s=0.05, vote_reminder_lead_s=3600)
    soon = T0 + timedelta(days=2)
    with logs_of(jobs) as logged:
        async with running(spec(settings), servers, clock=clock, district=district,
                           poison_max_attempts=ATTEMPTS) as r:
            n = Notify(r, servers, box)
            for person in (MEMBER, ELECTOR):
                response = await r.client.post(f"/{district}/commands/Subscribe", json={
                    "district": district, "actor": WORKER, "subscription_id": f"sub-{person}",
                    "subscriber": {"kind": "person", "id": person}, "channel": "email",
                    "address": f"{person}@example.cn", "language": "en"})
                assert response.status_code == 200, response.text
            # A vote whose roll holds no one's id (as a bug could leave it): its notice cannot be
            # built. It closes first, so it comes first.
            await r.ctx.pool.execute(
                "INSERT INTO votes (district, vote_id, council_id, question, closes_at, roll)"
                " VALUES ($1, 'vote-bad', $2, 'Paint the hall?', $3, ARRAY[$4, NULL])",
                district, COUNCIL, soon, ELECTOR)
            await n.publish(n.event(MemberSeated, council_id=COUNCIL, seat_id="seat-0", member_id=MEMBER), COUNCIL)
            await n.publish(n.event(SessionScheduled, session_id="sess-bad", council_id=COUNCIL, form="online",
                                    starts_at=(soon + timedelta(hours=2)).isoformat(), place=BAD_PLACE,
                                    online_link=None, chair=MEMBER, from_rota=True), "sess-bad")
            await n.publish(n.event(SessionScheduled, session_id="sess-good", council_id=COUNCIL, form="online",
                                    starts_at=(soon + timedelta(hours=3)).isoformat(), place="宁海路社区议事厅",
                                    online_link=None, chair=MEMBER, from_rota=True), "sess-good")
            await n.publish(n.event(
                VoteOpened, vote_id="vote-good", council_id=COUNCIL, matter={"kind": "proposal", "id": "p-shed"},
                terms={"question": "Build the shed?", "electorate": {"kind": "council_members", "scope_id": COUNCIL,
                                                                     "size": 1, "roll": [ELECTOR]},
                       "method": "online", "majority": "simple", "quorum_percent": 50, "secrecy": "secret",
                       "closes_at": (soon + timedelta(minutes=10)).isoformat()}), "vote-good", "voting")

            async def known():
                rows = await r.ctx.pool.fetchval(
                    "SELECT (SELECT count(*) FROM sessions) + (SELECT count(*) FROM votes)"
                    " + (SELECT count(*) FROM council_members)")
                return rows == 5 and n.mail(ELECTOR, "Vote open")

            await eventually(known, timeout=60)
            clock.set(soon - timedelta(minutes=30))  # both votes and both sessions are due

            async def reminded():
                return n.mail(ELECTOR, "Vote closing soon") and n.mail(MEMBER, "Consultation session")

            await eventually(reminded, timeout=60)

            async def failed() -> dict[str, tuple[int, str]]:
                rows = await r.ctx.pool.fetch("SELECT job, item, attempts, reason FROM failed_jobs ORDER BY job")
                return {f"{row['job']} {row['item']}": (row["attempts"], row["reason"]) for row in rows}

            async def set_aside():
                got = await failed()
                return len(got) == 2 and all(attempts == ATTEMPTS for attempts, _ in got.values())

            await eventually(set_aside, timeout=30)
            await asyncio.sleep(0.5)  # ten more ticks: neither is tried again
            got = await failed()
            assert got.keys() == {f"notify.session-reminder {district}/sess-bad",
                                  f"notify.vote-reminder {district}/vote-bad"}
            (session_attempts, session_reason), (vote_attempts, vote_reason) = got.values()
            assert (session_attempts, vote_attempts) == (ATTEMPTS, ATTEMPTS)
            assert session_reason.startswith("ValueError: cannot render the place")
            assert vote_reason.startswith("ValidationError") and "people" in vote_reason
            assert [m["Subject"] for m in n.mail(ELECTOR, "")] == ["Vote open: Build the shed?",
                                                                   "Vote closing soon: Build the shed?"]
            (reminder,) = n.mail(MEMBER, "")
            assert "sess-good" in reminder.get_content() and "sess-bad" not in reminder.get_content()
            marks = dict(await r.ctx.pool.fetch(
                "SELECT session_id, reminded FROM sessions UNION ALL SELECT vote_id, reminded FROM votes"))
            assert marks == {"sess-good": True, "vote-good": True, "sess-bad": False, "vote-bad": False}
            metrics = (await r.client.get("/metrics")).text
            for job in ("notify.vote-reminder", "notify.session-reminder"):
                assert f'yishi_job_item_failures_total{{job="{job}"}} {ATTEMPTS}.0' in metrics
                assert f'yishi_job_items_parked_total{{job="{job}"}} 1.0' in metrics
    why = {(e["job"], e["item"]): e["reason"] for e in logged if e["event"].startswith("background job item failed")}
    assert why == {("notify.vote-reminder", f"{district}/vote-bad"): vote_reason,
                   ("notify.session-reminder", f"{district}/sess-bad"): session_reason}
