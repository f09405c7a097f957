"""Gulou's monthly consultation day (协商日) with a rotating chair, over the four services as
processes on the rehearsal clock: two months of sessions opened by the platform's timer,
each chaired by the rota's next; an expert invited on one agenda item speaks on it and is
refused on the other, and once the session closed; attendance recorded by the worker, one
member attending by proxy; the district statistics count the sessions held and the
attendance person-times; the invitation, the reminder the day before and the minutes
reach their people, in their languages."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import httpx
import pytest
from rich.console import Console

from contracts.common import Actor, Role
from contracts.notify import Channel, Language, Recipient, RecipientKind, Subscribe
from contracts.proposals import (
    ConsultationForm,
    CouncilRules,
    DeliberationStep,
    FormCouncil,
    MakeStatement,
    PublishProposal,
    RaiseProposal,
    Seat,
    SeatKind,
    SeatMember,
    SecondMotion,
    SpeakerRole,
)
from contracts.sessions import (
    CheckIn,
    CloseSession,
    InviteStakeholder,
    PublishMinutes,
    RecordAttendance,
    SetChairRota,
    SetSessionSchedule,
)
from tests.support.auth import acting, bearer
from tests.support.service import eventually
from yishi.demo import WORKER, Api, DemoFailed

FACTOR = 86_400.0
"""A day a second: a month in about thirty seconds, the day before a session in one."""
PLATFORM_ENV = {"YISHI_CLOCK_FACTOR": str(FACTOR), "YISHI_CLOCK_EPOCH": datetime.now(timezone.utc).isoformat()}
"""Settings of this module's platform (tests/e2e/conftest.py)."""
BEIJING = ZoneInfo("Asia/Shanghai")
say = Console(width=160)

# seat, member, language: the community council of the consultation day (seats filled directly).
MEMBERS = (("seat-pm-1", "member-wang", Language.ZH_CN), ("seat-so-1", "member-li", Language.EN),
           ("seat-np-1", "member-zhao", Language.ZH_CN), ("seat-lu-1", "member-chen", Language.ZH_CN))
SEAT_KINDS = {"seat-pm-1": SeatKind.PARTY_MEMBER, "seat-so-1": SeatKind.SOCIAL_ORGANISATION,
              "seat-np-1": SeatKind.NPC_DEPUTY, "seat-lu-1": SeatKind.LOCAL_UNIT}
EXPERT = Actor(id="expert-zhou", role=Role.EXPERT)  # a lift engineer, invited on the lift only


def member(member_id: str) -> Actor:
    seat = next(s for s, m, _ in MEMBERS if m == member_id)
    return Actor(id=member_id, role=Role.COUNCIL_MEMBER, seat_id=seat)


