"""The handlers of consultation sessions (:mod:`services.proposals.sessions`) on the
in-memory store: each accepted, answered again when resent, and refused by its own rules;
the platform's own (the schedule's timer, the agenda offer after a seconding) as the
platform sends them; statements and votes made in a session."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from contracts.common import Actor, CommandRejected
from contracts.proposals import MakeStatement, RequestVote, SecondMotion
from contracts.sessions import (
    AddAgendaItem,
    ChangeSessionChair,
    CheckIn,
    CloseSession,
    InviteStakeholder,
    OpenSession,
    PublishMinutes,
    RecordAttendance,
    ScheduleSession,
    SetChairRota,
    SetSessionSchedule,
)
from services.proposals.domain import Calendar, Proposal, Session
from services.proposals.sessions import OfferForAgenda, OpenDueSession, ScheduleFromCalendar
from services.proposals.translator import translate
from tests.support.handlers import covers
from tests.unit.proposals.handler_support import (  # noqa: F401  (h: fixture)
    D,
    DAY,
    OTHER_COUNCIL,
    RESIDENT,
    WORKER,
    Bus,
    council,
    council_terms,
    h,
    member,
    motion,
    published,
    raise_proposal,
    result,
)

FORMS = ["council", "consultation_day", "invitation"]
CHAIR = Actor(id="chair-a", role="chair")
EXPERT = Actor(id="expert-9", role="expert")
APRIL_15 = datetime(2026, 4, 15, 19, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
S = "c-1-session-20260415"


def rota(*chairs: str, council_id: str = "c-1") -> SetChairRota:
    return SetChairRota(district=D, actor=WORKER, council_id=council_id, chairs=chairs or ("chair-a", "chair-b"))


def schedule(form: str = "consultation_day", council_id: str = "c-1") -> SetSessionSchedule:
    return SetSessionSchedule(district=D, actor=WORKER, council_id=council_id, form=form, day_of_month=15,
                              local_time="19:00", place="西康社区党群服务中心")


def by_hand(session_id: str = "s-1", **kw: Any) -> ScheduleSession:
    return ScheduleSession(**{"district": D, "actor": WORKER, "session_id": session_id, "council_id": "c-1",
                              "form": "council", "starts_at": APRIL_15, **kw})


def timer(h: Bus, starts_at: datetime = APRIL_15) -> ScheduleFromCalendar:
    return ScheduleFromCalendar(district=D, actor=h.bus.system_actor, council_id="c-1", starts_at=starts_at)


def due(h: Bus, session_id: str = S) -> OpenDueSession:
    return OpenDueSession(district=D, actor=h.bus.system_actor, session_id=session_id)


def item(proposal_id: str = "p-1", session_id: str = S) -> AddAgendaItem:
    return AddAgendaItem(district=D, actor=WORKER, session_id=session_id, proposal_id=proposal_id)


def invite(proposal_id: str = "p-1", person_id: str = "expert-9") -> InviteStakeholder:
    return InviteStakeholder(district=D, actor=WORKER, session_id=S, proposal_id=proposal_id, person_id=person_id,
                             kind="expert", name="王工")


async def calendar(h: Bus, **rules: Any) -> None:
    """Council ``c-1`` (members m1 … m3) with a rota and a schedule for the 15th at 19:00."""
    await council(h, forms=FORMS, **rules)
    await h.accepted(rota())
    await h.accepted(schedule())


async def scheduled(h: Bus, **rules: Any) -> Session:
    """April's session scheduled by the timer, with p-1 (published) on its agenda."""
    await calendar(h, **rules)
    await h.accepted(timer(h), platform=True)
    await published(h)
    await h.accepted(item())
    return await h.load(Session, D, S)


async def opened(h: Bus, **rules: Any) -> Session:
    """April's session, open (its start come), the expert invited for p-1."""
    await scheduled(h, **rules)
    await h.accepted(invite())
    h.clock.set(APRIL_15)
    await h.accepted(due(h), platform=True)
    return await h.load(Session, D, S)


# -- rota and schedule --


@covers(SetChairRota, "accepted", "resent", "refused")
async def test_set_chair_rota(h):
    await council(h, forms=FORMS)
    reply = await h.once(rota("chair-a", "chair-b", "chair-c"))
    assert reply.subject == "c-1"
    assert (await h.load(Calendar, D, "c-1")).chairs == ["chair-a", "chair-b", "chair-c"]
    await h.rejected(rota("chair-a", "chair-a"), "invalid_command", "c-1")
    await h.rejected(rota(council_id="c-none"), "not_found", "c-none")
    await h.rejected(rota(), "not_authorised", "c-1", acts_for=OTHER_COUNCIL)


