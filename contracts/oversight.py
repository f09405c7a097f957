"""Contracts of the oversight service: resolutions, tasks and their delivery, funds,
inspections, satisfaction and re-consultation (反馈 / 督).

Standards are set when a task is assigned (事前有标准), progress and spending are
reported as they happen (过程有跟踪), and evidence is pinned by hash (事后可追溯).
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AwareDatetime, Field

from contracts.common import (
    Attachment,
    Command,
    CouncilLevel,
    Count,
    Event,
    Fen,
    Id,
    JsonInteger,
    Moment,
    NewId,
    Percent,
    PlatformChosen,
    Text,
    Title,
    Value,
)
from contracts.proposals import resolution_id_for


Year = Annotated[int, Field(ge=2000, le=2200), JsonInteger]


class ImplementerKind(StrEnum):
    """Who delivers a task."""

    COMMUNITY_OFFICE = "community_office"
    SOCIAL_ORGANISATION = "social_organisation"
    LOCAL_UNIT = "local_unit"
    GOVERNMENT_BUREAU = "government_bureau"


class Implementer(Value):
    """An organisation a task is assigned to."""

    kind: ImplementerKind
    id: Id
    name: Title


class ReminderKind(StrEnum):
    """Why a reminder fell due."""

    DEADLINE_APPROACHING = "deadline_approaching"
    DEADLINE_PASSED = "deadline_passed"
    STALLED = "stalled"
    FOLLOW_UP_INSPECTION = "follow_up_inspection"
    NOT_ACCEPTED = "not_accepted"


class InspectionAspect(StrEnum):
    """What supervisors look at."""

    PROGRESS = "progress"
    QUALITY = "quality"
    SPENDING = "spending"


class InspectionFinding(StrEnum):
    """The inspectors' overall finding."""

    SATISFACTORY = "satisfactory"
    NEEDS_IMPROVEMENT = "needs_improvement"
    UNSATISFACTORY = "unsatisfactory"


class ClosureReason(StrEnum):
    """Why a resolution was closed."""

    DELIVERED = "delivered"
    ABANDONED = "abandoned"
    SUPERSEDED = "superseded"


class ResolutionRegistered(Event):
    """An adopted proposal became a resolution to deliver and supervise."""

    resolution_id: Id
    proposal_id: Id
    council_id: Id
    catalogue_item_id: Id | None = None
    title: Title
    text: Text
    budget_fen: Fen | None = None
    vote_id: Id | None = Field(default=None, description="The vote that adopted it, when registered from one.")
    community_id: Id | None = Field(default=None, description="The community whose roadmap and fund it belongs to.")


class TaskAssigned(Event):
    """Part of a resolution was assigned to an implementer, with standards and a deadline."""

    task_id: Id
    resolution_id: Id
    implementer: Implementer
    description: Text
    acceptance_standards: tuple[Text, ...] = Field(min_length=1)
    due_at: AwareDatetime
    budget_fen: Fen | None = None


class TaskAccepted(Event):
    """The implementer accepted the task; the actor speaks for the implementer."""

    task_id: Id
    resolution_id: Id


class ProgressReported(Event):
    """The implementer reported progress on a task."""

    task_id: Id
    resolution_id: Id
    percent_complete: Percent
    summary: Text
    evidence: tuple[Attachment, ...] = ()


class FundsAllocatedV1(Event):
    """Version 1 of ``FundsAllocated``: the amount was a decimal number of yuan.

    Kept so stored v1 events stay readable; :func:`upcast_funds_allocated_v1` turns them
    into version 2.
    """

    allocation_id: Id
    resolution_id: Id
    task_id: Id | None = None
    fund_id: Id
    amount_yuan: Annotated[Decimal, Field(ge=0, decimal_places=2)]
    purpose: Text


def upcast_funds_allocated_v1(data: dict[str, Any]) -> dict[str, Any]:
    """``FundsAllocated`` v1 → v2: yuan (decimal, 2 places) become integer fen."""
    upcast = dict(data)
    upcast["amount_fen"] = int(Decimal(str(upcast.pop("amount_yuan"))) * 100)
    return upcast


