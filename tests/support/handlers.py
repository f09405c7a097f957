"""Unit tests of a service's command handlers without PostgreSQL: its bus on the
in-memory event store (:mod:`yishi.memory`), read models left out (``project=None``).

    bus = Handlers(build_bus)
    reply = await bus.accepted(FormCouncil(...))
    await bus.rejected(SeatMember(...), "not_found")
    council = await bus.load(Council, district, "c-1")

Every handler is tested for its :data:`ASPECTS`: accepted (:meth:`Handlers.accepted`),
answered from its stored reply when resent (:meth:`Handlers.resent`, :meth:`Handlers.once`)
and refused (:meth:`Handlers.rejected`), plus the extra ones a service declares. A test
names what it shows with :func:`covers`, and fails unless it made those checks; each
service's guard test calls :func:`assert_every_handler_tested` with its bus and test
modules, which fails when a handler lacks a test of one of its aspects.
"""

from __future__ import annotations

import functools
import itertools
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from datetime import datetime, timezone
from types import ModuleType
from typing import Any

from contracts.common import Command, CommandAccepted, CommandRejected
from contracts.envelope import Envelope
from yishi.auth import Principal
from yishi.clock import ManualClock
from yishi.commands import CommandBus, Reply
from yishi.memory import MemoryEventStore
from yishi.repository import Repository

T0 = datetime(2026, 4, 1, 1, 0, tzinfo=timezone.utc)

ASPECTS = ("accepted", "resent", "refused")
"""What every handler is tested for."""

_UNCHECKED: Any = object()

# The checks made by the running test that :func:`covers` marks: (command type, aspect).
# A context variable, so a bus built by a fixture records into the test that uses it.
_exercised: ContextVar[set[tuple[type[Command], str]] | None] = ContextVar("exercised", default=None)


def _record(model: type[Command], *aspects: str) -> None:
    exercised = _exercised.get()
    if exercised is not None:
        exercised.update((model, aspect) for aspect in aspects)


def covers(model: type[Command], *aspects: str):
    """Mark a test as checking ``aspects`` of ``model``'s handler (stack it for several
    handlers); the test fails unless it made those checks."""

    def mark(test):
        claims = getattr(test, "claims", frozenset()) | {(model, a) for a in aspects}
        inner = getattr(test, "__wrapped__", test)

        @functools.wraps(inner)
        async def checked(*args: Any, **kwargs: Any) -> None:
            exercised: set[tuple[type[Command], str]] = set()
            token = _exercised.set(exercised)
            try:
                await inner(*args, **kwargs)
            finally:
                _exercised.reset(token)
            missing = sorted(f"{m.__name__} {a}" for m, a in claims - exercised)
            assert not missing, f"claimed but not checked: {missing}"
        checked.claims = claims  # type: ignore[attr-defined]
        return checked
    return mark


def assert_every_handler_tested(bus: CommandBus, *modules: ModuleType,
                                extra: Mapping[type[Command], Iterable[str]] | None = None) -> None:
    """Every handler of ``bus``, public and internal, has tests in ``modules`` claiming
    (:func:`covers`) each of its :data:`ASPECTS` and its ``extra`` ones; and no test claims
    a handler the bus has not, or an aspect not asked of it."""
    extra = extra or {}
    covered: dict[type[Command], set[str]] = defaultdict(set)
    for module in modules:
        for test in vars(module).values():
            if getattr(test, "__module__", None) == module.__name__:
                for model, aspect in getattr(test, "claims", ()):
                    covered[model].add(aspect)
    wanted = {model: {*ASPECTS, *extra.get(model, ())} for model in bus.handlers}
    untested = {m.__name__: sorted(aspects - covered[m]) for m, aspects in wanted.items() if aspects - covered[m]}
    unknown = {m.__name__: sorted(aspects - wanted.get(m, set())) for m, aspects in covered.items()
               if aspects - wanted.get(m, set())}
    assert untested == {}, f"handlers without a test of: {untested}"
    assert unknown == {}, f"tests claim what the bus does not ask: {unknown}"


