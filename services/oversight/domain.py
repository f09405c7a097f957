"""Oversight aggregates (反馈 / 督): resolutions, tasks, micro-project funds, reminder policies.

Pure and synchronous: time always comes in as an argument. Every public method checks
the rules and raises :class:`Rejected`; it then calls a private ``@event`` method that
only records and applies, because that body runs again on every replay.

Aggregate ids are derived from (district, kind, public id) so that the same public id
always lands on the same stream: a replayed ``ProposalDecided`` or a resent command
meets the existing stream (expected-version append) instead of creating a twin, and two
districts using the same public id never share a stream.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from eventsourcing.domain import Aggregate, event

from contracts.common import RejectionReason
from contracts.oversight import ClosureReason, InspectionFinding, ReminderKind
from contracts.permissions import Party
from contracts.proposals import resolution_id_for  # the public rule; oversight names resolutions by it
from yishi.rules import Rejected, within_horizon

_NAMESPACE = uuid.UUID("6f1d2c1e-6b0a-4d8e-9a52-0b7c3f1e0a17")

# Escalation ladder: who is reminded at each step of one overdue condition.
IMPLEMENTER, SUPERVISOR, COUNCIL_ABOVE = 1, 2, 3


def stream_id(district: str, kind: str, public_id: str) -> uuid.UUID:
    """The aggregate id of ``kind`` ``public_id`` in ``district`` (deterministic)."""
    return uuid.uuid5(_NAMESPACE, f"{district}/{kind}/{public_id}")


@dataclass(frozen=True)
class Policy:
    """When a task counts as late and who hears of it (resolved per resolution or council)."""

    not_accepted_days: int = 7
    stall_days: int = 21
    deadline_warning_days: int = 7
    escalate_after_days: int = 7
    supervisor_id: str | None = None
    # How long one policy day lasts: a day, except where a deployment compresses time for
    # a demonstration or an acceptance test (services.oversight.settings).
    day: timedelta = timedelta(days=1)


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


class Resolution(Aggregate):
    """An adopted decision to deliver: its origin, inspections, ratings and closure."""

    @staticmethod
    def create_id(district: str, resolution_id: str) -> uuid.UUID:
        return stream_id(district, "resolution", resolution_id)

    @event("Registered")
    def __init__(self, district: str, resolution_id: str, proposal_id: str, council_id: str,
                 vote_id: str | None, catalogue_item_id: str | None, community_id: str | None, title: str,
                 text: str, budget_fen: int | None) -> None:
        self.district = district
        self.resolution_id = resolution_id
        self.proposal_id = proposal_id
        self.council_id = council_id
        self.vote_id = vote_id
        self.catalogue_item_id = catalogue_item_id
        self.community_id = community_id
        self.title = title
        self.text = text
        self.budget_fen = budget_fen
        self.inspection_ids: list[str] = []
        self.rating_ids: list[str] = []
        self.closed_reason: str | None = None

    @property
    def closed(self) -> bool:
        return self.closed_reason is not None

    @property
    def parties(self) -> dict[Party, str | None]:
        """Whom the resolution's commands act for (:mod:`contracts.permissions`)."""
        return {Party.COUNCIL: self.council_id}

    def _require_open(self) -> None:
        if self.closed:
            raise Rejected(RejectionReason.INVALID_STATE, f"resolution {self.resolution_id} is closed",
                           self.resolution_id)

    def record_inspection(self, inspection_id: str, inspector_ids: list[str], aspects: list[str],
                          finding: str, notes: str, evidence: list[dict]) -> None:
        """An inspection of the resolution as a whole (task inspections live on the task)."""
        self._require_open()
        if inspection_id in self.inspection_ids:
            raise Rejected(RejectionReason.DUPLICATE, f"inspection {inspection_id} is already recorded",
                           self.resolution_id)
        self._inspected(self.resolution_id, inspection_id, inspector_ids, aspects, finding, notes, evidence)

    @event("Inspected")
    def _inspected(self, resolution_id: str, inspection_id: str, inspector_ids: list[str], aspects: list[str],
                   finding: str, notes: str, evidence: list[dict]) -> None:
        self.inspection_ids.append(inspection_id)

    def rate_satisfaction(self, rating_id: str, review_meeting_id: str, year: int, satisfied: int,
                          basically_satisfied: int, dissatisfied: int, comments: str | None,
                          *, tasks_delivered: bool) -> None:
        """Residents' counts at the yearly review; only for a resolution whose tasks all passed."""
        if rating_id in self.rating_ids:
            raise Rejected(RejectionReason.DUPLICATE, f"rating {rating_id} is already recorded", self.resolution_id)
        if not tasks_delivered:
            raise Rejected(RejectionReason.INVALID_STATE,
                           "only a completed resolution (every task passed inspection) can be rated",
                           self.resolution_id)
        if satisfied + basically_satisfied + dissatisfied == 0:
            raise Rejected(RejectionReason.INVALID_COMMAND, "a rating needs at least one vote", self.resolution_id)
        self._rated(self.resolution_id, rating_id, review_meeting_id, year, satisfied, basically_satisfied,
                    dissatisfied, comments)

    @event("SatisfactionRated")
    def _rated(self, resolution_id: str, rating_id: str, review_meeting_id: str, year: int, satisfied: int,
               basically_satisfied: int, dissatisfied: int, comments: str | None) -> None:
        self.rating_ids.append(rating_id)

    def request_reconsultation(self, task_id: str | None, problem: str) -> None:
        """A new problem during delivery goes back to the council."""
        self._require_open()
        self._reconsultation_requested(self.resolution_id, self.proposal_id, task_id, problem)

    @event("ReconsultationRequested")
    def _reconsultation_requested(self, resolution_id: str, proposal_id: str, task_id: str | None,
                                  problem: str) -> None:
        pass

    def close(self, reason: str, summary: str, *, open_tasks: int) -> None:
        """Close the file; ``delivered`` only when no task is still open."""
        self._require_open()
        if reason == ClosureReason.DELIVERED and open_tasks:
            raise Rejected(RejectionReason.INVALID_STATE,
                           f"{open_tasks} task(s) have not passed inspection yet", self.resolution_id)
        self._closed(self.resolution_id, reason, summary)

    @event("Closed")
    def _closed(self, resolution_id: str, reason: str, summary: str) -> None:
        self.closed_reason = reason


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
        if self.budget_fen is not None and self.allocated_fen + amount_fen > self.budget_fen:
            raise Rejected(RejectionReason.OVER_BUDGET,
                           f"task {self.task_id} has a budget of {self.budget_fen} fen, {self.allocated_fen} allocated",
                           allocation_id)
        self._funds_allocated(self.task_id, allocation_id, fund_id, amount_fen)

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


