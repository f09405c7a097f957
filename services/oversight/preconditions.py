"""The oversight service's commands: what each needs, and its refusals, in the order the
rules (the ``domain`` package, ``application.py``) check them. Rendered into contracts/README.md by
``python -m contracts.generate`` (see :mod:`contracts.preconditions`)."""

from __future__ import annotations

from contracts.common import RejectionReason as R
from contracts.preconditions import Refusal

PRECONDITIONS: dict[str, tuple[Refusal, ...]] = {
    "RegisterResolution": (
        (R.ALREADY_EXISTS, "the resolution id is taken"),
    ),
    "EstablishFund": (
        (R.ALREADY_EXISTS, "the fund id is taken, or the community has a fund for that year"),
    ),
    "SetReminderPolicy": (
        (R.NOT_FOUND, "a resolution's policy: the resolution does not exist"),
    ),
    "AssignTask": (
        (R.NOT_FOUND, "the resolution does not exist"),
        (R.ALREADY_EXISTS, "the task id is taken"),
        (R.INVALID_STATE, "the resolution is closed"),
        (R.DEADLINE_PASSED, "`due_at` is in the past"),
    ),
    "AcceptTask": (
        (R.NOT_FOUND, "the task does not exist"),
        (R.INVALID_STATE, "the task is not assigned (already accepted, completed, passed …)"),
    ),
    "ReportProgress": (
        (R.NOT_FOUND, "the task does not exist"),
        (R.INVALID_STATE, "the task is not accepted"),
    ),
    "CompleteTask": (
        (R.NOT_FOUND, "the task does not exist"),
        (R.INVALID_STATE, "the task is not accepted"),
    ),
    "EscalateTask": (
        (R.NOT_FOUND, "the task does not exist"),
        (R.INVALID_STATE, "the task is not assigned, accepted or completed"),
    ),
    "RecordInspection": (
        (R.NOT_FOUND, "the resolution or the task does not exist, or the task is not the resolution's"),
        (R.INVALID_STATE, "the resolution is closed"),
        (R.DUPLICATE, "the inspection id is already recorded"),
    ),
    "ScheduleFollowUpInspection": (
        (R.NOT_FOUND, "the task does not exist"),
        (R.INVALID_STATE, "the task is not completed or passed, or the inspection is not in the future"),
        (R.DUPLICATE, "the inspection id exists"),
    ),
    "AllocateFunds": (
        (R.NOT_FOUND, "the fund, the resolution or the task does not exist, or the task is not the resolution's"),
        (R.INVALID_STATE, "the resolution is closed, or the fund is another community's"),
        (R.OVER_BUDGET, "the task's allocations would exceed its budget, or the fund has less left"),
        (R.ALREADY_EXISTS, "the allocation id is taken"),
        (R.INVALID_COMMAND, "the amount is not above 0 fen"),
    ),
    "RecordSpending": (
        (R.NOT_FOUND, "the allocation does not exist"),
        (R.ALREADY_EXISTS, "the expenditure id is taken"),
        (R.INVALID_STATE, "the allocation is to no task (allocate to a task first)"),
        (R.INVALID_COMMAND, "the amount is not above 0 fen"),
        (R.OVER_BUDGET, "the allocation has less left than the amount"),
    ),
    "RecordSatisfaction": (
        (R.NOT_FOUND, "the resolution does not exist"),
        (R.DUPLICATE, "the rating id is already recorded"),
        (R.INVALID_STATE, "the resolution is not completed (every task passed inspection)"),
        (R.INVALID_COMMAND, "the rating counts no vote"),
    ),
    "CloseResolution": (
        (R.NOT_FOUND, "the resolution does not exist"),
        (R.INVALID_STATE, "the resolution is closed, or a task has not passed inspection"),
    ),
    "RequestReconsultation": (
        (R.NOT_FOUND, "the resolution or the task named does not exist"),
        (R.INVALID_STATE, "the resolution is closed"),
    ),
}
