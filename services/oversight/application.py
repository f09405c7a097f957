"""Oversight command handlers, one per command: load, call the aggregate, save.

The rules are the aggregates' (:mod:`services.oversight.domain`); a handler only loads
what they need and saves what they changed. Every save goes through
:meth:`yishi.commands.CommandContext.save`, which also updates the read models
(:func:`services.oversight.projections.project`, the bus's hook) in the same
transaction, so queries and the scheduler never see events without their rows.

What a handler reads from outside the event store comes through :class:`Facts`: what
oversight learns of councils from the proposals service's events, and records stored
before the write side kept them itself.
"""

from __future__ import annotations

from typing import Any, Protocol

import asyncpg

from contracts import oversight as c
from contracts.common import RejectionReason
from contracts.permissions import Party
from yishi.clock import Clock
from yishi.commands import CommandBus, CommandContext, Projection
from yishi.repository import Repository
from yishi.rules import Rejected

from services.oversight import projections
from services.oversight.consumers import RegisterDecidedResolution
from services.oversight.domain import (
    FUND_OF_ALLOCATION,
    FUND_OF_YEAR,
    Claim,
    Fund,
    ReminderPolicy,
    Resolution,
    Task,
    resolution_id_for,
    year_key,
)


class Facts(Protocol):
    """What the handlers read besides the event store (the PostgreSQL read models in the
    service, :class:`services.oversight.projections.ReadModelFacts`; a fake in tests)."""

    async def lock_council(self, conn: asyncpg.Connection, district: str, council_id: str) -> None:
        """Serialise registering a council's resolution with recording the council."""

    async def community_of(self, conn: asyncpg.Connection, district: str, council_id: str) -> str | None:
        """The community of a council, as the proposals service's ``CouncilFormed`` told
        it (None: not known yet)."""

    async def fund_of_year(self, conn: asyncpg.Connection, district: str, community_id: str,
                           year: int) -> str | None:
        """The fund a community has for ``year``, for funds established before the year
        was claimed on the write side."""

    async def fund_of_allocation(self, conn: asyncpg.Connection, district: str, allocation_id: str) -> str | None:
        """The fund of an allocation made before allocation ids were claimed."""

    async def task_ids_of(self, conn: asyncpg.Connection, district: str, resolution_id: str) -> list[str]:
        """The tasks of a resolution registered before resolutions recorded their tasks."""


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


