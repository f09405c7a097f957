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
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import stamina
import structlog
from fastapi import APIRouter, Depends, Header
from fastapi import Request as HTTPRequest
from fastapi.exceptions import RequestValidationError
from limits import parse_many
from pydantic import ValidationError

from contracts import registry
from contracts.common import ID_PATTERN, Actor, Command, CommandAccepted, CommandRejected, RejectionReason, Role
from contracts.permissions import PARTIES, Party, acts_for, allowed
from contracts.envelope import Envelope
from contracts.registry import ContractError, Kind
from yishi import problems
from yishi.auth import Principal, ProviderUnavailable, TokenVerifier, Unauthenticated, authenticate
from yishi.clock import Clock
from yishi.ids import DerivedIds, IdSource, choose_ids
from yishi.inbox import Poison
from yishi.jsonbody import LimitedJSONRoute
from yishi.logging import bound_correlation
from yishi.names import replies_topic
from yishi.relay import Publication, Translator
from yishi.repository import Repository
from yishi.rules import Rejected
from yishi.store import ConcurrencyError, EventStore, Metadata, NewEvent, RecordedEvent
from yishi.tracing import command_span

log = structlog.get_logger("yishi.commands")

C = TypeVar("C", bound=Command)
REPLY_TOPIC_PREFIX = "contract:"
"""Stored events whose topic starts with this hold a public contract body as they are
(replies); the relay publishes them without a translator."""

HTTP_STATUS: dict[RejectionReason, int] = {
    RejectionReason.UNKNOWN_COMMAND: 404,
    RejectionReason.UNSUPPORTED_SCHEMA_VERSION: 422,
    RejectionReason.INVALID_COMMAND: 422,
    RejectionReason.WRONG_DISTRICT: 404,  # another district's ids are answered as not found
    RejectionReason.NOT_AUTHORISED: 403,
    RejectionReason.NOT_FOUND: 404,
    RejectionReason.ALREADY_EXISTS: 409,
    RejectionReason.INVALID_STATE: 409,
    RejectionReason.DUPLICATE: 409,
    RejectionReason.NOT_ELIGIBLE: 403,
    RejectionReason.DEADLINE_PASSED: 409,
    RejectionReason.OVER_BUDGET: 422,
    RejectionReason.CONFLICT: 409,
    RejectionReason.IDEMPOTENCY_KEY_REUSED: 422,
    RejectionReason.COUNCIL_RULE: 409,
    RejectionReason.VOTE_REQUESTED_THROUGH_PROPOSALS: 409,
}


COMMAND_RESPONSES: dict[int | str, dict] = {
    400: {"description": "The body could not be read."},
    403: {"description": "The caller may not send this command (recorded as CommandRejected)."},
    404: {"description": "Not found (another district's too), or the command names what does not exist."},
    409: {"description": "The command does not fit the state of what it addresses, or is a duplicate."},
    413: {"description": "The body is larger than YISHI_MAX_BODY_BYTES."},
    422: {"description": "The body is not a valid command, a value is out of bounds, the command was rejected "
                         "so, or its Idempotency-Key was used before for another request."},
    429: {"description": "More commands than YISHI_COMMAND_RATE_LIMIT allows; retry after Retry-After seconds."},
}
"""The documented error answers of every command endpoint; each body is problem details
(:mod:`yishi.problems`), a rejection's carrying its ``CommandRejected`` reply."""


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


@dataclass
class CommandContext:
    """What a handler works with: one transaction, the repository, the clock, the ids."""

    conn: asyncpg.Connection
    repository: Repository
    store: EventStore
    clock: Clock
    command_id: str
    correlation_id: str
    principal: Principal
    """Who sent the command (already authorised); ``platform`` for the platform's own. Checks
    that need the record (:meth:`authorise_party`) read it."""

    def authorise_party(self, command: Command, record: dict[Party, str | None], subject: str | None = None) -> None:
        """:func:`authorise_party` for this command's caller."""
        authorise_party(self.principal, command, record, subject)

    def meta(self, actor: Actor, district: str) -> Metadata:
        """Metadata for events caused by this command."""
        return Metadata(actor=actor.id, actor_role=str(actor.role), actor_seat=actor.seat_id, district=district,
                        correlation_id=self.correlation_id, causation_id=self.command_id,
                        occurred_at=self.clock.now())

    async def save(self, command: Command, *aggregates: Any) -> None:
        """Save aggregates changed by ``command`` in this command's transaction."""
        await self.repository.save(*aggregates, meta=self.meta(command.actor, command.district), conn=self.conn)


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
Reply = CommandAccepted | CommandRejected


