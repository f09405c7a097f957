"""The rules of consultation sessions and of a council's calendar (rota and monthly
schedule), on the aggregates alone with the time passed in (:mod:`services.proposals.domain.session`)."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from contracts.common import RejectionReason as R
from contracts.sessions import session_id_for
from services.proposals.domain import Calendar, Session, next_occurrence
from services.proposals.translator import translate
from tests.unit.proposals.support import DAY, T0, council, published, rejects, terms_for
from tests.unit.test_public_subjects import recorded
from yishi.repository import Repository

SHANGHAI = ZoneInfo("Asia/Shanghai")
FIFTEENTH = {"form": "consultation_day", "day_of_month": 15, "local_time": "19:00", "timezone": "Asia/Shanghai",
             "place": "西康社区党群服务中心", "online_link": None}
FORMS = ("council", "consultation_day", "invitation")


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


def calendar(c=None, *, chairs=("chair-a", "chair-b", "chair-c"), schedule=FIFTEENTH) -> Calendar:
    c = c or council(forms=FORMS)
    cal = Calendar.open_for(c, T0)
    if chairs:
        cal.set_rota(chairs=list(chairs), now=T0)
    if schedule:
        cal.set_schedule(council=c, schedule=dict(schedule), now=T0)
    return cal


def scheduled(cal: Calendar, c=None, *, starts_at: datetime | None = None, chair: str | None = None,
              session_id: str | None = None) -> Session:
    """A session as the handlers schedule it: from the calendar's due start unless given."""
    c = c or council(forms=FORMS)
    due = cal.due()
    starts = starts_at or due
    s = Session.schedule(session_id=session_id or session_id_for(c.council_id, starts), council=c, calendar=cal,
                         form="consultation_day", starts_at=starts, place=None, online_link=None, chair=chair,
                         code="7Q4KD2", now=T0)
    cal.took(s, from_schedule=starts_at is None, now=T0)
    return s


def opened(c=None, **kw) -> tuple[Session, object]:
    c = c or council(forms=FORMS, **kw)
    s = scheduled(calendar(c), c)
    p = published(c)
    s.add_item(proposal=p, offered=False, now=T0)
    s.open(s.starts_at)
    return s, c


# -- the monthly schedule --


def test_the_next_start_is_the_day_and_local_time_of_the_schedule_strictly_after_now():
    assert next_occurrence(FIFTEENTH, T0) == at(2026, 3, 15, 19, 0)
    assert next_occurrence(FIFTEENTH, at(2026, 3, 15, 19, 0)) == at(2026, 4, 15, 19, 0)
    assert next_occurrence(FIFTEENTH, at(2026, 12, 20, 9, 0)) == at(2027, 1, 15, 19, 0)
    assert next_occurrence(FIFTEENTH, at(2026, 3, 15, 19, 0)).astimezone(timezone.utc) == \
        datetime(2026, 4, 15, 11, 0, tzinfo=timezone.utc)


def test_one_session_of_the_schedule_is_pending_at_a_time_and_the_next_is_due_once_it_opened():
    c = council(forms=FORMS)
    cal = calendar(c)
    assert cal.due() == at(2026, 3, 15, 19, 0)
    march = scheduled(cal, c)
    assert march.session_id == "c-1-session-20260315"
    assert cal.due() is None  # March is pending: April is not scheduled yet
    march.open(march.starts_at)
    cal.opened(march, march.starts_at)
    assert cal.due() == at(2026, 4, 15, 19, 0)


def test_a_schedule_in_a_form_the_council_does_not_use_is_refused():
    c = council()  # consults in the council form only
    rejects(R.INVALID_STATE, Calendar.open_for(c, T0).set_schedule, council=c, schedule=dict(FIFTEENTH), now=T0)


# -- the rota --


def test_sessions_take_their_chairs_from_the_rota_in_turn_and_a_named_chair_does_not_use_a_turn():
    c = council(forms=FORMS)
    cal = calendar(c)
    chairs = []
    for month in (3, 4, 5, 6):
        s = scheduled(cal, c, starts_at=at(2026, month, 15, 19, 0))
        chairs.append((s.chair, s.from_rota))
        if month == 4:
            by_hand = scheduled(cal, c, starts_at=at(2026, 4, 20, 19, 0), chair="guest-chair")
            assert (by_hand.chair, by_hand.from_rota) == ("guest-chair", False)
    assert chairs == [("chair-a", True), ("chair-b", True), ("chair-c", True), ("chair-a", True)]


def test_without_a_rota_a_session_needs_its_chair_named():
    c = council(forms=FORMS)
    cal = calendar(c, chairs=())
    rejects(R.INVALID_STATE, Session.schedule, session_id="s-1", council=c, calendar=cal, form="council",
            starts_at=T0 + DAY, place=None, online_link=None, chair=None, code="7Q4KD2", now=T0)


