"""The runtime's supervision of background jobs and the classification of failures (no I/O)."""

from __future__ import annotations

import asyncio

import asyncpg
import pydantic
import pytest
from aiokafka import errors as kafka_errors

from yishi.auth import ProviderUnavailable
from yishi.db import RolledBackOnCommit
from yishi.failures import RetryPolicy, classify, describe
from yishi.store import ConcurrencyError


async def test_a_crashed_background_job_is_restarted():
    from yishi.runtime import _supervised

    runs = []
    stop = asyncio.Event()

    async def flaky(stop_event, _pool):
        runs.append(1)
        if len(runs) < 3:
            raise RuntimeError("outage")
        stop_event.set()

    await asyncio.wait_for(_supervised(flaky, stop, None, RetryPolicy(backoff_initial=0.01)), 5)
    assert len(runs) == 3


async def test_a_job_that_keeps_crashing_is_restarted_ever_more_slowly():
    # The pauses the supervisor chooses, as it logs them: measured pauses would be the
    # machine's load as much as the backoff.
    import yishi.runtime
    from tests.support.logs import logs_of
    from yishi.runtime import _supervised

    runs = []
    stop = asyncio.Event()

    async def broken(stop_event, _pool):
        runs.append(1)
        if len(runs) == 5:
            stop_event.set()
        raise OverflowError("date value out of range")

    with logs_of(yishi.runtime) as logs:
        await asyncio.wait_for(_supervised(broken, stop, None, RetryPolicy(backoff_initial=0.01, backoff_max=1)), 5)
    pauses = [e["restart_in"] for e in logs if e["event"] == "background job crashed; restarting"]
    assert len(runs) == 5 and pauses == [0.01, 0.02, 0.04, 0.08, 0.16]


def _validation_error() -> pydantic.ValidationError:
    with pytest.raises(pydantic.ValidationError) as caught:
        pydantic.TypeAdapter(int).validate_python("x")
    return caught.value


@pytest.mark.parametrize("exc", [
    asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.exceptions.SerializationError("could not serialize access"),
    asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),
    asyncpg.exceptions.LockNotAvailableError("could not obtain lock"),
    asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout"),
    asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
    asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
    asyncpg.InterfaceError("cannot call Transaction.__aexit__(): the underlying connection is closed"),
    ConnectionResetError(104, "Connection reset by peer"),
    TimeoutError(),
    kafka_errors.KafkaConnectionError("no broker"),
    kafka_errors.KafkaTimeoutError(),
    kafka_errors.NotLeaderForPartitionError(),
    ProviderUnavailable("the token provider does not answer"),
    ConcurrencyError("proposal-1", 4),
], ids=lambda e: type(e).__name__)
def test_transient_failures(exc):
    assert classify(exc) == "transient"


@pytest.mark.parametrize("exc", [
    asyncpg.exceptions.UntranslatableCharacterError("unsupported Unicode escape sequence"),
    asyncpg.exceptions.NumericValueOutOfRangeError("value out of range"),
    asyncpg.exceptions.UniqueViolationError("duplicate key value"),
    asyncpg.exceptions.InFailedSQLTransactionError("current transaction is aborted"),
    asyncpg.exceptions._base.DataError("invalid input for query argument $1: 9223372036854775808 "
                                       "(value out of int64 range)"),
    asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
    RolledBackOnCommit("the transaction had failed and was rolled back at its COMMIT"),
    OverflowError("date value out of range"),
    ValueError("bad"), TypeError("bad"), KeyError("x"), RuntimeError("a bug"),
    kafka_errors.MessageSizeTooLargeError(),
], ids=lambda e: type(e).__name__)
def test_deterministic_failures(exc):
    assert classify(exc) == "deterministic"


def test_a_validation_error_recurs_and_an_error_raised_from_a_lost_connection_does_not():
    assert classify(_validation_error()) == "deterministic"
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as cause:
            raise RuntimeError("could not load") from cause
    except RuntimeError as wrapped:
        assert classify(wrapped) == "transient"


