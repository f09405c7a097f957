"""A task's budget is kept by the task itself: allocations from any fund add up on its
stream, so the rule holds without reading a read model."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from contracts.common import RejectionReason
from services.oversight.domain import Task
from yishi.repository import default_mapper
from yishi.rules import Rejected

T0 = datetime(2026, 3, 1, 9, tzinfo=timezone.utc)


def task(budget_fen: int | None) -> Task:
    return Task(district="gulou", task_id="task-1", resolution_id="res-1", council_id="council-1",
                implementer={"kind": "local_unit", "id": "unit-7", "name": "物业"}, description="Build the shed",
                acceptance_standards=["40 charging points"], due_at=T0 + timedelta(days=30), budget_fen=budget_fen,
                assigned_at=T0)


def test_allocations_from_several_funds_stay_within_the_task_budget_and_survive_replay():
    t = task(1_000)
    t.allocate("alloc-1", "fund-2026", 700)
    with pytest.raises(Rejected) as refused:
        t.allocate("alloc-2", "fund-2027", 301)
    assert (refused.value.reason, refused.value.subject) == (RejectionReason.OVER_BUDGET, "alloc-2")
    t.allocate("alloc-3", "fund-2027", 300)
    mapper = default_mapper()
    replayed = None
    for e in t.collect_events():
        replayed = mapper.to_domain_event(mapper.to_stored_event(e)).mutate(replayed)
    assert (t.allocated_fen, replayed.allocated_fen) == (1_000, 1_000)


def test_a_task_without_a_budget_takes_any_allocation():
    t = task(None)
    t.allocate("alloc-1", "fund-2026", 10_000_000)
    assert t.allocated_fen == 10_000_000
