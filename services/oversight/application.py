"""Oversight command handlers, one per command: load, call the aggregate, save.

Every save goes through :func:`persist`, which also updates the read models in the
same transaction, so queries and the scheduler never see events without their rows.
"""

from __future__ import annotations

from typing import Any, TypeVar

import asyncpg
from eventsourcing.domain import Aggregate

from contracts import oversight as c
from contracts.common import Command, RejectionReason, Role
from contracts.envelope import Envelope
from contracts.permissions import Party
from contracts.proposals import Decision, ProposalDecided
from yishi.clock import Clock
from yishi.commands import CommandBus, CommandContext
from yishi.repository import AggregateNotFound, Repository
from yishi.rules import Rejected, within_horizon
from yishi.store import Metadata

from services.oversight import projections
from services.oversight.domain import Fund, ReminderPolicy, Resolution, Task, resolution_id_for

SYSTEM_ACTOR = "yishi-oversight"
A = TypeVar("A", bound=Aggregate)


async def persist(repository: Repository, conn: asyncpg.Connection, meta: Metadata, *aggregates: Aggregate) -> None:
    """Save ``aggregates`` and update the read models, in ``conn``'s transaction."""
    events = await repository.save(*aggregates, meta=meta, conn=conn)
    await projections.apply(conn, meta, events)


async def _save(ctx: CommandContext, cmd: Command, *aggregates: Aggregate) -> None:
    await persist(ctx.repository, ctx.conn, ctx.meta(cmd.actor, cmd.district), *aggregates)


async def _load(ctx: CommandContext, cls: type[A], district: str, public_id: str, what: str) -> A:
    """An aggregate of this district, or ``not_found`` (another district's ids included)."""
    try:
        return await ctx.repository.get(cls, cls.create_id(district, public_id), conn=ctx.conn)
    except AggregateNotFound:
        raise Rejected(RejectionReason.NOT_FOUND, f"no {what} {public_id}", public_id) from None


async def _task(ctx: CommandContext, cmd: Any) -> Task:
    """The task ``cmd`` addresses, once its caller is known to act for the task's party."""
    task = await _load(ctx, Task, cmd.district, cmd.task_id, "task")
    ctx.authorise_party(cmd, task.parties, cmd.task_id)
    return task


async def _resolution(ctx: CommandContext, cmd: Any) -> Resolution:
    """The resolution ``cmd`` addresses, once its caller is known to act for its council."""
    resolution = await _load(ctx, Resolution, cmd.district, cmd.resolution_id, "resolution")
    ctx.authorise_party(cmd, resolution.parties, cmd.resolution_id)
    return resolution


async def _exists(ctx: CommandContext, cls: type[Aggregate], *key: str) -> bool:
    return await ctx.repository.exists(cls.create_id(*key), conn=ctx.conn)


def _dumps(items: Any) -> list[dict]:
    return [i.model_dump(mode="json") for i in items]


async def register_resolution_from_decision(repository: Repository, clock: Clock, conn: asyncpg.Connection,
                                            decided: ProposalDecided, envelope: Envelope) -> None:
    """An adopted proposal becomes a resolution; its id is derived from the proposal, so
    however often the decision is delivered (or re-published) there is one resolution."""
    if decided.decision != Decision.ADOPTED:
        return
    resolution_id = resolution_id_for(decided.proposal_id)
    if await repository.exists(Resolution.create_id(decided.district, resolution_id), conn=conn):
        return
    await projections.lock_council(conn, decided.district, decided.council_id)
    resolution = Resolution(
        district=decided.district, resolution_id=resolution_id, proposal_id=decided.proposal_id,
        council_id=decided.council_id, vote_id=decided.vote_id, catalogue_item_id=decided.catalogue_item_id,
        community_id=await projections.community_of(conn, decided.district, decided.council_id),
        title=decided.title, text=decided.resolution or decided.title, budget_fen=None,
    )
    meta = Metadata(actor=SYSTEM_ACTOR, actor_role=str(Role.SYSTEM), district=decided.district,
                    correlation_id=envelope.correlation_id, causation_id=envelope.id, occurred_at=clock.now())
    await persist(repository, conn, meta, resolution)


