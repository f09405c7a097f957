"""HTTP queries of oversight: resolutions, tasks, funds, the audit trail, the outcome
roadmap (成果运用路线图), yearly reviews and district statistics.

Everything is read from the read models; ids of another district are answered 404.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, Field

from contracts.common import Id
from contracts.oversight import ImplementerKind
from services.oversight import projections
from yishi.pagination import Page, PageQuery, page_query
from yishi.runtime import ServiceContext


class ReminderView(BaseModel):
    """One reminder of a task: for whom, and whether it reached them."""

    reminder_id: str
    kind: str
    step: int = Field(description="1 implementer, 2 supervisor, 3 the council above.")
    recipient_id: str
    due_at: datetime
    fired_at: datetime
    delivery: str = Field(description="``pending`` (not sent yet, or being retried), ``delivered`` (on at least "
                                      "one channel) or ``failed`` (dead-lettered, or ``no_recipient``).")
    channel: str | None
    failure_reason: str | None = Field(description="Why it failed (or why the last attempt did), e.g. "
                                                   "``no_recipient``: no subscription and no default contact.")


class TaskSummary(BaseModel):
    """A task as delivered so far (as listed)."""

    task_id: str
    resolution_id: str
    implementer_kind: str
    implementer_id: str
    implementer_name: str
    status: str = Field(description="``assigned``, ``accepted``, ``completed``, ``passed``; or ``stalled`` (no "
                                    "news for the policy's stall days) and ``escalated`` (to "
                                    "``escalation_level``), until the task moves on again.")
    stalled_at: datetime | None
    escalation_level: str | None
    escalated_to: str | None
    percent: int
    due_at: datetime
    budget_fen: int | None
    completed_at: datetime | None
    passed_at: datetime | None
    last_reminder_at: datetime | None


class TaskView(TaskSummary):
    """A task as delivered so far, with its reminders."""

    reminders: list[ReminderView] = Field(description="Every reminder fired, oldest first.")


class ResolutionSummary(BaseModel):
    """A resolution in a list."""

    resolution_id: str
    proposal_id: str
    council_id: str
    community_id: str | None
    vote_id: str | None
    title: str
    budget_fen: int | None
    status: str
    closed_reason: str | None
    registered_at: datetime
    closed_at: datetime | None


class ResolutionView(ResolutionSummary):
    """A resolution with its tasks."""

    tasks: list[TaskView]


class AllocationView(BaseModel):
    """Money set aside from a fund, and what was spent of it."""

    allocation_id: str
    resolution_id: str
    task_id: str | None
    amount_fen: int
    spent_fen: int


class FundView(BaseModel):
    """A community's yearly micro-project fund."""

    fund_id: str
    community_id: str
    year: int
    amount_fen: int
    allocated_fen: int
    spent_fen: int
    remaining_fen: int
    allocations: list[AllocationView]


class AuditStep(BaseModel):
    """One step of a resolution's record: who did what, when, and the full message."""

    occurred_at: datetime
    source: str
    type: str
    actor_id: str
    actor_role: str
    seat_id: str | None
    proposal_id: str | None
    vote_id: str | None
    task_id: str | None
    recipient_id: str | None = Field(description="Who the step was addressed to: the person or council a "
                                                 "reminder was for, or a notice reached (or failed to reach).")
    body: dict[str, Any]


class AuditTrail(BaseModel):
    """The full record of one resolution across services, in time order."""

    resolution_id: str
    proposal_id: str
    steps: list[AuditStep]


class StalledTask(BaseModel):
    """A task of a roadmap entry that is stalled or escalated."""

    task_id: str
    status: str
    escalation_level: str | None
    escalated_to: str | None


class RoadmapEntry(BaseModel):
    """A resolution on the public outcome roadmap."""

    resolution_id: str
    title: str
    status: str
    progress_percent: int
    tasks: int
    tasks_passed: int
    tasks_stalled: int
    tasks_escalated: int
    stalled_tasks: list[StalledTask] = Field(description="Its tasks that are stalled or escalated now.")
    registered_at: datetime
    closed_at: datetime | None


class Roadmap(BaseModel):
    """The outcome roadmap of one community."""

    community_id: str
    resolutions: list[RoadmapEntry]


