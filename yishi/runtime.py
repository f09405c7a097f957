"""The one way to run a service: a faststream ``KafkaBroker`` and a FastAPI app in one
process, with the service's pool, event store, relay and sealer, built by one factory.

A service describes itself with a :class:`ServiceSpec`; :func:`create_app` turns it
into an ASGI app whose lifespan opens the pool, checks that the schema is migrated
(:mod:`yishi.migrations`; no DDL at start), starts the broker (subscribers), the relay
and the sealer, and stops them in reverse order on shutdown. Nothing is created at
import time.

(Just over 500 lines: it is the one place a service's parts are assembled and started in
order, for every service; each part lives in the module it imports.)
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import asyncpg
import structlog
from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.security import parse_security
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.middleware import Middleware

from contracts import registry
from contracts.common import Actor, Command
from contracts.envelope import Envelope
from contracts.registry import ContractError, Kind
from yishi import clock as clocks
from yishi import migrations, problems, tracing
from yishi.audit.checkpoints import Checkpointer, default_origin, load_signing_key
from yishi.auth import UNAUTHORISED_RESPONSES, TokenVerifier, authenticate
from yishi.clock import Clock
from yishi.ids import DerivedIds, IdSource
from yishi.command_http import command_router
from yishi.commands import CommandBus, with_replies
from yishi.db import create_pool
from yishi.failures import RetryPolicy, Retrying, classify, retried, sleep_or_stop
from yishi.inbox import ConsumerStopping, EnvelopeConsumer, Handler, OffsetCommits, Poison, Refusal
from yishi.kafka import bootstrap_servers, new_producer, security
from yishi.logging import configure_logging
from yishi.metrics import Watch, broker_middleware, instrument
from yishi.names import commands_topic, events_topic
from yishi.relay import Relay, Translator, passthrough
from yishi.settings import Settings
from yishi.store import EventStore
from yishi.tlog.http import log_router
from yishi.witness.submit import cosign_forever, parse_witness_urls

log = structlog.get_logger("yishi.runtime")

Background = Callable[[asyncio.Event, asyncpg.Pool], Awaitable[None]]
"""A background job: called with the stop event and the service's pool (see :func:`yishi.jobs.every`,
which runs one replica's steps at a time)."""
EventHandler = Callable[[Any, Envelope, asyncpg.Connection], Awaitable[Any]]
Reaction = Callable[[Any, Actor], Command | None]
"""An event of another service (its public model) to the command it asks of this one."""

#: How a consumer group's partitions are shared among a service's replicas: sticky. Measured by
#: ``bench/run rebalance`` (Apache Kafka 4.1, replica processes of one subscriber, 6 partitions,
#: faststream's 3 s heartbeat and 10 s session timeout), a second replica joining settles in
#: 2.0 s median (2.8 s max), a clean leave in 2.0 s (2.3 s), a killed replica in 10.6 s (11.1 s):
#: the same for range and round robin, all eager and paced by the heartbeat and session
#: timeout. Sticky alone both shares evenly (range gave one replica 4 of 6) and moves the
#: fewest partitions when a third replica joins two (2; round robin and range moved 4).
PARTITION_ASSIGNMENT: tuple[type[AbstractPartitionAssignor], ...] = (StickyPartitionAssignor,)


