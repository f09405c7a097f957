"""Every oversight command handler on the in-memory store (:mod:`tests.support.handlers`):
each accepted, answered from its stored reply when resent, and refused for at least one
of its preconditions, asserting the reply and the aggregates as stored
(:func:`test_every_handler_has_its_unit_tests` fails when a handler lacks one). No
PostgreSQL: what the handlers read besides the event store (councils, records stored
before the write side kept them) is :class:`FakeFacts`."""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Any

import pytest

from contracts import oversight as c
from contracts.common import Actor
from services.oversight.application import build_bus
from services.oversight.consumers import RegisterDecidedResolution
from services.oversight.domain import FUND_OF_ALLOCATION, FUND_OF_YEAR, Claim, Fund, ReminderPolicy, Resolution, Task
from tests.support.handlers import T0, Handlers, assert_every_handler_tested, covers
from yishi.store import Metadata

D = "gulou"
WORKER = Actor(id="worker-0102", role="community_worker")
OFFICIAL = Actor(id="official-0001", role="official")
STAFF = Actor(id="staff-2201", role="implementer")
SUPERVISOR = Actor(id="supervisor-01", role="supervisor")
IMPLEMENTER = {"kind": "social_organisation", "id": "org-green-home", "name": "绿色家园"}


class FakeFacts:
    """:class:`services.oversight.application.Facts` from dicts: the councils' communities
    and the records "stored before" the write side kept them."""

    def __init__(self) -> None:
        self.communities = {"council-xikang": "xikang", "council-other": "ninghai"}
        self.funds_of_year: dict[tuple[str, int], str] = {}
        self.funds_of_allocation: dict[str, str] = {}
        self.task_ids: dict[str, list[str]] = {}

    async def lock_council(self, conn: Any, district: str, council_id: str) -> None:
        pass

    async def community_of(self, conn: Any, district: str, council_id: str) -> str | None:
        return self.communities.get(council_id)

    async def fund_of_year(self, conn: Any, district: str, community_id: str, year: int) -> str | None:
        return self.funds_of_year.get((community_id, year))

    async def fund_of_allocation(self, conn: Any, district: str, allocation_id: str) -> str | None:
        return self.funds_of_allocation.get(allocation_id)

    async def task_ids_of(self, conn: Any, district: str, resolution_id: str) -> list[str]:
        return self.task_ids.get(resolution_id, [])


@pytest.fixture
def facts() -> FakeFacts:
    return FakeFacts()


@pytest.fixture
def h(facts: FakeFacts) -> Handlers:
    return Handlers(build_bus, facts=facts)


def cmd(model: type, actor: Actor = WORKER, **fields: Any) -> Any:
    return model.model_validate({"district": D, "actor": actor, **fields})


def register(resolution_id: str = "res-1", council_id: str = "council-xikang") -> c.RegisterResolution:
    return cmd(c.RegisterResolution, resolution_id=resolution_id, proposal_id=f"p-{resolution_id}",
               council_id=council_id, title="充电棚", text="建设充电棚")


def assign(task_id: str = "task-1", resolution_id: str = "res-1", *, due_in: timedelta = timedelta(days=60),
           budget_fen: int | None = None) -> c.AssignTask:
    return cmd(c.AssignTask, task_id=task_id, resolution_id=resolution_id, implementer=IMPLEMENTER,
               description="建设充电棚", acceptance_standards=["40个充电位"], due_at=T0 + due_in,
               budget_fen=budget_fen)


def fund(fund_id: str = "fund-2026", community_id: str = "xikang", year: int = 2026,
         amount_fen: int = 1_000_000) -> c.EstablishFund:
    return cmd(c.EstablishFund, fund_id=fund_id, community_id=community_id, year=year, amount_fen=amount_fen)


def allocate(allocation_id: str, amount_fen: int, *, task_id: str | None = "task-1", fund_id: str = "fund-2026",
             resolution_id: str = "res-1") -> c.AllocateFunds:
    return cmd(c.AllocateFunds, allocation_id=allocation_id, resolution_id=resolution_id, task_id=task_id,
               fund_id=fund_id, amount_fen=amount_fen, purpose="建设")


