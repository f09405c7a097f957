"""What store tests share: metadata, events and small aggregates to append and load."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from eventsourcing.domain import Aggregate, event

from yishi.store import Metadata, NewEvent


def meta(district: str = "gulou") -> Metadata:
    return Metadata(actor="u1", district=district, correlation_id=str(uuid.uuid4()),
                    occurred_at=datetime(2026, 5, 1, tzinfo=timezone.utc), actor_role="convener")


def events(n: int, tag: str = "e") -> list[NewEvent]:
    return [NewEvent("tests:Happened", f'{{"n":{i},"tag":"{tag}"}}'.encode()) for i in range(n)]


class Tally(Aggregate):
    """A small aggregate: validate in the public method, record in the private event."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0

    def add(self, n: int) -> None:
        if n <= 0:
            raise ValueError("only positive additions")
        self._added(n)

    @event("Added")
    def _added(self, n: int) -> None:
        self.count += n


class Counter(Aggregate):
    def __init__(self) -> None:
        self.total = 0

    @event("Counted")
    def count(self, n: int) -> None:
        self.total += n


class CounterV2(Aggregate):
    """Version 2 of the same events: ``Counted`` gained a ``reason``; old events are upcast."""

    def __init__(self) -> None:
        self.total = 0
        self.reasons: list[str] = []

    class Counted(Aggregate.Event):
        class_version = 2
        n: int
        reason: str

        @staticmethod
        def upcast_v1_v2(state: dict) -> None:
            state["reason"] = "unknown (recorded before reasons)"

        def apply(self, aggregate: "CounterV2") -> None:
            aggregate.total += self.n
            aggregate.reasons.append(self.reason)