class YearlyReview(BaseModel):
    """What a community's yearly review meeting looks at."""

    community_id: str
    year: int
    resolutions: int
    resolutions_completed: int
    tasks_passed: int
    tasks_passed_on_time: int
    ratings: int
    satisfaction_rate_percent: float | None
    fund_amount_fen: int | None
    allocated_fen: int
    spent_fen: int
    sessions_held: int = 0
    """Consultation sessions of the community's councils held in the year (minutes published)."""
    sessions_by_form: dict[str, int] = {}
    participant_times: int = 0
    """Attendance person-times of those councils' sessions in the year."""


class DistrictStatistics(BaseModel):
    """District-wide figures, from consumed events and oversight's own records.

    ``activities`` are consultation sessions held (a session counts once its minutes are
    published), ``participant_times`` attendance person-times. What these two guessed
    before sessions were recorded (closed votes and deliberated proposals; raising,
    seconding, objecting, statements and ballots) is kept apart under its own names."""

    proposals: int
    activities: int
    participant_times: int
    resolutions: int
    resolutions_completed: int
    spent_fen: int
    sessions_by_form: dict[str, int] = {}
    """``activities`` by consultation form."""
    votes_closed: int = 0
    proposals_deliberated: int = 0
    """Proposals with at least one statement on the record."""
    contributions: int = 0
    """Raising, seconding, objecting, statements and ballots, one each."""


def _found(row: asyncpg.Record | None, what: str, id_: str) -> asyncpg.Record:
    """``row``, or a 404 naming what was not found."""
    if row is None:
        raise HTTPException(404, f"no {what} {id_}")
    return row


