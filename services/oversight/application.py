"""Oversight command handlers, one per command: load, call the aggregate, save.

Every save goes through :meth:`yishi.commands.CommandContext.save`, which also updates
the read models (:func:`services.oversight.projections.project`, the bus's hook) in the
same transaction, so queries and the scheduler never see events without their rows.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import Aggregate

from contracts import oversight as c
from contracts.common import RejectionReason
from contracts.permissions import Party
from yishi.clock import Clock
from yishi.commands import CommandBus, CommandContext, Projection
from yishi.repository import Repository
from yishi.rules import Rejected, within_horizon

from services.oversight import projections
from services.oversight.consumers import RegisterDecidedResolution
from services.oversight.domain import Fund, ReminderPolicy, Resolution, Task, resolution_id_for

async def _task(ctx: CommandContext, cmd: Any) -> Task:
    """The task ``cmd`` addresses, once its caller is known to act for the task's party."""
    task = await ctx.load(Task, cmd.district, cmd.task_id)
    ctx.authorise_party(cmd, task.parties, cmd.task_id)
    return task


async def _resolution(ctx: CommandContext, cmd: Any) -> Resolution:
    """The resolution ``cmd`` addresses, once its caller is known to act for its council."""
    resolution = await ctx.load(Resolution, cmd.district, cmd.resolution_id)
    ctx.authorise_party(cmd, resolution.parties, cmd.resolution_id)
    return resolution


def _dumps(items: Any) -> list[dict]:
    return [i.model_dump(mode="json") for i in items]