@covers(SetSessionSchedule, "accepted", "resent", "refused")
async def test_set_session_schedule(h):
    await council(h, forms=FORMS)
    await h.once(schedule())
    assert (await h.load(Calendar, D, "c-1")).due() == APRIL_15
    await h.rejected(schedule(form="online"), "invalid_state", "c-1")  # not one of the council's forms
    await h.rejected(schedule(council_id="c-none"), "not_found", "c-none")


@covers(ScheduleFromCalendar, "accepted", "resent", "refused")
async def test_the_timer_schedules_the_next_session_with_the_rotas_chair_once(h):
    await calendar(h)
    reply = await h.once(timer(h), platform=True)
    assert reply.subject == S
    session = await h.load(Session, D, S)
    assert (session.chair, session.from_rota, session.starts_at, session.form) == (
        "chair-a", True, APRIL_15, "consultation_day")
    assert len(session.code) == 6
    # The same start fired again (another tick, another key): nothing scheduled twice.
    await h.rejected(timer(h), "invalid_state", "c-1", platform=True)
    await h.rejected(timer(h, datetime(2026, 5, 15, 19, 0, tzinfo=ZoneInfo("Asia/Shanghai"))), "invalid_state",
                     "c-1", platform=True)


@covers(OpenDueSession, "accepted", "resent", "refused")
async def test_the_timer_opens_a_session_at_its_start_and_the_next_month_is_then_due(h):
    await calendar(h)
    await h.accepted(timer(h), platform=True)
    await h.rejected(due(h), "invalid_state", S, platform=True)  # not yet
    h.clock.set(APRIL_15)
    await h.once(due(h), platform=True)
    assert (await h.load(Session, D, S)).status == "open"
    await h.rejected(due(h), "invalid_state", S, platform=True)  # a second firing
    await h.accepted(timer(h, datetime(2026, 5, 15, 19, 0, tzinfo=ZoneInfo("Asia/Shanghai"))), platform=True)
    may = await h.load(Session, D, "c-1-session-20260515")
    assert (may.chair, may.from_rota) == ("chair-b", True)


@covers(ScheduleSession, "accepted", "resent", "refused")
async def test_schedule_session(h):
    await council(h, forms=FORMS)
    await h.rejected(by_hand(), "invalid_state", "c-1")  # no rota and no chair named
    await h.once(by_hand(chair="guest-chair"))
    assert ((s := await h.load(Session, D, "s-1")).chair, s.from_rota) == ("guest-chair", False)
    await h.accepted(rota())
    await h.accepted(by_hand("s-2", starts_at=APRIL_15 + DAY))
    assert (await h.load(Session, D, "s-2")).chair == "chair-a"
    await h.rejected(by_hand("s-2", chair="x"), "already_exists", "s-2")
    await h.rejected(by_hand("s-3", starts_at=h.clock.now(), chair="x"), "invalid_command", "s-3")


@covers(ChangeSessionChair, "accepted", "resent", "refused")
async def test_change_session_chair(h):
    await scheduled(h)
    change = ChangeSessionChair(district=D, actor=WORKER, session_id=S, chair="chair-b", reason="chair-a 出差")
    await h.once(change)
    assert ((s := await h.load(Session, D, S)).chair, s.from_rota) == ("chair-b", False)
    await h.rejected(change.model_copy(update={"reason": "again"}), "invalid_state", S)  # already chairs it
    await h.rejected(change.model_copy(update={"chair": "chair-c"}), "not_authorised", S, acts_for=OTHER_COUNCIL)


# -- agenda and invitations --


@covers(AddAgendaItem, "accepted", "resent", "refused")
async def test_add_agenda_item(h):
    await calendar(h)
    await h.accepted(timer(h), platform=True)
    await published(h)
    await h.once(item())
    assert (await h.load(Session, D, S)).agenda == ["p-1"]
    await h.rejected(item(), "duplicate", S)
    await h.rejected(item("p-none"), "not_found", "p-none")


@covers(OfferForAgenda, "accepted", "resent", "refused")
async def test_a_proposal_whose_seconding_passed_is_offered_for_the_next_session(h):
    await calendar(h)
    await h.accepted(raise_proposal())
    offer = OfferForAgenda(district=D, actor=h.bus.system_actor, proposal_id="p-1")
    await h.rejected(offer, "invalid_state", "p-1", platform=True)  # no session scheduled yet
    await h.accepted(timer(h), platform=True)
    reply = await h.once(offer, platform=True)
    assert reply.subject == S
    assert (await h.load(Session, D, S)).agenda == ["p-1"]


async def published_events(h: Bus, type_name: str) -> list[dict[str, Any]]:
    """The public events of ``type_name`` the store holds, as the relay publishes them."""
    return [json.loads(p.data) for e in await h.store.read_log(limit=10_000)
            if not e.topic.startswith("contract:") and (p := translate(e)) is not None and p.type == type_name]


