"""Wiring of the oversight service in one place: ``spec()`` is what ``yishi serve
oversight`` and ``yishi run`` start."""

from __future__ import annotations

from yishi.repository import Repository
from yishi.runtime import ServiceContext, ServiceSpec

from services.oversight import api
from services.oversight.application import build_bus
from services.oversight.consumers import wire_consumers
from services.oversight.scheduler import reminder_job
from services.oversight.settings import OversightSettings
from services.oversight.translator import translator


def spec(reminder_interval: float = 1.0, settings: OversightSettings | None = None) -> ServiceSpec:
    """The oversight service; ``reminder_interval`` is how often (in real seconds) the
    scheduler looks for due reminders against the service's clock. Settings come from
    ``YISHI_OVERSIGHT_*`` unless given."""
    settings = settings or OversightSettings()

    def wire(ctx: ServiceContext) -> None:
        bus = build_bus(Repository(ctx.store), ctx.clock)
        ctx.serve_commands(bus)
        wire_consumers(ctx, bus)
        ctx.router.include_router(api.router(ctx))
        ctx.background.append(reminder_job(bus, reminder_interval, settings.policy_day, ctx.retry_policy))

    return ServiceSpec(name="oversight", translate=translator(), wire=wire)