class Fund(Aggregate):
    """A community's micro-project fund for one year: allocations never exceed what is
    left, and every expenditure is recorded against a task's allocation."""

    @staticmethod
    def create_id(district: str, fund_id: str) -> uuid.UUID:
        return stream_id(district, "fund", fund_id)

    @event("Established")
    def __init__(self, district: str, fund_id: str, community_id: str, year: int, amount_fen: int) -> None:
        self.district = district
        self.fund_id = fund_id
        self.community_id = community_id
        self.year = year
        self.amount_fen = amount_fen
        self.allocations: dict[str, dict[str, Any]] = {}
        self.expenditure_ids: list[str] = []

    @property
    def allocated_fen(self) -> int:
        return sum(a["amount_fen"] for a in self.allocations.values())

    @property
    def spent_fen(self) -> int:
        return sum(a["spent_fen"] for a in self.allocations.values())

    @property
    def remaining_fen(self) -> int:
        """What can still be allocated."""
        return self.amount_fen - self.allocated_fen

    def allocate(self, allocation_id: str, resolution_id: str, task_id: str | None, amount_fen: int,
                 purpose: str) -> None:
        """Set money aside; never more than what is left of the fund."""
        if allocation_id in self.allocations:
            raise Rejected(RejectionReason.ALREADY_EXISTS, f"allocation {allocation_id} exists", allocation_id)
        if amount_fen <= 0:
            raise Rejected(RejectionReason.INVALID_COMMAND, "an allocation must be more than 0 fen", allocation_id)
        if amount_fen > self.remaining_fen:
            raise Rejected(RejectionReason.OVER_BUDGET,
                           f"fund {self.fund_id} has {self.remaining_fen} fen left, {amount_fen} requested",
                           allocation_id)
        self._allocated(allocation_id, resolution_id, task_id, self.fund_id, amount_fen, purpose)

    @event("Allocated")
    def _allocated(self, allocation_id: str, resolution_id: str, task_id: str | None, fund_id: str,
                   amount_fen: int, purpose: str) -> None:
        self.allocations[allocation_id] = {"resolution_id": resolution_id, "task_id": task_id,
                                           "amount_fen": amount_fen, "spent_fen": 0}

    def spend(self, expenditure_id: str, allocation_id: str, amount_fen: int, payee: str, purpose: str,
              receipt: dict | None) -> None:
        """Record money spent from a task's allocation, within what the allocation has left."""
        allocation = self.allocations.get(allocation_id)
        if allocation is None:
            raise Rejected(RejectionReason.NOT_FOUND, f"no allocation {allocation_id}", allocation_id)
        if expenditure_id in self.expenditure_ids:
            raise Rejected(RejectionReason.ALREADY_EXISTS, f"expenditure {expenditure_id} exists", expenditure_id)
        if allocation["task_id"] is None:
            raise Rejected(RejectionReason.INVALID_STATE,
                           "every expenditure is recorded against a task: allocate to a task first", allocation_id)
        if amount_fen <= 0:
            raise Rejected(RejectionReason.INVALID_COMMAND, "an expenditure must be more than 0 fen", expenditure_id)
        left = allocation["amount_fen"] - allocation["spent_fen"]
        if amount_fen > left:
            raise Rejected(RejectionReason.OVER_BUDGET,
                           f"allocation {allocation_id} has {left} fen left, {amount_fen} spent", expenditure_id)
        self._spent(expenditure_id, allocation_id, allocation["resolution_id"], allocation["task_id"], amount_fen,
                    payee, purpose, receipt, self.fund_id)

    @event("Spent")
    def _spent(self, expenditure_id: str, allocation_id: str, resolution_id: str, task_id: str, amount_fen: int,
               payee: str, purpose: str, receipt: dict | None, fund_id: str) -> None:
        self.allocations[allocation_id]["spent_fen"] += amount_fen
        self.expenditure_ids.append(expenditure_id)