def inspect(inspection_id: str, task_id: str | None = "task-1", resolution_id: str = "res-1",
            finding: str = "satisfactory") -> c.RecordInspection:
    return cmd(c.RecordInspection, SUPERVISOR, inspection_id=inspection_id, resolution_id=resolution_id,
               task_id=task_id, inspector_ids=["supervisor-01"], aspects=["quality"], finding=finding, notes="看过")


def rate(rating_id: str = "rating-1", resolution_id: str = "res-1") -> c.RecordSatisfaction:
    return cmd(c.RecordSatisfaction, rating_id=rating_id, resolution_id=resolution_id,
               review_meeting_id="review-2026", year=2026, satisfied=58, basically_satisfied=9, dissatisfied=3)


def close(resolution_id: str = "res-1", reason: str = "delivered") -> c.CloseResolution:
    return cmd(c.CloseResolution, resolution_id=resolution_id, reason=reason, summary="建成")


async def task_at(h: Handlers, status: str, task_id: str = "task-1", resolution_id: str = "res-1") -> None:
    """Assign ``task_id`` and take it as far as ``status``."""
    await h.accepted(assign(task_id, resolution_id))
    steps = ["accepted", "completed", "passed"]
    for step in steps[:steps.index(status) + 1] if status in steps else []:
        if step == "accepted":
            await h.accepted(cmd(c.AcceptTask, STAFF, task_id=task_id))
        elif step == "completed":
            await h.accepted(cmd(c.CompleteTask, STAFF, task_id=task_id, summary="完成"))
        else:
            await h.accepted(inspect(f"insp-{task_id}", task_id, resolution_id))


async def store_as_before(h: Handlers, *aggregates: Any) -> None:
    """Save aggregates as handlers did before the write side kept claims and task lists."""
    await h.repository.save(*aggregates, meta=Metadata(actor="worker-0102", actor_role="community_worker",
                                                       district=D, correlation_id="before", occurred_at=T0))


def legacy_resolution(resolution_id: str = "res-old") -> Resolution:
    """A resolution as registered before resolutions recorded their tasks (``task_ids`` None)."""
    return Resolution(district=D, resolution_id=resolution_id, proposal_id="p-old", council_id="council-xikang",
                      vote_id=None, catalogue_item_id=None, community_id="xikang", title="旧", text="旧决议",
                      budget_fen=None)


def test_every_handler_has_its_unit_tests(h):
    assert_every_handler_tested(h.bus, sys.modules[__name__])


# -- resolutions ---------------------------------------------------------------------------


@covers(c.RegisterResolution, "accepted", "resent", "refused")
async def test_register_resolution(h):
    reply = await h.once(register())
    assert (reply.command_type, reply.subject) == ("RegisterResolution", "res-1")
    resolution = await h.load(Resolution, D, "res-1")
    assert (resolution.council_id, resolution.community_id, resolution.task_ids) == ("council-xikang", "xikang", [])
    again = await h.rejected(register(), "already_exists")
    assert again.subject == "res-1"


@covers(RegisterDecidedResolution, "accepted", "resent", "refused")
async def test_register_a_decided_resolution_as_the_platform(h):
    decided = RegisterDecidedResolution(district=D, actor=h.bus.system_actor, proposal_id="prop-17",
                                        council_id="council-xikang", vote_id="vote-17", title="充电棚",
                                        text="建充电棚")
    reply = await h.once(decided, principal=h.bus.platform)
    assert (reply.command_type, reply.subject, reply.actor.id) == (
        "RegisterDecidedResolution", "res-prop-17", "yishi-oversight")
    resolution = await h.load(Resolution, D, "res-prop-17")
    assert (resolution.proposal_id, resolution.vote_id, resolution.community_id) == ("prop-17", "vote-17", "xikang")
    # The same decision published again (another event, so another key): one resolution.
    refused = await h.rejected(decided, "already_exists", principal=h.bus.platform, key="event:republished")
    assert refused.subject == "res-prop-17"
    assert (await h.topics()).count("services.oversight.domain.resolution:Resolution.Registered") == 1