class FundsAllocated(Event):
    """Money from a fund (e.g. the community's yearly micro-project fund) was set aside.

    Version 2: the amount is in integer fen, so sums and comparisons are exact.
    """

    allocation_id: Id
    resolution_id: Id
    task_id: Id | None = None
    fund_id: Id
    amount_fen: Fen
    purpose: Text


class FundsSpent(Event):
    """Money was spent from an allocation."""

    expenditure_id: Id
    allocation_id: Id
    resolution_id: Id
    task_id: Id | None = None
    amount_fen: Fen
    payee: Title
    purpose: Text
    receipt: Attachment | None = None
    fund_id: Id | None = Field(default=None, description="The fund spent from (also the message's key).")


class TaskStalled(Event):
    """No progress was reported on a task for longer than the allowed interval."""

    task_id: Id
    resolution_id: Id
    last_progress_at: AwareDatetime | None = Field(default=None, description="Absent: none since assignment.")
    stalled_after_days: Annotated[int, Field(gt=0)]


class ReminderDue(Event):
    """A durable timer fired: someone must be reminded about a task."""

    reminder_id: Id
    task_id: Id
    resolution_id: Id
    kind: ReminderKind
    due_at: AwareDatetime
    recipient_id: Id
    escalation_step: Annotated[int, Field(ge=1, le=3)] | None = Field(
        default=None, description="1 implementer, 2 supervisor, 3 the council above.")


class TaskEscalated(Event):
    """A task was escalated to a higher authority (overdue, stalled, or beyond the implementer)."""

    task_id: Id
    resolution_id: Id
    to_level: CouncilLevel
    to_authority_id: Id
    reason: Text


class TaskCompleted(Event):
    """The implementer declared a task done against its acceptance standards."""

    task_id: Id
    resolution_id: Id
    summary: Text
    evidence: tuple[Attachment, ...] = ()


class InspectionRecorded(Event):
    """Supervisors (e.g. the five-person inspection group) recorded an inspection."""

    inspection_id: Id
    resolution_id: Id
    task_id: Id | None = None
    inspector_ids: tuple[Id, ...] = Field(min_length=1)
    aspects: tuple[InspectionAspect, ...] = Field(min_length=1)
    finding: InspectionFinding
    notes: Text
    evidence: tuple[Attachment, ...] = ()


class FollowUpInspectionScheduled(Event):
    """An inspection after completion was scheduled, to check the result holds."""

    inspection_id: Id = Field(description="Id the inspection will be recorded under.")
    resolution_id: Id
    task_id: Id
    scheduled_for: AwareDatetime
    reason: Text


class SatisfactionRated(Event):
    """Residents rated a resolution's outcome at the yearly review meeting (counts only)."""

    rating_id: Id
    resolution_id: Id
    review_meeting_id: Id
    year: Year
    satisfied: Count
    basically_satisfied: Count
    dissatisfied: Count
    comments: Text | None = None


class ResolutionClosed(Event):
    """A resolution's file was closed; it appears on the outcome roadmap."""

    resolution_id: Id
    reason: ClosureReason
    summary: Text


class ReconsultationRequested(Event):
    """A new problem during delivery needs the council to deliberate again."""

    resolution_id: Id
    proposal_id: Id
    task_id: Id | None = None
    problem: Text


class PolicyScope(StrEnum):
    """What a reminder policy applies to; a resolution's own policy wins over its council's."""

    RESOLUTION = "resolution"
    COUNCIL = "council"


Days = Annotated[int, Field(gt=0, le=3650), JsonInteger]


class FundEstablished(Event):
    """A community's yearly micro-project fund was set up with its total amount."""

    fund_id: Id
    community_id: Id
    year: Year
    amount_fen: Fen


class ReminderPolicySet(Event):
    """When tasks of a resolution (or of every resolution of a council) count as late."""

    scope: PolicyScope
    scope_id: Id
    not_accepted_days: Days
    stall_days: Days
    deadline_warning_days: Days
    escalate_after_days: Days
    supervisor_id: Id | None = None