class CommandBus:
    """One handler per command type of a service."""

    def __init__(self, service: str, repository: Repository, clock: Clock, *, retries: int = 3) -> None:
        self.service = service
        self.repository = repository
        self.clock = clock
        self.retries = retries
        self.handlers: dict[type[Command], Handler] = {}
        self.verifier: TokenVerifier | None = None  # set by ServiceContext.serve_commands
        self.ids: IdSource = DerivedIds()  # the service's own, set by ServiceContext.serve_commands

    @property
    def store(self) -> EventStore:
        return self.repository.store

    def handles(self, model: type[C]) -> Callable[[Handler], Handler]:
        """Decorator: register the handler of ``model``."""
        def register(handler: Handler) -> Handler:
            if model in self.handlers:
                raise ValueError(f"{model.__name__} already has a handler")
            self.handlers[model] = handler
            return handler
        return register

    async def dispatch(self, command: Command, *, command_id: str, correlation_id: str, principal: Principal,
                       conn: asyncpg.Connection | None = None, key: str | None = None) -> Reply:
        """Handle ``command`` once, sent by ``principal``: check it may (:func:`authorise`),
        run its handler and record the reply, atomically.

        ``command_id`` names the command in the metadata of what it causes; ``key`` (by
        default ``command_id``) is the caller's idempotency key. A concurrent change to
        the same aggregate is retried (``retries`` times) before answering ``conflict``.
        """
        type_name = registry.type_name(type(command))
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
        # stamina_retries_total{error_type="yishi.store.ConcurrencyError"}.
        try:
            async for attempt in stamina.retry_context(on=ConcurrencyError, attempts=self.retries + 1, timeout=None,
                                                       wait_initial=0.01, wait_max=0.1, wait_jitter=0.01):
                with attempt:
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
        try:
            async with _transaction(self.store.pool, conn) as tx:
                return await self._run(request, identity, principal, tx)
        except _Refused as refused:
            async with _transaction(self.store.pool, conn) as tx:
                return await self._record(request, identity.stream, tx, refused.rejection)

    async def _run(self, request: "Request", identity: "CommandIdentity", principal: Principal,
                   conn: asyncpg.Connection) -> Reply:
        command = request.command
        denied = authorise(principal, command)
        if denied is not None:
            # Recorded apart from the identity's reply: nothing stored under the identity is
            # looked at, or handed out, before the caller is authorised. A resend of the
            # same refused request is answered by the refusal already recorded.
            return await self._record_once(request, f"{identity.stream}.denied.{request.fingerprint[:32]}", conn,
                                           denied)
        stored = await self._stored_reply(identity.stream, conn)
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
                             request.correlation_id, principal)
        try:
            subject = await handler(command, ctx)
        except Rejected as exc:
            raise _Refused(exc) from None
        except asyncpg.DataError as exc:
            # A value the database cannot hold (NUL in text, out of range): the same
            # on every attempt, so it is the command's fault, answered as such.
            raise _Refused(Rejected(RejectionReason.INVALID_COMMAND,
                                    f"a value of the command cannot be stored: {type(exc).__name__}: {exc}")) from None
        return await self._record(request, identity.stream, conn, subject)

    async def _stored_reply(self, stream: str, conn: asyncpg.Connection) -> tuple[str | None, Reply] | None:
        """The reply stored in ``stream`` with the fingerprint of its request, if any."""
        events = await self.store.read_stream(stream, conn=conn)
        if not events:
            return None
        name = events[0].topic.removeprefix(REPLY_TOPIC_PREFIX)
        reply = registry.spec(name).model.model_validate_json(events[0].state)
        return events[0].metadata.get(FINGERPRINT), reply

    async def _record_once(self, request: "Request", stream: str, conn: asyncpg.Connection,
                           outcome: Rejected) -> Reply:
        """The reply already stored in ``stream``, else ``outcome`` recorded there."""
        stored = await self._stored_reply(stream, conn)
        return stored[1] if stored is not None else await self._record(request, stream, conn, outcome)

    async def _record(self, request: "Request", stream: str, conn: asyncpg.Connection | None,
                      outcome: str | Rejected) -> Reply:
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
        await record_reply(self.store, stream, reply,
                           Metadata(actor=command.actor.id, actor_role=str(command.actor.role),
                                    district=command.district, correlation_id=request.correlation_id,
                                    causation_id=request.command_id, occurred_at=self.clock.now(),
                                    extra={FINGERPRINT: request.fingerprint}),
                           conn=conn)
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

    def router(self, prefix: str = "/{district}/commands", rate_limit: str = "20/second") -> APIRouter:
        """``POST /{district}/commands/{Type}`` for every command this bus handles.

        The body is the command; ``Idempotency-Key`` makes retries safe (the first
        reply is returned again). Rejections map to 4xx with the reply in a problem
        details body (:func:`yishi.problems.rejection`). Each
        caller may send ``rate_limit`` commands (``limits`` notation) to this instance.
        Callers authenticate with a bearer token (:func:`yishi.auth.authenticate`; the
        app's ``state.verifier`` checks it).
        """
        router = APIRouter(prefix=prefix, tags=["commands"], route_class=LimitedJSONRoute)
        limiter = RateLimit(rate_limit)
        for model in self.handlers:
            router.add_api_route(
                f"/{registry.type_name(model)}", self._endpoint(model, limiter), methods=["POST"],
                response_model=CommandAccepted, status_code=200,
                responses=COMMAND_RESPONSES,
                summary=(model.__doc__ or model.__name__).strip().splitlines()[0],
            )
        return router

    def _endpoint(self, model: type[Command], limiter: "RateLimit"):
        async def endpoint(request: HTTPRequest, district: str, command: model,  # type: ignore[valid-type]
                           idempotency_key: str | None = Header(default=None, max_length=200),
                           principal: Principal = Depends(authenticate)) -> Any:
            unknown = unknown_fields(model, await request.json())
            if unknown:
                raise RequestValidationError(unknown)
            retry_after = await limiter.hit(principal)
            if retry_after is not None:
                return problems.problem(429, "too many commands; slow down",
                                        headers={"Retry-After": str(retry_after)})
            if command.district != district:
                # Answered in the documented reply shape, but not recorded: the command
                # never reached a district it names.
                return problems.rejection(CommandRejected(
                    district=command.district, actor=command.actor, occurred_at=self.clock.now(),
                    correlation_id=str(uuid.uuid4()), command_type=registry.type_name(model),
                    reason=RejectionReason.WRONG_DISTRICT,
                    message="the command's district differs from the district in its path"),
                    HTTP_STATUS[RejectionReason.WRONG_DISTRICT])
            # The key scopes the command's identity only: ids and the correlation id of what
            # it causes are the platform's own, so callers sharing a key share nothing.
            command_id = str(uuid.uuid4())
            reply = await self.dispatch(command, command_id=command_id, correlation_id=command_id,
                                        principal=principal,
                                        key=f"http:{idempotency_key}" if idempotency_key else None)
            if isinstance(reply, CommandRejected):
                return problems.rejection(reply, HTTP_STATUS.get(reply.reason, 400))
            return reply
        endpoint.__annotations__["command"] = model  # a local class: FastAPI cannot resolve its name
        endpoint.__name__ = f"command_{model.__name__}"
        return endpoint


