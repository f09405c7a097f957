"""Wiring of the proposals service in one place: ``spec()`` is what ``yishi serve
proposals`` and the tests start."""

from __future__ import annotations

from services.proposals import api, consumers
from services.proposals.application import build_bus
from services.proposals.timer import session_job
from services.proposals.translator import translate
from yishi.repository import Repository
from yishi.runtime import ServiceContext, ServiceSpec


def spec(session_interval: float = 1.0) -> ServiceSpec:
    """The proposals service; ``session_interval`` is how often (in real seconds) the
    sessions' timer looks for sessions to schedule and open against the service's clock."""

    def wire(ctx: ServiceContext) -> None:
        """Commands over HTTP and the command topic, reactions to votes and reconsultation
        requests, the sessions' timer, and the queries."""
        repository = Repository(ctx.store)
        bus = build_bus(repository, ctx.clock)
        ctx.serve_commands(bus)
        consumers.wire(ctx, bus)
        ctx.router.include_router(api.router(ctx, repository))
        ctx.background.append(session_job(bus, session_interval, ctx.retry_policy))

    return ServiceSpec(name="proposals", translate=translate, wire=wire)
