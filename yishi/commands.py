"""Commands, written once for every service: dispatch to one handler per command type,
record the reply, and serve the same commands over HTTP and over the command topic.

A handler loads aggregates, calls them and saves them through ``ctx.repository`` on
``ctx.conn``; it returns the id of the aggregate it addressed, or raises
:class:`Rejected` with a machine-readable reason. Every outcome is recorded as a reply
event (``CommandAccepted`` / ``CommandRejected``) in the service's own log, in the same
transaction as the handler's effects, and the relay publishes it to
``{district}.{service}.replies``: a reply is never lost and never sent for an effect
that did not happen.

A command's identity is (district, caller, command type, key): the key is the caller's
``Idempotency-Key`` over HTTP, its ``ce_source`` and ``ce_id`` over Kafka. Its reply is
stored under that identity with a fingerprint of the request (the SHA-256 of its
canonical JSON). The same identity and body is answered with the stored reply and has no
second effect; the same identity with another body is refused with
``idempotency_key_reused`` and runs nothing. The caller is authorised before anything
stored is looked at, and as the caller is part of the identity a reply only ever goes
back to the caller it was made for.

Every read and write of one command goes through the one connection of its transaction:
a handler never waits for a second pooled connection while it holds one, so any number
of concurrent callers (resending or not) cannot exhaust the pool into a standstill.

(About 620 lines on purpose: identity, authorisation, the handler's context and the recorded
reply are one mechanism, read together; its HTTP edge is :mod:`yishi.command_http`.)
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg
import stamina
import structlog
from eventsourcing.domain import Aggregate

from contracts import registry
from contracts.common import ID_PATTERN, Actor, Command, CommandAccepted, CommandRejected, RejectionReason, Role
from contracts.permissions import PARTIES, Party, acts_for, allowed
from contracts.envelope import Envelope
from contracts.registry import ContractError, Kind
from yishi.auth import Principal, ProviderUnavailable, TokenVerifier, Unauthenticated
from yishi.clock import Clock
from yishi.db import PLANNED_ONCE, advisory_key, shared_lock
from yishi.ids import DerivedIds, IdSource, choose_ids
from yishi.inbox import Poison
from yishi.logging import bound_correlation
from yishi.names import replies_topic
from yishi.relay import Publication, Translator
from yishi.repository import Repository, Staged
from yishi.rules import Rejected
from yishi.store import Append, ConcurrencyError, EventStore, Metadata, NewEvent, RecordedEvent
from yishi.tracing import command_span

log = structlog.get_logger("yishi.commands")

C = TypeVar("C", bound=Command)
A = TypeVar("A", bound=Aggregate)
REPLY_TOPIC_PREFIX = "contract:"
"""Stored events whose topic starts with this hold a public contract body as they are
(replies); the relay publishes them without a translator."""

def authorise(principal: Principal, command: Command) -> Rejected | None:
    """The one authorisation check of every command (see :mod:`contracts.permissions`):
    None when ``principal`` may send ``command``, else the rejection saying why."""
    if principal.platform:
        return None
    actor, name = command.actor, registry.type_name(type(command))
    if not principal.serves(command.district):
        return Rejected(RejectionReason.WRONG_DISTRICT, "not found")
    if actor.id != principal.subject:
        return Rejected(RejectionReason.NOT_AUTHORISED, "the command's actor must be the authenticated caller")
    if actor.role not in principal.roles:
        return Rejected(RejectionReason.NOT_AUTHORISED, f"the caller's credentials do not grant the role {actor.role}")
    if actor.role is Role.COUNCIL_MEMBER and actor.seat_id not in principal.seats:
        return Rejected(RejectionReason.NOT_AUTHORISED, "a council member acts from a seat their credentials list")
    if not allowed(name, actor.role):
        return Rejected(RejectionReason.NOT_AUTHORISED, f"a {actor.role} may not send {name}")
    return None


def authorise_party(principal: Principal, command: Command, record: dict[Party, str | None],
                    subject: str | None = None) -> None:
    """The second half of :func:`authorise`, once the addressed record is loaded: raise
    ``not_authorised`` when the caller, in a scoped role, does not act for the party of
    ``record`` (``{Party: id}``) that :data:`contracts.permissions.PARTIES` names for the
    command. The platform itself is not checked."""
    if principal.platform:
        return
    name, role = registry.type_name(type(command)), command.actor.role
    if not acts_for(name, role, principal.acts_for, record):
        party = PARTIES[name]
        raise Rejected(RejectionReason.NOT_AUTHORISED,
                       f"this {name} acts for {party} {record.get(party) or '(none)'}, which the caller's credentials "
                       f"do not list among those a {role} acts for (acts_for)", subject)


@dataclass(frozen=True, slots=True)
class Saved:
    """What one :meth:`CommandContext.save` wrote, for the service's read models."""

    meta: Metadata
    aggregates: Sequence[Aggregate]
    events: Sequence[Any]
    """The domain events saved, in order (every aggregate's, one after the other)."""


