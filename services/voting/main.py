"""Wiring of the voting service in one place: ``spec()`` is what ``yishi serve voting`` runs."""

from __future__ import annotations

from yishi.runtime import ServiceContext, ServiceSpec
from services.voting import api
from services.voting.application import closing_timer, create_bus
from services.voting import consumers
from services.voting.translator import translate


def wire(ctx: ServiceContext) -> None:
    """Commands (HTTP and topic), queries, the ``VoteRequested`` consumer and the closing timer."""
    bus = create_bus(ctx.store, ctx.clock)
    ctx.serve_commands(bus)
    ctx.router.include_router(api.router(ctx))
    consumers.wire(ctx, bus)
    ctx.background.append(closing_timer(bus, ctx.clock, policy=ctx.retry_policy))


def spec() -> ServiceSpec:
    """The voting service."""
    return ServiceSpec(name="voting", translate=translate, wire=wire)