async def test_the_seconding_that_makes_the_councils_number_offers_the_proposal_for_the_next_session(h):
    await calendar(h, seconds_required=2)
    await published(h)
    await published(h, "p-2")
    await h.accepted(SecondMotion(district=D, actor=member(1), proposal_id="p-1"))
    assert (await h.load(Session, D, "c-1-session-20260415")) is None  # nothing scheduled yet
    await h.accepted(SecondMotion(district=D, actor=member(2), proposal_id="p-1"))  # passed, but no session:
    assert [r.reason for r in await replies(h, "OfferForAgenda")] == ["invalid_state"]  # refused, on record
    await h.accepted(timer(h), platform=True)
    for n in (1, 2, 3):  # the second seconding passes it; the third changes nothing
        await h.accepted(SecondMotion(district=D, actor=member(n), proposal_id="p-2"))
    assert [(e["proposal_id"], e["offered"]) for e in await published_events(h, "AgendaItemAdded")] == [("p-2", True)]
    assert (await h.load(Session, D, S)).agenda == ["p-2"]


async def test_a_council_that_holds_no_sessions_is_offered_nothing(h):
    await council(h, forms=FORMS)  # no rota, no schedule
    await published(h)
    await h.accepted(SecondMotion(district=D, actor=member(1), proposal_id="p-1"))
    assert await replies(h, "OfferForAgenda") == []


async def replies(h: Bus, command_type: str) -> list[Any]:
    """The refusals the store holds of commands of ``command_type``."""
    return [r for e in await h.store.read_log(limit=10_000) if e.topic == "contract:CommandRejected"
            and (r := CommandRejected.model_validate_json(e.state)).command_type == command_type]


@covers(InviteStakeholder, "accepted", "resent", "refused")
async def test_invite_stakeholder(h):
    await scheduled(h)
    await h.once(invite())
    assert (await h.load(Session, D, S)).invited == {"p-1": ["expert-9"]}
    await h.rejected(invite(), "duplicate", S)
    await h.rejected(invite("p-2"), "invalid_state", S)  # not on the agenda


# -- open, attendance, close, minutes --


@covers(OpenSession, "accepted", "resent", "refused")
async def test_open_session(h):
    await scheduled(h)
    await h.once(OpenSession(district=D, actor=CHAIR, session_id=S), acts_for=["c-1"])
    assert (await h.load(Session, D, S)).status == "open"
    await h.rejected(OpenSession(district=D, actor=CHAIR, session_id=S), "invalid_state", S, acts_for=["c-1"])
    await h.rejected(OpenSession(district=D, actor=CHAIR, session_id="s-none"), "not_found", "s-none")


@covers(CheckIn, "accepted", "resent", "refused")
async def test_check_in(h):
    session = await opened(h)
    await h.once(CheckIn(district=D, actor=RESIDENT, session_id=S, code=session.code))
    await h.rejected(CheckIn(district=D, actor=RESIDENT, session_id=S, code=session.code), "duplicate", S)
    wrong = "A" * 6 if session.code != "A" * 6 else "B" * 6
    await h.rejected(CheckIn(district=D, actor=member(1), session_id=S, code=wrong), "not_authorised", S)
    await h.rejected(CheckIn(district=D, actor=member(1), session_id=S, code=session.code, proxy_for="r-9"),
                     "not_authorised", S)  # the council allows no proxies
    attendance = (await h.load(Session, D, S)).attendance
    assert attendance == [{"person_id": RESIDENT.id, "by": "self", "proxy_for": None}]


@covers(RecordAttendance, "accepted", "resent", "refused")
async def test_record_attendance(h):
    await opened(h, proxies_allowed=True)
    await h.once(RecordAttendance(district=D, actor=WORKER, session_id=S, person_id="r-1-wife", proxy_for="r-1"))
    await h.rejected(RecordAttendance(district=D, actor=WORKER, session_id=S, person_id="r-1"), "duplicate", S)
    await h.rejected(RecordAttendance(district=D, actor=WORKER, session_id=S, person_id="m1"), "not_authorised", S,
                     acts_for=OTHER_COUNCIL)
    assert (await h.load(Session, D, S)).attendance == [{"person_id": "r-1-wife", "by": "worker",
                                                        "proxy_for": "r-1"}]


@covers(CloseSession, "accepted", "resent", "refused")
async def test_close_session(h):
    await scheduled(h)
    await h.rejected(CloseSession(district=D, actor=WORKER, session_id=S), "invalid_state", S)  # not open
    h.clock.set(APRIL_15)
    await h.accepted(due(h), platform=True)
    await h.once(CloseSession(district=D, actor=WORKER, session_id=S))
    assert (await h.load(Session, D, S)).status == "closed"