Projection = Callable[[asyncpg.Connection, Saved], Awaitable[None]]
"""A service's read models, updated from what a command saved in the command's own
transaction, so queries never see events without their rows."""


@dataclass
class CommandContext:
    """What a handler works with: one transaction, the repository, the clock, the ids,
    and the four steps every handler is made of (:meth:`load` or :meth:`find`,
    :meth:`ensure_new`, then :meth:`save`).

    What :meth:`save` saves is written when the handler returns, in the statement that
    records the command's reply (one round trip for both), or before the context's next
    read (:meth:`find`, :meth:`load`, :meth:`ensure_new`, :meth:`save`). A handler that
    goes on with ``conn`` itself after saving, and needs to see what it saved, calls
    :meth:`flush` first."""

    conn: asyncpg.Connection
    repository: Repository
    store: EventStore
    clock: Clock
    command_id: str
    correlation_id: str
    principal: Principal
    """Who sent the command (already authorised); ``platform`` for the platform's own. Checks
    that need the record (:meth:`authorise_party`) read it."""
    project: Projection | None = field(default=None, repr=False)
    _staged: Staged = field(default_factory=Staged, repr=False)
    _saved: list[Saved] = field(default_factory=list, repr=False)
    _prefetched: dict[str, list[RecordedEvent]] = field(default_factory=dict, repr=False)
    """The streams the handler declared it reads first (:meth:`CommandBus.handles`), read
    with the command's stored reply; each used once, by :meth:`find_each`."""

    def authorise_party(self, command: Command, record: dict[Party, str | None], subject: str | None = None) -> None:
        """:func:`authorise_party` for this command's caller."""
        authorise_party(self.principal, command, record, subject)

    def meta(self, actor: Actor, district: str) -> Metadata:
        """Metadata for events caused by this command."""
        return Metadata(actor=actor.id, actor_role=str(actor.role), actor_seat=actor.seat_id, district=district,
                        correlation_id=self.correlation_id, causation_id=self.command_id,
                        occurred_at=self.clock.now())

    async def find(self, cls: type[A], *key: str) -> A | None:
        """The ``cls`` whose id ``cls.create_id(*key)`` names (the district first, so another
        district's is never found), or None."""
        return (await self.find_each((cls, cls.create_id(*key))))[0]

    async def find_each(self, *wanted: tuple[type[Aggregate], str]) -> list[Any]:
        """Several aggregates by ``(cls, stream id)``, each found or None, their streams
        read in one statement (:meth:`Repository.get_each`), or none at all when they were
        read with the command's stored reply (the handler's declared ``reads``)."""
        await self.flush()
        ids = [str(stream_id) for _, stream_id in wanted]
        if ids and all(stream_id in self._prefetched for stream_id in ids):
            streams = {stream_id: self._prefetched.pop(stream_id) for stream_id in dict.fromkeys(ids)}
            return [self.repository.replayed(cls, streams[str(stream_id)]) for cls, stream_id in wanted]
        return await self.repository.get_each(*wanted, conn=self.conn)

    async def load(self, cls: type[A], *key: str) -> A:
        """Like :meth:`find`, but a missing one is refused with ``not_found`` naming the
        last part of ``key`` (the public id)."""
        found = await self.find(cls, *key)
        if found is None:
            raise Rejected(RejectionReason.NOT_FOUND, f"{noun(cls)} {key[-1]} does not exist", key[-1])
        return found

    async def ensure_new(self, cls: type[Aggregate], *key: str) -> None:
        """Refuse a command creating a ``cls`` whose id is taken with ``already_exists`` (the
        same command resent is answered by the bus from its reply, before this)."""
        await self.flush()
        if await self.repository.exists(cls.create_id(*key), conn=self.conn):
            raise Rejected(RejectionReason.ALREADY_EXISTS, f"{noun(cls)} {key[-1]} already exists", key[-1])

    async def save(self, command: Command, *aggregates: Any) -> Saved:
        """Save the aggregates ``command`` changed, and the service's read models of them,
        in this command's transaction (written with its reply: see the class docstring)."""
        await self.flush()
        self._prefetched.clear()  # what was read before a save is not read again
        meta = self.meta(command.actor, command.district)
        staged = self.repository.stage(*aggregates, meta=meta)
        saved = Saved(meta, aggregates, staged.events)
        self._staged.extend(staged)
        self._saved.append(saved)
        return saved

    async def flush(self, *more: Append) -> None:
        """Write what was saved and not yet written, with ``more`` appends (the reply), in
        one statement where the store can; then the read models of it."""
        staged, saved, self._staged, self._saved = self._staged, self._saved, Staged(), []
        if staged.appends or more:
            await self.repository.write(staged, *more, conn=self.conn)
        for one in saved:
            if self.project is not None and one.events:
                await self.project(self.conn, one)