def router(ctx: ServiceContext) -> APIRouter:
    """The query routes of oversight."""
    api = APIRouter(prefix="/{district}", tags=["oversight"],
                    responses={404: {"description": "No such record in this district."}})

    by_id = page_query(str)

    @api.get("/resolutions", response_model=Page[ResolutionSummary])
    async def list_resolutions(district: str, status: Id | None = None, community_id: Id | None = None,
                               council_id: Id | None = None, proposal_id: Id | None = None,
                               query: PageQuery = Depends(by_id)) -> Any:
        """The district's resolutions by id, a page at a time, optionally in one status
        (``open``, ``closed``), of one community, council or proposal."""
        rows = await projections.find_resolutions(
            ctx.pool, district, status=status, community_id=community_id, council_id=council_id,
            proposal_id=proposal_id, after=query.after_value, limit=query.fetch)
        return query.page([dict(r) for r in rows], lambda r: (r["resolution_id"],))

    @api.get("/tasks", response_model=Page[TaskSummary])
    async def list_tasks(district: str, implementer_id: Id | None = None,
                         implementer_kind: ImplementerKind | None = None, status: Id | None = None,
                         resolution_id: Id | None = None, community_id: Id | None = None,
                         query: PageQuery = Depends(by_id)) -> Any:
        """The district's tasks by id, a page at a time, optionally of one implementer (or
        kind of implementer), in one status (``assigned``, ``accepted``, ``completed``,
        ``passed`` …), of one resolution or of one community's resolutions."""
        rows = await projections.find_tasks(
            ctx.pool, district, implementer_id=implementer_id, implementer_kind=implementer_kind, status=status,
            resolution_id=resolution_id, community_id=community_id, after=query.after_value,
            limit=query.fetch)
        return query.page([dict(r) for r in rows], lambda r: (r["task_id"],))

    @api.get("/resolutions/{resolution_id}", response_model=ResolutionView)
    async def get_resolution(district: str, resolution_id: Id) -> Any:
        """A resolution and its tasks."""
        row = _found(await projections.resolution(ctx.pool, district, resolution_id), "resolution", resolution_id)
        tasks = await projections.tasks_of(ctx.pool, district, resolution_id)
        reminders = await _reminders(district, "resolution_id", resolution_id)
        return {**dict(row), "tasks": [{**dict(t), "reminders": reminders.get(t["task_id"], [])} for t in tasks]}

    @api.get("/tasks/{task_id}", response_model=TaskView)
    async def get_task(district: str, task_id: Id) -> Any:
        """One task, with its reminders and whether each reached anyone."""
        row = _found(await projections.task(ctx.pool, district, task_id), "task", task_id)
        return {**dict(row), "reminders": (await _reminders(district, "task_id", task_id)).get(task_id, [])}

    async def _reminders(district: str, column: Literal["task_id", "resolution_id"],
                         value: str) -> dict[str, list[dict]]:
        """The reminders of a task or of a resolution's tasks, by task, oldest first."""
        found: dict[str, list[dict]] = {}
        for r in await projections.reminders(ctx.pool, district, column, value):
            found.setdefault(r["task_id"], []).append(dict(r))
        return found

    @api.get("/funds/{fund_id}", response_model=FundView)
    async def get_fund(district: str, fund_id: Id) -> Any:
        """A fund with its allocations; spending totals add up across them."""
        row = _found(await projections.fund(ctx.pool, district, fund_id), "fund", fund_id)
        allocations = await projections.allocations(ctx.pool, district, fund_id)
        return {**dict(row), "remaining_fen": row["amount_fen"] - row["allocated_fen"],
                "allocations": [dict(a) for a in allocations]}

    @api.get("/resolutions/{resolution_id}/audit", response_model=AuditTrail)
    async def get_audit_trail(district: str, resolution_id: Id) -> Any:
        """Who raised, seconded, objected, voted (choices of open votes, counts of secret
        ones), decided, delivered, was reminded and inspected, in time order; with the
        reminder policies that applied (the resolution's and its council's) and the
        creation of every fund it was allocated money from."""
        resolution = _found(await projections.resolution(ctx.pool, district, resolution_id), "resolution",
                            resolution_id)
        rows = await projections.audit_steps(ctx.pool, district, resolution_id, resolution["proposal_id"],
                                             resolution["council_id"])
        steps = [{**dict(r), "body": json.loads(r["body"])} for r in rows]
        return {"resolution_id": resolution_id, "proposal_id": resolution["proposal_id"],
                "steps": [{**s, "recipient_id": s["body"].get("recipient_id")} for s in steps]}

    @api.get("/communities/{community_id}/roadmap", response_model=Roadmap)
    async def get_roadmap(district: str, community_id: Id) -> Any:
        """The public outcome roadmap: every resolution of the community with its progress,
        and the tasks that are stalled or escalated (with the level) now."""
        rows = await projections.roadmap(ctx.pool, district, community_id)
        return {"community_id": community_id, "resolutions": [
            {**dict(r), "stalled_tasks": json.loads(r["stalled_tasks"])} for r in rows]}

    @api.get("/communities/{community_id}/reviews/{year}", response_model=YearlyReview)
    async def get_yearly_review(district: str, community_id: Id,
                                year: int = Path(ge=2000, le=2200)) -> Any:  # the contracts' fund years
        """Satisfaction rate, resolutions completed and on time, spending against the fund,
        consultation sessions held (by form) and their attendance person-times."""
        counts = await projections.year_counts(ctx.pool, district, community_id, year)
        ratings = await projections.year_ratings(ctx.pool, district, community_id, year)
        fund = await projections.community_fund(ctx.pool, district, community_id, year)
        sessions = await projections.year_sessions(ctx.pool, district, community_id, year)
        votes = ratings["votes"] or 0
        return {"community_id": community_id, "year": year, **dict(counts), "ratings": ratings["ratings"],
                **dict(sessions), "sessions_by_form": json.loads(sessions["sessions_by_form"]),
                "satisfaction_rate_percent": round(100 * ratings["pleased"] / votes, 1) if votes else None,
                "fund_amount_fen": fund["amount_fen"] if fund else None,
                "allocated_fen": fund["allocated_fen"] if fund else 0, "spent_fen": fund["spent_fen"] if fund else 0}

    @api.get("/statistics", response_model=DistrictStatistics)
    async def get_statistics(district: str) -> Any:
        """Activities held (consultation sessions, by form), participants (attendance
        person-times), proposals, resolutions completed and spending."""
        row = await projections.district_statistics(ctx.pool, district)
        return {**dict(row), "sessions_by_form": json.loads(row["sessions_by_form"])}

    return api
