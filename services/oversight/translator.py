"""Private domain events of oversight → public contracts (``contracts/oversight.py``).

:func:`to_contract` is used twice: by the relay (through :func:`translate`) and by the
audit projection, so what the audit trail shows of oversight's own steps is exactly
what was published. Events with no public form map to ``None``.

Every public event is keyed (Kafka key and ``ce_subject``) by the public id of the
aggregate whose stream records it (:func:`subject_of`), the same for all events of one
stream so that they stay in order.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from contracts import oversight as c
from contracts.common import Actor, Contract
from yishi.commands import recorded_actor
from yishi import translation
from yishi.relay import Translator
from yishi.repository import default_mapper
from yishi.store import RecordedEvent
from yishi.translation import Public, common_fields

from services.oversight.domain import Fund, ReminderPolicy, Resolution, Task


def _attachments(items: list[dict] | None) -> tuple[c.Attachment, ...]:
    return tuple(c.Attachment.model_validate(i) for i in items or ())


def _policy(e: Any) -> dict[str, Any]:
    return dict(scope=e.scope, scope_id=e.scope_id, not_accepted_days=e.not_accepted_days, stall_days=e.stall_days,
                deadline_warning_days=e.deadline_warning_days, escalate_after_days=e.escalate_after_days,
                supervisor_id=e.supervisor_id)


_MAPPINGS: dict[type, Callable[[Any], tuple[type[Contract], dict[str, Any]]]] = {
    Resolution.Registered: lambda e: (c.ResolutionRegistered, dict(
        resolution_id=e.resolution_id, proposal_id=e.proposal_id, council_id=e.council_id,
        catalogue_item_id=e.catalogue_item_id, title=e.title, text=e.text, budget_fen=e.budget_fen,
        vote_id=e.vote_id, community_id=e.community_id)),
    Resolution.Inspected: lambda e: (c.InspectionRecorded, dict(
        inspection_id=e.inspection_id, resolution_id=e.resolution_id, inspector_ids=tuple(e.inspector_ids),
        aspects=tuple(e.aspects), finding=e.finding, notes=e.notes, evidence=_attachments(e.evidence))),
    Resolution.SatisfactionRated: lambda e: (c.SatisfactionRated, dict(
        rating_id=e.rating_id, resolution_id=e.resolution_id, review_meeting_id=e.review_meeting_id, year=e.year,
        satisfied=e.satisfied, basically_satisfied=e.basically_satisfied, dissatisfied=e.dissatisfied,
        comments=e.comments)),
    Resolution.ReconsultationRequested: lambda e: (c.ReconsultationRequested, dict(
        resolution_id=e.resolution_id, proposal_id=e.proposal_id, task_id=e.task_id, problem=e.problem)),
    Resolution.Closed: lambda e: (c.ResolutionClosed, dict(
        resolution_id=e.resolution_id, reason=e.reason, summary=e.summary)),
    Task.Assigned: lambda e: (c.TaskAssigned, dict(
        task_id=e.task_id, resolution_id=e.resolution_id, implementer=c.Implementer.model_validate(e.implementer),
        description=e.description, acceptance_standards=tuple(e.acceptance_standards), due_at=e.due_at,
        budget_fen=e.budget_fen)),
    Task.Accepted: lambda e: (c.TaskAccepted, dict(task_id=e.task_id, resolution_id=e.resolution_id)),
    Task.ProgressReported: lambda e: (c.ProgressReported, dict(
        task_id=e.task_id, resolution_id=e.resolution_id, percent_complete=e.percent, summary=e.summary,
        evidence=_attachments(e.evidence))),
    Task.Completed: lambda e: (c.TaskCompleted, dict(
        task_id=e.task_id, resolution_id=e.resolution_id, summary=e.summary, evidence=_attachments(e.evidence))),
    Task.Inspected: lambda e: (c.InspectionRecorded, dict(
        inspection_id=e.inspection_id, resolution_id=e.resolution_id, task_id=e.task_id,
        inspector_ids=tuple(e.inspector_ids), aspects=tuple(e.aspects), finding=e.finding, notes=e.notes,
        evidence=_attachments(e.evidence))),
    Task.FollowUpScheduled: lambda e: (c.FollowUpInspectionScheduled, dict(
        inspection_id=e.inspection_id, resolution_id=e.resolution_id, task_id=e.task_id,
        scheduled_for=e.scheduled_for, reason=e.reason)),
    Task.Escalated: lambda e: (c.TaskEscalated, dict(
        task_id=e.task_id, resolution_id=e.resolution_id, to_level=e.to_level, to_authority_id=e.to_authority_id,
        reason=e.reason)),
    Task.Stalled: lambda e: (c.TaskStalled, dict(
        task_id=e.task_id, resolution_id=e.resolution_id, last_progress_at=e.last_progress_at,
        stalled_after_days=e.stalled_after_days)),
    Task.ReminderFired: lambda e: (c.ReminderDue, dict(
        reminder_id=e.reminder_id, task_id=e.task_id, resolution_id=e.resolution_id, kind=e.kind, due_at=e.due_at,
        recipient_id=e.recipient_id, escalation_step=e.step)),
    Fund.Established: lambda e: (c.FundEstablished, dict(
        fund_id=e.fund_id, community_id=e.community_id, year=e.year, amount_fen=e.amount_fen)),
    Fund.Allocated: lambda e: (c.FundsAllocated, dict(
        allocation_id=e.allocation_id, resolution_id=e.resolution_id, task_id=e.task_id, fund_id=e.fund_id,
        amount_fen=e.amount_fen, purpose=e.purpose)),
    Fund.Spent: lambda e: (c.FundsSpent, dict(
        expenditure_id=e.expenditure_id, allocation_id=e.allocation_id, resolution_id=e.resolution_id,
        task_id=e.task_id, amount_fen=e.amount_fen, payee=e.payee, purpose=e.purpose,
        receipt=c.Attachment.model_validate(e.receipt) if e.receipt else None, fund_id=e.fund_id)),
    ReminderPolicy.Set: lambda e: (c.ReminderPolicySet, _policy(e)),
    ReminderPolicy.Changed: lambda e: (c.ReminderPolicySet, _policy(e)),
}


# The public id of each aggregate, read from every one of its events: a task's events are
# keyed by the task even where they also name the resolution (ProgressReported) or an
# inspection (InspectionRecorded, FollowUpInspectionScheduled); a resolution-level
# inspection by the resolution. A reminder policy has no id of its own: it is keyed by
# the resolution or council it applies to (``scope_id``). Resolution, task and scope ids
# are not checked to differ from one another, so two aggregates may share a key:
# harmless, only more ordering.
_SUBJECTS: dict[type, Callable[[Any], str]] = {
    **dict.fromkeys((Resolution.Registered, Resolution.Inspected, Resolution.SatisfactionRated,
                     Resolution.ReconsultationRequested, Resolution.Closed), lambda e: e.resolution_id),
    **dict.fromkeys((Task.Assigned, Task.Accepted, Task.ProgressReported, Task.Completed, Task.Inspected,
                     Task.FollowUpScheduled, Task.Escalated, Task.Stalled, Task.ReminderFired), lambda e: e.task_id),
    **dict.fromkeys((ReminderPolicy.Set, ReminderPolicy.Changed), lambda e: e.scope_id),
    **dict.fromkeys((Fund.Established, Fund.Allocated, Fund.Spent), lambda e: e.fund_id),
}


def subject_of(domain_event: Any) -> str | None:
    """The Kafka key and ``ce_subject`` of a public event; ``None`` for the stream id."""
    subject = _SUBJECTS.get(type(domain_event))
    return None if subject is None else subject(domain_event)


def to_contract(domain_event: Any, district: str, actor: Actor, occurred_at: datetime) -> Contract | None:
    """The public model of a domain event, or ``None`` for private ones."""
    mapping = _MAPPINGS.get(type(domain_event))
    if mapping is None:
        return None
    model, fields = mapping(domain_event)
    return model(district=district, actor=actor, occurred_at=occurred_at, **fields)


def actor_of(metadata: dict[str, Any]) -> Actor:
    """The acting party as recorded in an event's metadata."""
    return recorded_actor(metadata)


def _public(domain_event: Any, recorded: RecordedEvent) -> Public | None:
    """The public model of a domain event decoded from ``recorded``, and its subject."""
    model = to_contract(domain_event, **common_fields(recorded, actor_of(recorded.metadata)))
    return None if model is None else (model, subject_of(domain_event))


def translator() -> Translator:
    """The relay translator of the oversight service."""
    return translation.translator(translation.decoder(default_mapper()), _public)
