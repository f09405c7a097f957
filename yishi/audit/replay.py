"""Replay: rebuild the audit view, or one service's own state, as of a moment.

"As of" is a time (events that occurred at or before it) or, for the stores, a log
position (events at or before it: what a reader saw when the log's head was there).
The same view comes out of the stores, of Kafka and of a bundle, because all three
feed it the same public events (:mod:`yishi.audit.sources`).
"""

from __future__ import annotations

import gc
import importlib
import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from contracts.registry import REGISTRY
from yishi.audit.sources import PublicEvent, kafka_events, public_stored_batches, stored_events, to_public, translator
from yishi.audit.views import AuditView
from yishi.commands import REPLY_TOPIC_PREFIX
from yishi.repository import Repository
from yishi.store import RecordedEvent

Progress = Callable[[int], None]
"""Called with how many more events were read (every batch)."""

_BATCH = 2000  # events per progress report


@dataclass(frozen=True, slots=True)
class AsOf:
    """A moment in history: an occurred-at time, a store position, both, or neither (now)."""

    time: datetime | None = None
    position: int | None = None

    def includes(self, occurred_at: datetime) -> bool:
        """Whether an event that occurred at ``occurred_at`` is part of history as of this moment."""
        return self.time is None or occurred_at <= self.time


@dataclass
class Stats:
    """How much a replay read, and how fast."""

    events: int = 0
    applied: int = 0
    seconds: float = 0.0

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


# The newest schema version of every type: events at it (nearly all) need no upcasting.
_LATEST = {name: found.latest for name, found in REGISTRY.items()}


def upcast(type_name: str, version: int, body: dict[str, Any]) -> dict[str, Any]:
    """A JSON body of ``version`` upcast to the newest schema version of its type."""
    found = REGISTRY[type_name]
    for step in range(version, found.latest):
        body = found.upcasters[step](body)
    return body


class Replayer:
    """Feeds public events into an audit view, as of a moment, counting and reporting
    progress; the one loop every source goes through, kept lean for throughput.

    Use it as a context manager: the garbage collector is off inside. A replay only
    allocates acyclic objects that the view keeps, and collector passes over millions of
    them find nothing to free while costing a third of the time or more.
    """

    def __init__(self, as_of: AsOf = AsOf(), progress: Progress | None = None) -> None:
        self.view = AuditView()
        self.as_of = as_of
        self.progress = progress
        self.stats = Stats()
        self._started = time.perf_counter()

    def __enter__(self) -> "Replayer":
        self._collecting = gc.isenabled()
        gc.disable()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._collecting:
            gc.enable()

    def feed(self, events: Iterable[PublicEvent | tuple | None]) -> None:
        """Apply ``events``: public events, or rows with the same fields in the same order
        (database records need no conversion); None is a stored event that is not
        published, counted only."""
        apply, until, upto, latest = self.view.apply, self.as_of.time, self.as_of.position, _LATEST
        loads = orjson.loads  # the hot step of every replay: orjson is several times faster than json
        read = applied = 0
        for event in events:
            read += 1
            if event is None:
                continue
            service, type_, version, data, event_id, _, _, at, position = event
            if (until is not None and at > until) or (upto is not None and position is not None and position > upto):
                continue
            body = loads(data)
            if version < latest[type_]:
                body = upcast(type_, version, body)
            apply(service, type_, body, event_id)
            applied += 1
        self.stats.events += read
        self.stats.applied += applied
        if self.progress is not None:
            self.progress(read)

    async def feed_async(self, events: AsyncIterator[PublicEvent | None], batch: int = _BATCH) -> None:
        """:meth:`feed` an asynchronous source, a batch at a time."""
        pending: list[PublicEvent | None] = []
        async for event in events:
            pending.append(event)
            if len(pending) >= batch:
                self.feed(pending)
                pending = []
        self.feed(pending)

    def done(self) -> tuple[AuditView, Stats]:
        """The view and the statistics of the replay so far."""
        self.stats.seconds = time.perf_counter() - self._started
        return self.view, self.stats


async def audit_view_from_stores(pools: dict[str, asyncpg.Pool], *, district: str | None = None,
                                 as_of: AsOf = AsOf(), progress: Progress | None = None) -> tuple[AuditView, Stats]:
    """The audit view from the services' stores (``service -> pool``)."""
    with Replayer(as_of, progress) as replayer:
        for service, pool in pools.items():
            async for events in public_stored_batches(pool, service, district=district, upto=as_of.position):
                replayer.feed(events)
        return replayer.done()


async def audit_view_from_kafka(bootstrap: str, services: Iterable[str], *, districts: Iterable[str] | None = None,
                                as_of: AsOf = AsOf(), progress: Progress | None = None,
                                kafka_options: dict[str, Any] | None = None) -> tuple[AuditView, Stats]:
    """The audit view from the services' Kafka topics alone, read from offset zero."""
    if as_of.position is not None:
        raise ValueError("Kafka has no store positions: replay from Kafka as of a time instead")
    with Replayer(as_of, progress) as replayer:
        await replayer.feed_async(kafka_events(bootstrap, services, districts, kafka_options))
        return replayer.done()


def audit_view_from_events(events: Iterable[PublicEvent | None], *, as_of: AsOf = AsOf(),
                           progress: Progress | None = None) -> tuple[AuditView, Stats]:
    """The audit view from public events already at hand (a bundle)."""
    iterator = iter(events)
    with Replayer(as_of, progress) as replayer:
        while chunk := list(itertools.islice(iterator, _BATCH)):
            replayer.feed(chunk)
        return replayer.done()


def service_state(service: str, events: Iterable[RecordedEvent], as_of: AsOf = AsOf()) -> dict[str, Any]:
    """One service's state from its stored events: every aggregate replayed from its
    domain events, shown through the service's read-model function
    (``projections.view``, the one its live read models use) when it has one, so the
    result answers as its queries did; otherwise the service's public-event audit view.

    Returns ``{kind: {public id: document}}`` or the audit view's snapshot.
    """
    projections = importlib.import_module(f"services.{service}.projections")
    events = [e for e in events if (as_of.position is None or e.position <= as_of.position)
              and as_of.includes(datetime.fromisoformat(e.metadata["occurred_at"]))]
    if not (hasattr(projections, "view") and hasattr(projections, "KINDS")):
        translate = translator(service)
        return audit_view_from_events(to_public(service, translate, e) for e in events)[0].snapshot()
    decoder = Repository(None)  # only its mapper is used: decoding needs no store
    aggregates: dict[str, Any] = {}
    for e in events:
        if not e.topic.startswith(REPLY_TOPIC_PREFIX):
            aggregates[e.stream_id] = decoder.to_domain_event(e).mutate(aggregates.get(e.stream_id))
    state: dict[str, Any] = {}
    for aggregate in aggregates.values():
        kind = projections.KINDS.get(type(aggregate))
        if kind is not None:
            public_id, _, _, doc = projections.view(aggregate)
            state.setdefault(kind, {})[public_id] = doc.model_dump(mode="json")
    return state


async def service_state_from_store(pool: asyncpg.Pool, service: str, *, district: str | None = None,
                                   as_of: AsOf = AsOf()) -> dict[str, Any]:
    """:func:`service_state` of a service's store."""
    events = [e async for e in stored_events(pool, district=district, upto=as_of.position)]
    return service_state(service, events, as_of)