def noun(cls: type) -> str:
    """What a refusal calls a ``cls``: its ``NOUN``, else its name in words
    (``CatalogueItem``: "catalogue item")."""
    return getattr(cls, "NOUN", None) or re.sub(r"(?<!^)(?=[A-Z])", " ", cls.__name__).lower()


def recorded_actor(metadata: Mapping[str, Any], seat_id: str | None = None) -> Actor:
    """The actor of a stored event as :meth:`CommandContext.meta` recorded it: id, role
    and the seat acted from (``seat_id`` for events stored before the seat was kept)."""
    return _actor(metadata["actor"], metadata.get("actor_role") or Role.SYSTEM, metadata.get("actor_seat") or seat_id)


@functools.lru_cache(maxsize=4096)
def _actor(actor_id: str, role: str, seat_id: str | None) -> Actor:
    """The (frozen) public actor; the same few people act again and again, so replays
    and the relay validate each once."""
    return Actor(id=actor_id, role=role, seat_id=seat_id)


Handler = Callable[[Any, CommandContext], Awaitable[str]]
Lock = Callable[[Any], str]
"""What names the advisory lock a command's handler holds shared from its first statement
on (see :meth:`CommandBus.handles`)."""
Reads = Callable[[Any], Sequence[tuple[type[Aggregate], str]]]
"""The aggregates, ``(cls, stream id)``, a command's handler reads first (see :meth:`CommandBus.handles`)."""
Reply = CommandAccepted | CommandRejected