class Handlers:
    """A service's bus built by ``build_bus(repository, clock, project=None, **extra)`` on a
    fresh in-memory store, and ways to send it commands as their actors and check the
    replies (each check records the aspect it exercised, for :func:`covers`)."""

    def __init__(self, build_bus: Callable[..., CommandBus], clock: ManualClock | None = None,
                 repository: Repository | None = None, **extra: Any) -> None:
        self.store = repository.store if repository else MemoryEventStore()
        self.repository = repository or Repository(self.store)
        self.clock = clock or ManualClock(T0)
        self.bus = build_bus(self.repository, self.clock, project=None, **extra)
        self._keys = itertools.count(1)

    async def send(self, command: Command, *, acts_for: Iterable[str] = ("*",), key: str | None = None,
                   principal: Principal | None = None, platform: bool = False) -> Reply:
        """``command`` as its actor sends it (a token acting for ``acts_for``), as
        ``principal``, or as the platform itself (``platform``: its reactions' commands)."""
        if platform:
            principal = self.bus.platform
        principal = principal or Principal.of_actor(command.actor, command.district, acts_for=acts_for)
        command_id = str(uuid.uuid4())
        return await self.bus.dispatch(command, command_id=command_id, correlation_id=command_id,
                                       principal=principal, key=key)

    async def react(self, command: Command, envelope: Envelope) -> Reply:
        """``command`` as the platform's reaction to another service's event ``envelope``,
        in an inbox transaction of its own (:meth:`CommandBus.react`)."""
        async with self.store.pool.acquire() as conn, conn.transaction():
            return await self.bus.react(command, envelope, conn)

    async def accepted(self, command: Command, *, aspects: Iterable[str] = (), **kw: Any) -> CommandAccepted:
        """Send ``command`` (as :meth:`send`); it is accepted. Records "accepted" and ``aspects``."""
        reply = await self.send(command, **kw)
        assert isinstance(reply, CommandAccepted), reply
        _record(type(command), "accepted", *aspects)
        return reply

    async def rejected(self, command: Command, reason: str, subject: str | None = _UNCHECKED, *,
                       aspects: Iterable[str] = (), **kw: Any) -> CommandRejected:
        """Send ``command``; it is refused for ``reason`` (naming ``subject``, when given),
        and the refusal is all it stored. Records "refused" and ``aspects``."""
        before = await self.topics()
        reply = await self.send(command, **kw)
        assert isinstance(reply, CommandRejected) and reply.reason == reason, reply
        assert subject is _UNCHECKED or reply.subject == subject, reply
        assert reply.command_type == self.bus.type_name(type(command)), reply
        assert await self.topics() == [*before, "contract:CommandRejected"], "a refusal stored more than itself"
        _record(type(command), "refused", *aspects)
        return reply

    async def resent(self, command: Command, reply: Reply, *, envelope: Envelope | None = None,
                     **kw: Any) -> None:
        """Send ``command`` again, under the ``key`` it was sent with (as :meth:`send`) or as
        the reaction to the same event ``envelope``: answered with ``reply`` again, and
        nothing more stored. Records "resent"."""
        stored = await self.topics()
        again = await (self.react(command, envelope) if envelope is not None else self.send(command, **kw))
        assert again == reply, (again, reply)
        assert await self.topics() == stored, "a resend stored something"
        _record(type(command), "resent")

    async def once(self, command: Command, *, aspects: Iterable[str] = (), **kw: Any) -> CommandAccepted:
        """Send ``command`` under a new key (unless ``key`` is given) and accept it, then
        resend it (:meth:`resent`). Records "accepted", "resent" and ``aspects``."""
        kw.setdefault("key", f"once-{next(self._keys)}")
        reply = await self.accepted(command, aspects=aspects, **kw)
        await self.resent(command, reply, **kw)
        return reply

    def answered(self, model: type[Command], reply: Reply, *aspects: str) -> Reply:
        """``reply``, this bus's answer to a ``model`` command sent some other way (by a
        timer, say); records that it exercised ``aspects`` of the handler."""
        assert reply.command_type == self.bus.type_name(model), reply
        _record(model, *aspects)
        return reply

    async def load(self, cls: type, *key: str) -> Any:
        """The aggregate as stored now (``cls.create_id(*key)``), or None."""
        return (await self.repository.get_each((cls, cls.create_id(*key))))[0]

    async def topics(self) -> list[str]:
        """The topics of every event stored so far, in log order (replies included)."""
        return [e.topic for e in await self.store.read_log(limit=100_000)]