def unknown_fields(model: type[Command], body: Any) -> list[dict[str, Any]]:
    """The fields ``body`` names, at any depth, that ``model`` does not know, as FastAPI's
    validation errors. FastAPI reads nested values as their models do, tolerantly (they
    are shared with events): a misspelt nested field would be dropped without a word, so
    the HTTP edge refuses it as the command topic does (:func:`contracts.registry.input_extra`)."""
    try:
        model.model_validate(body, extra=registry.input_extra(Kind.COMMAND))
    except ValidationError as exc:
        return [{**e, "loc": ("body", *e["loc"])} for e in exc.errors() if e["type"] == "extra_forbidden"]
    return []


class RateLimit:
    """Per-caller command limits of one service instance: for each limit (``limits``
    notation) a moving window of the caller's last commands, in memory (with N replicas a
    caller gets up to N times the limit). Constant work per command: ``limits``' own
    memory storage swept every caller's window, a thread hop each, after every command,
    which on a vote with thousands of voters cost more than the ballot itself."""

    SWEEP_S = 10.0
    """How often callers whose windows are all past are forgotten."""

    def __init__(self, spec: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = [(item.amount, float(item.get_expiry())) for item in parse_many(spec)]
        self.longest = max(expiry for _, expiry in self.limits)
        self.clock = clock
        self.windows: dict[tuple[str, str], list[deque[float]]] = {}
        self.swept = clock()

    async def hit(self, principal: Principal) -> int | None:
        """Count one command; None when allowed, else the seconds to wait (a refused
        command is not counted)."""
        now = self.clock()
        if now - self.swept > self.SWEEP_S:
            self.swept = now
            self.windows = {key: w for key, w in self.windows.items()
                            if any(hits and hits[-1] > now - self.longest for hits in w)}
        key = (principal.district or "", principal.subject)
        windows = self.windows.get(key)
        if windows is None:
            windows = self.windows[key] = [deque() for _ in self.limits]
        wait = 0.0
        for (amount, expiry), hits in zip(self.limits, windows):
            while hits and hits[0] <= now - expiry:
                hits.popleft()
            if len(hits) >= amount:
                wait = max(wait, hits[-amount] + expiry - now)
        if wait > 0:
            return max(1, int(wait) + 1)
        for hits in windows:
            hits.append(now)
        return None


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


def _transaction(pool: asyncpg.Pool, conn: asyncpg.Connection | None):
    """A transaction on ``conn`` (a savepoint inside its own), else on a connection of
    ``pool`` held for it alone."""
    return _nested(conn) if conn is not None else _pooled(pool)


@asynccontextmanager
async def _nested(conn: asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    async with conn.transaction():
        yield conn


@asynccontextmanager
async def _pooled(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    async with pool.acquire() as conn, conn.transaction():
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
    name = registry.type_name(type(reply))
    await store.append(stream, 0,
                       [NewEvent(REPLY_TOPIC_PREFIX + name, reply.model_dump_json().encode())], meta, conn=conn)