def build_bus(repository: Repository, clock: Clock) -> CommandBus:
    """The oversight command bus with every handler registered."""
    bus = CommandBus("oversight", repository, clock)

    @bus.handles(c.RegisterResolution)
    async def register_resolution(cmd: c.RegisterResolution, ctx: CommandContext) -> str:
        if await _exists(ctx, Resolution, cmd.district, cmd.resolution_id):
            raise Rejected(RejectionReason.ALREADY_EXISTS, f"resolution {cmd.resolution_id} exists",
                           cmd.resolution_id)
        ctx.authorise_party(cmd, {Party.COUNCIL: cmd.council_id}, cmd.resolution_id)
        await projections.lock_council(ctx.conn, cmd.district, cmd.council_id)
        resolution = Resolution(
            district=cmd.district, resolution_id=cmd.resolution_id, proposal_id=cmd.proposal_id,
            council_id=cmd.council_id, vote_id=None, catalogue_item_id=cmd.catalogue_item_id,
            community_id=await projections.community_of(ctx.conn, cmd.district, cmd.council_id),
            title=cmd.title, text=cmd.text, budget_fen=cmd.budget_fen)
        await _save(ctx, cmd, resolution)
        return cmd.resolution_id

    @bus.handles(c.EstablishFund)
    async def establish_fund(cmd: c.EstablishFund, ctx: CommandContext) -> str:
        taken = await ctx.conn.fetchval(
            "SELECT fund_id FROM ov_funds WHERE district=$1 AND (fund_id=$2 OR (community_id=$3 AND year=$4))",
            cmd.district, cmd.fund_id, cmd.community_id, cmd.year)
        if taken or await _exists(ctx, Fund, cmd.district, cmd.fund_id):
            raise Rejected(RejectionReason.ALREADY_EXISTS,
                           f"fund {taken or cmd.fund_id} exists (one fund per community and year)", cmd.fund_id)
        await _save(ctx, cmd, Fund(district=cmd.district, fund_id=cmd.fund_id, community_id=cmd.community_id,
                                   year=cmd.year, amount_fen=cmd.amount_fen))
        return cmd.fund_id

    @bus.handles(c.SetReminderPolicy)
    async def set_reminder_policy(cmd: c.SetReminderPolicy, ctx: CommandContext) -> str:
        if cmd.scope == c.PolicyScope.RESOLUTION:
            resolution = await _load(ctx, Resolution, cmd.district, cmd.scope_id, "resolution")
            ctx.authorise_party(cmd, resolution.parties, cmd.scope_id)
        else:
            ctx.authorise_party(cmd, {Party.COUNCIL: cmd.scope_id}, cmd.scope_id)
        values = dict(not_accepted_days=cmd.not_accepted_days, stall_days=cmd.stall_days,
                      deadline_warning_days=cmd.deadline_warning_days,
                      escalate_after_days=cmd.escalate_after_days, supervisor_id=cmd.supervisor_id)
        policy_id = ReminderPolicy.create_id(cmd.district, str(cmd.scope), cmd.scope_id)
        try:
            policy = await ctx.repository.get(ReminderPolicy, policy_id, conn=ctx.conn)
            policy.change(**values)
        except AggregateNotFound:
            policy = ReminderPolicy(district=cmd.district, scope=str(cmd.scope), scope_id=cmd.scope_id, **values)
        await _save(ctx, cmd, policy)
        return cmd.scope_id

    @bus.handles(c.AssignTask)
    async def assign_task(cmd: c.AssignTask, ctx: CommandContext) -> str:
        resolution = await _load(ctx, Resolution, cmd.district, cmd.resolution_id, "resolution")
        ctx.authorise_party(cmd, resolution.parties, cmd.resolution_id)
        if resolution.closed:
            raise Rejected(RejectionReason.INVALID_STATE, f"resolution {cmd.resolution_id} is closed",
                           cmd.resolution_id)
        if await _exists(ctx, Task, cmd.district, cmd.task_id):
            raise Rejected(RejectionReason.ALREADY_EXISTS, f"task {cmd.task_id} exists", cmd.task_id)
        now = ctx.clock.now()
        if cmd.due_at <= now:
            raise Rejected(RejectionReason.DEADLINE_PASSED, "the deadline must be in the future", cmd.task_id)
        within_horizon(cmd.due_at, now, "due_at", cmd.task_id)
        task = Task(district=cmd.district, task_id=cmd.task_id, resolution_id=cmd.resolution_id,
                    council_id=resolution.council_id, implementer=cmd.implementer.model_dump(mode="json"),
                    description=cmd.description, acceptance_standards=list(cmd.acceptance_standards),
                    due_at=cmd.due_at, budget_fen=cmd.budget_fen, assigned_at=now)
        await _save(ctx, cmd, task)
        return cmd.task_id

    @bus.handles(c.AcceptTask)
    async def accept_task(cmd: c.AcceptTask, ctx: CommandContext) -> str:
        task = await _task(ctx, cmd)
        task.accept(cmd.actor.id, ctx.clock.now())
        await _save(ctx, cmd, task)
        return cmd.task_id

    @bus.handles(c.ReportProgress)
    async def report_progress(cmd: c.ReportProgress, ctx: CommandContext) -> str:
        task = await _task(ctx, cmd)
        task.report_progress(cmd.percent_complete, cmd.summary, _dumps(cmd.evidence), ctx.clock.now())
        await _save(ctx, cmd, task)
        return cmd.task_id

    @bus.handles(c.CompleteTask)
    async def complete_task(cmd: c.CompleteTask, ctx: CommandContext) -> str:
        task = await _task(ctx, cmd)
        task.complete(cmd.summary, _dumps(cmd.evidence), ctx.clock.now())
        await _save(ctx, cmd, task)
        return cmd.task_id

    @bus.handles(c.EscalateTask)
    async def escalate_task(cmd: c.EscalateTask, ctx: CommandContext) -> str:
        task = await _task(ctx, cmd)
        task.escalate(str(cmd.to_level), cmd.to_authority_id, cmd.reason)
        await _save(ctx, cmd, task)
        return cmd.task_id

    @bus.handles(c.RecordInspection)
    async def record_inspection(cmd: c.RecordInspection, ctx: CommandContext) -> str:
        details = dict(inspection_id=cmd.inspection_id, inspector_ids=list(cmd.inspector_ids),
                       aspects=[str(a) for a in cmd.aspects], finding=str(cmd.finding), notes=cmd.notes,
                       evidence=_dumps(cmd.evidence))
        if cmd.task_id is None:
            resolution = await _resolution(ctx, cmd)
            resolution.record_inspection(**details)
            await _save(ctx, cmd, resolution)
            return cmd.resolution_id
        task = await _load(ctx, Task, cmd.district, cmd.task_id, "task")
        if task.resolution_id != cmd.resolution_id:
            raise Rejected(RejectionReason.NOT_FOUND, f"no task {cmd.task_id} in {cmd.resolution_id}", cmd.task_id)
        ctx.authorise_party(cmd, task.parties, cmd.task_id)
        task.inspect(**details, now=ctx.clock.now())
        await _save(ctx, cmd, task)
        return cmd.task_id

    @bus.handles(c.ScheduleFollowUpInspection)
    async def schedule_follow_up_inspection(cmd: c.ScheduleFollowUpInspection, ctx: CommandContext) -> str:
        task = await _task(ctx, cmd)
        task.schedule_follow_up(cmd.inspection_id, cmd.scheduled_for, cmd.reason, ctx.clock.now())
        await _save(ctx, cmd, task)
        return cmd.task_id

    @bus.handles(c.AllocateFunds)
    async def allocate_funds(cmd: c.AllocateFunds, ctx: CommandContext) -> str:
        fund = await _load(ctx, Fund, cmd.district, cmd.fund_id, "fund")
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
            task = await _load(ctx, Task, cmd.district, cmd.task_id, "task")
            if task.resolution_id != cmd.resolution_id:
                raise Rejected(RejectionReason.NOT_FOUND, f"no task {cmd.task_id} in {cmd.resolution_id}",
                               cmd.task_id)
            # The task's budget holds across funds because the task records the allocation
            # too: both streams are appended with their expected versions in one transaction.
            task.allocate(cmd.allocation_id, cmd.fund_id, cmd.amount_fen)
            changed.append(task)
        fund.allocate(cmd.allocation_id, cmd.resolution_id, cmd.task_id, cmd.amount_fen, cmd.purpose)
        await _save(ctx, cmd, *changed)
        return cmd.allocation_id

    @bus.handles(c.RecordSpending)
    async def record_spending(cmd: c.RecordSpending, ctx: CommandContext) -> str:
        fund_id = await ctx.conn.fetchval("SELECT fund_id FROM ov_allocations WHERE district=$1 AND allocation_id=$2",
                                          cmd.district, cmd.allocation_id)
        if fund_id is None:
            raise Rejected(RejectionReason.NOT_FOUND, f"no allocation {cmd.allocation_id}", cmd.allocation_id)
        fund = await _load(ctx, Fund, cmd.district, fund_id, "fund")
        task_id = fund.allocations.get(cmd.allocation_id, {}).get("task_id")
        if task_id is not None:  # without a task, spend() refuses: every expenditure is a task's
            task = await _load(ctx, Task, cmd.district, task_id, "task")
            ctx.authorise_party(cmd, task.parties, cmd.expenditure_id)
        fund.spend(cmd.expenditure_id, cmd.allocation_id, cmd.amount_fen, cmd.payee, cmd.purpose,
                   cmd.receipt.model_dump(mode="json") if cmd.receipt else None)
        await _save(ctx, cmd, fund)
        return cmd.expenditure_id

    @bus.handles(c.RecordSatisfaction)
    async def record_satisfaction(cmd: c.RecordSatisfaction, ctx: CommandContext) -> str:
        resolution = await _resolution(ctx, cmd)
        total, passed = await _task_counts(ctx, cmd.district, cmd.resolution_id)
        resolution.rate_satisfaction(cmd.rating_id, cmd.review_meeting_id, cmd.year, cmd.satisfied,
                                     cmd.basically_satisfied, cmd.dissatisfied, cmd.comments,
                                     tasks_delivered=total > 0 and total == passed)
        await _save(ctx, cmd, resolution)
        return cmd.resolution_id

    @bus.handles(c.CloseResolution)
    async def close_resolution(cmd: c.CloseResolution, ctx: CommandContext) -> str:
        resolution = await _resolution(ctx, cmd)
        total, passed = await _task_counts(ctx, cmd.district, cmd.resolution_id)
        resolution.close(str(cmd.reason), cmd.summary, open_tasks=total - passed)
        await _save(ctx, cmd, resolution)
        return cmd.resolution_id

    @bus.handles(c.RequestReconsultation)
    async def request_reconsultation(cmd: c.RequestReconsultation, ctx: CommandContext) -> str:
        resolution = await _resolution(ctx, cmd)
        if cmd.task_id is not None:
            await _load(ctx, Task, cmd.district, cmd.task_id, "task")
        resolution.request_reconsultation(cmd.task_id, cmd.problem)
        await _save(ctx, cmd, resolution)
        return cmd.resolution_id

    return bus


async def _task_counts(ctx: CommandContext, district: str, resolution_id: str) -> tuple[int, int]:
    row = await ctx.conn.fetchrow(
        "SELECT count(*) AS total, count(*) FILTER (WHERE status = 'passed') AS passed FROM ov_tasks"
        " WHERE district=$1 AND resolution_id=$2", district, resolution_id)
    return row["total"], row["passed"]