@covers(c.SetReminderPolicy, "accepted", "resent", "refused")
async def test_set_reminder_policy_sets_then_changes(h):
    policy = dict(scope="council", scope_id="council-xikang", not_accepted_days=3, stall_days=10,
                  deadline_warning_days=5, escalate_after_days=2)
    await h.once(cmd(c.SetReminderPolicy, **policy))
    await h.accepted(cmd(c.SetReminderPolicy, **{**policy, "stall_days": 14, "supervisor_id": "supervisor-01"}))
    stored = await h.load(ReminderPolicy, D, "council", "council-xikang")
    assert (stored.policy.stall_days, stored.policy.supervisor_id, stored.version) == (14, "supervisor-01", 2)
    unknown = await h.rejected(cmd(c.SetReminderPolicy, **{**policy, "scope": "resolution", "scope_id": "res-x"}),
                               "not_found")
    assert unknown.subject == "res-x"


# -- tasks -----------------------------------------------------------------------------------


@covers(c.AssignTask, "accepted", "resent", "refused")
async def test_assign_task_records_the_task_on_its_resolution(h):
    await h.accepted(register())
    await h.once(assign(budget_fen=500))
    task = await h.load(Task, D, "task-1")
    assert (task.status, task.resolution_id, task.council_id, task.budget_fen, task.assigned_at) == (
        "assigned", "res-1", "council-xikang", 500, T0)
    assert (await h.load(Resolution, D, "res-1")).task_ids == ["task-1"]
    assert (await h.rejected(assign(), "already_exists")).subject == "task-1"
    assert (await h.rejected(assign("task-2", due_in=timedelta(0)), "deadline_passed")).subject == "task-2"
    assert (await h.rejected(assign("task-2", due_in=timedelta(days=5 * 366 + 1)), "invalid_command")).subject \
        == "task-2"
    assert (await h.rejected(assign("task-2", "res-none"), "not_found")).subject == "res-none"
    await h.accepted(close(reason="abandoned"))
    assert (await h.rejected(assign("task-2"), "invalid_state")).subject == "res-1"
    assert (await h.load(Resolution, D, "res-1")).task_ids == ["task-1"]
    assert await h.load(Task, D, "task-2") is None


@covers(c.AcceptTask, "accepted", "resent", "refused")
async def test_accept_task(h):
    await h.accepted(register())
    await task_at(h, "assigned")
    await h.once(cmd(c.AcceptTask, STAFF, task_id="task-1"))
    task = await h.load(Task, D, "task-1")
    assert (task.status, task.accepted_by) == ("accepted", "staff-2201")
    assert (await h.rejected(cmd(c.AcceptTask, STAFF, task_id="task-1"), "invalid_state")).subject == "task-1"
    assert (await h.rejected(cmd(c.AcceptTask, STAFF, task_id="task-x"), "not_found")).subject == "task-x"


@covers(c.AcceptTask, "refused")
async def test_accept_task_only_for_the_implementer_the_caller_acts_for(h):
    await h.accepted(register())
    await task_at(h, "assigned")
    await h.rejected(cmd(c.AcceptTask, STAFF, task_id="task-1"), "not_authorised", acts_for=["org-other"])
    assert (await h.load(Task, D, "task-1")).status == "assigned"


@covers(c.ReportProgress, "accepted", "resent", "refused")
async def test_report_progress(h):
    await h.accepted(register())
    await task_at(h, "assigned")
    await h.rejected(cmd(c.ReportProgress, STAFF, task_id="task-1", percent_complete=10, summary="x"),
                     "invalid_state")
    await h.accepted(cmd(c.AcceptTask, STAFF, task_id="task-1"))
    h.clock.advance(timedelta(days=2))
    await h.once(cmd(c.ReportProgress, STAFF, task_id="task-1", percent_complete=40, summary="地基完成"))
    task = await h.load(Task, D, "task-1")
    assert (task.percent, task.last_progress_at) == (40, T0 + timedelta(days=2))


@covers(c.CompleteTask, "accepted", "resent", "refused")
async def test_complete_task(h):
    await h.accepted(register())
    await task_at(h, "assigned")
    await h.rejected(cmd(c.CompleteTask, STAFF, task_id="task-1", summary="完成"), "invalid_state")
    await h.accepted(cmd(c.AcceptTask, STAFF, task_id="task-1"))
    await h.once(cmd(c.CompleteTask, STAFF, task_id="task-1", summary="完成"))
    task = await h.load(Task, D, "task-1")
    assert (task.status, task.percent, task.completed_at) == ("completed", 100, T0)


