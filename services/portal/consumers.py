"""The portal's consumers: the other services' public events, from Kafka only, copied
into its read model (:func:`services.portal.projections.record`) in the inbox
transaction. The portal changes no aggregate: it only keeps copies."""

from __future__ import annotations

from typing import Any

import asyncpg

from contracts import registry
from contracts.envelope import Envelope
from services.portal.projections import record
from yishi.runtime import ServiceContext

CONSUMED: dict[str, tuple[str, ...]] = registry.consumed_by("portal")
"""The public events the pages are drawn from, by the service that publishes them: the
registry's list of what the portal consumes (``contracts.registry``), kept there only.
Ballots are not among them: a vote's page shows its closing tally and turnout only."""


async def keep(model: Any, envelope: Envelope, conn: asyncpg.Connection) -> None:
    """Copy one public event into the read model."""
    await record(conn, model, envelope)


def wire_consumers(ctx: ServiceContext) -> None:
    """Subscribe to the events of :data:`CONSUMED` (one consumer group per service)."""
    for service, types in CONSUMED.items():
        ctx.on_events(service, service, {t: keep for t in types})