@covers(PublishMinutes, "accepted", "resent", "refused")
async def test_publish_minutes(h):
    session = await opened(h)
    minutes = PublishMinutes(district=D, actor=WORKER, session_id=S, text="议定建设充电棚。")
    await h.rejected(minutes, "invalid_state", S)  # still open
    await h.accepted(CheckIn(district=D, actor=RESIDENT, session_id=S, code=session.code))
    await h.accepted(CloseSession(district=D, actor=WORKER, session_id=S))
    await h.once(minutes)
    assert (await h.load(Session, D, S)).status == "minuted"
    await h.rejected(minutes.model_copy(update={"text": None}), "duplicate", S)


# -- statements and votes in a session --


def said(proposal_id: str, actor: Actor, statement_id: str, **kw: Any) -> MakeStatement:
    return MakeStatement(**{"district": D, "actor": actor, "proposal_id": proposal_id, "statement_id": statement_id,
                            "session_id": S, "step": "motion", "speaker_role": "proposer", "text": "…", **kw})


@covers(MakeStatement, "accepted", "refused")
async def test_an_invited_expert_speaks_on_their_item_in_the_open_session_only(h):
    await opened(h)
    await published(h, "p-2")
    await h.accepted(item("p-2"))
    await h.accepted(said("p-1", RESIDENT, "st-1"))
    await h.accepted(said("p-2", RESIDENT, "st-2"))
    expert = {"step": "expert_comment", "speaker_role": "expert"}
    await h.accepted(said("p-1", EXPERT, "st-3", **expert))
    refused = await h.rejected(said("p-2", EXPERT, "st-4", **expert), "not_authorised", S)
    assert "p-1 only" in refused.message
    statements = (await h.load(Proposal, D, "p-1")).statements
    assert [(s["statement_id"], s["session_id"], s["invited"]) for s in statements] == [
        ("st-1", S, False), ("st-3", S, True)]
    assert (await h.load(Session, D, S)).statements == ["st-1", "st-2", "st-3"]
    assert [(e["statement_id"], e["session_id"], e["invited"]) for e in await published_events(h, "StatementMade")] \
        == [("st-1", S, False), ("st-2", S, False), ("st-3", S, True)]
    await h.accepted(CloseSession(district=D, actor=WORKER, session_id=S))
    await h.rejected(said("p-1", EXPERT, "st-5", **expert), "not_authorised", S)  # the session is over
    await h.rejected(said("p-1", EXPERT, "st-5", session_id="s-none", **expert), "not_found", "s-none")


@covers(RequestVote, "accepted", "refused")
async def test_a_vote_requested_in_a_session_needs_its_quorum_present_and_its_decision_is_minuted(h):
    session = await opened(h)
    await h.accepted(said("p-1", RESIDENT, "st-1"))
    await h.accepted(SecondMotion(district=D, actor=member(1), proposal_id="p-1"))
    h.clock.set(h.clock.now() + 7 * DAY)  # the notice period is over
    vote = RequestVote(district=D, actor=WORKER, vote_id="v-1", council_id="c-1",
                       matter={"kind": "proposal", "id": "p-1"}, terms=council_terms(h), session_id=S)
    await h.accepted(CheckIn(district=D, actor=member(1), session_id=S, code=session.code))
    refused = await h.rejected(vote, "invalid_state", S)
    assert "1 of 3 electors present" in refused.message
    await h.accepted(RecordAttendance(district=D, actor=WORKER, session_id=S, person_id="m2"))
    nomination = RequestVote.model_validate({**vote.model_dump(), "vote_id": "v-n",
                                             "matter": {"kind": "nomination", "id": "n-1"}})
    await h.rejected(nomination, "invalid_state", "n-1")  # only a proposal's vote is a session's
    await h.accepted(vote)
    await h.accepted(result(h, "proposal", "p-1", "adopted"), platform=True)
    await h.accepted(CloseSession(district=D, actor=WORKER, session_id=S))
    await h.accepted(PublishMinutes(district=D, actor=WORKER, session_id=S))
    minutes = (await h.load(Session, D, S))
    assert (minutes.votes, minutes.decisions, minutes.present()) == ([{"vote_id": "v-1", "proposal_id": "p-1"}],
                                                                     ["p-1"], 2)
    assert [e["session_id"] for e in await published_events(h, "VoteRequested")] == [S]
    assert [e["session_id"] for e in await published_events(h, "ProposalDecided")] == [S]
    [published] = await published_events(h, "SessionMinutesPublished")
    assert (published["votes"], published["decisions"], published["attendance"]) == (["v-1"], ["p-1"], 2)