@covers(c.EscalateTask, "accepted", "resent", "refused")
async def test_escalate_task(h):
    await h.accepted(register())
    await task_at(h, "accepted")
    escalate = cmd(c.EscalateTask, OFFICIAL, task_id="task-1", to_level="street",
                   to_authority_id="council-street", reason="无进展")
    await h.once(escalate)
    assert (await h.topics())[-2].endswith("Task.Escalated")
    await task_at(h, "passed", "task-2")
    refused = await h.rejected(escalate.model_copy(update={"task_id": "task-2"}), "invalid_state")
    assert refused.subject == "task-2"


@covers(c.RecordInspection, "accepted", "resent", "refused")
async def test_record_inspection_of_a_task_and_of_the_resolution(h):
    await h.accepted(register())
    await h.accepted(register("res-2"))
    await task_at(h, "completed")
    assert (await h.rejected(inspect("insp-1", resolution_id="res-2"), "not_found")).subject == "task-1"
    await h.once(inspect("insp-1"))
    task = await h.load(Task, D, "task-1")
    assert (task.status, task.inspection_ids) == ("passed", ["insp-1"])
    assert (await h.rejected(inspect("insp-1"), "duplicate")).subject == "task-1"
    await h.accepted(inspect("insp-r", task_id=None))
    assert (await h.load(Resolution, D, "res-1")).inspection_ids == ["insp-r"]
    assert (await h.rejected(inspect("insp-r", task_id=None), "duplicate")).subject == "res-1"


@covers(c.ScheduleFollowUpInspection, "accepted", "resent", "refused")
async def test_schedule_follow_up_inspection(h):
    await h.accepted(register())
    await task_at(h, "accepted")
    follow_up = cmd(c.ScheduleFollowUpInspection, SUPERVISOR, inspection_id="insp-2", task_id="task-1",
                    scheduled_for=T0 + timedelta(days=90), reason="看是否反弹")
    await h.rejected(follow_up, "invalid_state")
    await h.accepted(cmd(c.CompleteTask, STAFF, task_id="task-1", summary="完成"))
    await h.once(follow_up)
    assert (await h.load(Task, D, "task-1")).follow_ups == {"insp-2": T0 + timedelta(days=90)}
    await h.rejected(follow_up.model_copy(update={"inspection_id": "insp-3", "scheduled_for": T0}), "invalid_state")


# -- funds --------------------------------------------------------------------------------------


@covers(c.EstablishFund, "accepted", "resent", "refused")
async def test_establish_fund_claims_the_community_s_year(h, facts):
    await h.once(fund())
    stored = await h.load(Fund, D, "fund-2026")
    assert (stored.community_id, stored.year, stored.remaining_fen) == ("xikang", 2026, 1_000_000)
    assert (await h.load(Claim, D, FUND_OF_YEAR, "xikang/2026")).owner_id == "fund-2026"
    assert (await h.rejected(fund(), "already_exists")).subject == "fund-2026"
    second = await h.rejected(fund("fund-2026b"), "already_exists")
    assert (second.subject, "fund fund-2026 exists" in second.message) == ("fund-2026b", True)
    await h.accepted(fund("fund-2027", year=2027))
    # A fund established before years were claimed is found in the read model.
    facts.funds_of_year[("ninghai", 2026)] = "fund-ninghai"
    assert "fund fund-ninghai exists" in (await h.rejected(fund("fund-n", "ninghai"), "already_exists")).message


@covers(c.AllocateFunds, "accepted", "resent", "refused")
async def test_allocate_funds_to_a_task_within_its_budget_and_the_fund(h):
    await h.accepted(register())
    await h.accepted(assign(budget_fen=600_000))
    await h.accepted(fund(amount_fen=1_000_000))
    await h.once(allocate("alloc-1", 400_000))
    stored, task = await h.load(Fund, D, "fund-2026"), await h.load(Task, D, "task-1")
    assert (stored.allocated_fen, task.allocated_fen) == (400_000, 400_000)
    assert stored.allocations["alloc-1"] == {"resolution_id": "res-1", "task_id": "task-1", "amount_fen": 400_000,
                                             "spent_fen": 0}
    assert (await h.load(Claim, D, FUND_OF_ALLOCATION, "alloc-1")).owner_id == "fund-2026"
    assert (await h.rejected(allocate("alloc-2", 200_001), "over_budget")).subject == "alloc-2"  # the task's
    assert (await h.rejected(allocate("alloc-2", 600_001, task_id=None), "over_budget")).subject == "alloc-2"
    assert (await h.rejected(allocate("alloc-1", 1), "already_exists")).subject == "alloc-1"
    assert (await h.rejected(allocate("alloc-2", 1, task_id="task-x"), "not_found")).subject == "task-x"
    assert (await h.load(Task, D, "task-1")).allocated_fen == 400_000


