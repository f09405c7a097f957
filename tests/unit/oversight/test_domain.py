"""Oversight aggregates without I/O: the stall policies and escalation ladder under a
controlled clock, delivery and inspection, and the micro-project fund's arithmetic."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, strategies as st

from contracts.common import RejectionReason
from contracts.oversight import ReminderKind
from services.oversight.domain import Authority, Fund, Policy, Resolution, Task, resolution_id_for
from yishi.repository import default_mapper
from yishi.rules import Rejected

T0 = datetime(2026, 3, 1, 9, tzinfo=timezone.utc)
POLICY = Policy(not_accepted_days=3, stall_days=10, deadline_warning_days=5, escalate_after_days=2,
                supervisor_id="supervisor-01")
ABOVE = Authority("street", "council-street")


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def task(due_in_days: int = 60) -> Task:
    return Task(district="gulou", task_id="task-1", resolution_id="res-1", council_id="council-1",
                implementer={"kind": "social_organisation", "id": "org-1", "name": "Green Home"},
                description="Build the shed", acceptance_standards=["40 charging points"], due_at=day(due_in_days),
                budget_fen=None, assigned_at=T0)


def tick(t: Task, now: datetime) -> list[tuple[str, int, str]]:
    """What a scheduler tick fires at ``now``: (kind, rung, recipient)."""
    steps = t.due_reminders(now, POLICY, ABOVE)
    for s in steps:
        t.fire(s, POLICY.stall_days, now)
    return [(str(s.kind), s.step, s.recipient_id) for s in steps]


def names(t: Task) -> list[str]:
    return [type(e).__name__ for e in t.collect_events()]


def test_not_accepted_climbs_the_ladder_once_per_rung():
    t = task()
    names(t)
    assert tick(t, day(2.9)) == []
    assert tick(t, day(3)) == [("not_accepted", 1, "org-1")]
    assert tick(t, day(4)) == []  # the same rung never again
    assert tick(t, day(5)) == [("not_accepted", 2, "supervisor-01")]
    assert tick(t, day(7)) == [("not_accepted", 3, "council-street")]
    assert names(t) == ["ReminderFired", "ReminderFired", "Escalated", "ReminderFired"]
    assert tick(t, day(9)) == []


def test_no_progress_stalls_and_new_progress_starts_a_new_episode():
    t = task()
    t.accept("staff-7", day(1))
    t.report_progress(30, "foundations", [], day(2))
    names(t)
    assert tick(t, day(11.9)) == []
    assert tick(t, day(12)) == [("stalled", 1, "staff-7")]  # the accepting person is reminded
    assert names(t) == ["Stalled", "ReminderFired"]
    t.report_progress(50, "roof", [], day(13))
    assert tick(t, day(14)) == []  # fresh news: the old episode's next rung is moot
    assert tick(t, day(23)) == [("stalled", 1, "staff-7")]
    stalled = [e for e in t.collect_events() if type(e).__name__ == "Stalled"]
    assert stalled[0].last_progress_at == day(13) and stalled[0].stalled_after_days == 10


def test_deadline_near_then_passed_with_escalation():
    t = task(due_in_days=20)
    t.accept("staff-7", day(1))
    t.report_progress(10, "started", [], day(14))
    assert tick(t, day(15)) == [("deadline_approaching", 1, "staff-7")]
    assert tick(t, day(16)) == []
    t.report_progress(80, "nearly", [], day(19))
    assert tick(t, day(20)) == [("deadline_passed", 1, "staff-7")]
    assert tick(t, day(22)) == [("deadline_passed", 2, "supervisor-01")]
    t.report_progress(90, "still going", [], day(23))
    assert tick(t, day(24)) == [("deadline_passed", 3, "council-street")]
    escalated = [e for e in t.collect_events() if type(e).__name__ == "Escalated"]
    assert [(e.to_level, e.to_authority_id) for e in escalated] == [("street", "council-street")]


def test_a_long_outage_fires_every_due_rung_once_and_skips_a_stale_warning():
    t = task(due_in_days=10)
    # Nobody ran the scheduler for 30 days: not accepted, deadline passed, all rungs due.
    fired = tick(t, day(30))
    assert sorted(fired) == sorted([
        ("not_accepted", 1, "org-1"), ("not_accepted", 2, "supervisor-01"), ("not_accepted", 3, "council-street"),
        ("deadline_passed", 1, "org-1"), ("deadline_passed", 2, "supervisor-01"),
        ("deadline_passed", 3, "council-street"),
    ])
    assert tick(t, day(31)) == []


def test_fired_rungs_survive_replay_and_a_second_fire_is_refused():
    t = task()
    steps = t.due_reminders(day(3), POLICY, ABOVE)
    t.fire(steps[0], POLICY.stall_days, day(3))
    mapper = default_mapper()
    replayed = None
    for e in t.collect_events():
        replayed = mapper.to_domain_event(mapper.to_stored_event(e)).mutate(replayed)
    assert replayed.due_reminders(day(3), POLICY, ABOVE) == []
    with pytest.raises(Rejected) as err:
        replayed.fire(steps[0], POLICY.stall_days, day(3))
    assert err.value.reason == RejectionReason.DUPLICATE


def test_completed_task_is_passed_or_sent_back_by_inspection_and_follow_up_reminds_supervisor():
    t = task()
    with pytest.raises(Rejected):
        t.report_progress(10, "too early", [], day(1))
    t.accept("staff-7", day(1))
    t.complete("done", [], day(5))
    t.inspect("insp-1", ["supervisor-01"], ["quality"], "needs_improvement", "two points broken", [], day(6))
    assert t.status == "accepted"  # sent back
    t.complete("fixed", [], day(8))
    t.inspect("insp-2", ["supervisor-01"], ["quality"], "satisfactory", "ok", [], day(9))
    assert t.status == "passed"
    t.schedule_follow_up("insp-3", day(40), "check it holds", day(9))
    assert tick(t, day(39)) == []
    assert tick(t, day(40)) == [(str(ReminderKind.FOLLOW_UP_INSPECTION), 2, "supervisor-01")]
    t.inspect("insp-3", ["supervisor-01"], ["quality"], "unsatisfactory", "broken again", [], day(41))
    assert t.status == "accepted"  # the problem came back (治理—反弹): delivery reopens


def allocate_to(fund: Fund, allocation_id: str, resolution_id: str, task_id: str | None, amount_fen: int,
                purpose: str) -> None:
    """``fund.allocate`` for an open resolution of the fund's community and, when named, a
    task of it without a budget of its own."""
    resolution = Resolution.register(district="gulou", resolution_id=resolution_id, proposal_id="p-1",
                                     council_id="council-1", vote_id=None, catalogue_item_id=None,
                                     community_id=fund.community_id, title="Shed", text="Build it", budget_fen=None)
    t = None if task_id is None else resolution.assign_task(
        task_id, {"kind": "local_unit", "id": "unit-7", "name": "物业"}, "Build the shed", ["40 charging points"],
        day(60), None, T0)
    fund.allocate(allocation_id, amount_fen, purpose, resolution=resolution, task=t,
                  resolution_community=resolution.community_id)


def test_fund_rejects_over_allocation_and_overspending():
    fund = Fund(district="gulou", fund_id="fund-1", community_id="xikang", year=2026, amount_fen=30_000_000)
    allocate_to(fund, "a-1", "res-1", "task-1", 20_000_000, "shed")
    with pytest.raises(Rejected) as err:
        allocate_to(fund, "a-2", "res-2", "task-2", 10_000_001, "too much")
    assert err.value.reason == RejectionReason.OVER_BUDGET
    allocate_to(fund, "a-2", "res-2", "task-2", 10_000_000, "exactly the rest")
    assert fund.remaining_fen == 0
    fund.spend("e-1", "a-1", 15_000_000, "builder", "works", None)
    with pytest.raises(Rejected) as err:
        fund.spend("e-2", "a-1", 5_000_001, "builder", "more", None)
    assert err.value.reason == RejectionReason.OVER_BUDGET
    assert (fund.allocated_fen, fund.spent_fen) == (30_000_000, 15_000_000)


def test_spending_needs_a_task_allocation():
    fund = Fund(district="gulou", fund_id="fund-1", community_id="xikang", year=2026, amount_fen=100)
    allocate_to(fund, "a-1", "res-1", None, 50, "reserve for the resolution")
    with pytest.raises(Rejected) as err:
        fund.spend("e-1", "a-1", 10, "builder", "works", None)
    assert err.value.reason == RejectionReason.INVALID_STATE


@given(st.integers(1, 10**9), st.lists(st.tuples(st.booleans(), st.integers(1, 10**8)), max_size=40))
def test_fund_allocations_and_spending_never_exceed_and_always_add_up(total, operations):
    fund = Fund(district="gulou", fund_id="fund-1", community_id="xikang", year=2026, amount_fen=total)
    accepted_allocations, accepted_spending = 0, 0
    for n, (allocate, amount) in enumerate(operations):
        try:
            if allocate or not fund.allocations:
                allocate_to(fund, f"a-{n}", "res-1", "task-1", amount, "p")
                accepted_allocations += amount
            else:
                fund.spend(f"e-{n}", sorted(fund.allocations)[0], amount, "payee", "p", None)
                accepted_spending += amount
        except Rejected as exc:
            assert exc.reason == RejectionReason.OVER_BUDGET
    assert fund.allocated_fen == accepted_allocations <= total
    assert fund.spent_fen == accepted_spending <= fund.allocated_fen
    assert fund.remaining_fen == total - accepted_allocations


def test_resolution_id_is_derived_from_the_proposal_and_fits_the_id_limit():
    assert resolution_id_for("prop-1") == "res-prop-1"
    long = "p" * 80
    assert resolution_id_for(long) == resolution_id_for(long) and len(resolution_id_for(long)) <= 80
    a = Resolution.create_id("gulou", "res-1")
    assert a == Resolution.create_id("gulou", "res-1") != Resolution.create_id("chaoyang", "res-1")


def test_resolution_rating_and_closing_rules():
    r = Resolution(district="gulou", resolution_id="res-1", proposal_id="p-1", council_id="c-1", vote_id="v-1",
                   catalogue_item_id=None, community_id="xikang", title="Shed", text="Build it", budget_fen=None)
    open_task, passed = task(), task()
    passed.status = "passed"
    with pytest.raises(Rejected):
        r.rate_satisfaction("rt-1", "rev-1", 2026, 5, 1, 1, None, tasks=[open_task, passed])
    with pytest.raises(Rejected):
        r.close("delivered", "done", tasks=[open_task, passed])
    r.rate_satisfaction("rt-1", "rev-1", 2026, 5, 1, 1, None, tasks=[passed])
    r.close("delivered", "done", tasks=[passed])
    with pytest.raises(Rejected) as err:
        r.request_reconsultation(None, "new problem")
    assert err.value.reason == RejectionReason.INVALID_STATE


def test_a_shortened_policy_day_scales_every_rung():
    short = dataclasses.replace(POLICY, day=timedelta(seconds=2))
    t = task()
    t.accept("staff-7", T0)
    t.report_progress(40, "foundations", [], T0)

    def seconds(n: float) -> datetime:
        return T0 + timedelta(seconds=n)

    assert t.due_reminders(seconds(19.9), short, ABOVE) == []
    stalled = t.due_reminders(seconds(20), short, ABOVE)  # stall_days=10 of 2 s
    assert [(str(s.kind), s.step, s.due_at) for s in stalled] == [("stalled", 1, seconds(20))]
    assert [s.step for s in t.due_reminders(seconds(24), short, ABOVE)] == [1, 2]  # escalate_after_days=2


def registered(community_id: str | None = "xikang") -> Resolution:
    return Resolution.register(district="gulou", resolution_id="res-1", proposal_id="p-1", council_id="c-1",
                               vote_id=None, catalogue_item_id=None, community_id=community_id, title="Shed",
                               text="Build it", budget_fen=None)


def test_a_resolution_assigns_its_tasks_in_the_future_within_the_horizon_while_open():
    r = registered()
    unit = {"kind": "local_unit", "id": "unit-7", "name": "物业"}
    for due, reason in ((T0, RejectionReason.DEADLINE_PASSED), (day(5 * 366 + 1), RejectionReason.INVALID_COMMAND)):
        with pytest.raises(Rejected) as err:
            r.assign_task("task-1", unit, "Build", ["usable"], due, None, T0)
        assert (err.value.reason, err.value.subject) == (reason, "task-1")
    t = r.assign_task("task-1", unit, "Build", ["usable"], day(30), 500, T0)
    assert (t.resolution_id, t.council_id, t.due_at, t.budget_fen, r.task_ids) == ("res-1", "c-1", day(30), 500,
                                                                                    ["task-1"])
    r.close("abandoned", "no longer needed", tasks=[t])
    with pytest.raises(Rejected) as err:
        r.assign_task("task-2", unit, "Build", ["usable"], day(30), None, T0)
    assert (err.value.reason, r.task_ids) == (RejectionReason.INVALID_STATE, ["task-1"])


def test_a_fund_allocates_to_its_community_s_open_resolutions_and_their_tasks_only():
    r = registered()
    t = r.assign_task("task-1", {"kind": "local_unit", "id": "unit-7", "name": "物业"}, "Build", ["usable"],
                      day(30), 1_000, T0)
    fund = Fund(district="gulou", fund_id="fund-1", community_id="xikang", year=2026, amount_fen=500)
    other = Resolution.register(district="gulou", resolution_id="res-2", proposal_id="p-2", council_id="c-1",
                                vote_id=None, catalogue_item_id=None, community_id="xikang", title="x", text="x",
                                budget_fen=None)
    cases = [(dict(resolution_community="ninghai"), RejectionReason.INVALID_STATE),
             (dict(resolution=other), RejectionReason.NOT_FOUND),  # task-1 is not res-2's
             (dict(taken_by="fund-0"), RejectionReason.ALREADY_EXISTS),
             (dict(), RejectionReason.OVER_BUDGET)]  # 600 of the fund's 500 (the task's 1,000 would do)
    for changed, reason in cases:
        with pytest.raises(Rejected) as err:
            fund.allocate("a-1", 600, "p", **{"resolution": r, "task": t, "resolution_community": "xikang",
                                              **changed})
        assert err.value.reason == reason, changed
    assert (fund.allocations, t.allocated_fen) == ({}, 0)  # a refusal records nothing, on either
    claim = fund.allocate("a-1", 500, "p", resolution=r, task=t, resolution_community=None)
    assert (claim.kind, claim.key, claim.owner_id, t.allocated_fen, fund.remaining_fen) == (
        "fund-of-allocation", "a-1", "fund-1", 500, 0)


def test_one_fund_per_community_and_year():
    fund, claim = Fund.establish(district="gulou", fund_id="fund-1", community_id="xikang", year=2026,
                                 amount_fen=100, year_taken_by=None)
    assert (fund.amount_fen, claim.kind, claim.key, claim.owner_id) == (100, "fund-of-year", "xikang/2026", "fund-1")
    with pytest.raises(Rejected) as err:
        Fund.establish(district="gulou", fund_id="fund-2", community_id="xikang", year=2026, amount_fen=100,
                       year_taken_by="fund-1")
    assert (err.value.reason, err.value.subject) == (RejectionReason.ALREADY_EXISTS, "fund-2")
