"""The in-memory event store under the platform's own glue: a command bus on
``Repository(MemoryEventStore())`` answers, replays and refuses commands as it does on
PostgreSQL, without a database (the store's own contract: tests/contract)."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from datetime import datetime, timezone

from contracts.common import Actor, CommandAccepted, CommandRejected, RejectionReason, Role
from contracts.notify import Unsubscribe
from tests.support.store import Tally, meta
from yishi.auth import Principal
from yishi.clock import ManualClock
from yishi.commands import CommandBus, CommandContext
from yishi.memory import MemoryEventStore
from yishi.repository import Repository
from yishi.rules import Rejected
from yishi.store import EventStore

PLATFORM = Principal.of_platform("notify")


def bus_counting_calls() -> tuple[CommandBus, MemoryEventStore, list[str]]:
    """A bus with one tiny handler: it saves a new ``Tally`` named after the command's
    subscription id, and refuses (after saving) when that id starts with ``refuse``."""
    store = MemoryEventStore()
    bus = CommandBus("notify", Repository(store), ManualClock(datetime(2026, 5, 1, tzinfo=timezone.utc)))
    calls: list[str] = []

    @bus.handles(Unsubscribe)
    async def unsubscribe(cmd: Unsubscribe, ctx: CommandContext) -> str:
        calls.append(cmd.subscription_id)
        tally = Tally(cmd.subscription_id)
        await ctx.save(cmd, tally)
        if cmd.subscription_id.startswith("refuse"):
            raise Rejected(RejectionReason.INVALID_STATE, "refused after saving", cmd.subscription_id)
        return str(tally.id)

    return bus, store, calls


def unsubscribe(subscription_id: str) -> Unsubscribe:
    return Unsubscribe(district="gulou", actor=Actor(id="yishi-notify", role=Role.SYSTEM),
                       subscription_id=subscription_id)


async def dispatch(bus: CommandBus, command: Unsubscribe, key: str):
    return await bus.dispatch(command, command_id=str(uuid.uuid4()), correlation_id=str(uuid.uuid4()),
                              principal=PLATFORM, key=key)


async def test_a_command_is_accepted_and_its_resend_answered_from_the_stored_reply():
    bus, store, calls = bus_counting_calls()
    reply = await dispatch(bus, unsubscribe("sub-1"), "k1")
    assert isinstance(reply, CommandAccepted) and reply.command_type == "Unsubscribe"
    tally = await bus.repository.get(Tally, reply.subject)
    assert tally.name == "sub-1"
    again = await dispatch(bus, unsubscribe("sub-1"), "k1")
    assert again == reply
    assert calls == ["sub-1"], "the resend ran the handler a second time"
    log = [e async for e in store.iter_log()]
    assert [e.topic.rsplit(".", 1)[-1] for e in log] == ["Created", "contract:CommandAccepted"]
    assert log[0].metadata["causation_id"] == log[1].metadata["causation_id"]
    other = await dispatch(bus, unsubscribe("sub-2"), "k1")
    assert isinstance(other, CommandRejected) and other.reason is RejectionReason.IDEMPOTENCY_KEY_REUSED
    assert calls == ["sub-1"]


async def test_a_refusal_rolls_back_the_handlers_writes_and_is_recorded():
    bus, store, calls = bus_counting_calls()
    reply = await dispatch(bus, unsubscribe("refuse-1"), "k2")
    assert isinstance(reply, CommandRejected)
    assert (reply.reason, reply.message, reply.subject) == (RejectionReason.INVALID_STATE, "refused after saving",
                                                            "refuse-1")
    log = [e async for e in store.iter_log()]
    assert [e.topic for e in log] == ["contract:CommandRejected"], "the refused handler's Tally was kept"
    assert await dispatch(bus, unsubscribe("refuse-1"), "k2") == reply
    assert calls == ["refuse-1"]


async def test_concurrent_commands_on_one_aggregate_are_retried_until_each_is_applied():
    """Each handler loads the same tally, yields, and saves it: the appends race on one
    version, the losers wait for the winner's commit, conflict and are run again."""
    store = MemoryEventStore()
    bus = CommandBus("notify", Repository(store), ManualClock(datetime(2026, 5, 1, tzinfo=timezone.utc)),
                     retries=10)
    shared = Tally("shared")
    await bus.repository.save(shared, meta=meta())
    attempts: list[str] = []

    @bus.handles(Unsubscribe)
    async def add_one(cmd: Unsubscribe, ctx: CommandContext) -> str:
        attempts.append(cmd.subscription_id)
        tally = await ctx.repository.get(Tally, shared.id, conn=ctx.conn)
        await asyncio.sleep(0)  # let every other command load the same version
        tally.add(1)
        await ctx.save(cmd, tally)
        return str(tally.id)

    replies = await asyncio.gather(*(dispatch(bus, unsubscribe(f"sub-{i}"), f"k{i}") for i in range(5)))
    assert all(isinstance(r, CommandAccepted) for r in replies)
    assert (await bus.repository.get(Tally, shared.id)).count == 5
    assert len(attempts) > 5, "no command was retried: the appends did not race"


def test_the_memory_store_implements_every_public_method_of_the_store():
    """An inherited method would run the PostgreSQL store's SQL on a memory pool: every
    public method is the memory store's own, but the paging written over read_log."""
    public = {name for name, _ in inspect.getmembers(EventStore, inspect.isfunction) if not name.startswith("_")}
    own = {name for name in vars(MemoryEventStore) if not name.startswith("_")}
    assert public - own == set()
    assert MemoryEventStore.iter_log is EventStore.iter_log
