"""The one way a service's relay translator works: stored event → domain event (through
the repository's mapper, so upcasting and the transcodings apply) → public contract
model → publication.

A service writes only what is its own: which domain events are public, the fields of
each public model, and the subject (Kafka key and ``ce_subject``) of each. The common
fields every public model carries (district, actor, time) come from the stored event
and its metadata, here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from eventsourcing.persistence import Mapper

from contracts import registry
from contracts.common import Actor, Contract
from yishi.relay import Publication, Translator
from yishi.repository import Repository
from yishi.store import RecordedEvent

Public = tuple[Contract, str | None]
"""A public model and its subject (``None``: the stream id)."""

ToPublic = Callable[[Any, RecordedEvent], Public | None]
"""A service's mapping: the public form of a domain event (decoded from the stored
event it is given too), or ``None`` for an event that stays private."""


def decoder(mapper: Mapper | None = None) -> Callable[[RecordedEvent], Any]:
    """Stored event → domain event with the repository's mapper; decoding needs no store."""
    return Repository(None, mapper).to_domain_event  # type: ignore[arg-type]


def common_fields(recorded: RecordedEvent, actor: Actor) -> dict[str, Any]:
    """The fields every public model takes from its stored event: district, actor, time."""
    return dict(district=recorded.district, actor=actor,
                occurred_at=datetime.fromisoformat(recorded.metadata["occurred_at"]))


def translator(to_domain_event: Callable[[RecordedEvent], Any], to_public: ToPublic) -> Translator:
    """A relay translator: each stored event decoded by ``to_domain_event``, mapped by
    ``to_public`` and encoded as its contract's latest schema version."""

    def translate(recorded: RecordedEvent) -> Publication | None:
        public = to_public(to_domain_event(recorded), recorded)
        if public is None:
            return None
        model, subject = public
        encoded = registry.encode(model)
        return Publication(encoded.type, encoded.schema_version, encoded.data, subject=subject)

    return translate