async def test_two_months_of_consultation_days(platform):
    district, tag = platform.districts[0], uuid.uuid4().hex[:6]
    council = f"council-ninghai-{tag}"
    lift, bikes = f"prop-lift-{tag}", f"prop-bikes-{tag}"
    rota = ("member-wang", "member-li")
    async with Api(platform.urls, district, timeout=60, auth=acting()) as api:
        await api.send(FormCouncil(
            district=district, actor=WORKER, council_id=council, name="宁海路社区议事会", level="community",
            area_id=f"ninghai-{tag}", seats=tuple(Seat(seat_id=s, kind=SEAT_KINDS[s]) for s, _, _ in MEMBERS),
            rules=CouncilRules(seconds_required=1, notice_period_days=0, forms=(ConsultationForm.CONSULTATION_DAY,),
                               proxies_allowed=True)))
        for seat, member_id, language in MEMBERS:
            await api.send(SeatMember(district=district, actor=WORKER, council_id=council, seat_id=seat,
                                      member_id=member_id))
        for person, language in [(m, lang) for _, m, lang in MEMBERS] + [(EXPERT.id, Language.ZH_CN)]:
            await api.send(Subscribe(district=district, actor=WORKER, subscription_id=f"sub-{person}-{tag}",
                                     subscriber=Recipient(kind=RecipientKind.PERSON, id=person),
                                     channel=Channel.WEBHOOK, address=platform.inbox.url, language=language))
        await api.until("the seating", "proposals", f"councils/{council}/members",
                        lambda members: len(members) == len(MEMBERS))

        # The consultation day: the 15 days ahead's day of the month, 19:00 Beijing time; the rota of chairs.
        day = min((await api.now() + timedelta(days=15)).astimezone(BEIJING).day, 28)
        await api.send(SetChairRota(district=district, actor=WORKER, council_id=council, chairs=rota))
        await api.send(SetSessionSchedule(district=district, actor=WORKER, council_id=council,
                                          form=ConsultationForm.CONSULTATION_DAY, day_of_month=day,
                                          local_time="19:00", place="宁海路社区议事厅"))
        first = await api.until("the first session", "proposals", "sessions",
                                lambda page: page["items"], council_id=council)
        first = first["items"][0]
        say.print(f"📅 first consultation day {first['session_id']} at {first['starts_at']}, chair {first['chair']}")
        assert (first["chair"], first["from_rota"], first["status"]) == (rota[0], True, "scheduled")
        assert datetime.fromisoformat(first["starts_at"]).astimezone(BEIJING).strftime("%d %H:%M") == \
            f"{day:02d} 19:00"

        # Two proposals seconded: both offered for the session's agenda; the expert invited on the lift.
        for proposal_id, title in ((lift, "5号楼加装电梯"), (bikes, "3号院电动自行车充电棚")):
            await api.send(RaiseProposal(district=district, actor=member("member-wang"), proposal_id=proposal_id,
                                         council_id=council, title=title, summary=f"{title}。"))
            await api.send(PublishProposal(district=district, actor=WORKER, proposal_id=proposal_id,
                                           form=ConsultationForm.CONSULTATION_DAY,
                                           notice_ends_at=await api.now() + timedelta(days=1)))
            await api.send(SecondMotion(district=district, actor=member("member-li"), proposal_id=proposal_id))
        session_id = first["session_id"]
        await api.until("the agenda offered", "proposals", f"sessions/{session_id}",
                        lambda s: sorted(s["agenda"]) == sorted([lift, bikes]))
        await api.send(InviteStakeholder(district=district, actor=WORKER, session_id=session_id, proposal_id=lift,
                                         person_id=EXPERT.id, kind=SeatKind.EXPERT, name="周工"))

        # The timer opens it at 19:00 on the day.
        opened = await api.until("the first session's opening", "proposals", f"sessions/{session_id}",
                                 lambda s: s["status"] == "open")
        assert opened["chair"] == rota[0]
        # The chair checks in with the code shown in the room; the worker records the others.
        async with httpx.AsyncClient(timeout=10) as http:
            code = await http.get(f"{platform.urls['proposals']}/{district}/sessions/{session_id}/check-in-code",
                                  headers=bearer(WORKER.id, district, "community_worker", acts_for=[council]))
        assert code.status_code == 200, code.text
        await api.send(CheckIn(district=district, actor=member("member-wang"), session_id=session_id,
                               code=code.json()["code"]))
        for person in ("member-li", "member-zhao", EXPERT.id):
            await api.send(RecordAttendance(district=district, actor=WORKER, session_id=session_id, person_id=person))
        await api.send(RecordAttendance(district=district, actor=WORKER, session_id=session_id,
                                        person_id=f"household-chen-{tag}", proxy_for="member-chen"))

        async def say_in_session(actor: Actor, proposal_id: str, step: DeliberationStep, role: SpeakerRole,
                                 text: str, n: int) -> dict:
            return await api.send(MakeStatement(district=district, actor=actor, proposal_id=proposal_id,
                                                statement_id=f"{proposal_id}-st-{n}", step=step, speaker_role=role,
                                                text=text, session_id=session_id))

        await say_in_session(member("member-wang"), lift, DeliberationStep.MOTION, SpeakerRole.PROPOSER,
                             "5号楼老人多,上下楼困难。", 1)
        await say_in_session(EXPERT, lift, DeliberationStep.EXPERT_COMMENT, SpeakerRole.EXPERT,
                             "楼间距满足加装条件,井道可设在北侧。", 2)
        await say_in_session(member("member-wang"), bikes, DeliberationStep.MOTION, SpeakerRole.PROPOSER,
                             "楼道充电有隐患。", 1)
        with pytest.raises(DemoFailed, match=r"403 not_authorised.*invited to speak on"):
            await say_in_session(EXPERT, bikes, DeliberationStep.EXPERT_COMMENT, SpeakerRole.EXPERT,
                                 "充电棚也可以。", 2)
        await api.send(CloseSession(district=district, actor=WORKER, session_id=session_id))
        with pytest.raises(DemoFailed, match="403 not_authorised"):  # the invitation ended with the session
            await say_in_session(EXPERT, lift, DeliberationStep.EXPERT_COMMENT, SpeakerRole.EXPERT, "补充一点。", 3)
        await api.send(PublishMinutes(district=district, actor=WORKER, session_id=session_id,
                                      text="议定:加装电梯方案进入表决准备。"))
        minuted = await api.get("proposals", f"sessions/{session_id}")
        assert (minuted["status"], minuted["invited"]) == ("minuted", {lift: [EXPERT.id]})
        assert [(a["person_id"], a["by"], a["proxy_for"]) for a in minuted["attendance"]] == [
            ("member-wang", "self", None), ("member-li", "worker", None), ("member-zhao", "worker", None),
            (EXPERT.id, "worker", None), (f"household-chen-{tag}", "worker", "member-chen")]
        proposal = await api.get("proposals", f"proposals/{lift}")
        expert_said = [s for s in proposal["statements"] if s["speaker_id"] == EXPERT.id]
        assert [(s["session_id"], s["invited"]) for s in expert_said] == [(session_id, True)]

        # The second month: the timer scheduled the next consultation day when the first opened, the rota's next chairs.
        second = await api.until("the second session", "proposals", "sessions",
                                 lambda page: len(page["items"]) >= 2, council_id=council)
        second = next(s for s in second["items"] if s["session_id"] != session_id)
        assert (second["chair"], second["from_rota"]) == (rota[1], True)
        assert datetime.fromisoformat(second["starts_at"]).astimezone(BEIJING).strftime("%d %H:%M") == \
            f"{day:02d} 19:00"
        assert datetime.fromisoformat(second["starts_at"]) - datetime.fromisoformat(first["starts_at"]) >= \
            timedelta(days=28)
        await api.until("the second session's opening", "proposals", f"sessions/{second['session_id']}",
                        lambda s: s["status"] == "open")
        for person in ("member-li", "member-zhao"):
            await api.send(RecordAttendance(district=district, actor=WORKER, session_id=second["session_id"],
                                            person_id=person))
        await api.send(CloseSession(district=district, actor=WORKER, session_id=second["session_id"]))
        await api.send(PublishMinutes(district=district, actor=WORKER, session_id=second["session_id"]))
        third = await api.until("the third session", "proposals", "sessions",
                                lambda page: len(page["items"]) >= 3, council_id=council)
        assert [s["chair"] for s in sorted(third["items"], key=lambda s: s["starts_at"])] == [*rota, rota[0]]

        # The statistics count what was held: two consultation days, 5 + 2 person-times.
        stats = await api.until("the statistics of the sessions", "oversight", "statistics",
                                lambda s: s["activities"] == 2 and s["participant_times"] == 7)
        assert stats["sessions_by_form"] == {"consultation_day": 2}
        say.print(f"📊 statistics: {stats}")

        # The notices delivered: the invitation, the reminders the day before, the minutes.
        def delivered(template: str, session: str) -> dict[str, str]:
            """Who got ``template`` about ``session``, with its subject; each once."""
            got = [(b["recipient_id"], b["subject"]) for b in platform.inbox.bodies()
                   if b["template"] == template and session in b["body"]]
            assert len(got) == len(set(got)), f"{template} delivered twice: {got}"
            return dict(got)

        async def all_delivered():
            return (len(delivered("session.reminder", second["session_id"])) == len(MEMBERS)
                    and len(delivered("session.minutes_published", second["session_id"])) == len(MEMBERS))

        await eventually(all_delivered, timeout=60)
        assert delivered("session.invited", session_id) == {EXPERT.id: "协商邀请:5号楼加装电梯"}
        starts = datetime.fromisoformat(first["starts_at"]).astimezone(BEIJING).strftime("%Y-%m-%d %H:%M")
        assert delivered("session.reminder", session_id) == {
            **{m: f"明日协商会议:{starts}" for _, m, lang in MEMBERS if lang is Language.ZH_CN},
            "member-li": f"Consultation session tomorrow: {starts}", EXPERT.id: f"明日协商会议:{starts}"}
        assert set(delivered("session.reminder", second["session_id"])) == {m for _, m, _ in MEMBERS}
        assert delivered("session.minutes_published", session_id)["member-li"] == f"Minutes published: {session_id}"
        assert set(delivered("session.minutes_published", session_id)) == {m for _, m, _ in MEMBERS}
