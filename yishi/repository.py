"""Aggregates in and out of the event store, through the ``eventsourcing`` library's mapper.

Aggregates are the library's plain, synchronous ``Aggregate`` classes; this module is the
asynchronous edge that loads them (snapshot + later events, upcast by the mapper) and
saves what they recorded with an expected version, so two writers racing on one
aggregate cannot both win.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

import asyncpg
import orjson
from eventsourcing.domain import (
    Aggregate,
    BaseAggregate,
    CanInitAggregate,
    CanSnapshotAggregate,
    Snapshot as AggregateSnapshot,
)
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Mapper,
    MapperDeserialisationError,
    StoredEvent,
    Transcoding,
    UUIDAsHex,
    find_id_convertor,
    str_to_uuid_convertor,
)
from eventsourcing.utils import TopicError, resolve_topic

from yishi.store import Append, EventStore, Metadata, NewEvent, RecordedEvent, Snapshot

A = TypeVar("A", bound=BaseAggregate)


class AggregateNotFound(LookupError):
    """No aggregate of the requested class is stored under the requested id."""


_LONG_DIGITS = re.compile(rb"\d{19}")


class _Inexact(Exception):
    """A float in what orjson decoded: perhaps an integer beyond 64 bits, which orjson
    reads as a float and the json module as an int."""


class _OrjsonTranscoder(JSONTranscoder):
    """The library's JSON transcoder, decoding with orjson: the same objects, several
    times faster (each replay, translation and aggregate load decodes every event)."""

    def __init__(self) -> None:
        super().__init__()
        # How the data of each registered name is decoded when it is a string: the
        # library's datetimes, UUIDs and decimals straight by their constructors (their
        # ``decode`` only asserts it is a string, then calls them), others by ``decode``.
        self._from_str: dict[str, Callable[[str], Any]] = {}

    def register(self, transcoding: Transcoding) -> None:
        super().register(transcoding)
        direct = {DatetimeAsISO: datetime.fromisoformat, UUIDAsHex: uuid.UUID, DecimalAsStr: Decimal}
        self._from_str[transcoding.name] = direct.get(type(transcoding), transcoding.decode)

    def decode(self, data: bytes) -> Any:
        # orjson reads integers beyond 64 bits as floats, and refuses NaN and lone
        # surrogates: such states are decoded as the library decodes them. A state with
        # a float (rare) is searched for an integer of 19 digits or more; the others
        # need no search, as orjson reads every integer within 64 bits exactly.
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return super().decode(data)
        kind = type(obj)
        if kind is not dict and kind is not list:
            if kind is float and _LONG_DIGITS.search(data) is not None:
                return super().decode(data)
            return obj
        try:
            return self._revive(obj, True)
        except _Inexact:
            if _LONG_DIGITS.search(data) is not None:
                return super().decode(data)
            return self._revive(orjson.loads(data), False)

    def _revive(self, obj: Any, exact: bool) -> Any:
        """What the library's ``object_hook`` makes of each object, innermost first: a
        ``{"_type_": …, "_data_": …}`` object becomes the value it encodes (at once when
        its data is a string, as a datetime's, UUID's and decimal's are). With
        ``exact``, a float anywhere raises :class:`_Inexact`."""
        names, from_str = self.names, self._from_str
        if type(obj) is dict:
            for key, value in obj.items():
                kind = type(value)
                if kind is dict:
                    if len(value) == 2 and type(name := value.get("_type_")) is str and name in from_str \
                            and type(data := value.get("_data_")) is str:
                        obj[key] = from_str[name](data)
                    else:
                        obj[key] = self._revive(value, exact)
                elif kind is list:
                    obj[key] = self._revive(value, exact)
                elif kind is float and exact:
                    raise _Inexact
            if len(obj) == 2 and "_type_" in obj:
                name = obj["_type_"]
                transcoding = names.get(name) if type(name) is str else None
                if transcoding is not None and "_data_" in obj:
                    return transcoding.decode(obj["_data_"])
                return self._decode_obj(obj)  # the library's answer (or error) for anything else
            return obj
        for i, value in enumerate(obj):
            kind = type(value)
            if kind is dict or kind is list:
                obj[i] = self._revive(value, exact)
            elif kind is float and exact:
                raise _Inexact
        return obj


class _Mapper(Mapper):
    """The library's mapper, decoding a stored event's parts with a plan per topic made
    once (the event class, its class version and how its originator id is converted):
    the same domain events as :meth:`Mapper.to_domain_event`, without its per-event
    topic resolution, id-convertor lookup and :class:`StoredEvent`. The UUIDs of the
    streams last read are kept (UUIDs are immutable), as each stream has many events."""

    _KEPT_IDS = 4096  # streams; about 1 MB

    def __init__(self, transcoder: JSONTranscoder) -> None:
        super().__init__(transcoder=transcoder)
        self._plans: dict[str, tuple[type, int, Any]] = {}
        self._uuids: dict[str, uuid.UUID] = {}

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        return self.decode(stored_event.topic, stored_event.state, stored_event.originator_id,
                           stored_event.originator_version)

    def decode(self, topic: str, state: bytes, originator_id: Any, originator_version: int) -> Any:
        """The domain event of a stored event's topic, state, stream id and version."""
        plan = self._plans.get(topic)
        if plan is None:
            cls = resolve_topic(topic)
            plan = self._plans[topic] = (cls, getattr(cls, "class_version", 1), find_id_convertor(cls, str))
        cls, class_version, from_str = plan
        try:
            event_state: dict[str, Any] = self.transcoder.decode(state)
        except Exception as e:
            raise MapperDeserialisationError(
                f"Failed to deserialise state of stored event with topic '{topic}', "
                f"originator_id '{originator_id}' and originator_version {originator_version}: {e}"
            ) from e
        if type(originator_id) is not str:
            event_state["originator_id"] = find_id_convertor(cls, type(originator_id))(originator_id)
        elif from_str is str_to_uuid_convertor:
            uuids = self._uuids
            found = uuids.get(originator_id)
            if found is None:
                if len(uuids) >= self._KEPT_IDS:
                    uuids.clear()
                found = uuids[originator_id] = uuid.UUID(originator_id)
            event_state["originator_id"] = found
        else:
            event_state["originator_id"] = from_str(originator_id)
        event_state["originator_version"] = originator_version
        from_version = event_state.pop("class_version", 1)
        while from_version < class_version:
            getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(event_state)
            from_version += 1
        domain_event = object.__new__(cls)
        object.__setattr__(domain_event, "__dict__", event_state)
        return domain_event


def default_mapper(*extra_transcodings: Any) -> Mapper:
    """The one encoding of domain events: the library's JSON transcoder with UUIDs,
    datetimes and decimals, plus any service-specific transcodings."""
    transcoder = _OrjsonTranscoder()
    for transcoding in (UUIDAsHex(), DatetimeAsISO(), DecimalAsStr(), *extra_transcodings):
        transcoder.register(transcoding)
    return _Mapper(transcoder)


def _resolved(topic: str) -> Any:
    """What ``topic`` names, or None when it names nothing importable."""
    try:
        return resolve_topic(topic)
    except TopicError:
        return None


class Repository:
    """Loads and saves event-sourced aggregates of one service."""

    def __init__(self, store: EventStore, mapper: Mapper | None = None, *, snapshot_every: int | None = 100) -> None:
        self.store = store
        self.mapper = mapper or default_mapper()
        self.snapshot_every = snapshot_every

    def to_domain_event(self, event: RecordedEvent | Snapshot) -> Any:
        """A stored row back into the library's domain event (upcast to its class version)."""
        if type(self.mapper) is _Mapper:
            return self.mapper.decode(event.topic, event.state, event.stream_id, event.version)
        return self.mapper.to_domain_event(
            StoredEvent(originator_id=event.stream_id, originator_version=event.version, topic=event.topic,
                        state=event.state)
        )

    async def get(self, cls: type[A], aggregate_id: uuid.UUID | str, *, conn: asyncpg.Connection | None = None) -> A:
        """The current state of the ``cls`` (or subclass) with id ``aggregate_id``.

        Raises :class:`AggregateNotFound` when the stream is empty and also when its
        events make something else (another class of aggregate, a command's reply): an
        id from user input may name any stream, and must never load it as a ``cls``.
        """
        stream_id = str(aggregate_id)
        aggregate = None
        after = 0
        if self.snapshot_every:
            snapshot = await self.store.latest_snapshot(stream_id, conn=conn)
            if snapshot is not None:
                aggregate = self._origin(cls, snapshot).mutate(None)
                after = snapshot.version
        for event in await self.store.read_stream(stream_id, after, conn=conn):
            domain_event = self.to_domain_event(event) if aggregate is not None else self._origin(cls, event)
            aggregate = domain_event.mutate(aggregate)
        if aggregate is None:
            raise AggregateNotFound(f"no aggregate with id {stream_id}")
        return aggregate

    async def get_each(self, *wanted: tuple[type[BaseAggregate], str], conn: asyncpg.Connection | None = None
                       ) -> list[Any]:
        """Several aggregates, each ``(cls, id)`` as :meth:`get` loads it (None when not
        found), their streams read in one statement: one round trip instead of one each."""
        if self.snapshot_every:  # a snapshot to look for first, per stream
            return [await self._get_or_none(cls, stream_id, conn) for cls, stream_id in wanted]
        streams = await self.store.read_streams([str(stream_id) for _, stream_id in wanted], conn=conn)
        return [self.replayed(cls, streams[str(stream_id)]) for cls, stream_id in wanted]

    async def _get_or_none(self, cls: type[A], stream_id: str, conn: asyncpg.Connection | None) -> A | None:
        try:
            return await self.get(cls, stream_id, conn=conn)
        except AggregateNotFound:
            return None

    def replayed(self, cls: type[A], events: Sequence[RecordedEvent]) -> A | None:
        """The ``cls`` that ``events`` (a whole stream) make; None for an empty stream or
        one that holds no ``cls``."""
        if not events:
            return None
        try:
            aggregate = self._origin(cls, events[0]).mutate(None)
        except AggregateNotFound:
            return None
        for event in events[1:]:
            aggregate = self.to_domain_event(event).mutate(aggregate)
        return aggregate

    def _origin(self, cls: type[A], stored: RecordedEvent | Snapshot) -> Any:
        """The first row read of a stream (its creation event, or a snapshot) as a domain
        event, if it makes a ``cls``; otherwise :class:`AggregateNotFound`.

        The stored topic is resolved first, so a row that is no domain event (a reply's
        ``contract:…`` topic) is never decoded. A creation event or snapshot is decoded,
        and the aggregate class it names (``originator_topic``, a snapshot's ``topic``),
        resolved as the library's own ``mutate`` resolves it, must be ``cls`` or a
        subclass. The library caches resolved topics: no extra round trip, a few
        dictionary lookups per load.
        """
        event_class = _resolved(stored.topic)
        origin = made = None
        if isinstance(event_class, type) and issubclass(event_class, (CanInitAggregate, CanSnapshotAggregate)):
            origin = self.to_domain_event(stored)
            made = _resolved(origin.originator_topic if isinstance(origin, CanInitAggregate) else origin.topic)
        if not (isinstance(made, type) and issubclass(made, cls)):
            raise AggregateNotFound(f"stream {stored.stream_id} holds no {cls.__name__}")
        return origin

    async def exists(self, aggregate_id: uuid.UUID | str, *, conn: asyncpg.Connection | None = None) -> bool:
        return bool(await self.store.read_stream(str(aggregate_id), 0, conn=conn))

    async def save(self, *aggregates: Aggregate, meta: Metadata, conn: asyncpg.Connection | None = None) -> list[Any]:
        """Append every aggregate's pending events, atomically across aggregates.

        Returns the saved domain events (for translators and replies). Raises
        :class:`yishi.store.ConcurrencyError` when any aggregate changed meanwhile.
        """
        staged = self.stage(*aggregates, meta=meta)
        if staged.appends:
            await self.write(staged, conn=conn)
        return staged.events

    def stage(self, *aggregates: Aggregate, meta: Metadata) -> "Staged":
        """What saving ``aggregates`` will write (their pending events, collected now, and
        any snapshot due), without writing it: :meth:`write` does, perhaps with more."""
        staged = Staged()
        for aggregate in aggregates:
            events = aggregate.collect_events()
            if not events:
                continue
            expected = events[0].originator_version - 1
            staged.appends.append(Append(str(aggregate.id), expected,
                                         [NewEvent(s.topic, s.state) for s in map(self.mapper.to_stored_event, events)],
                                         meta))
            staged.events.extend(events)
            if self.snapshot_every and aggregate.version // self.snapshot_every > expected // self.snapshot_every:
                snap = self.mapper.to_stored_event(AggregateSnapshot.take(aggregate))
                staged.snapshots.append(Snapshot(str(aggregate.id), aggregate.version, snap.topic, snap.state))
        return staged

    async def write(self, staged: "Staged", *more: Append, conn: asyncpg.Connection | None = None) -> None:
        """Write what :meth:`stage` staged, and ``more`` appends (a command's reply), all or
        nothing: every append in one statement where the store can (:meth:`EventStore.append_each`)."""
        if conn is None and staged.snapshots:
            async with self.store.pool.acquire() as own, own.transaction():
                return await self.write(staged, *more, conn=own)
        await self.store.append_each([*staged.appends, *more], conn=conn)
        for snapshot in staged.snapshots:
            await self.store.save_snapshot(snapshot, conn=conn)


@dataclass
class Staged:
    """What a save will write (:meth:`Repository.stage`): appends, the domain events they
    hold, in order, and snapshots due."""

    appends: list[Append] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)

    def extend(self, other: "Staged") -> None:
        """Add ``other``'s writes after these."""
        self.appends += other.appends
        self.events += other.events
        self.snapshots += other.snapshots
