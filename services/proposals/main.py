"""Wiring of the proposals service in one place: ``spec()`` is what ``yishi serve
proposals`` and the tests start."""

from __future__ import annotations

from services.proposals import api, consumers
from services.proposals.application import build_bus
from services.proposals.translator import translate
from yishi.repository import Repository
from yishi.runtime import ServiceContext, ServiceSpec


def wire(ctx: ServiceContext) -> None:
    """Commands over HTTP and the command topic, reactions to votes and reconsultation
    requests, and the queries."""
    repository = Repository(ctx.store)
    bus = build_bus(repository, ctx.clock)
    ctx.serve_commands(bus)
    consumers.wire(ctx, bus)
    ctx.router.include_router(api.router(ctx, repository))


def spec() -> ServiceSpec:
    """The proposals service."""
    return ServiceSpec(name="proposals", translate=translate, wire=wire)