def test_a_rota_naming_a_person_twice_is_refused():
    rejects(R.INVALID_COMMAND, Calendar.open_for(council(), T0).set_rota, chairs=["a", "b", "a"], now=T0)


def test_a_session_in_the_past_or_in_a_form_the_council_does_not_use_is_refused():
    c = council(forms=FORMS)
    cal = calendar(c)
    rejects(R.INVALID_COMMAND, Session.schedule, session_id="s-1", council=c, calendar=cal, form="council",
            starts_at=T0, place=None, online_link=None, chair=None, code="7Q4KD2", now=T0)
    rejects(R.INVALID_STATE, Session.schedule, session_id="s-1", council=c, calendar=cal, form="online",
            starts_at=T0 + DAY, place=None, online_link=None, chair=None, code="7Q4KD2", now=T0)


def test_the_chair_is_overridden_with_its_reason_until_the_session_closes():
    s, _ = opened()
    s.change_chair(chair="chair-b", reason="chair-a is ill", now=s.starts_at)
    assert (s.chair, s.from_rota) == ("chair-b", False)
    rejects(R.INVALID_STATE, s.change_chair, chair="chair-b", reason="again", now=s.starts_at)
    s.close(s.starts_at + DAY / 8)
    rejects(R.INVALID_STATE, s.change_chair, chair="chair-c", reason="late", now=s.starts_at + DAY)


# -- agenda and invitations --


def test_an_agenda_item_is_an_undecided_proposal_of_the_council_once():
    c = council(forms=FORMS)
    s = scheduled(calendar(c), c)
    p = published(c)
    s.add_item(proposal=p, offered=True, now=T0)
    rejects(R.DUPLICATE, s.add_item, proposal=p, offered=False, now=T0)
    other = published(council(council_id="c-2", forms=FORMS))
    rejects(R.INVALID_STATE, s.add_item, proposal=other, offered=False, now=T0)


def test_an_invited_stakeholder_speaks_on_their_item_only_and_only_while_the_session_is_open():
    c = council(forms=FORMS)
    s = scheduled(calendar(c), c)
    p1, p2 = published(c), published(c)
    p2.proposal_id = "p-2"
    for p in (p1, p2):
        s.add_item(proposal=p, offered=False, now=T0)
    s.invite(proposal_id="p-1", person_id="expert-9", kind="expert", name="王工", now=T0)
    rejects(R.DUPLICATE, s.invite, proposal_id="p-1", person_id="expert-9", kind="expert", name=None, now=T0)
    rejects(R.INVALID_STATE, s.invite, proposal_id="p-3", person_id="expert-9", kind="expert", name=None, now=T0)
    rejects(R.NOT_AUTHORISED, s.admit_speaker, proposal_id="p-1", speaker_id="expert-9")  # not open yet
    s.open(s.starts_at)
    assert s.admit_speaker(proposal_id="p-1", speaker_id="expert-9") is True
    assert s.admit_speaker(proposal_id="p-2", speaker_id="m1") is False  # a member, not invited
    refused = rejects(R.NOT_AUTHORISED, s.admit_speaker, proposal_id="p-2", speaker_id="expert-9")
    assert "p-1 only" in refused.message
    rejects(R.NOT_AUTHORISED, s.admit_speaker, proposal_id="p-9", speaker_id="m1")  # not on the agenda
    s.close(s.starts_at + DAY / 8)
    rejects(R.NOT_AUTHORISED, s.admit_speaker, proposal_id="p-1", speaker_id="expert-9")


def test_a_statement_made_in_a_session_is_marked_with_it_and_linked_to_it():
    s, c = opened()
    p = published(c)
    s.invite(proposal_id="p-1", person_id="expert-9", kind="expert", name=None, now=s.starts_at)
    p.make_statement(statement_id="st-1", step="motion", speaker_role="proposer", speaker_id=p.proposer_id,
                     text="动议", now=s.starts_at, session=s)
    p.make_statement(statement_id="st-2", step="expert_comment", speaker_role="expert", speaker_id="expert-9",
                     text="消防间距需8米以上。", now=s.starts_at, session=s)
    assert [(x["statement_id"], x["session_id"], x["invited"]) for x in p.statements] == [
        ("st-1", s.session_id, False), ("st-2", s.session_id, True)]
    assert s.statements == ["st-1", "st-2"]


# -- attendance --