class CommandBus:
    """One handler per command type of a service, and its read models (``project``).

    The public commands are served over HTTP and the command topics; an *internal* one
    (:meth:`handles` with ``internal=True``) is what the platform itself decides, in
    reaction to another service's event (:meth:`react`) or on a timer, and is sent by the
    platform only. Either way its refusal is a recorded ``CommandRejected``.
    """

    def __init__(self, service: str, repository: Repository, clock: Clock, *, retries: int = 3,
                 project: Projection | None = None) -> None:
        self.service = service
        self.repository = repository
        self.clock = clock
        self.retries = retries
        self.project = project
        self.handlers: dict[type[Command], Handler] = {}
        self.internal: set[type[Command]] = set()
        self.locks: dict[type[Command], Lock] = {}
        self.reads: dict[type[Command], Reads] = {}
        self.platform = Principal.of_platform(service)
        """The service itself, sending the commands its timers and reactions decide."""
        self.system_actor = Actor(id=self.platform.subject, role=Role.SYSTEM)
        """The actor of those commands, recorded with what they cause."""
        self.verifier: TokenVerifier | None = None  # set by ServiceContext.serve_commands
        self.ids: IdSource = DerivedIds()  # the service's own, set by ServiceContext.serve_commands

    @property
    def store(self) -> EventStore:
        return self.repository.store

    def handles(self, model: type[C], *, internal: bool = False, lock: Lock | None = None,
                reads: Reads | None = None) -> Callable[[Handler], Handler]:
        """Decorator: register the handler of ``model``; an ``internal`` command is the
        platform's own (not a public contract, not served to callers).

        Two declarations save a command round trips. ``lock(command)`` names an advisory
        lock (:func:`yishi.db.advisory_key`) the handler holds shared until its transaction
        ends, taken in the statement that starts it: whoever takes it exclusively waits
        for the handlers in flight, and every statement after sees what that holder
        committed. ``reads(command)`` lists the aggregates, ``(cls, stream id)``, the
        handler reads first (with :meth:`CommandContext.find_each`): their streams are read
        in the statement that looks up the command's stored reply."""
        def register(handler: Handler) -> Handler:
            if model in self.handlers:
                raise ValueError(f"{model.__name__} already has a handler")
            self.handlers[model] = handler
            if internal:
                self.internal.add(model)
            if lock is not None:
                self.locks[model] = lock
            if reads is not None:
                self.reads[model] = reads
            return handler
        return register

    @property
    def public_commands(self) -> list[type[Command]]:
        """The commands callers may send (over HTTP and the command topics)."""
        return [model for model in self.handlers if model not in self.internal]

    def type_name(self, model: type[Command]) -> str:
        """A command's name in its replies: the contract's, or an internal command's class name."""
        return model.__name__ if model in self.internal else registry.type_name(model)

    async def react(self, command: Command, envelope: Envelope, conn: asyncpg.Connection) -> Reply:
        """Handle the command the platform decided on from another service's event
        ``envelope``, in the consumer's inbox transaction ``conn``. The command is the
        platform's own (:attr:`platform`); what it causes is caused by the event and shares
        its correlation id; its identity is the event's id, so a redelivered event is
        answered from the recorded reply and changes nothing."""
        return await self.dispatch(command, command_id=envelope.id, correlation_id=envelope.correlation_id,
                                   principal=self.platform, conn=conn, key=f"event:{envelope.id}")

    async def dispatch(self, command: Command, *, command_id: str, correlation_id: str, principal: Principal,
                       conn: asyncpg.Connection | None = None, key: str | None = None) -> Reply:
        """Handle ``command`` once, sent by ``principal``: check it may (:func:`authorise`),
        run its handler and record the reply, atomically.

        ``command_id`` names the command in the metadata of what it causes; ``key`` (by
        default ``command_id``) is the caller's idempotency key. A concurrent change to
        the same aggregate is retried (``retries`` times) before answering ``conflict``.
        """
        type_name = self.type_name(type(command))
        with command_span(type_name, correlation_id, command.district), bound_correlation(correlation_id):
            return await self._dispatch(command, type_name, command_id, correlation_id, principal, conn, key)

    async def _dispatch(self, command: Command, type_name: str, command_id: str, correlation_id: str,
                        principal: Principal, conn: asyncpg.Connection | None, key: str | None) -> Reply:
        identity = CommandIdentity(command.district, principal.subject, type_name, key or command_id)
        # The fingerprint is of the command as sent: a resend leaving the same ids out is
        # the same request, and the ids chosen for it come from its identity, so they too
        # are the same on every attempt and resend.
        sent = fingerprint(command)
        command, chosen = choose_ids(command, identity.stream, self.ids)
        request = Request(command, type_name, command_id, correlation_id, sent, chosen)
        # Someone else changed the aggregate, or answered this very command, first: the
        # next attempt sees what they committed (and replays their reply). stamina backs
        # off (10 ms doubling, with jitter), logs each retry and counts it in
        # stamina_retries_total{error_type="yishi.store.ConcurrencyError"}. The first
        # attempt runs before stamina is asked: its retry context is a reference cycle
        # (tenacity's), which per command kept the garbage collector busy for nothing in
        # the common case, no conflict. A conflict on it is handed to stamina as its first
        # attempt's, so every retry is backed off, logged and counted as before.
        try:
            return await self._dispatch_once(request, identity, principal, conn)
        except ConcurrencyError as exc:
            first: ConcurrencyError | None = exc
        try:
            async for attempt in stamina.retry_context(on=ConcurrencyError, attempts=self.retries + 1, timeout=None,
                                                       wait_initial=0.01, wait_max=0.1, wait_jitter=0.01):
                with attempt:
                    if first is not None:
                        conflict, first = first, None
                        raise conflict
                    return await self._dispatch_once(request, identity, principal, conn)
        except ConcurrencyError:
            pass
        # Kept apart from the command's identity: a resend of the same command runs again.
        return await self._record(request, _once_stream(), conn, Rejected(
            RejectionReason.CONFLICT, "the addressed record kept changing; retry the same command"))

    async def _dispatch_once(self, request: "Request", identity: "CommandIdentity", principal: Principal,
                             conn: asyncpg.Connection | None) -> Reply:
        """One attempt, in a transaction of its own (a savepoint inside ``conn``'s): the
        handler runs in it and the reply is recorded in it. A handler's refusal rolls the
        attempt back, so nothing it wrote is kept, and is recorded in a second one; the
        accepted path, the common one, pays for one transaction and no savepoint."""
        lock = self.locks.get(type(request.command))
        try:
            async with _transaction(self.store.pool, conn, advisory_key(lock(request.command)) if lock else None) as tx:
                return await self._run(request, identity, principal, tx)
        except _Refused as refused:
            async with _transaction(self.store.pool, conn) as tx:
                return await self._record(request, identity.stream, tx, refused.rejection)

    async def _run(self, request: "Request", identity: "CommandIdentity", principal: Principal,
                   conn: asyncpg.Connection) -> Reply:
        command = request.command
        # An internal command is in no permission table (it is no contract): the
        # platform's alone, refused to any caller before the table is looked at.
        denied = (Rejected(RejectionReason.NOT_AUTHORISED, f"{request.type_name} is the platform's own command")
                  if type(command) in self.internal and not principal.platform else authorise(principal, command))
        if denied is not None:
            # Recorded apart from the identity's reply: nothing stored under the identity is
            # looked at, or handed out, before the caller is authorised. A resend of the
            # same refused request is answered by the refusal already recorded.
            return await self._record_once(request, f"{identity.stream}.denied.{request.fingerprint[:32]}", conn,
                                           denied)
        reads = self.reads.get(type(command))
        stored, prefetched = await self._stored_reply_reading(identity.stream, reads(command) if reads else (), conn)
        if stored is not None:
            fingerprint_, reply = stored
            if fingerprint_ == request.fingerprint:
                return reply
            # Another body under a key already used: refused, and the refusal kept under
            # (identity, this body) so asking again is answered the same.
            return await self._record_once(request, f"{identity.stream}.{request.fingerprint[:32]}", conn, Rejected(
                RejectionReason.IDEMPOTENCY_KEY_REUSED,
                "this idempotency key was already used for another request; use a new key for a new request",
                subject=reply.subject))
        handler = self.handlers.get(type(command))
        if handler is None:
            raise _Refused(Rejected(RejectionReason.UNKNOWN_COMMAND,
                                    f"{self.service} does not handle {type(command).__name__}"))
        ctx = CommandContext(conn, self.repository, self.store, self.clock, request.command_id,
                             request.correlation_id, principal, self.project, _prefetched=prefetched)
        try:
            subject = await handler(command, ctx)
            # What the handler saved is written with its reply, in one statement.
            return await self._record(request, identity.stream, conn, subject, ctx)
        except Rejected as exc:
            raise _Refused(exc) from None
        except asyncpg.DataError as exc:
            # A value the database cannot hold (NUL in text, out of range): the same
            # on every attempt, so it is the command's fault, answered as such.
            raise _Refused(Rejected(RejectionReason.INVALID_COMMAND,
                                    f"a value of the command cannot be stored: {type(exc).__name__}: {exc}")) from None

    async def _stored_reply_reading(self, stream: str, wanted: Sequence[tuple[type[Aggregate], str]],
                                    conn: asyncpg.Connection
                                    ) -> tuple[tuple[str | None, Reply] | None, dict[str, list[RecordedEvent]]]:
        """:meth:`_stored_reply`, and the streams of ``wanted`` read in the same statement."""
        if not wanted:
            return await self._stored_reply(stream, conn), {}
        streams = await self.store.read_streams([stream, *(str(stream_id) for _, stream_id in wanted)], conn=conn)
        return _reply_of(streams.pop(stream)), streams

    async def _stored_reply(self, stream: str, conn: asyncpg.Connection) -> tuple[str | None, Reply] | None:
        """The reply stored in ``stream`` with the fingerprint of its request, if any."""
        return _reply_of(await self.store.read_stream(stream, conn=conn))

    async def _record_once(self, request: "Request", stream: str, conn: asyncpg.Connection,
                           outcome: Rejected) -> Reply:
        """The reply already stored in ``stream``, else ``outcome`` recorded there."""
        stored = await self._stored_reply(stream, conn)
        return stored[1] if stored is not None else await self._record(request, stream, conn, outcome)

    async def _record(self, request: "Request", stream: str, conn: asyncpg.Connection | None,
                      outcome: str | Rejected, ctx: CommandContext | None = None) -> Reply:
        """Record ``outcome`` as the reply in ``stream`` (with what ``ctx``'s handler saved)."""
        command = request.command
        type_name = request.type_name
        common = dict(district=command.district, actor=command.actor, occurred_at=self.clock.now(),
                      correlation_id=request.correlation_id, command_type=type_name)
        if isinstance(outcome, Rejected):
            reply: Reply = CommandRejected(**common, subject=outcome.subject, reason=outcome.reason,
                                           message=outcome.message[:20_000])
            log.info("command rejected", command=type_name, reason=str(outcome.reason), message=outcome.message)
        else:
            reply = CommandAccepted(**common, subject=outcome, ids=request.chosen_ids)
        meta = Metadata(actor=command.actor.id, actor_role=str(command.actor.role), district=command.district,
                        correlation_id=request.correlation_id, causation_id=request.command_id,
                        occurred_at=self.clock.now(), extra={FINGERPRINT: request.fingerprint})
        if ctx is None:
            await record_reply(self.store, stream, reply, meta, conn=conn)
        else:
            await ctx.flush(reply_append(stream, reply, meta))
        return reply

    # -- edges -----------------------------------------------------------------

    async def handle_envelope(self, envelope: Envelope, conn: asyncpg.Connection) -> Reply | Poison:
        """The command-topic edge: authenticate, decode, dispatch. A command without valid
        credentials, or one that cannot be decoded, is rejected (the reply is recorded)
        and returned as :class:`Poison` so it is dead-lettered too."""
        try:
            if self.verifier is None:
                raise Unauthenticated("this service has no token verifier")
            if not envelope.token:
                raise Unauthenticated("missing header: authorization (Bearer token)")
            principal = await self.verifier.verify(envelope.token)
        except ProviderUnavailable:
            raise  # not the message's fault: redelivered once the provider answers
        except Unauthenticated as exc:
            return await self._refuse(envelope, conn, RejectionReason.NOT_AUTHORISED, str(exc))
        try:
            command = registry.decode(envelope, Kind.COMMAND)
        except ContractError as exc:
            return await self._refuse(envelope, conn, exc.rejection, f"{type(exc).__name__}: {exc}")
        return await self.dispatch(command, command_id=envelope.id, correlation_id=envelope.correlation_id,
                                   principal=principal, conn=conn, key=f"ce:{envelope.source}\x1f{envelope.id}")

    async def refuse_unreadable(self, envelope: Envelope, reason: str, conn: asyncpg.Connection) -> None:
        """Answer a command about to be dead-lettered with ``invalid_command``: one whose
        headers are readable but whose body is not JSON within the limits (NaN, a lone
        surrogate, nesting too deep …), or whose handling failed on every attempt."""
        await self._refuse(envelope, conn, RejectionReason.INVALID_COMMAND, reason)

    async def _refuse(self, envelope: Envelope, conn: asyncpg.Connection, reason: RejectionReason,
                      message: str) -> Poison:
        reply = CommandRejected(
            district=envelope.district, actor=Actor(id="unknown", role=Role.SYSTEM),
            occurred_at=self.clock.now(), correlation_id=envelope.correlation_id[:200],
            command_type=envelope.type[:100] or "unknown",
            subject=envelope.subject if _ID.fullmatch(envelope.subject or "") else None,
            reason=reason, message=message[:2000],
        )
        # One refusal per message, however often it is redelivered: its stream is named
        # by the message (district, source, id and body), as no caller is known.
        stream = "reply-refused-" + _digest(envelope.district, envelope.source, envelope.id,
                                            hashlib.sha256(envelope.data or b"").hexdigest())
        if not await self.store.read_stream(stream, conn=conn):
            await record_reply(self.store, stream, reply, Metadata(
                actor="unknown", district=envelope.district, correlation_id=envelope.correlation_id,
                causation_id=envelope.id, occurred_at=self.clock.now()), conn=conn)
        return Poison(message)

