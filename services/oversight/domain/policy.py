"""The late-task policy: its values (:class:`Policy`) and where they are set, per
resolution or council (:class:`ReminderPolicy`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from eventsourcing.domain import Aggregate, event

from services.oversight.domain.streams import stream_id


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