ResolutionId = Annotated[
    Id | None,
    PlatformChosen(derive=lambda command: resolution_id_for(command.proposal_id)),
    Field(description="The new resolution's id; chosen by the caller, or left out (or null) and then derived from "
          "the proposal as for an adopted one (`res-` + `proposal_id`, `contracts.proposals.resolution_id_for`), "
          "named in the reply's `ids`: a proposal has one resolution, whoever registers it."),
]
"""A registered resolution's id: derived from its proposal rather than drawn, so the
resolution a district registers and the one oversight registers on the proposal's
adoption are the same record (the second is then not registered again)."""


class RegisterResolution(Command):
    """Register a resolution directly (adopted proposals are registered on ``ProposalDecided``)."""

    resolution_id: ResolutionId = None
    proposal_id: Id
    council_id: Id
    catalogue_item_id: Id | None = None
    title: Title
    text: Text
    budget_fen: Fen | None = None


class EstablishFund(Command):
    """Set up a community's micro-project fund for one year (one fund per community and year)."""

    fund_id: NewId = None
    community_id: Id
    year: Year
    amount_fen: Fen


class SetReminderPolicy(Command):
    """Set when tasks count as late and who is reminded, for a resolution or a council."""

    scope: PolicyScope
    scope_id: Id
    not_accepted_days: Days
    stall_days: Days
    deadline_warning_days: Days
    escalate_after_days: Days
    supervisor_id: Id | None = None


class AssignTask(Command):
    """Assign part of a resolution to an implementer."""

    task_id: NewId = None
    resolution_id: Id
    implementer: Implementer
    description: Text
    acceptance_standards: tuple[Text, ...] = Field(min_length=1)
    due_at: Moment
    budget_fen: Fen | None = None


class AcceptTask(Command):
    """Accept an assigned task on behalf of its implementer."""

    task_id: Id


class ReportProgress(Command):
    """Report progress on a task."""

    task_id: Id
    percent_complete: Percent
    summary: Text
    evidence: tuple[Attachment, ...] = ()


class AllocateFunds(Command):
    """Set money aside from a fund for a resolution or one of its tasks."""

    allocation_id: NewId = None
    resolution_id: Id
    task_id: Id | None = None
    fund_id: Id
    amount_fen: Fen
    purpose: Text


class RecordSpending(Command):
    """Record money spent from an allocation."""

    expenditure_id: NewId = None
    allocation_id: Id
    amount_fen: Fen
    payee: Title
    purpose: Text
    receipt: Attachment | None = None


class EscalateTask(Command):
    """Escalate a task to a higher authority."""

    task_id: Id
    to_level: CouncilLevel
    to_authority_id: Id
    reason: Text


class CompleteTask(Command):
    """Declare a task done."""

    task_id: Id
    summary: Text
    evidence: tuple[Attachment, ...] = ()


class RecordInspection(Command):
    """Record an inspection of a resolution or one of its tasks."""

    inspection_id: NewId = None
    resolution_id: Id
    task_id: Id | None = None
    inspector_ids: tuple[Id, ...] = Field(min_length=1)
    aspects: tuple[InspectionAspect, ...] = Field(min_length=1)
    finding: InspectionFinding
    notes: Text
    evidence: tuple[Attachment, ...] = ()


class ScheduleFollowUpInspection(Command):
    """Schedule an inspection after a task's completion."""

    inspection_id: NewId = None
    task_id: Id
    scheduled_for: Moment
    reason: Text


class RecordSatisfaction(Command):
    """Record the satisfaction counts of a yearly review meeting for one resolution."""

    rating_id: NewId = None
    resolution_id: Id
    review_meeting_id: Id
    year: Year
    satisfied: Count
    basically_satisfied: Count
    dissatisfied: Count
    comments: Text | None = None


class CloseResolution(Command):
    """Close a resolution's file."""

    resolution_id: Id
    reason: ClosureReason
    summary: Text


class RequestReconsultation(Command):
    """Ask the council to deliberate again because of a problem found during delivery."""

    resolution_id: Id
    task_id: Id | None = None
    problem: Text