@dataclass
class ServiceContext:
    """What a service's wiring gets: settings, clock, and (once started) pool and store."""

    spec: "ServiceSpec"
    settings: Settings
    clock: Clock
    broker: KafkaBroker
    store: EventStore
    verifier: TokenVerifier
    ids: IdSource = field(default_factory=DerivedIds)
    router: APIRouter = field(default_factory=APIRouter)
    public: APIRouter = field(default_factory=APIRouter)
    """Routes served without a token (the portal's public pages): what they show is public,
    and they check the district themselves."""
    middleware: list[Middleware] = field(default_factory=list)
    """ASGI middleware the service adds around its app (the portal's session cookie)."""
    background: list[Background] = field(default_factory=list)
    handlers: dict[str, tuple[Handler, Callable[[Envelope], bool] | None, bool, Refusal | None]] = field(
        default_factory=dict)
    consumers: dict[str, EnvelopeConsumer] = field(default_factory=dict)
    commits: OffsetCommits = field(default_factory=OffsetCommits)
    """The offsets of messages done, committed in the background (``YISHI_CONSUMER_COMMIT_INTERVAL_S``)."""
    subscriptions: dict[str, tuple[str, frozenset[str]]] = field(default_factory=dict)
    command_types: frozenset[str] = frozenset()
    partition_assignment: tuple[type[AbstractPartitionAssignor], ...] = PARTITION_ASSIGNMENT

    @property
    def service(self) -> str:
        return self.spec.name

    @property
    def pool(self) -> asyncpg.Pool:
        """The service's pool; exists once the app has started."""
        return self.store.pool

    def topics(self, service: str, make=events_topic) -> list[str]:
        """``service``'s topics (events by default) in every district served here."""
        return [make(d, service) for d in self.settings.districts]

    def serve_commands(self, bus: CommandBus) -> None:
        """Serve ``bus`` over HTTP (``POST /{district}/commands/{Type}``) and over the
        service's command topics, with replies on its replies topics."""
        bus.verifier = self.verifier
        bus.ids = self.ids
        self.router.include_router(command_router(bus, rate_limit=self.settings.command_rate_limit))
        self.command_types = frozenset(registry.type_name(model) for model in bus.public_commands)
        self.consume("commands", self.topics(self.service, commands_topic), bus.handle_envelope, deduplicate=False,
                     refuse=bus.refuse_unreadable)

    def on_events(self, name: str, service: str, handlers: dict[str, EventHandler]) -> None:
        """React to ``service``'s public events: ``handlers`` maps a type name to
        ``handler(model, envelope, conn)``. Other known types are skipped; unknown types,
        future versions and invalid bodies are dead-lettered."""
        async def handle(envelope: Envelope, conn: asyncpg.Connection) -> None:
            try:
                model = registry.decode(envelope, Kind.EVENT)
            except ContractError as exc:
                raise Poison(f"{type(exc).__name__}: {exc}") from exc
            await handlers[envelope.type](model, envelope, conn)

        def accepts(envelope: Envelope) -> bool:
            if envelope.type in handlers:
                return True
            registry.spec(envelope.type, Kind.EVENT)  # an unknown type or kind raises: dead letter, not silence
            return False

        self.subscriptions[name] = (service, frozenset(handlers))
        self.consume(name, self.topics(service), handle, accepts=accepts)

    def react(self, name: str, service: str, bus: CommandBus, reactions: dict[str, Reaction]) -> None:
        """Turn ``service``'s public events into this service's commands: ``reactions`` maps
        a type name to ``reaction(model, actor)``, which returns the command the event asks
        for, sent by ``actor`` (the bus's :attr:`~yishi.commands.CommandBus.system_actor`),
        or None when it asks for none. Each is dispatched on ``bus`` as the platform's
        own (:meth:`yishi.commands.CommandBus.react`), in the inbox transaction: its
        refusal is a recorded ``CommandRejected``, never only a log line."""
        def handler(reaction: Reaction) -> EventHandler:
            async def handle(model: Any, envelope: Envelope, conn: asyncpg.Connection) -> None:
                command = reaction(model, bus.system_actor)
                if command is not None:
                    await bus.react(command, envelope, conn)
            return handle

        self.on_events(name, service, {type_name: handler(r) for type_name, r in reactions.items()})

    def consume(self, name: str, topics: Sequence[str], handle: Handler, *, retry_delay: float = 1.0,
                accepts: Callable[[Envelope], bool] | None = None, deduplicate: bool = True,
                refuse: Refusal | None = None) -> None:
        """Subscribe ``handle`` to ``topics`` as consumer group ``{prefix}.{service}.{name}``.

        A message's offset is committed after its inbox transaction, in the background
        with the others done since the last commit (:class:`yishi.inbox.OffsetCommits`),
        and before a partition is given up in a rebalance. Failures are classified
        (:mod:`yishi.failures`): a transient one is retried with backoff, a deterministic
        one ``YISHI_POISON_MAX_ATTEMPTS`` times before the message is dead-lettered
        (:class:`yishi.inbox.EnvelopeConsumer`). Only when even dead-lettering fails is
        the message left unacknowledged, to be delivered again after ``retry_delay``.
        """
        group = f"{self.settings.consumer_group_prefix}.{self.service}.{name}"
        more = self.settings.consumer_batch_max - 1 if deduplicate else 0

        async def on_message(msg: KafkaMessage) -> None:
            # The decoder handed over the message itself, which the message keeps as its
            # decoded body: a reference cycle that only the garbage collector would free.
            msg.clear_cache()
            record = msg.raw_message
            consumer = self.consumers[name]
            kafka = msg.consumer
            records = [record]
            if more:  # what the consumer has fetched already, handled with it (EnvelopeConsumer.many)
                try:
                    fetched = await kafka.getmany(timeout_ms=0, max_records=more)
                except Exception as exc:  # the broker's trouble is the next fetch's: this one goes alone
                    log.info("could not take the fetched messages; handling one", consumer=group, error=repr(exc))
                    fetched = {}
                for partition_records in fetched.values():
                    records.extend(partition_records)
            handled = 0

            def done(r: Any) -> None:
                nonlocal handled
                handled += 1
                self.commits.done(kafka, r.topic, r.partition, r.offset)

            try:
                await consumer.many(records, done)
            except ConsumerStopping:
                await _rewind(msg, records[handled:])  # not done: delivered again after the restart
                raise
            except Exception:
                failed = records[handled]
                log.exception("consumer failed; message will be redelivered", consumer=group,
                              topic=failed.topic, partition=failed.partition, offset=failed.offset)
                await asyncio.sleep(retry_delay)
                await _rewind(msg, records[handled:])  # the consumer reads them again next
                raise

        self.broker.subscriber(
            *topics, group_id=group, auto_offset_reset="earliest", ack_policy=AckPolicy.MANUAL,
            listener=_CommitBeforeRevoke(self.commits),
            partition_assignment_strategy=self.partition_assignment,
            parser=_tolerant_parser, decoder=_undecoded,
        )(on_message)
        self.handlers[name] = (handle, accepts, deduplicate, refuse)

    @property
    def retry_policy(self) -> RetryPolicy:
        """How consumers and background jobs retry failed work (from the settings)."""
        return RetryPolicy.from_settings(self.settings)