def test_the_recorded_reason_can_be_stored():
    reason = describe(ValueError("bad title '议\x00事' \ud800"))
    assert reason.startswith("ValueError: bad title '议\\x00事'") and "\x00" not in reason
    reason.encode("utf-8")  # no lone surrogate left


def test_backoff_doubles_up_to_its_cap():
    policy = RetryPolicy(retry_delay=0.2, backoff_initial=0.1, backoff_max=30)
    assert [policy.transient_delay(n) for n in (1, 2, 3)] == [0.1, 0.2, 0.4]
    assert policy.transient_delay(10_000) == 30
    assert [policy.deterministic_delay(n) for n in (1, 2)] == [0.2, 0.4]
    assert RetryPolicy(retry_delay=60, backoff_max=30).deterministic_delay(100) == 30


async def test_a_stopping_service_leaves_a_message_in_transient_retry_unacknowledged():
    """While the database is away a message is retried without limit; when the service
    stops meanwhile, the consumer gives it up at once (delivered again after the restart)
    instead of holding the shutdown until the broker's grace period ends."""
    from datetime import datetime, timezone

    from contracts import examples, registry
    from contracts.proposals import MemberSeated
    from yishi.inbox import ConsumerStopping, EnvelopeConsumer

    class DatabaseAway:
        def acquire(self):
            raise ConnectionRefusedError(111, "Connection refused")

    model = examples.sample(MemberSeated).model_copy(update={"district": "gulou"})
    env = registry.to_envelope(model, id="m-1", source="/gulou/proposals", subject="s-1",
                               time=datetime.now(timezone.utc), correlation_id="m-1")
    _, headers, value = env.to_kafka()
    stopping = asyncio.Event()
    consumer = EnvelopeConsumer(DatabaseAway(), "test.stopping", lambda e, c: None, bootstrap="",
                                policy=RetryPolicy(backoff_initial=0.01, backoff_max=0.05), stopping=stopping)
    attempt = asyncio.create_task(consumer("gulou.proposals.events", 0, 0, headers, value))
    await asyncio.sleep(0.2)
    assert not attempt.done(), "a transient failure was given up"
    stopping.set()
    with pytest.raises(ConsumerStopping):
        await asyncio.wait_for(attempt, 1)


def test_service_consumers_share_partitions_with_the_sticky_assignor():
    """Every subscriber a service builds uses the one assignment strategy chosen by
    ``bench/run rebalance``: sticky, so a replica joining or leaving moves only the
    partitions it must (the figures are in yishi/runtime.py and the README)."""
    from aiokafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
    from faststream.kafka import KafkaBroker

    from yishi.clock import SystemClock
    from yishi.runtime import ServiceContext, ServiceSpec
    from yishi.settings import Settings

    broker = KafkaBroker("127.0.0.1:9")
    ctx = ServiceContext(spec=ServiceSpec("voting"), settings=Settings(districts="gulou,haidian"),
                         clock=SystemClock(), broker=broker, store=None, verifier=None)

    async def handle(envelope, conn):
        pass

    ctx.consume("on-proposals", ctx.topics("proposals"), handle)
    (subscriber,) = broker.subscribers
    assert subscriber._connection_args["partition_assignment_strategy"] == (StickyPartitionAssignor,)
    assert subscriber.group_id == "yishi.voting.on-proposals"


def test_a_service_connects_to_every_broker_of_a_comma_separated_bootstrap():
    """``YISHI_KAFKA_BOOTSTRAP=kafka-1:9092,kafka-2:9092`` names two brokers (faststream
    took the whole string for one host and the service could not start)."""
    from yishi.runtime import ServiceSpec, create_app
    from yishi.settings import Settings

    settings = Settings(database_url="postgresql://db/yishi", kafka_bootstrap="kafka-1:9092, kafka-2:9092",
                        auth_issuer="https://issuer.example", auth_jwks_url="https://issuer.example/jwks")
    app = create_app(ServiceSpec(name="voting"), settings)
    assert app.state.ctx.broker._connection_kwargs["bootstrap_servers"] == ["kafka-1:9092", "kafka-2:9092"]