def _reply_of(events: Sequence[RecordedEvent]) -> tuple[str | None, Reply] | None:
    """The reply a reply stream's ``events`` hold, with its request's fingerprint; None if empty."""
    if not events:
        return None
    name = events[0].topic.removeprefix(REPLY_TOPIC_PREFIX)
    reply = registry.spec(name).model.model_validate_json(events[0].state)
    return events[0].metadata.get(FINGERPRINT), reply


def with_replies(translate: Translator, service: str) -> Translator:
    """A relay translator that publishes stored replies to the service's replies topic
    and hands every other event to the service's own ``translate``."""
    def translator(event: RecordedEvent) -> Publication | None:
        if event.topic.startswith(REPLY_TOPIC_PREFIX):
            name = event.topic[len(REPLY_TOPIC_PREFIX):]
            return Publication(name, registry.spec(name).latest, event.state,
                               topic=replies_topic(event.district, service))
        return translate(event)
    return translator


_ID = re.compile(ID_PATTERN)
"""A subject that is not an id is left out of a refusal."""

FINGERPRINT = "command_fingerprint"
"""The metadata key of a stored reply holding its request's :func:`fingerprint`."""


@dataclass(frozen=True, slots=True)
class CommandIdentity:
    """Who sent which command under which key: the scope of an idempotency key."""

    district: str
    caller: str
    command_type: str
    key: str

    @property
    def stream(self) -> str:
        """The reply stream of this identity (a digest: user input never names a stream)."""
        return "reply-" + _digest(self.district, self.caller, self.command_type, self.key)


