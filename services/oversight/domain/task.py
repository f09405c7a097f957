"""A task of a resolution: delivery by one implementer, inspection, its budget, and the
reminders and escalation of a late task."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime

from eventsourcing.domain import Aggregate, event

from contracts.common import RejectionReason
from contracts.oversight import InspectionFinding, ReminderKind
from contracts.permissions import Party
from yishi.rules import Rejected, within_horizon

from services.oversight.domain.policy import Policy
from services.oversight.domain.streams import stream_id

# Escalation ladder: who is reminded at each step of one overdue condition.
IMPLEMENTER, SUPERVISOR, COUNCIL_ABOVE = 1, 2, 3


@dataclass(frozen=True)
class Authority:
    """Where a task goes at the top of the ladder: the council above."""

    level: str
    authority_id: str


@dataclass(frozen=True)
class ReminderStep:
    """One rung of one late condition that has fallen due; ``key`` makes it fire once."""

    key: str
    kind: ReminderKind
    step: int
    due_at: datetime
    recipient_id: str
    escalate_to: Authority | None = None
    stalled_since: datetime | None = None


class Task(Aggregate):
    """Part of a resolution delivered by one implementer, with standards set beforehand.

    Status: ``assigned`` → ``accepted`` → ``completed`` → ``passed`` (an inspection that
    is not satisfactory sends a completed or passed task back to ``accepted``).
    """

    @staticmethod
    def create_id(district: str, task_id: str) -> uuid.UUID:
        return stream_id(district, "task", task_id)

    @event("Assigned")
    def __init__(self, district: str, task_id: str, resolution_id: str, council_id: str, implementer: dict,
                 description: str, acceptance_standards: list[str], due_at: datetime, budget_fen: int | None,
                 assigned_at: datetime) -> None:
        self.district = district
        self.task_id = task_id
        self.resolution_id = resolution_id
        self.council_id = council_id
        self.implementer = implementer
        self.description = description
        self.acceptance_standards = list(acceptance_standards)
        self.due_at = due_at
        self.budget_fen = budget_fen
        self.assigned_at = assigned_at
        self.status = "assigned"
        self.accepted_by: str | None = None
        self.activity_at = assigned_at  # last sign of life from the implementer
        self.last_progress_at: datetime | None = None
        self.percent = 0
        self.completed_at: datetime | None = None
        self.inspection_ids: list[str] = []
        self.follow_ups: dict[str, datetime] = {}  # scheduled and not yet recorded
        self.fired: list[str] = []
        self.allocations: dict[str, int] = {}  # allocation id → fen set aside by a fund

    # -- delivery ------------------------------------------------------------------

    @property
    def parties(self) -> dict[Party, str | None]:
        """Whom the task's commands act for (:mod:`contracts.permissions`): its implementer
        organisation delivers it, its resolution's council runs and inspects it."""
        return {Party.IMPLEMENTER: self.implementer["id"], Party.COUNCIL: self.council_id}

    @property
    def allocated_fen(self) -> int:
        """What funds have set aside for this task so far."""
        return sum(self.__dict__.get("allocations", {}).values())  # streams older than allocations lack it

    def allocate(self, allocation_id: str, fund_id: str, amount_fen: int) -> None:
        """Record money a fund sets aside for the task, within the task's budget. Kept on
        the task (not only the fund) so that allocations from two funds to one task are
        checked against each other: both change this stream, and one of them loses."""
        self.check_allocation(allocation_id, amount_fen)
        self._funds_allocated(self.task_id, allocation_id, fund_id, amount_fen)

    def check_allocation(self, allocation_id: str, amount_fen: int) -> None:
        """Refuse ``amount_fen`` more than the task's budget leaves (``over_budget``),
        without recording anything (:meth:`Fund.allocate` checks before it records)."""
        if self.budget_fen is not None and self.allocated_fen + amount_fen > self.budget_fen:
            raise Rejected(RejectionReason.OVER_BUDGET,
                           f"task {self.task_id} has a budget of {self.budget_fen} fen, {self.allocated_fen} allocated",
                           allocation_id)

    def require_resolution(self, resolution_id: str) -> None:
        """Refuse a command naming this task under another resolution: to it, the task does
        not exist (``not_found``)."""
        if self.resolution_id != resolution_id:
            raise Rejected(RejectionReason.NOT_FOUND, f"no task {self.task_id} in {resolution_id}", self.task_id)

    @event("FundsAllocated")
    def _funds_allocated(self, task_id: str, allocation_id: str, fund_id: str, amount_fen: int) -> None:
        self.allocations = {**self.__dict__.get("allocations", {}), allocation_id: amount_fen}

    def _require(self, *statuses: str, doing: str) -> None:
        if self.status not in statuses:
            raise Rejected(RejectionReason.INVALID_STATE, f"cannot {doing}: task {self.task_id} is {self.status}",
                           self.task_id)

    def accept(self, actor_id: str, now: datetime) -> None:
        """The implementer takes the task on."""
        self._require("assigned", doing="accept")
        self._accepted(self.task_id, self.resolution_id, actor_id, now)

    @event("Accepted")
    def _accepted(self, task_id: str, resolution_id: str, actor_id: str, at: datetime) -> None:
        self.status = "accepted"
        self.accepted_by = actor_id
        self.activity_at = at

    def report_progress(self, percent: int, summary: str, evidence: list[dict], now: datetime) -> None:
        """Progress with evidence by reference (过程有跟踪)."""
        self._require("accepted", doing="report progress")
        self._progress_reported(self.task_id, self.resolution_id, percent, summary, evidence, now)

    @event("ProgressReported")
    def _progress_reported(self, task_id: str, resolution_id: str, percent: int, summary: str,
                           evidence: list[dict], at: datetime) -> None:
        self.percent = percent
        self.last_progress_at = at
        self.activity_at = at

    def complete(self, summary: str, evidence: list[dict], now: datetime) -> None:
        """The implementer declares the task done; an inspection decides whether it passes."""
        self._require("accepted", doing="complete")
        self._completed(self.task_id, self.resolution_id, summary, evidence, now)

    @event("Completed")
    def _completed(self, task_id: str, resolution_id: str, summary: str, evidence: list[dict],
                   at: datetime) -> None:
        self.status = "completed"
        self.percent = 100
        self.completed_at = at

    def inspect(self, inspection_id: str, inspector_ids: list[str], aspects: list[str], finding: str, notes: str,
                evidence: list[dict], now: datetime) -> None:
        """A supervisor's inspection. On a completed (or passed) task a satisfactory finding
        passes it and anything else sends it back to the implementer (治理—反弹)."""
        if inspection_id in self.inspection_ids:
            raise Rejected(RejectionReason.DUPLICATE, f"inspection {inspection_id} is already recorded",
                           self.task_id)
        outcome = None
        if self.status in ("completed", "passed"):
            outcome = "passed" if finding == InspectionFinding.SATISFACTORY else "sent_back"
        self._inspected(self.task_id, self.resolution_id, inspection_id, inspector_ids, aspects, finding, notes,
                        evidence, outcome, now)

    @event("Inspected")
    def _inspected(self, task_id: str, resolution_id: str, inspection_id: str, inspector_ids: list[str],
                   aspects: list[str], finding: str, notes: str, evidence: list[dict], outcome: str | None,
                   at: datetime) -> None:
        self.inspection_ids.append(inspection_id)
        self.follow_ups.pop(inspection_id, None)
        if outcome == "passed":
            self.status = "passed"
        elif outcome == "sent_back":
            self.status = "accepted"
            self.completed_at = None
            self.activity_at = at

    def schedule_follow_up(self, inspection_id: str, scheduled_for: datetime, reason: str, now: datetime) -> None:
        """An inspection after completion, to catch the problem coming back."""
        self._require("completed", "passed", doing="schedule a follow-up inspection")
        if inspection_id in self.inspection_ids or inspection_id in self.follow_ups:
            raise Rejected(RejectionReason.DUPLICATE, f"inspection {inspection_id} already exists", self.task_id)
        if scheduled_for <= now:
            raise Rejected(RejectionReason.INVALID_STATE, "a follow-up inspection must be in the future",
                           self.task_id)
        within_horizon(scheduled_for, now, "scheduled_for", self.task_id)
        self._follow_up_scheduled(self.task_id, self.resolution_id, inspection_id, scheduled_for, reason)

    @event("FollowUpScheduled")
    def _follow_up_scheduled(self, task_id: str, resolution_id: str, inspection_id: str, scheduled_for: datetime,
                             reason: str) -> None:
        self.follow_ups[inspection_id] = scheduled_for

    def escalate(self, to_level: str, to_authority_id: str, reason: str) -> None:
        """Hand the task to a higher authority (by hand, or at the top of the ladder)."""
        self._require("assigned", "accepted", "completed", doing="escalate")
        self._escalated(self.task_id, self.resolution_id, to_level, to_authority_id, reason)

    @event("Escalated")
    def _escalated(self, task_id: str, resolution_id: str, to_level: str, to_authority_id: str,
                   reason: str) -> None:
        pass

    # -- stall detection and reminders ----------------------------------------------

    def due_reminders(self, now: datetime, policy: Policy, council_above: Authority) -> list[ReminderStep]:
        """Every rung of every late condition that is due at ``now`` and has not fired.

        Each condition has an episode (the assignment, the last sign of life, the
        deadline, a follow-up's id) so that fresh news starts a new stall episode while
        a rung of one episode can never fire twice.
        """
        ladder_base: list[tuple[ReminderKind, str, datetime]] = []
        if self.status == "assigned":
            ladder_base.append((ReminderKind.NOT_ACCEPTED, "not-accepted",
                                self.assigned_at + policy.day * policy.not_accepted_days))
        if self.status == "accepted":
            ladder_base.append((ReminderKind.STALLED, f"no-progress-{self.activity_at.isoformat()}",
                                self.activity_at + policy.day * policy.stall_days))
        if self.status in ("assigned", "accepted"):
            ladder_base.append((ReminderKind.DEADLINE_PASSED, f"deadline-passed-{self.due_at.isoformat()}",
                                self.due_at))
        steps: list[ReminderStep] = []
        for kind, episode, base in ladder_base:
            for rung in (IMPLEMENTER, SUPERVISOR, COUNCIL_ABOVE):
                due = base + policy.day * policy.escalate_after_days * (rung - 1)
                steps.append(self._step(kind, episode, rung, due, policy, council_above,
                                        stalled_since=self.last_progress_at))
        if self.status in ("assigned", "accepted"):
            # A warning that the deadline is near is pointless once it has passed.
            warn = self.due_at - policy.day * policy.deadline_warning_days
            if now < self.due_at:
                steps.append(self._step(ReminderKind.DEADLINE_APPROACHING, f"deadline-near-{self.due_at.isoformat()}",
                                        IMPLEMENTER, warn, policy, council_above))
        for inspection_id, scheduled_for in self.follow_ups.items():
            steps.append(self._step(ReminderKind.FOLLOW_UP_INSPECTION, f"follow-up-{inspection_id}", SUPERVISOR,
                                    scheduled_for, policy, council_above))
        return [s for s in steps if s.due_at <= now and s.key not in self.fired]

    def _step(self, kind: ReminderKind, episode: str, rung: int, due: datetime, policy: Policy,
              council_above: Authority, stalled_since: datetime | None = None) -> ReminderStep:
        if rung == IMPLEMENTER:
            recipient = self.accepted_by or self.implementer["id"]
        elif rung == SUPERVISOR:
            recipient = policy.supervisor_id or self.council_id
        else:
            recipient = council_above.authority_id
        return ReminderStep(
            key=f"{episode}#{rung}", kind=kind, step=rung, due_at=due, recipient_id=recipient,
            escalate_to=council_above if rung == COUNCIL_ABOVE else None, stalled_since=stalled_since,
        )

    def fire(self, step: ReminderStep, stalled_after_days: int, now: datetime) -> None:
        """Record that ``step`` fired: the stall itself on the first rung of a stall, the
        escalation on the top rung, and the reminder. A step that fired is refused."""
        if step.key in self.fired:
            raise Rejected(RejectionReason.DUPLICATE, f"reminder {step.key} already fired", self.task_id)
        if step.kind == ReminderKind.STALLED and step.step == IMPLEMENTER:
            self._stalled(self.task_id, self.resolution_id, step.stalled_since, stalled_after_days, now)
        if step.escalate_to is not None:
            self._escalated(self.task_id, self.resolution_id, step.escalate_to.level, step.escalate_to.authority_id,
                            f"{step.kind} ({step.key.split('#')[0]}): no response after two reminders")
        reminder_id = "rem-" + hashlib.sha256(f"{self.task_id}/{step.key}".encode()).hexdigest()[:32]
        self._reminder_fired(self.task_id, self.resolution_id, step.key, reminder_id, str(step.kind),
                             step.due_at, step.recipient_id, step.step, now)

    @event("Stalled")
    def _stalled(self, task_id: str, resolution_id: str, last_progress_at: datetime | None,
                 stalled_after_days: int, at: datetime) -> None:
        pass

    @event("ReminderFired")
    def _reminder_fired(self, task_id: str, resolution_id: str, key: str, reminder_id: str, kind: str,
                        due_at: datetime, recipient_id: str, step: int, at: datetime) -> None:
        self.fired.append(key)
