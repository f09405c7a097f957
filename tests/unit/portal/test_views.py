"""The portal's view-models, pure folds of the public facts: what a roadmap row says,
in whatever order the facts arrived, and how people are named."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from services.portal import statistics, views

T0 = datetime(2026, 4, 1, tzinfo=timezone.utc)
SYSTEM = ("yishi-oversight", "system")
WORKER = ("worker-1", "community_worker")


def fact(kind: str, day: float, actor=WORKER, **body) -> dict:
    keys = {k: body.get(k) for k in ("council_id", "community_id", "proposal_id", "vote_id", "resolution_id",
                                       "task_id")}
    return {"event_id": f"{kind}-{day}", "type": kind, "occurred_at": T0 + timedelta(days=day),
            "actor_id": actor[0], "actor_role": actor[1], **keys, "body": body}


def resolution(rid="res-1", day=0, **more):
    return fact("ResolutionRegistered", day, SYSTEM, resolution_id=rid, proposal_id="p-1", council_id="c-1",
                community_id="xikang", title="修灯", text="修楼道灯", **more)


def task(tid="t-1", rid="res-1", day=1, due=30):
    return fact("TaskAssigned", day, task_id=tid, resolution_id=rid, due_at=(T0 + timedelta(days=due)).isoformat(),
                implementer={"kind": "community_office", "id": "office", "name": "居委会"})


def row(facts) -> views.ResolutionView:
    return views.resolutions(sorted(facts, key=lambda f: f["occurred_at"]))["res-1"]


def test_a_stalled_task_reads_stalled_then_escalated_until_it_moves_on():
    facts = [resolution(), task(), fact("TaskStalled", 5, SYSTEM, task_id="t-1", resolution_id="res-1")]
    assert row(facts).stalled and not row(facts).escalated
    facts.append(fact("TaskEscalated", 6, SYSTEM, task_id="t-1", resolution_id="res-1", to_level="street"))
    assert row(facts).stalled and row(facts).escalated
    facts.append(fact("ProgressReported", 7, task_id="t-1", resolution_id="res-1", percent_complete=30))
    moved = row(facts)
    assert not moved.stalled and not moved.escalated and moved.percent == 30 and moved.status == "in_progress"


def test_status_progress_money_and_deadlines_of_a_resolution():
    facts = [resolution(), task("t-1", due=30), task("t-2", day=2, due=20),
             fact("ProgressReported", 3, task_id="t-1", resolution_id="res-1", percent_complete=50),
             fact("FundsAllocated", 3, resolution_id="res-1", amount_fen=10_000),
             fact("FundsSpent", 4, resolution_id="res-1", amount_fen=2_500)]
    r = row(facts)
    assert (r.status, r.percent, r.allocated_fen, r.spent_fen) == ("in_progress", 25, 10_000, 2_500)
    assert r.due_at == T0 + timedelta(days=20) and r.implementers == ["居委会"]
    facts.append(fact("TaskCompleted", 10, task_id="t-2", resolution_id="res-1"))
    assert row(facts).due_at == T0 + timedelta(days=30)  # the next open deadline
    facts.append(fact("TaskCompleted", 31, task_id="t-1", resolution_id="res-1"))
    done = row(facts)
    assert (done.status, done.percent, done.on_time) == ("completed", 100, False)  # t-1 was a day late
    facts.append(fact("InspectionRecorded", 32, resolution_id="res-1", finding="satisfactory"))
    assert row(facts).status == "inspected"
    facts.append(fact("SatisfactionRated", 40, resolution_id="res-1", satisfied=8, basically_satisfied=1,
                      dissatisfied=1))
    assert (row(facts).status, row(facts).satisfaction_percent) == ("rated", 90.0)
    facts.append(fact("ResolutionClosed", 41, resolution_id="res-1", reason="delivered"))
    assert row(facts).status == "closed_delivered"


def test_the_roadmap_is_the_same_in_any_order_of_arrival():
    facts = [resolution(), task(), fact("ProgressReported", 3, task_id="t-1", resolution_id="res-1",
                                        percent_complete=40),
             fact("TaskStalled", 9, SYSTEM, task_id="t-1", resolution_id="res-1"),
             resolution("res-2", day=2), fact("FundEstablished", 0, community_id="xikang", amount_fen=99)]
    # The read model hands facts over in time order, whatever order Kafka delivered them in.
    expected = views.roadmap(sorted(facts, key=lambda f: f["occurred_at"]), "xikang")
    for seed in range(5):
        shuffled = facts[:]
        random.Random(seed).shuffle(shuffled)
        assert views.roadmap(sorted(shuffled, key=lambda f: (f["occurred_at"], f["event_id"])), "xikang") == expected
    assert [r.resolution_id for r in expected.rows] == ["res-2", "res-1"] and expected.fund_fen == 99
    assert expected.rows[1].stalled and expected.rows[1].percent == 40


def test_a_community_nothing_is_known_of_has_no_roadmap():
    assert views.roadmap([], "nowhere") is None


def test_residents_are_masked_unless_the_district_shows_names_and_staff_never_are():
    assert views.person("resident-4211", "resident", False) == views.Person("resident", "r***1")
    assert views.person("member-0932", "council_member", False).name == "m***2"
    assert views.person("ab", "expert", False).name == "a*"
    assert views.person("resident-4211", "resident", True).name == "resident-4211"
    assert views.person("worker-0102", "community_worker", False).name == "worker-0102"
    assert views.person("yishi-voting", "system", False).name == ""


def test_a_vote_shows_counts_and_turnout_never_a_ballot():
    opened = fact("VoteOpened", 1, SYSTEM, vote_id="v-1", council_id="c-1",
                  matter={"kind": "proposal", "id": "p-1"},
                  terms={"question": "修吗?", "secrecy": "secret", "closes_at": (T0 + timedelta(days=3)).isoformat(),
                         "electorate": {"size": 5}, "quorum_percent": 50})
    (vote,) = views.votes([opened])
    assert vote.closed is None and vote.secrecy == "secret"
    closed = fact("VoteClosed", 3, SYSTEM, vote_id="v-1", council_id="c-1", matter={"kind": "proposal", "id": "p-1"},
                  tally={"in_favour": 3, "against": 1, "abstain": 0}, electorate_size=5, turnout_percent=80.0,
                  quorum_met=True, outcome="adopted")
    (vote,) = views.votes([opened, closed])
    assert vote.closed == {"outcome": "adopted", "turnout_percent": 80.0, "quorum_met": True, "electorate_size": 5,
                           "ballots": 4, "in_favour": 3, "against": 1, "abstain": 0}


def test_a_notice_is_listed_until_it_ends_or_the_proposal_is_decided():
    raised = fact("ProposalRaised", 0, ("resident-1", "resident"), proposal_id="p-1", council_id="c-1",
                  title="加装电梯", summary="老楼加装电梯")
    published = fact("ProposalPublished", 1, proposal_id="p-1", council_id="c-1", form="council",
                     notice_ends_at=(T0 + timedelta(days=8)).isoformat())
    seconded = fact("MotionSeconded", 2, ("member-1", "council_member"), proposal_id="p-1", council_id="c-1")
    (notice,) = views.notices([raised, published, seconded], T0 + timedelta(days=3), False)
    assert (notice.title, notice.seconds, notice.objections) == ("加装电梯", 1, 0)
    assert [s.who.name for s in notice.record] == ["r***1", "worker-1", "m***1"]
    assert views.notices([raised, published], T0 + timedelta(days=9), False) == []
    decided = fact("ProposalDecided", 2, SYSTEM, proposal_id="p-1", council_id="c-1", decision="adopted")
    assert views.notices([raised, published, decided], T0 + timedelta(days=3), False) == []


def test_statistics_count_person_times_sessions_and_on_time_delivery_per_community():
    facts = [fact("CouncilFormed", 0, council_id="c-1", community_id="xikang", name="西康", level="community"),
             fact("FundEstablished", 0, community_id="xikang", amount_fen=100_000),
             fact("ProposalRaised", 0, ("resident-1", "resident"), proposal_id="p-1", council_id="c-1"),
             fact("MotionSeconded", 1, ("member-1", "council_member"), proposal_id="p-1", council_id="c-1"),
             fact("ProposalPublished", 1, proposal_id="p-1", council_id="c-1",
                  session_at=(T0 + timedelta(days=5)).isoformat()),
             fact("VoteClosed", 6, SYSTEM, vote_id="v-1", tally={"in_favour": 4, "against": 1, "abstain": 0}),
             resolution(), task(due=30), fact("TaskCompleted", 20, task_id="t-1", resolution_id="res-1"),
             fact("FundsSpent", 21, resolution_id="res-1", amount_fen=40_000)]
    stats = statistics.statistics(sorted(facts, key=lambda f: f["occurred_at"]))
    # Figures from records only (issue 20): no minutes, no attendance, none held; ballots,
    # raising and seconding are not person-times, nor a session time a proposal named.
    assert (stats.sessions, stats.person_times, stats.proposals, stats.resolutions, stats.on_time) == (0, 0, 1, 1, 1)
    # A session counts once its minutes are published (closed alone, not yet); each
    # attendance is a person-time, a proxy's too.
    held = [fact("SessionClosed", 5, council_id="c-1", session_id="s-1"),
            fact("SessionMinutesPublished", 5, council_id="c-1", session_id="s-1", form="consultation_day"),
            fact("SessionClosed", 12, council_id="c-1", session_id="s-2"),
            fact("AttendanceRecorded", 5, council_id="c-1", session_id="s-1"),
            fact("AttendanceRecorded", 5, council_id="c-1", session_id="s-1"),
            fact("AttendanceRecorded", 12, council_id="c-1", session_id="s-2")]
    stats = statistics.statistics(sorted(facts + held, key=lambda f: f["occurred_at"]))
    assert (stats.sessions, stats.person_times) == (1, 3)
    (xikang,) = stats.communities
    assert (xikang.name, xikang.proposals, xikang.resolutions, xikang.completed, xikang.on_time, xikang.fund_fen,
            xikang.spent_fen) == ("西康", 1, 1, 1, 1, 100_000, 40_000)
