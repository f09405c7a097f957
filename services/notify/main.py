"""Wiring of the notify service in one place: ``spec()`` for ``yishi serve notify``."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import timedelta

import asyncpg
import httpx

from services.notify.api import build_router
from services.notify.application import Notifier, build_bus
from services.notify.audience import PostgresAudience
from services.notify.channels import RateLimiter, build_senders
from services.notify.consumers import wire_consumers
from services.notify.domain import Backoff
from services.notify.settings import NotifySettings
from services.notify.templates import Templates, default_templates
from services.notify.translator import make_translator
from services.notify.worker import SESSION_COMING, SESSION_REMINDER_LEAD, VOTE_CLOSING, DeliveryWorker, Reminder
from yishi.jobs import every
from yishi.repository import Repository
from yishi.runtime import ServiceContext, ServiceSpec
from yishi.store import EventStore


def spec(settings: NotifySettings | None = None, templates: Templates | None = None,
         rng: Callable[[], float] | None = None) -> ServiceSpec:
    """The notify service. Settings come from ``YISHI_NOTIFY_*`` unless given; the
    template catalogue is checked here, so a missing template stops start-up
    (:class:`services.notify.templates.TemplateError`)."""
    settings = settings or NotifySettings()
    templates = templates or default_templates()
    rng = rng or random.Random().random

    def wire(ctx: ServiceContext) -> None:
        repository = Repository(ctx.store)
        client = httpx.AsyncClient(timeout=settings.send_timeout_s)  # no I/O until the first send
        senders = build_senders(settings, client, ctx.clock.now)
        bus = build_bus(repository, ctx.clock, Notifier(PostgresAudience(), templates, settings, senders))
        ctx.serve_commands(bus)
        wire_consumers(ctx, bus)
        ctx.router.include_router(build_router(lambda: ctx.pool))

        worker = DeliveryWorker(
            repository, ctx.clock, bus.system_actor, senders, RateLimiter(settings.rate_per_minute),
            Backoff(timedelta(seconds=settings.backoff_base_s), timedelta(seconds=settings.backoff_max_s), rng),
            lease=timedelta(seconds=settings.claim_lease_s), timeout=settings.send_timeout_s)
        # One replica sends (like every job, see yishi.jobs.Leadership), so the channel limits
        # hold for the deployment; claims alone would keep replicas from sending twice, but
        # each would scan every due delivery and keep its own limits.
        deliver = every(settings.worker_interval_s, worker.run_once, "notify.delivery", ctx.retry_policy)

        async def deliveries(stop: asyncio.Event, pool: asyncpg.Pool) -> None:
            try:
                await deliver(stop, pool)
            finally:
                await client.aclose()

        ctx.background.append(deliveries)
        vote_lead = timedelta(seconds=settings.vote_reminder_lead_s)
        for reminder in (Reminder(bus, VOTE_CLOSING, vote_lead, ctx.retry_policy),
                         Reminder(bus, SESSION_COMING, SESSION_REMINDER_LEAD, ctx.retry_policy)):
            # ctx.pool exists once the service started: read it at each step.
            ctx.background.append(every(settings.worker_interval_s, lambda r=reminder: r.run_once(ctx.pool),
                                        reminder.kind.job, ctx.retry_policy))

    return ServiceSpec(name="notify", translate=make_translator(Repository(EventStore(None)).to_domain_event),
                       wire=wire)