class ReminderPolicy(Aggregate):
    """The late-task policy of one resolution or one council."""

    @staticmethod
    def create_id(district: str, scope: str, scope_id: str) -> uuid.UUID:
        return stream_id(district, f"policy-{scope}", scope_id)

    @event("Set")
    def __init__(self, district: str, scope: str, scope_id: str, not_accepted_days: int, stall_days: int,
                 deadline_warning_days: int, escalate_after_days: int, supervisor_id: str | None) -> None:
        self.district = district
        self.scope = scope
        self.scope_id = scope_id
        self._apply(not_accepted_days, stall_days, deadline_warning_days, escalate_after_days, supervisor_id)

    def _apply(self, not_accepted_days: int, stall_days: int, deadline_warning_days: int, escalate_after_days: int,
               supervisor_id: str | None) -> None:
        # Plain fields, not a Policy: snapshots transcode the aggregate's state.
        self.settings = {"not_accepted_days": not_accepted_days, "stall_days": stall_days,
                         "deadline_warning_days": deadline_warning_days,
                         "escalate_after_days": escalate_after_days, "supervisor_id": supervisor_id}

    @property
    def policy(self) -> Policy:
        """The policy as the scheduler uses it."""
        return Policy(**self.settings)

    def change(self, not_accepted_days: int, stall_days: int, deadline_warning_days: int, escalate_after_days: int,
               supervisor_id: str | None) -> None:
        """Replace the policy (reminders already fired stay fired)."""
        self._changed(self.scope, self.scope_id, not_accepted_days, stall_days, deadline_warning_days,
                      escalate_after_days, supervisor_id)

    @event("Changed")
    def _changed(self, scope: str, scope_id: str, not_accepted_days: int, stall_days: int,
                 deadline_warning_days: int, escalate_after_days: int, supervisor_id: str | None) -> None:
        self._apply(not_accepted_days, stall_days, deadline_warning_days, escalate_after_days, supervisor_id)