def build_bus(repository: Repository, clock: Clock, *,
              project: Projection | None = projections.project) -> CommandBus:
    """The oversight command bus with every handler registered; ``project`` keeps the
    read models (None: none, for tests of the handlers alone)."""
    bus = CommandBus("oversight", repository, clock, project=project)

    @bus.handles(c.RegisterResolution)
    async def register_resolution(cmd: c.RegisterResolution, ctx: CommandContext) -> str:
        await ctx.ensure_new(Resolution, cmd.district, cmd.resolution_id)
        ctx.authorise_party(cmd, {Party.COUNCIL: cmd.council_id}, cmd.resolution_id)
        await projections.lock_council(ctx.conn, cmd.district, cmd.council_id)
        resolution = Resolution(
            district=cmd.district, resolution_id=cmd.resolution_id, proposal_id=cmd.proposal_id,
            council_id=cmd.council_id, vote_id=None, catalogue_item_id=cmd.catalogue_item_id,
            community_id=await projections.community_of(ctx.conn, cmd.district, cmd.council_id),
            title=cmd.title, text=cmd.text, budget_fen=cmd.budget_fen)
        await ctx.save(cmd, resolution)
        return cmd.resolution_id

    @bus.handles(c.EstablishFund)
    async def establish_fund(cmd: c.EstablishFund, ctx: CommandContext) -> str:
        taken = await ctx.conn.fetchval(
            "SELECT fund_id FROM ov_funds WHERE district=$1 AND (fund_id=$2 OR (community_id=$3 AND year=$4))",
            cmd.district, cmd.fund_id, cmd.community_id, cmd.year)
        if taken or await ctx.repository.exists(Fund.create_id(cmd.district, cmd.fund_id), conn=ctx.conn):
            raise Rejected(RejectionReason.ALREADY_EXISTS,
                           f"fund {taken or cmd.fund_id} exists (one fund per community and year)", cmd.fund_id)
        await ctx.save(cmd, Fund(district=cmd.district, fund_id=cmd.fund_id, community_id=cmd.community_id,
                                   year=cmd.year, amount_fen=cmd.amount_fen))
        return cmd.fund_id

    @bus.handles(c.SetReminderPolicy)
    async def set_reminder_policy(cmd: c.SetReminderPolicy, ctx: CommandContext) -> str:
        if cmd.scope == c.PolicyScope.RESOLUTION:
            resolution = await ctx.load(Resolution, cmd.district, cmd.scope_id)
            ctx.authorise_party(cmd, resolution.parties, cmd.scope_id)
        else:
            ctx.authorise_party(cmd, {Party.COUNCIL: cmd.scope_id}, cmd.scope_id)
        values = dict(not_accepted_days=cmd.not_accepted_days, stall_days=cmd.stall_days,
                      deadline_warning_days=cmd.deadline_warning_days,
                      escalate_after_days=cmd.escalate_after_days, supervisor_id=cmd.supervisor_id)
        policy = await ctx.find(ReminderPolicy, cmd.district, str(cmd.scope), cmd.scope_id)
        if policy is None:
            policy = ReminderPolicy(district=cmd.district, scope=str(cmd.scope), scope_id=cmd.scope_id, **values)
        else:
            policy.change(**values)
        await ctx.save(cmd, policy)
        return cmd.scope_id

    @bus.handles(c.AssignTask)
    async def assign_task(cmd: c.AssignTask, ctx: CommandContext) -> str:
        resolution = await ctx.load(Resolution, cmd.district, cmd.resolution_id)
        ctx.authorise_party(cmd, resolution.parties, cmd.resolution_id)
        if resolution.closed:
            raise Rejected(RejectionReason.INVALID_STATE, f"resolution {cmd.resolution_id} is closed",
                           cmd.resolution_id)
        await ctx.ensure_new(Task, cmd.district, cmd.task_id)
        now = ctx.clock.now()
        if cmd.due_at <= now:
            raise Rejected(RejectionReason.DEADLINE_PASSED, "the deadline must be in the future", cmd.task_id)
        within_horizon(cmd.due_at, now, "due_at", cmd.task_id)
        task = Task(district=cmd.district, task_id=cmd.task_id, resolution_id=cmd.resolution_id,
                    council_id=resolution.council_id, implementer=cmd.implementer.model_dump(mode="json"),
                    description=cmd.description, acceptance_standards=list(cmd.acceptance_standards),
                    due_at=cmd.due_at, budget_fen=cmd.budget_fen, assigned_at=now)
        await ctx.save(cmd, task)
        return cmd.task_id

    @bus.handles(c.AcceptTask)
    async def accept_task(cmd: c.AcceptTask, ctx: CommandContext) -> str:
        task = await _task(ctx, cmd)
        task.accept(cmd.actor.id, ctx.clock.now())
        await ctx.save(cmd, task)
        return cmd.task_id

    @bus.handles(c.ReportProgress)
    async def report_progress(cmd: c.ReportProgress, ctx: CommandContext) -> str:
        task = await _task(ctx, cmd)
        task.report_progress(cmd.percent_complete, cmd.summary, _dumps(cmd.evidence), ctx.clock.now())
        await ctx.save(cmd, task)
        return cmd.task_id

    @bus.handles(c.CompleteTask)
    async def complete_task(cmd: c.CompleteTask, ctx: CommandContext) -> str:
        task = await _task(ctx, cmd)
        task.complete(cmd.summary, _dumps(cmd.evidence), ctx.clock.now())
        await ctx.save(cmd, task)
        return cmd.task_id

    @bus.handles(c.EscalateTask)
    async def escalate_task(cmd: c.EscalateTask, ctx: CommandContext) -> str:
        task = await _task(ctx, cmd)
        task.escalate(str(cmd.to_level), cmd.to_authority_id, cmd.reason)
        await ctx.save(cmd, task)
        return cmd.task_id

    @bus.handles(c.RecordInspection)
    async def record_inspection(cmd: c.RecordInspection, ctx: CommandContext) -> str:
        details = dict(inspection_id=cmd.inspection_id, inspector_ids=list(cmd.inspector_ids),
                       aspects=[str(a) for a in cmd.aspects], finding=str(cmd.finding), notes=cmd.notes,
                       evidence=_dumps(cmd.evidence))
        if cmd.task_id is None:
            resolution = await _resolution(ctx, cmd)
            resolution.record_inspection(**details)
            await ctx.save(cmd, resolution)
            return cmd.resolution_id
        task = await ctx.load(Task, cmd.district, cmd.task_id)
        if task.resolution_id != cmd.resolution_id:
            raise Rejected(RejectionReason.NOT_FOUND, f"no task {cmd.task_id} in {cmd.resolution_id}", cmd.task_id)
        ctx.authorise_party(cmd, task.parties, cmd.task_id)
        task.inspect(**details, now=ctx.clock.now())
        await ctx.save(cmd, task)
        return cmd.task_id

    @bus.handles(c.ScheduleFollowUpInspection)
    async def schedule_follow_up_inspection(cmd: c.ScheduleFollowUpInspection, ctx: CommandContext) -> str:
        task = await _task(ctx, cmd)
        task.schedule_follow_up(cmd.inspection_id, cmd.scheduled_for, cmd.reason, ctx.clock.now())
        await ctx.save(cmd, task)
        return cmd.task_id

    @bus.handles(c.AllocateFunds)
    async def allocate_funds(cmd: c.AllocateFunds, ctx: CommandContext) -> str:
        fund = await ctx.load(Fund, cmd.district, cmd.fund_id)
        resolution = await _resolution(ctx, cmd)
        if resolution.closed:
            raise Rejected(RejectionReason.INVALID_STATE, f"resolution {cmd.resolution_id} is closed",
                           cmd.allocation_id)
        community_id = await ctx.conn.fetchval(  # the read model: it learns late-arriving councils
            "SELECT community_id FROM ov_resolutions WHERE district=$1 AND resolution_id=$2",
            cmd.district, cmd.resolution_id)
        if community_id and community_id != fund.community_id:
            raise Rejected(RejectionReason.INVALID_STATE,
                           f"fund {cmd.fund_id} belongs to another community than the resolution", cmd.allocation_id)
        changed: list[Aggregate] = [fund]
        if cmd.task_id is not None:
            task = await ctx.load(Task, cmd.district, cmd.task_id)
            if task.resolution_id != cmd.resolution_id:
                raise Rejected(RejectionReason.NOT_FOUND, f"no task {cmd.task_id} in {cmd.resolution_id}",
                               cmd.task_id)
            # The task's budget holds across funds because the task records the allocation
            # too: both streams are appended with their expected versions in one transaction.
            task.allocate(cmd.allocation_id, cmd.fund_id, cmd.amount_fen)
            changed.append(task)
        fund.allocate(cmd.allocation_id, cmd.resolution_id, cmd.task_id, cmd.amount_fen, cmd.purpose)
        await ctx.save(cmd, *changed)
        return cmd.allocation_id

    @bus.handles(c.RecordSpending)
    async def record_spending(cmd: c.RecordSpending, ctx: CommandContext) -> str:
        fund_id = await ctx.conn.fetchval("SELECT fund_id FROM ov_allocations WHERE district=$1 AND allocation_id=$2",
                                          cmd.district, cmd.allocation_id)
        if fund_id is None:
            raise Rejected(RejectionReason.NOT_FOUND, f"no allocation {cmd.allocation_id}", cmd.allocation_id)
        fund = await ctx.load(Fund, cmd.district, fund_id)
        task_id = fund.allocations.get(cmd.allocation_id, {}).get("task_id")
        if task_id is not None:  # without a task, spend() refuses: every expenditure is a task's
            task = await ctx.load(Task, cmd.district, task_id)
            ctx.authorise_party(cmd, task.parties, cmd.expenditure_id)
        fund.spend(cmd.expenditure_id, cmd.allocation_id, cmd.amount_fen, cmd.payee, cmd.purpose,
                   cmd.receipt.model_dump(mode="json") if cmd.receipt else None)
        await ctx.save(cmd, fund)
        return cmd.expenditure_id

    @bus.handles(c.RecordSatisfaction)
    async def record_satisfaction(cmd: c.RecordSatisfaction, ctx: CommandContext) -> str:
        resolution = await _resolution(ctx, cmd)
        total, passed = await _task_counts(ctx, cmd.district, cmd.resolution_id)
        resolution.rate_satisfaction(cmd.rating_id, cmd.review_meeting_id, cmd.year, cmd.satisfied,
                                     cmd.basically_satisfied, cmd.dissatisfied, cmd.comments,
                                     tasks_delivered=total > 0 and total == passed)
        await ctx.save(cmd, resolution)
        return cmd.resolution_id

    @bus.handles(c.CloseResolution)
    async def close_resolution(cmd: c.CloseResolution, ctx: CommandContext) -> str:
        resolution = await _resolution(ctx, cmd)
        total, passed = await _task_counts(ctx, cmd.district, cmd.resolution_id)
        resolution.close(str(cmd.reason), cmd.summary, open_tasks=total - passed)
        await ctx.save(cmd, resolution)
        return cmd.resolution_id

    @bus.handles(c.RequestReconsultation)
    async def request_reconsultation(cmd: c.RequestReconsultation, ctx: CommandContext) -> str:
        resolution = await _resolution(ctx, cmd)
        if cmd.task_id is not None:
            await ctx.load(Task, cmd.district, cmd.task_id)
        resolution.request_reconsultation(cmd.task_id, cmd.problem)
        await ctx.save(cmd, resolution)
        return cmd.resolution_id

    # -- the platform's own, in reaction to other services' events (:mod:`.consumers`) --

    @bus.handles(RegisterDecidedResolution, internal=True)
    async def register_decided_resolution(cmd: RegisterDecidedResolution, ctx: CommandContext) -> str:
        """An adopted proposal becomes a resolution. Its id is derived from the proposal, so
        however often the decision is delivered there is one resolution: a redelivery is
        answered from the stored reply, a re-publication (another event id) is refused
        ``already_exists``, recorded."""
        resolution_id = resolution_id_for(cmd.proposal_id)
        await ctx.ensure_new(Resolution, cmd.district, resolution_id)
        await projections.lock_council(ctx.conn, cmd.district, cmd.council_id)
        resolution = Resolution(
            district=cmd.district, resolution_id=resolution_id, proposal_id=cmd.proposal_id,
            council_id=cmd.council_id, vote_id=cmd.vote_id, catalogue_item_id=cmd.catalogue_item_id,
            community_id=await projections.community_of(ctx.conn, cmd.district, cmd.council_id),
            title=cmd.title, text=cmd.text, budget_fen=None)
        await ctx.save(cmd, resolution)
        return resolution_id

    return bus


async def _task_counts(ctx: CommandContext, district: str, resolution_id: str) -> tuple[int, int]:
    row = await ctx.conn.fetchrow(
        "SELECT count(*) AS total, count(*) FILTER (WHERE status = 'passed') AS passed FROM ov_tasks"
        " WHERE district=$1 AND resolution_id=$2", district, resolution_id)
    return row["total"], row["passed"]