@covers(c.AllocateFunds, "refused")
async def test_allocate_funds_refuses_another_community_s_fund_and_a_taken_allocation_id(h, facts):
    await h.accepted(register())
    await h.accepted(fund())
    await h.accepted(fund("fund-ninghai", "ninghai"))
    await h.accepted(allocate("alloc-1", 100, task_id=None))
    refused = await h.rejected(allocate("alloc-2", 100, task_id=None, fund_id="fund-ninghai"), "invalid_state")
    assert "another community" in refused.message
    # Unique across funds: the allocation id is claimed by fund-2026.
    facts.communities["council-xikang"] = "ninghai"  # (so only the id stands in the way)
    await h.accepted(register("res-n"))
    await h.rejected(allocate("alloc-1", 100, task_id=None, fund_id="fund-ninghai", resolution_id="res-n"),
                     "already_exists")
    assert (await h.load(Fund, D, "fund-ninghai")).allocations == {}


@covers(c.AllocateFunds, "refused")
async def test_allocate_funds_learns_a_late_council_s_community(h, facts):
    del facts.communities["council-xikang"]
    await h.accepted(register())
    assert (await h.load(Resolution, D, "res-1")).community_id is None
    await h.accepted(fund("fund-ninghai", "ninghai"))
    facts.communities["council-xikang"] = "xikang"  # CouncilFormed arrived after the resolution
    await h.rejected(allocate("alloc-1", 100, task_id=None, fund_id="fund-ninghai"), "invalid_state")


@covers(c.AllocateFunds, "refused")
async def test_allocate_funds_to_a_closed_resolution_is_refused(h):
    await h.accepted(register())
    await h.accepted(fund())
    await h.accepted(close(reason="abandoned"))
    assert (await h.rejected(allocate("alloc-1", 100, task_id=None), "invalid_state")).subject == "alloc-1"
    assert (await h.load(Fund, D, "fund-2026")).allocations == {}


@covers(c.RecordSpending, "accepted", "resent", "refused")
async def test_record_spending(h, facts):
    await h.accepted(register())
    await h.accepted(assign())
    await h.accepted(fund())
    await h.accepted(allocate("alloc-1", 1_000))
    await h.accepted(allocate("alloc-r", 1_000, task_id=None))
    spend = cmd(c.RecordSpending, STAFF, expenditure_id="exp-1", allocation_id="alloc-1", amount_fen=600,
                payee="电气公司", purpose="安装")
    await h.once(spend)
    assert (await h.load(Fund, D, "fund-2026")).spent_fen == 600
    assert (await h.rejected(spend.model_copy(update={"expenditure_id": "exp-2", "amount_fen": 401}),
                             "over_budget")).subject == "exp-2"
    assert (await h.rejected(spend.model_copy(update={"expenditure_id": "exp-3", "allocation_id": "alloc-x"}),
                             "not_found")).subject == "alloc-x"
    assert (await h.rejected(spend.model_copy(update={"expenditure_id": "exp-4", "allocation_id": "alloc-r"}),
                             "invalid_state")).subject == "alloc-r"
    await h.rejected(spend.model_copy(update={"expenditure_id": "exp-5"}), "not_authorised", acts_for=["org-other"])
    assert (await h.load(Fund, D, "fund-2026")).spent_fen == 600