def build_bus(repository: Repository, clock: Clock, *, project: Projection | None = projections.project,
              facts: Facts | None = None) -> CommandBus:
    """The oversight command bus with every handler registered; ``project`` keeps the
    read models (None: none, for tests of the handlers alone), ``facts`` is what the
    handlers read besides the event store (by default the read models)."""
    bus = CommandBus("oversight", repository, clock, project=project)
    known: Facts = facts or projections.ReadModelFacts()

    async def tasks_of(ctx: CommandContext, resolution: Resolution) -> list[Task]:
        """Every task of ``resolution``, from their streams."""
        ids = resolution.task_ids
        if ids is None:  # registered before resolutions recorded their tasks
            ids = await known.task_ids_of(ctx.conn, resolution.district, resolution.resolution_id)
        found = await ctx.repository.get_each(*((Task, Task.create_id(resolution.district, i)) for i in ids),
                                              conn=ctx.conn)
        return [task for task in found if task is not None]

    async def register(ctx: CommandContext, cmd: Any, resolution_id: str, vote_id: str | None,
                       budget_fen: int | None) -> str:
        """Register a resolution of ``cmd.council_id``, with the community the council is
        known to belong to so far."""
        await known.lock_council(ctx.conn, cmd.district, cmd.council_id)
        resolution = Resolution.register(
            district=cmd.district, resolution_id=resolution_id, proposal_id=cmd.proposal_id,
            council_id=cmd.council_id, vote_id=vote_id, catalogue_item_id=cmd.catalogue_item_id,
            community_id=await known.community_of(ctx.conn, cmd.district, cmd.council_id),
            title=cmd.title, text=cmd.text, budget_fen=budget_fen)
        await ctx.save(cmd, resolution)
        return resolution_id

    @bus.handles(c.RegisterResolution)
    async def register_resolution(cmd: c.RegisterResolution, ctx: CommandContext) -> str:
        await ctx.ensure_new(Resolution, cmd.district, cmd.resolution_id)
        ctx.authorise_party(cmd, {Party.COUNCIL: cmd.council_id}, cmd.resolution_id)
        return await register(ctx, cmd, cmd.resolution_id, None, cmd.budget_fen)

    @bus.handles(c.EstablishFund)
    async def establish_fund(cmd: c.EstablishFund, ctx: CommandContext) -> str:
        await ctx.ensure_new(Fund, cmd.district, cmd.fund_id)
        claim = await ctx.find(Claim, cmd.district, FUND_OF_YEAR, year_key(cmd.community_id, cmd.year))
        taken_by = claim.owner_id if claim is not None else await known.fund_of_year(
            ctx.conn, cmd.district, cmd.community_id, cmd.year)
        fund, year = Fund.establish(district=cmd.district, fund_id=cmd.fund_id, community_id=cmd.community_id,
                                    year=cmd.year, amount_fen=cmd.amount_fen, year_taken_by=taken_by)
        await ctx.save(cmd, fund, year)
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
        resolution = await _resolution(ctx, cmd)
        await ctx.ensure_new(Task, cmd.district, cmd.task_id)
        task = resolution.assign_task(cmd.task_id, cmd.implementer.model_dump(mode="json"), cmd.description,
                                      list(cmd.acceptance_standards), cmd.due_at, cmd.budget_fen, ctx.clock.now())
        await ctx.save(cmd, resolution, task)
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
        task.require_resolution(cmd.resolution_id)
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
        task = None if cmd.task_id is None else await ctx.load(Task, cmd.district, cmd.task_id)
        # A resolution registered before its council was known learns its community from
        # the council's CouncilFormed, a fact of the proposals service kept in a projection.
        community = resolution.community_id or await known.community_of(ctx.conn, cmd.district,
                                                                         resolution.council_id)
        claim = await ctx.find(Claim, cmd.district, FUND_OF_ALLOCATION, cmd.allocation_id)
        allocation = fund.allocate(cmd.allocation_id, cmd.amount_fen, cmd.purpose, resolution=resolution, task=task,
                                   resolution_community=community,
                                   taken_by=claim.owner_id if claim is not None else None)
        await ctx.save(cmd, fund, *([task] if task is not None else []), allocation)
        return cmd.allocation_id

    @bus.handles(c.RecordSpending)
    async def record_spending(cmd: c.RecordSpending, ctx: CommandContext) -> str:
        claim = await ctx.find(Claim, cmd.district, FUND_OF_ALLOCATION, cmd.allocation_id)
        fund_id = claim.owner_id if claim is not None else await known.fund_of_allocation(
            ctx.conn, cmd.district, cmd.allocation_id)
        if fund_id is None:
            raise Rejected(RejectionReason.NOT_FOUND, f"allocation {cmd.allocation_id} does not exist",
                           cmd.allocation_id)
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
        resolution.rate_satisfaction(cmd.rating_id, cmd.review_meeting_id, cmd.year, cmd.satisfied,
                                     cmd.basically_satisfied, cmd.dissatisfied, cmd.comments,
                                     tasks=await tasks_of(ctx, resolution))
        await ctx.save(cmd, resolution)
        return cmd.resolution_id

    @bus.handles(c.CloseResolution)
    async def close_resolution(cmd: c.CloseResolution, ctx: CommandContext) -> str:
        resolution = await _resolution(ctx, cmd)
        resolution.close(str(cmd.reason), cmd.summary, tasks=await tasks_of(ctx, resolution))
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
        return await register(ctx, cmd, resolution_id, cmd.vote_id, None)

    return bus
