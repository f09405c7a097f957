"""A resolution: an adopted decision to deliver, the tasks it is delivered by,
its inspections, ratings and closure."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from eventsourcing.domain import Aggregate, event

from contracts.common import RejectionReason
from contracts.oversight import ClosureReason
from contracts.permissions import Party
from yishi.rules import Rejected, within_horizon

from services.oversight.domain.streams import stream_id
from services.oversight.domain.task import Task


class Resolution(Aggregate):
    """An adopted decision to deliver: its origin, its tasks, inspections, ratings and closure.

    Create one with :meth:`register`. The resolution records the ids of the tasks assigned
    to it (:meth:`assign_task`), so that closing and rating count them from their own
    streams. One registered before it did (``task_ids`` None) has its tasks listed by the
    read model instead.
    """

    @staticmethod
    def create_id(district: str, resolution_id: str) -> uuid.UUID:
        return stream_id(district, "resolution", resolution_id)

    @event("Registered")
    def __init__(self, district: str, resolution_id: str, proposal_id: str, council_id: str,
                 vote_id: str | None, catalogue_item_id: str | None, community_id: str | None, title: str,
                 text: str, budget_fen: int | None, task_ids: list[str] | None = None) -> None:
        # ``task_ids`` is absent from the Registered events stored before resolutions
        # recorded their tasks: those replay with None, "not recorded".
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
        self.recorded_task_ids = None if task_ids is None else list(task_ids)

    @classmethod
    def register(cls, *, district: str, resolution_id: str, proposal_id: str, council_id: str, vote_id: str | None,
                 catalogue_item_id: str | None, community_id: str | None, title: str, text: str,
                 budget_fen: int | None) -> Resolution:
        """A new resolution, recording its tasks from the start."""
        return cls(district=district, resolution_id=resolution_id, proposal_id=proposal_id, council_id=council_id,
                   vote_id=vote_id, catalogue_item_id=catalogue_item_id, community_id=community_id, title=title,
                   text=text, budget_fen=budget_fen, task_ids=[])

    @property
    def task_ids(self) -> list[str] | None:
        """The ids of the resolution's tasks, or None when it was registered before it
        recorded them (a snapshot of such a one lacks the field altogether)."""
        return self.__dict__.get("recorded_task_ids")

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

    def assign_task(self, task_id: str, implementer: dict, description: str, acceptance_standards: list[str],
                    due_at: datetime, budget_fen: int | None, now: datetime) -> Task:
        """A new task of this resolution, which must be open; it is due in the future, within
        the horizon. The resolution records it too."""
        self._require_open()
        if due_at <= now:
            raise Rejected(RejectionReason.DEADLINE_PASSED, "the deadline must be in the future", task_id)
        within_horizon(due_at, now, "due_at", task_id)
        self._task_assigned(self.resolution_id, task_id)
        return Task(district=self.district, task_id=task_id, resolution_id=self.resolution_id,
                    council_id=self.council_id, implementer=implementer, description=description,
                    acceptance_standards=list(acceptance_standards), due_at=due_at, budget_fen=budget_fen,
                    assigned_at=now)

    @event("TaskAssigned")
    def _task_assigned(self, resolution_id: str, task_id: str) -> None:
        if self.task_ids is not None:  # one that never recorded its tasks keeps them in the read model
            self.recorded_task_ids = [*self.task_ids, task_id]

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
                          *, tasks: Sequence[Task]) -> None:
        """Residents' counts at the yearly review; only for a resolution with tasks, all of
        which passed inspection (``tasks``: every task of this resolution)."""
        if rating_id in self.rating_ids:
            raise Rejected(RejectionReason.DUPLICATE, f"rating {rating_id} is already recorded", self.resolution_id)
        if not tasks or _open(tasks):
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

    def close(self, reason: str, summary: str, *, tasks: Sequence[Task]) -> None:
        """Close the file; ``delivered`` only when no task is still open (``tasks``: every
        task of this resolution)."""
        self._require_open()
        open_tasks = _open(tasks)
        if reason == ClosureReason.DELIVERED and open_tasks:
            raise Rejected(RejectionReason.INVALID_STATE,
                           f"{open_tasks} task(s) have not passed inspection yet", self.resolution_id)
        self._closed(self.resolution_id, reason, summary)

    @event("Closed")
    def _closed(self, resolution_id: str, reason: str, summary: str) -> None:
        self.closed_reason = reason


def _open(tasks: Sequence[Task]) -> int:
    """How many of ``tasks`` have not passed inspection."""
    return sum(1 for task in tasks if task.status != "passed")
