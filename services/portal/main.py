"""Wiring of the portal service in one place: ``spec()`` for ``yishi serve portal``.

The portal is the platform's public face: it keeps a copy of the other services' public
events (from Kafka only, never their databases) and serves them as pages without a token.
It owns no aggregate; the commands of a signed-in person's forms are sent to the other
services with that person's token (:mod:`services.portal.signin`)."""

from __future__ import annotations

from services.portal import signin
from services.portal.api import build_router
from services.portal.consumers import wire_consumers
from services.portal.settings import PortalSettings
from yishi.runtime import ServiceContext, ServiceSpec


def spec(settings: PortalSettings | None = None) -> ServiceSpec:
    """The portal service. Its settings come from ``YISHI_PORTAL_*`` unless given."""
    settings = settings or PortalSettings()

    def wire(ctx: ServiceContext) -> None:
        wire_consumers(ctx)
        signin.install(ctx, settings)
        ctx.public.include_router(build_router(lambda: ctx.pool, ctx.settings.districts, ctx.clock, settings))

    return ServiceSpec(name="portal", wire=wire)