@dataclass(frozen=True, slots=True)
class Request:
    """One command as handled: the body (with the ids chosen for it filled in), its ids
    and the fingerprint of the body as sent."""

    command: Command
    type_name: str
    command_id: str
    correlation_id: str
    fingerprint: str
    chosen_ids: dict[str, str]
    """The new ids the platform chose for the fields the sender left out (:mod:`yishi.ids`)."""


class _Refused(Exception):
    """A handler's rejection on its way out of the attempt's transaction (which it rolls
    back), to be recorded in the next."""

    def __init__(self, rejection: Rejected) -> None:
        super().__init__(rejection.message)
        self.rejection = rejection


def _transaction(pool: asyncpg.Pool, conn: asyncpg.Connection | None, lock: str | None = None):
    """A transaction on ``conn`` (a savepoint inside its own), else on a connection of
    ``pool`` held for it alone; holding the advisory lock ``lock`` shared, if given."""
    return _holding(conn, lock) if conn is not None else _pooled(pool, lock)


@asynccontextmanager
async def _pooled(pool: asyncpg.Pool, lock: str | None) -> AsyncIterator[asyncpg.Connection]:
    async with pool.acquire() as conn, _holding(conn, lock):
        yield conn


@asynccontextmanager
async def _holding(conn: Any, lock: str | None) -> AsyncIterator[asyncpg.Connection]:
    """``conn.transaction()``, its statements planned once (:data:`yishi.db.PLANNED_ONCE`)
    and the lock ``lock`` taken, both with its start where the connection can
    (:meth:`yishi.db.Connection.with_begin`), else the lock in a statement of its own; an
    in-memory store's connection holds no locks (nor needs them: its handler tests run one
    command at a time)."""
    with_begin = getattr(conn, "with_begin", None)
    if with_begin is not None:
        with_begin(PLANNED_ONCE, *([shared_lock(lock)] if lock is not None else []))
    async with conn.transaction():
        if lock is not None and with_begin is None and hasattr(conn, "execute"):
            await conn.execute(shared_lock(lock))
        yield conn


def fingerprint(command: Command) -> str:
    """SHA-256 of the command's canonical JSON (sorted keys, no spaces): the same request
    however its JSON was spelt, another one as soon as any value differs."""
    canonical = json.dumps(command.model_dump(mode="json"), sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]


def _once_stream() -> str:
    """A reply stream of its own, for a reply that must not answer a later resend."""
    return f"reply-once-{uuid.uuid4()}"


async def record_reply(store: EventStore, stream: str, reply: Reply, meta: Metadata,
                       *, conn: asyncpg.Connection | None) -> None:
    """Store a reply as the only event of ``stream``."""
    await store.append_each([reply_append(stream, reply, meta)], conn=conn)


def reply_append(stream: str, reply: Reply, meta: Metadata) -> Append:
    """The append storing ``reply`` as the only event of ``stream``."""
    name = registry.type_name(type(reply))
    return Append(stream, 0, [NewEvent(REPLY_TOPIC_PREFIX + name, reply.model_dump_json().encode())], meta)
