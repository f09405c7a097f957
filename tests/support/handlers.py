"""Unit tests of a service's command handlers without PostgreSQL: its bus on the
in-memory event store (:mod:`yishi.memory`), read models left out (``project=None``).

    bus = Handlers(build_bus)
    reply = await bus.accepted(FormCouncil(...))
    await bus.rejected(SeatMember(...), "not_found")
    council = await bus.load(Council, district, "c-1")
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any

from contracts.common import Command, CommandAccepted, CommandRejected
from yishi.auth import Principal
from yishi.clock import ManualClock
from yishi.commands import CommandBus, Reply
from yishi.memory import MemoryEventStore
from yishi.repository import Repository

T0 = datetime(2026, 4, 1, 1, 0, tzinfo=timezone.utc)


class Handlers:
    """A service's bus built by ``build_bus(repository, clock, project=None, **extra)`` on a
    fresh in-memory store, and ways to send it commands as their actors."""

    def __init__(self, build_bus: Callable[..., CommandBus], clock: ManualClock | None = None,
                 repository: Repository | None = None, **extra: Any) -> None:
        self.store = repository.store if repository else MemoryEventStore()
        self.repository = repository or Repository(self.store)
        self.clock = clock or ManualClock(T0)
        self.bus = build_bus(self.repository, self.clock, project=None, **extra)

    async def send(self, command: Command, *, acts_for: Iterable[str] = ("*",), key: str | None = None,
                   principal: Principal | None = None) -> Reply:
        """``command`` as its actor sends it (a token acting for ``acts_for``), or as
        ``principal`` (``self.bus.platform`` for the platform's own)."""
        principal = principal or Principal.of_actor(command.actor, command.district, acts_for=acts_for)
        command_id = str(uuid.uuid4())
        return await self.bus.dispatch(command, command_id=command_id, correlation_id=command_id,
                                       principal=principal, key=key)

    async def accepted(self, command: Command, **kw: Any) -> CommandAccepted:
        reply = await self.send(command, **kw)
        assert isinstance(reply, CommandAccepted), reply
        return reply

    async def rejected(self, command: Command, reason: str, **kw: Any) -> CommandRejected:
        reply = await self.send(command, **kw)
        assert isinstance(reply, CommandRejected) and reply.reason == reason, reply
        return reply

    async def load(self, cls: type, *key: str) -> Any:
        """The aggregate as stored now (``cls.create_id(*key)``), or None."""
        return (await self.repository.get_each((cls, cls.create_id(*key))))[0]

    async def topics(self) -> list[str]:
        """The topics of every event stored so far, in log order (replies included)."""
        return [e.topic for e in await self.store.read_log(limit=100_000)]