async def _rewind(msg: KafkaMessage, undone: Sequence[Any]) -> None:
    """Seek each partition of the records not done to the first of them, so the consumer
    reads them again next: faststream's ``nack`` for the message it delivered, the
    consumer's ``seek`` for those fetched with it."""
    first: dict[Any, int] = {}
    for r in undone:
        key = TopicPartition(r.topic, r.partition)
        first[key] = min(first.get(key, r.offset), r.offset)
    if undone and undone[0] is msg.raw_message:
        await msg.nack()
    assigned = msg.consumer.assignment()
    for partition, offset in first.items():
        if partition in assigned:  # else its new owner starts from the last committed offset
            msg.consumer.seek(partition, offset)


class _CommitBeforeRevoke(ConsumerRebalanceListener):
    """Commit what is done before partitions go to another consumer, so it starts there."""

    def __init__(self, commits: OffsetCommits) -> None:
        self.commits = commits

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.commits.flush()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        pass


@dataclass(frozen=True)
class ServiceSpec:
    """A service: its name, its own migrations, how its events are published and its wiring."""

    name: str
    migrations: Path | None = None
    """The version folder of its own tables (default ``services/NAME/migrations``)."""
    translate: Translator = passthrough
    wire: Callable[[ServiceContext], None] = lambda ctx: None