def test_check_in_needs_the_open_session_and_its_code_and_counts_one_person_time_each():
    c = council(forms=FORMS)
    s = scheduled(calendar(c), c)
    rejects(R.INVALID_STATE, s.check_in, person_id="r-1", code="7Q4KD2", proxy_for=None, council=c, now=T0)
    s.open(s.starts_at)
    rejects(R.NOT_AUTHORISED, s.check_in, person_id="r-1", code="WRONG1", proxy_for=None, council=c, now=T0)
    s.check_in(person_id="r-1", code="7Q4KD2", proxy_for=None, council=c, now=T0)
    s.record_attendance(person_id="r-2", proxy_for=None, council=c, now=T0)
    rejects(R.DUPLICATE, s.check_in, person_id="r-1", code="7Q4KD2", proxy_for=None, council=c, now=T0)
    rejects(R.DUPLICATE, s.record_attendance, person_id="r-2", proxy_for=None, council=c, now=T0)
    assert [(a["person_id"], a["by"]) for a in s.attendance] == [("r-1", "self"), ("r-2", "worker")]
    assert s.present() == 2


def test_a_proxy_attends_only_where_the_councils_rules_allow_and_counts_for_the_resident():
    s, c = opened()
    rejects(R.NOT_AUTHORISED, s.record_attendance, person_id="r-1-wife", proxy_for="r-1", council=c, now=T0)
    s, c = opened(proxies_allowed=True)
    s.record_attendance(person_id="r-1-wife", proxy_for="r-1", council=c, now=T0)
    rejects(R.DUPLICATE, s.check_in, person_id="r-1", code="7Q4KD2", proxy_for=None, council=c, now=T0)
    assert s.present({"r-1"}) == 1 and s.present({"r-1-wife"}) == 0


def test_a_vote_in_a_session_needs_those_present_to_make_its_quorum():
    s, c = opened()  # members m1, m2, m3; the council's quorum is 50 %
    p = published(c)
    p.make_statement(statement_id="st-1", step="motion", speaker_role="proposer", speaker_id=p.proposer_id,
                     text="动议", now=T0)
    p.second(council=c, member_id="m1", now=T0)
    when = T0 + 7 * DAY
    s.record_attendance(person_id="m1", proxy_for=None, council=c, now=when)
    s.record_attendance(person_id="resident-7", proxy_for=None, council=c, now=when)  # not an elector
    refused = rejects(R.INVALID_STATE, p.request_vote, council=c, vote_id="v-1", terms=terms_for(c, when + DAY),
                      now=when, session=s)
    assert "1 of 3 electors present" in refused.message
    s.record_attendance(person_id="m2", proxy_for=None, council=c, now=when)
    p.request_vote(council=c, vote_id="v-1", terms=terms_for(c, when + DAY), now=when, session=s)
    assert s.votes == [{"vote_id": "v-1", "proposal_id": "p-1"}] and p.votes[-1]["session_id"] == s.session_id


# -- minutes --


def test_the_minutes_of_a_closed_session_count_its_attendance_and_list_what_was_said_and_decided():
    s, c = opened(proxies_allowed=True)
    rejects(R.INVALID_STATE, s.publish_minutes, text=None, now=T0)
    s.check_in(person_id="r-1", code="7Q4KD2", proxy_for=None, council=c, now=T0)
    s.record_attendance(person_id="r-2-son", proxy_for="r-2", council=c, now=T0)
    s.link_statement("st-1", T0)
    s.link_vote(vote_id="v-1", proposal_id="p-1", now=T0)
    assert s.link_decision(vote_id="v-1", proposal_id="p-1", now=T0)
    assert not s.link_decision(vote_id="v-other", proposal_id="p-2", now=T0)
    s.close(s.starts_at + DAY / 8)
    rejects(R.INVALID_STATE, s.check_in, person_id="r-3", code="7Q4KD2", proxy_for=None, council=c, now=T0)
    s.publish_minutes(text="议定建设充电棚。", now=s.starts_at + DAY)
    minutes = s.pending_events[-1]
    assert (minutes.agenda, minutes.attendance, minutes.proxies, minutes.statements, minutes.votes,
            minutes.decisions, minutes.chair, minutes.held_at) == (
        ["p-1"], 2, 1, ["st-1"], ["v-1"], ["p-1"], "chair-a", s.starts_at)
    rejects(R.DUPLICATE, s.publish_minutes, text=None, now=s.starts_at + DAY)


def test_statements_and_votes_stored_before_sessions_still_load_and_publish_without_one():
    c = council()
    p = published(c)
    p.make_statement(statement_id="st-1", step="motion", speaker_role="proposer", speaker_id=p.proposer_id,
                     text="动议", now=T0)
    events = recorded(p)
    old = events[-1]
    state = json.loads(old.state)
    del state["session_id"], state["invited"]  # as stored before sessions
    events[-1] = dataclasses.replace(old, state=json.dumps(state).encode())
    loaded = None
    for e in events:
        loaded = Repository(None).to_domain_event(e).mutate(loaded)
    assert (loaded.statements[-1]["session_id"], loaded.statements[-1]["invited"]) == (None, False)
    published_statement = json.loads(translate(events[-1]).data)
    assert (published_statement["session_id"], published_statement["invited"]) == (None, False)