@covers(c.RecordSpending, "accepted", "refused")
async def test_record_spending_from_an_allocation_made_before_allocation_ids_were_claimed(h, facts):
    await h.accepted(register())
    await h.accepted(assign())
    await h.accepted(fund())
    resolution, task, stored = (await h.load(Resolution, D, "res-1"), await h.load(Task, D, "task-1"),
                                await h.load(Fund, D, "fund-2026"))
    stored.allocate("alloc-old", 1_000, "建设", resolution=resolution, task=task, resolution_community="xikang")
    await store_as_before(h, stored, task)  # the claim the allocation returned is not saved
    spend = cmd(c.RecordSpending, STAFF, expenditure_id="exp-1", allocation_id="alloc-old", amount_fen=300,
                payee="电气公司", purpose="安装")
    await h.rejected(spend, "not_found")
    facts.funds_of_allocation["alloc-old"] = "fund-2026"
    await h.accepted(spend.model_copy(update={"expenditure_id": "exp-2"}))
    assert (await h.load(Fund, D, "fund-2026")).spent_fen == 300


# -- rating and closing ---------------------------------------------------------------------


@covers(c.RecordSatisfaction, "accepted", "resent", "refused")
async def test_record_satisfaction_once_every_task_passed(h):
    await h.accepted(register())
    assert (await h.rejected(rate(), "invalid_state")).subject == "res-1"  # no task yet
    await task_at(h, "passed")
    await task_at(h, "completed", "task-2")
    await h.rejected(rate(), "invalid_state")
    await h.accepted(inspect("insp-2", "task-2"))
    await h.once(rate())
    assert (await h.load(Resolution, D, "res-1")).rating_ids == ["rating-1"]
    assert (await h.rejected(rate(), "duplicate")).subject == "res-1"


@covers(c.CloseResolution, "accepted", "resent", "refused")
async def test_close_resolution(h):
    await h.accepted(register())
    await task_at(h, "accepted")
    refused = await h.rejected(close(), "invalid_state")
    assert "1 task(s) have not passed" in refused.message
    await h.accepted(cmd(c.CompleteTask, STAFF, task_id="task-1", summary="完成"))
    await h.accepted(inspect("insp-1"))
    await h.once(close())
    assert (await h.load(Resolution, D, "res-1")).closed_reason == "delivered"
    assert "is closed" in (await h.rejected(close(), "invalid_state")).message


@covers(c.CloseResolution, "accepted", "refused")
async def test_a_resolution_registered_before_it_recorded_its_tasks_counts_them_from_the_read_model(h, facts):
    resolution = legacy_resolution()
    old_task = Task(district=D, task_id="task-old", resolution_id="res-old", council_id="council-xikang",
                    implementer=IMPLEMENTER, description="旧任务", acceptance_standards=["可用"],
                    due_at=T0 + timedelta(days=30), budget_fen=None, assigned_at=T0)
    await store_as_before(h, resolution, old_task)
    facts.task_ids["res-old"] = ["task-old"]
    assert (await h.load(Resolution, D, "res-old")).task_ids is None
    await h.rejected(close("res-old"), "invalid_state")  # task-old has not passed
    for step in (cmd(c.AcceptTask, STAFF, task_id="task-old"),
                 cmd(c.CompleteTask, STAFF, task_id="task-old", summary="完成"),
                 inspect("insp-old", "task-old", "res-old")):
        await h.accepted(step)
    await h.accepted(rate(resolution_id="res-old"))
    # A task assigned now is in the read model too (the service's projection): it is
    # counted, though the old resolution keeps no list of its own.
    await h.accepted(assign("task-new", "res-old"))
    assert (await h.load(Resolution, D, "res-old")).task_ids is None
    facts.task_ids["res-old"].append("task-new")
    assert "1 task(s)" in (await h.rejected(close("res-old"), "invalid_state")).message
    await h.accepted(close("res-old", reason="abandoned"))


@covers(c.RequestReconsultation, "accepted", "resent", "refused")
async def test_request_reconsultation(h):
    await h.accepted(register())
    await task_at(h, "accepted")
    problem = cmd(c.RequestReconsultation, SUPERVISOR, resolution_id="res-1", task_id="task-1",
                  problem="选址距住户窗户不足8米")
    await h.once(problem)
    assert (await h.topics())[-2].endswith("Resolution.ReconsultationRequested")
    assert (await h.rejected(problem.model_copy(update={"task_id": "task-x"}), "not_found")).subject == "task-x"
    await h.accepted(close(reason="abandoned"))
    assert (await h.rejected(problem, "invalid_state")).subject == "res-1"