def create_app(spec: ServiceSpec, settings: Settings, clock: Clock | None = None,
               ids: IdSource | None = None, *, own_process: bool = False) -> FastAPI:
    """Build the service's ASGI app; all I/O starts in the lifespan, none here. ``clock``
    and ``ids`` (the source of ids the platform chooses) are injected: tests pass theirs.

    ``own_process``: the app is its process's only one (``yishi serve``). Once it has
    started, what the start made (modules, models, routes, pools: some 200,000 objects) is
    collected once and then frozen out of the garbage collector's view (``gc.freeze``):
    a full collection went through all of it, to find nothing, in up to 87 ms of CPU
    during which no request was answered (voting, at 400 ballots/s). Tests start many
    apps in one process, whose objects must stay collectable, and leave it False."""
    if not settings.database_url or not settings.kafka_bootstrap:
        raise ValueError("YISHI_DATABASE_URL and YISHI_KAFKA_BOOTSTRAP must be set to run a service")
    clock = clock or clocks.from_settings(settings)  # refuses a rehearsal clock under a production issuer
    configure_logging(settings.log_level, settings.log_json)
    tracing.configure(spec.name)  # spans are recorded only with an OTLP endpoint (OTEL_* variables)
    kafka_security = security(settings)
    kafka_options = parse_security(kafka_security)  # the same settings for our own aiokafka clients
    # apply_types=False: the one subscriber (ServiceContext.consume) takes the message as
    # it came; faststream's dependency injection would otherwise hand each message's
    # context to a worker thread and back (a thread hop per message, an eighth of a
    # consumer's CPU in bench/run ballots).
    broker = KafkaBroker(bootstrap_servers(settings.kafka_bootstrap), acks="all", client_id=f"yishi-{spec.name}",
                         apply_types=False, security=kafka_security, middlewares=[broker_middleware(spec.name)],
                         logger=logging.getLogger(f"yishi.{spec.name}.broker"))
    verifier = TokenVerifier(settings)
    witnesses = parse_witness_urls(settings.witness_urls)  # a mistyped key stops the start, not later
    ctx = ServiceContext(spec=spec, settings=settings, clock=clock, broker=broker, store=EventStore(None, clock),
                         verifier=verifier, ids=ids or DerivedIds(),
                         commits=OffsetCommits(settings.consumer_commit_interval_s))
    spec.wire(ctx)

    @ctx.router.get("/{district}/clock", tags=["clock"])
    async def clock_now(district: str) -> dict[str, Any]:
        """The platform's time: ``now`` on this service's clock, the rehearsal clock's
        ``factor`` (1: the wall clock) and ``epoch`` (``YISHI_CLOCK_*``). Deadlines a
        client sends (a notice's end, a vote's close) are measured against ``now``."""
        return {"now": clock.now().isoformat(), "factor": settings.clock_factor,
                "epoch": settings.clock_epoch.isoformat() if settings.clock_epoch else None}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        ctx.store.pool = await create_pool(settings.database_url, settings.db_schema or spec.name,
                                           min_size=settings.db_pool_min, max_size=settings.db_pool_max)
        try:
            await migrations.check(ctx.pool, settings.db_schema or spec.name,
                                   migrations.locations(spec.name, spec.migrations), spec.name)
        except migrations.SchemaOutOfDate as exc:
            log.error("schema not migrated", service=spec.name, error=str(exc))
            await ctx.pool.close()
            raise
        checkpointer = Checkpointer(spec.name, load_signing_key(spec.name, settings.signing_key_file),
                                    interval=settings.checkpoint_interval_s, clock=clock,
                                    origin=settings.log_origin or default_origin(spec.name, settings.districts))
        log.info("merkle log", service=spec.name, origin=checkpointer.origin, verifier_key=checkpointer.verifier_key)
        dlq_producer = new_producer(settings.kafka_bootstrap, client_id=f"yishi-{spec.name}-dlq", **kafka_options)
        await dlq_producer.start()
        stop = asyncio.Event()
        for name, (handle, accepts, deduplicate, refuse) in ctx.handlers.items():
            ctx.consumers[name] = EnvelopeConsumer(ctx.pool, f"{spec.name}.{name}", handle, accepts=accepts,
                                                   deduplicate=deduplicate, refuse=refuse,
                                                   bootstrap=settings.kafka_bootstrap, producer=dlq_producer,
                                                   kafka_options=kafka_options, policy=ctx.retry_policy,
                                                   stopping=stop)
        relay_ = Relay(ctx.store, settings.kafka_bootstrap, spec.name, with_replies(spec.translate, spec.name),
                       batch_size=settings.relay_batch_size, idle_wait=settings.relay_idle_wait_s,
                       kafka_options=kafka_options, takeover_grace=settings.relay_takeover_grace_s)
        app.state.watch = watch = Watch(spec.name, broker, relay_, ctx.pool, interval=settings.health_interval_s)
        tasks = [asyncio.create_task(relay_.run(stop), name="relay"),
                 asyncio.create_task(_seal_forever(ctx.store, stop, checkpointer), name="sealer")]
        tasks += [asyncio.create_task(_supervised(job, stop, ctx.pool, ctx.retry_policy)) for job in ctx.background]
        if witnesses:  # cosignatures beside each new checkpoint, never holding the sealer up
            tasks.append(asyncio.create_task(cosign_forever(spec.name, ctx.pool, witnesses, checkpointer.signer.verifier,
                                                            stop, settings.checkpoint_interval_s), name="witnesses"))
        tasks.append(asyncio.create_task(ctx.commits.run(stop), name="offset-commits"))
        await broker.start()
        tasks.append(asyncio.create_task(watch.run(stop), name="watch"))  # its first ping finds the broker started
        if own_process:
            gc.collect()
            gc.freeze()
        log.info("service started", service=spec.name, districts=settings.districts)
        try:
            yield
        finally:
            log.info("service stopping", service=spec.name)
            stop.set()
            await ctx.commits.flush()  # what is done is not delivered again after the restart
            await broker.stop()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, 10)
            await dlq_producer.stop()
            await ctx.pool.close()

    # No redirects for a trailing slash: an id of "/" (sent as %2F) would otherwise be
    # redirected to the list route beside it instead of being answered 404.
    app = FastAPI(title=f"Yishi {spec.name}", lifespan=lifespan, redirect_slashes=False,
                  docs_url=None, redoc_url=None, telemetry=tracing.http_telemetry())
    _serve_docs(app)
    problems.install(app)
    instrument(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.state.ctx = ctx
    app.state.verifier = verifier

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process is up and serving HTTP."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    async def readyz(response: Response) -> dict[str, Any]:
        """Readiness: the database answers. The broker is reported but not required: the
        store is the outbox, so commands are accepted and kept while Kafka is away, and
        the relay and consumers catch up when it is back."""
        checks = {"database": False, "broker": False}
        with contextlib.suppress(Exception):
            checks["database"] = await asyncio.wait_for(ctx.pool.fetchval("SELECT true"), 2)
        checks["broker"] = await app.state.watch.ping_kafka()
        ready = checks["database"]
        response.status_code = 200 if ready else 503
        return {"status": "ready" if ready else "not ready", "checks": checks}

    @app.get("/healthz/kafka", tags=["ops"])
    async def kafka_health(response: Response) -> dict[str, Any]:
        """The Kafka signal, apart from readiness: 200 while the cluster answers, else 503
        (also ``yishi_kafka_up``). No probe of the pod uses it: a Kafka outage must not take
        the API down; it is for monitoring, and it tells how far the relay is behind."""
        up = await app.state.watch.ping_kafka()
        lag = {}
        with contextlib.suppress(Exception):
            events, seconds = await asyncio.wait_for(app.state.watch.relay.measure_lag(), 2)
            lag = {"events": events, "seconds": seconds}
        response.status_code = 200 if up else 503
        return {"status": "ok" if up else "unreachable", "relay_lag": lag}

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    # The Merkle log's proofs are public: anyone may check them, no token.
    app.include_router(log_router())

    # Everything a service adds requires a valid token of the district in its path.
    async def served(request: Request) -> None:
        """A district this deployment does not serve is not found: nothing is stored for
        it (its topics have no consumers here) and nothing is read."""
        district = request.path_params.get("district")
        if district is not None and district not in settings.districts:
            raise HTTPException(404, f"district {district} is not served here")

    app.include_router(ctx.router, dependencies=[Depends(authenticate), Depends(served)],
                       responses=UNAUTHORISED_RESPONSES)
    app.include_router(ctx.public)
    for added in ctx.middleware:
        app.add_middleware(added.cls, *added.args, **added.kwargs)
    return app


# Swagger UI's dist files (script, styles, icon) as the fastapi-offline package ships them.
_DOCS_ASSETS = Path(importlib.util.find_spec("fastapi_offline").origin).parent / "static"


def _serve_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI from the service's own ``/docs/assets``, never a CDN, so the
    page works where only the service is reachable (FastAPI's default loads its script
    from jsDelivr, ReDoc's page its fonts from Google: neither is served)."""
    app.mount("/docs/assets", StaticFiles(directory=_DOCS_ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}/docs/assets/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/docs/assets/swagger-ui.css",
            swagger_favicon_url=f"{root}/docs/assets/favicon.png",
            # Swagger UI would otherwise send the document to validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None})


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` is answered 413 before the app
    reads any of it, whether its ``Content-Length`` says so or it is streamed in chunks."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        # Buffer the body (at most max_bytes) so a chunked body that grows too large is
        # refused before the app has parsed, or acted on, any part of it.
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        buffered = iter(messages)

        async def replay() -> dict:
            return next(buffered, None) or await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: dict, receive: Callable, send: Callable) -> None:
        response = problems.problem(413, f"request body larger than {self.max_bytes} bytes")
        await response(scope, receive, send)


async def _tolerant_parser(record: Any, parse: Callable[[Any], Awaitable[Any]]) -> Any:
    """faststream's parser, for a record whose headers may not be UTF-8. faststream decodes
    every header as text before any handler runs and, failing, drops the message with a
    log line; here the framework sees a text copy of such headers while the handler gets
    the record as it came, so the envelope module judges it (a dead letter, with why)."""
    try:
        return await parse(record)
    except UnicodeDecodeError:
        text = [(k, v.decode("utf-8", "replace").encode()) for k, v in record.headers]
        message = await parse(replace(record, headers=text))
        message.raw_message = record
        return message


async def _undecoded(msg: Any) -> Any:
    """Keep faststream from parsing bodies: the subscriber gets the message itself and the
    envelope module decides what is valid, so that bad JSON becomes a dead letter instead
    of a redelivery loop."""
    return msg


async def _supervised(job: Background, stop: asyncio.Event, pool: asyncpg.Pool,
                      policy: RetryPolicy = RetryPolicy()) -> None:
    """Run a background job until ``stop``; a crash is logged and the job restarted, so
    a bug or an outage never silently ends a timer. Restarts back off exponentially
    (``policy``'s transient backoff) while the job keeps crashing, so a job that fails at
    once does not spin; jobs that process items skip a failing item themselves
    (:class:`yishi.jobs.JobItems`) rather than crash on it."""
    name = getattr(job, "__qualname__", repr(job))
    clock = asyncio.get_running_loop().time
    started, earlier = clock(), 0  # when the job last started; crashes before this episode

    async def run() -> None:
        nonlocal started
        started = clock()
        await job(stop, pool)

    def restart_in(crashes: int) -> float:
        nonlocal earlier
        if clock() - started > policy.backoff_max:
            earlier = crashes - 1  # it ran well for a while: this is a new episode
        return policy.transient_delay(crashes - earlier)

    def crashed(failed: Retrying) -> None:
        exc = failed.exception
        log.error("background job crashed; restarting", job=name, failure=classify(exc),
                  restart_in=failed.delay, exc_info=exc)

    await retried(run, stop, restart_in, retry=lambda exc: isinstance(exc, Exception), before_sleep=crashed)


async def _seal_forever(event_store: EventStore, stop: asyncio.Event, checkpointer: Checkpointer,
                        interval: float = 1.0) -> None:
    """Keep the log chain current, so verification covers everything but the last second,
    and sign its head now and then (see :mod:`yishi.audit.checkpoints`)."""
    while not stop.is_set():
        try:
            while await event_store.seal() > 0:
                pass
            await checkpointer.record(event_store.pool)
        except (asyncpg.PostgresError, OSError) as exc:
            log.warning("sealing failed; will retry", error=repr(exc))
        await sleep_or_stop(stop, interval)
