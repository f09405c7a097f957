"""Notify and the consultation sessions, over the real PostgreSQL and broker and a real SMTP
server: the events are published on the proposals service's topic as it would. The
invited hear of their invitation, a session's people (the council's members and the
invited) are reminded the day before, once however often it is scheduled again and across
restarts, and the council's members read that the minutes are published; in their
languages."""

from __future__ import annotations

import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller

from contracts import registry
from contracts.proposals import MemberSeated, ProposalRaised
from contracts.sessions import (
    SessionChairChanged,
    SessionMinutesPublished,
    SessionScheduled,
    StakeholderInvited,
)
from services.notify.main import spec
from services.notify.settings import NotifySettings
from tests.integration.notify.test_delivery import Mailbox
from tests.support.service import eventually, new_district, running
from yishi.clock import ManualClock
from yishi.embedded import free_port
from yishi.kafka import ensure_topics, new_producer
from yishi.names import events_topic, source

pytestmark = pytest.mark.asyncio(loop_scope="session")

T0 = datetime(2026, 4, 1, 1, 0, tzinfo=timezone.utc)  # 09:00 in Beijing
WORKER = {"id": "worker-0102", "role": "community_worker"}
SYSTEM = {"id": "yishi-proposals", "role": "system"}
COUNCIL = "council-ninghai"
MEMBERS = {"member-a": "en", "member-b": "zh-CN"}
EXPERT = "expert-zhou"


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def mailbox():
    box = Mailbox()
    smtp = Controller(box, hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        yield box, smtp.port
    finally:
        smtp.stop()


@dataclass
class Notify:
    r: object
    servers: object
    box: Mailbox

    @property
    def district(self) -> str:
        return self.r.district

    async def publish(self, model, subject: str, service: str = "proposals") -> None:
        """Publish ``model`` on ``service``'s events topic, as it would."""
        envelope = registry.to_envelope(model, id=str(uuid.uuid4()), source=source(self.district, service),
                                        subject=subject, time=self.r.clock.now(), correlation_id=str(uuid.uuid4()))
        producer = new_producer(self.servers.kafka_bootstrap)
        await producer.start()
        try:
            key, headers, value = envelope.to_kafka()
            await (await producer.send(events_topic(self.district, service), key=key, headers=headers,
                                       value=value))
        finally:
            await producer.stop()

    def event(self, model, **body):
        return model.model_validate({"district": self.district, "actor": SYSTEM,
                                     "occurred_at": self.r.clock.now().isoformat(), **body})

    def mail(self, person: str, subject_starts: str) -> list:
        return [m for m in self.box.to(f"{person}@example.cn") if m["Subject"].startswith(subject_starts)]


@asynccontextmanager
async def notify(servers, mailbox, district: str, schema: str, clock: ManualClock, group: str):
    box, port = mailbox
    settings = NotifySettings(smtp_host="127.0.0.1", smtp_port=port, mail_from="notify@yishi.test",
                              worker_interval_s=0.05)
    async with running(spec(settings), servers, clock=clock, district=district, schema=schema,
                       consumer_group_prefix=group) as r:
        yield Notify(r, servers, box)


async def a_council_with_an_invited_expert(n: Notify, session_id: str, starts_at: datetime) -> None:
    """Two members subscribed by email in their languages, the expert too; the session
    scheduled and the expert invited on one agenda item."""
    for person, language in {**MEMBERS, EXPERT: "zh-CN"}.items():
        response = await n.r.client.post(f"/{n.district}/commands/Subscribe", json={
            "district": n.district, "actor": WORKER, "subscription_id": f"sub-{person}",
            "subscriber": {"kind": "person", "id": person}, "channel": "email",
            "address": f"{person}@example.cn", "language": language})
        assert response.status_code == 200, response.text
    for seat, member in enumerate(MEMBERS):
        await n.publish(n.event(MemberSeated, council_id=COUNCIL, seat_id=f"seat-{seat}", member_id=member), COUNCIL)
    await n.publish(n.event(ProposalRaised, proposal_id="prop-lift", council_id=COUNCIL, title="加装电梯",
                            summary="为5号楼加装电梯。"), "prop-lift")

    async def known():
        # Seats travel under the council's key, sessions under theirs: another partition.
        members = await n.r.ctx.pool.fetchval("SELECT count(*) FROM council_members WHERE council_id = $1", COUNCIL)
        title = await n.r.ctx.pool.fetchval("SELECT title FROM proposals WHERE proposal_id = 'prop-lift'")
        return members == len(MEMBERS) and title

    await eventually(known, timeout=60)
    await n.publish(n.event(SessionScheduled, session_id=session_id, council_id=COUNCIL, form="consultation_day",
                            starts_at=starts_at.isoformat(), place="宁海路社区议事厅", online_link=None,
                            chair="member-a", from_rota=True), session_id)
    await n.publish(n.event(StakeholderInvited, session_id=session_id, council_id=COUNCIL, proposal_id="prop-lift",
                            person_id=EXPERT, kind="expert", name="周工"), session_id)


async def test_the_invited_hear_of_it_and_the_members_read_that_the_minutes_are_published(servers, mailbox):
    district = new_district()
    await ensure_topics(servers.kafka_bootstrap, [events_topic(district, "proposals")])
    clock = ManualClock(T0)
    async with notify(servers, mailbox, district, f"s_{uuid.uuid4().hex[:12]}", clock,
                      f"g{uuid.uuid4().hex[:8]}") as n:
        await a_council_with_an_invited_expert(n, "sess-1", T0 + timedelta(days=10))

        (invitation,) = await eventually(lambda: _async(n.mail(EXPERT, "协商邀请")), timeout=60)
        assert invitation["Subject"] == "协商邀请:加装电梯"
        body = invitation.get_content()
        assert "2026-04-11 09:00" in body and "宁海路社区议事厅" in body and "prop-lift" in body
        assert "发言限于该议题" in body
        assert all(n.mail(m, "") == [] for m in MEMBERS)  # the invitation is the expert's alone
        # Invited once the session is under way (to another item): told all the same.
        clock.set(T0 + timedelta(days=10, hours=1))
        await n.publish(n.event(StakeholderInvited, session_id="sess-1", council_id=COUNCIL, proposal_id="prop-bikes",
                                person_id=EXPERT, kind="expert", name="周工"), "sess-1")
        await eventually(lambda: _async(len(n.mail(EXPERT, "协商邀请")) == 2), timeout=60)
        assert n.mail(EXPERT, "协商邀请")[1]["Subject"] == "协商邀请:prop-bikes"

        await n.publish(n.event(SessionMinutesPublished, session_id="sess-1", council_id=COUNCIL,
                                form="consultation_day", held_at=(T0 + timedelta(days=10)).isoformat(),
                                chair="member-a", agenda=["prop-lift"], attendance=7, proxies=1,
                                statements=["st-1", "st-2"], votes=[], decisions=["prop-lift"], text=None), "sess-1")

        async def minutes():
            return n.mail("member-a", "Minutes published") and n.mail("member-b", "会议纪要公布")

        await eventually(minutes, timeout=60)
        (english,), (chinese,) = n.mail("member-a", ""), n.mail("member-b", "")
        assert english["Subject"] == "Minutes published: sess-1"
        assert "held at 2026-04-11 09:00" in english.get_content()
        assert "attendance 7 person-times, 1 matters decided" in english.get_content()
        assert "出席 7 人次,议决事项 1 项" in chinese.get_content()
        assert n.mail(EXPERT, "会议纪要") == []  # the minutes are the council's


async def test_a_session_reminds_its_people_the_day_before_once_across_reschedules_and_restarts(servers, mailbox):
    district, schema, group = new_district(), f"s_{uuid.uuid4().hex[:12]}", f"g{uuid.uuid4().hex[:8]}"
    await ensure_topics(servers.kafka_bootstrap, [events_topic(district, "proposals")])
    clock = ManualClock(T0)
    people = [*MEMBERS, EXPERT]
    starts_at = T0 + timedelta(days=2)  # 2026-04-03 09:00 in Beijing

    def reminders(n: Notify, session_id: str) -> dict[str, int]:
        return {p: sum(session_id in m.get_content() for m in n.mail(p, ("明日协商会议", "Consultation session")[
            MEMBERS.get(p) == "en"])) for p in people}

    async with notify(servers, mailbox, district, schema, clock, group) as n:
        # Scheduled three days ahead, then moved a day earlier to another room, with another chair.
        await a_council_with_an_invited_expert(n, "sess-r", T0 + timedelta(days=3))
        await eventually(lambda: _async(n.mail(EXPERT, "协商邀请")), timeout=60)
        await n.publish(n.event(SessionScheduled, session_id="sess-r", council_id=COUNCIL, form="consultation_day",
                                starts_at=starts_at.isoformat(), place="宁海路社区二楼会议室", online_link=None,
                                chair="member-b", from_rota=False), "sess-r")
        await n.publish(n.event(SessionChairChanged, session_id="sess-r", council_id=COUNCIL, chair="member-a",
                                reason="轮值主持人出差"), "sess-r")

        async def moved():
            return await n.r.ctx.pool.fetchval(
                "SELECT starts_at = $1 AND chair = 'member-a' FROM sessions WHERE session_id = 'sess-r'", starts_at)

        await eventually(moved, timeout=60)
        assert reminders(n, "sess-r") == {p: 0 for p in people}  # more than a day ahead

    # Down while the reminder falls due (23 hours before the new time; the old one is two days off).
    clock.set(starts_at - timedelta(hours=23))
    async with notify(servers, mailbox, district, schema, clock, group) as n:
        await eventually(lambda: _async(all(reminders(n, "sess-r").values())), timeout=60)
        (english,) = n.mail("member-a", "Consultation session")
        assert english["Subject"] == "Consultation session tomorrow: 2026-04-03 09:00"
        assert "宁海路社区二楼会议室" in english.get_content()
        assert n.mail(EXPERT, "明日协商会议")[0]["Subject"] == "明日协商会议:2026-04-03 09:00"
        # Scheduled again after the reminder: no second one. Another session, reminded, shows the timer ran on.
        await n.publish(n.event(SessionScheduled, session_id="sess-r", council_id=COUNCIL, form="consultation_day",
                                starts_at=(starts_at + timedelta(hours=2)).isoformat(), place="宁海路社区议事厅",
                                online_link=None, chair="member-a", from_rota=False), "sess-r")
        await _a_later_session_is_reminded(n, "sess-s1", clock.now() + timedelta(hours=20), reminders)
        assert reminders(n, "sess-r") == {p: 1 for p in people}

    clock.advance(timedelta(hours=1))
    async with notify(servers, mailbox, district, schema, clock, group) as n:  # a restart once reminded
        await _a_later_session_is_reminded(n, "sess-s2", clock.now() + timedelta(hours=20), reminders)
        assert reminders(n, "sess-r") == {p: 1 for p in people}


async def _a_later_session_is_reminded(n: Notify, session_id: str, starts_at: datetime, reminders) -> None:
    await n.publish(n.event(SessionScheduled, session_id=session_id, council_id=COUNCIL, form="online",
                            starts_at=starts_at.isoformat(), place=None, online_link="https://meet.example/ninghai",
                            chair="member-b", from_rota=True), session_id)

    async def reminded():
        got = reminders(n, session_id)
        return got["member-a"] and got["member-b"]

    await eventually(reminded, timeout=60)
    assert reminders(n, session_id) == {"member-a": 1, "member-b": 1, EXPERT: 0}  # not invited to this one


async def _async(value):
    return value
