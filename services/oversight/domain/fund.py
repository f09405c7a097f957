"""A community's micro-project fund for one year, its allocations and expenditures."""

from __future__ import annotations

import uuid
from typing import Any

from eventsourcing.domain import Aggregate, event

from contracts.common import RejectionReason
from yishi.rules import Rejected

from services.oversight.domain.claim import FUND_OF_ALLOCATION, FUND_OF_YEAR, Claim, year_key
from services.oversight.domain.resolution import Resolution
from services.oversight.domain.streams import stream_id
from services.oversight.domain.task import Task


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

    @classmethod
    def establish(cls, *, district: str, fund_id: str, community_id: str, year: int, amount_fen: int,
                  year_taken_by: str | None) -> tuple[Fund, Claim]:
        """A new fund and its claim on the community's year: one fund per community and
        year, so ``already_exists`` when ``year_taken_by`` (the fund that has the year) is
        set. Save both: the claim's stream is what makes the year taken."""
        if year_taken_by is not None:
            raise Rejected(RejectionReason.ALREADY_EXISTS,
                           f"fund {year_taken_by} exists (one fund per community and year)", fund_id)
        fund = cls(district=district, fund_id=fund_id, community_id=community_id, year=year, amount_fen=amount_fen)
        return fund, Claim(district=district, kind=FUND_OF_YEAR, key=year_key(community_id, year), owner_id=fund_id)

    def allocate(self, allocation_id: str, amount_fen: int, purpose: str, *, resolution: Resolution,
                 task: Task | None, resolution_community: str | None, taken_by: str | None = None) -> Claim:
        """Set money aside for an open ``resolution`` of the fund's community, and for one
        of its tasks (``task``) within the task's budget; never more than what is left of
        the fund. ``resolution_community`` is the resolution's community (None: not known
        yet); ``taken_by`` the fund that already has the allocation id, if any. Records the
        allocation on the fund and on the task, and returns the claim on the allocation id
        (save all three)."""
        if resolution.closed:
            raise Rejected(RejectionReason.INVALID_STATE, f"resolution {resolution.resolution_id} is closed",
                           allocation_id)
        if resolution_community and resolution_community != self.community_id:
            raise Rejected(RejectionReason.INVALID_STATE,
                           f"fund {self.fund_id} belongs to another community than the resolution", allocation_id)
        if task is not None:
            task.require_resolution(resolution.resolution_id)
            task.check_allocation(allocation_id, amount_fen)
        if allocation_id in self.allocations or taken_by is not None:
            raise Rejected(RejectionReason.ALREADY_EXISTS, f"allocation {allocation_id} exists", allocation_id)
        if amount_fen <= 0:
            raise Rejected(RejectionReason.INVALID_COMMAND, "an allocation must be more than 0 fen", allocation_id)
        if amount_fen > self.remaining_fen:
            raise Rejected(RejectionReason.OVER_BUDGET,
                           f"fund {self.fund_id} has {self.remaining_fen} fen left, {amount_fen} requested",
                           allocation_id)
        task_id = None
        if task is not None:
            # The task's budget holds across funds because the task records the allocation
            # too: both streams are appended with their expected versions in one transaction.
            task.allocate(allocation_id, self.fund_id, amount_fen)
            task_id = task.task_id
        self._allocated(allocation_id, resolution.resolution_id, task_id, self.fund_id, amount_fen, purpose)
        return Claim(district=self.district, kind=FUND_OF_ALLOCATION, key=allocation_id, owner_id=self.fund_id)

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
