"""The store contract suite's one fixture: every test runs on each event store."""

from __future__ import annotations

import pytest

from yishi.memory import MemoryEventStore
from yishi.store import EventStore


@pytest.fixture(params=["postgres", "memory"])
def store(request) -> EventStore:
    """An empty event store: PostgreSQL (a fresh migrated schema) or in memory."""
    if request.param == "postgres":
        return EventStore(request.getfixturevalue("pool"))
    return MemoryEventStore()
