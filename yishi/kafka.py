"""Kafka plumbing shared by the relay and the consumers: producers and topic creation.

Producers use ``acks=all``. The relay's producer is also idempotent where the broker
grants producer ids (Apache Kafka does; the embedded Tansu refuses them), found by
asking the broker once (:func:`supports_idempotence`), not by knowing its name: then a
retried batch is written once, in order, per partition. The delivery guarantee does not
rest on it: it comes from the relay's stored position plus idempotent consumers, so the
relay works on any Kafka-compatible broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaClient, AIOKafkaProducer, errors
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.protocol.transaction import InitProducerIdRequest
from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from yishi.settings import Settings

DEFAULT_PARTITIONS = 3
MAX_REPLICATION = 3
"""Replicas of a topic the platform creates itself: one per broker, up to three."""


def security(settings: Settings) -> BaseSecurity | None:
    """The broker security of ``settings`` (TLS, SASL) as faststream describes it; the same
    object configures the faststream broker and, through :func:`client_options`, the
    relay's and consumers' own aiokafka clients."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile) if protocol.endswith("SSL") else None
    if protocol == "SSL":
        return BaseSecurity(ssl_context=context, use_ssl=True)
    if not settings.kafka_sasl_username or settings.kafka_sasl_password is None:
        raise ValueError(f"{protocol} needs YISHI_KAFKA_SASL_USERNAME and YISHI_KAFKA_SASL_PASSWORD")
    kind = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}[
        settings.kafka_sasl_mechanism]
    return kind(settings.kafka_sasl_username, settings.kafka_sasl_password.get_secret_value(),
                ssl_context=context, use_ssl=protocol == "SASL_SSL")


def bootstrap_servers(bootstrap: str) -> list[str]:
    """``host:port`` of each broker of a comma-separated bootstrap (faststream, unlike
    aiokafka, takes a string for a single host)."""
    return [server.strip() for server in bootstrap.split(",") if server.strip()]


def client_options(settings: Settings) -> dict[str, Any]:
    """aiokafka keyword arguments for the configured security (empty for plaintext)."""
    return parse_security(security(settings))


def new_producer(bootstrap: str, *, client_id: str = "yishi", linger_ms: int = 5, idempotent: bool = False,
                 **options: Any) -> AIOKafkaProducer:
    """A producer for at-least-once publishing: every write acknowledged by all in-sync replicas;
    ``idempotent`` where :func:`supports_idempotence`. ``options`` are :func:`client_options`."""
    return AIOKafkaProducer(
        **options,
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=idempotent,
        linger_ms=linger_ms,
        max_batch_size=256 * 1024,
        request_timeout_ms=15_000,
        retry_backoff_ms=200,
    )


@contextlib.asynccontextmanager
async def _client(bootstrap: str, **options: Any) -> AsyncIterator[AIOKafkaClient]:
    """A bootstrapped low-level client for one question to the cluster, closed after."""
    client = AIOKafkaClient(**options, bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    await client.bootstrap()
    try:
        yield client
    finally:
        await client.close()


async def topic_partitions(bootstrap: str, wanted: Callable[[str], bool] = lambda topic: True,
                           **options: Any) -> dict[str, list[int]]:
    """The partitions of every topic on the broker that ``wanted`` accepts, from a metadata
    request for all topics. (A consumer's own metadata knows only the topics it asked for:
    since Kafka 4.0 dropped metadata v0, a bootstrap asks for none.)"""
    async with _client(bootstrap, **options) as client:
        cluster = await client.fetch_all_metadata()
    return {t: sorted(cluster.partitions_for_topic(t) or ()) for t in cluster.topics() if wanted(t)}


async def supports_idempotence(bootstrap: str, attempts: int = 20, **options: Any) -> bool:
    """Whether the broker grants producer ids (``InitProducerId``), which an idempotent
    producer needs. Asked of the broker itself: a broker that refuses makes an idempotent
    aiokafka producer hang on its first send. Connection failures are raised."""
    async with _client(bootstrap, **options) as client:
        for attempt in range(attempts):
            try:
                response = await client.send(client.get_random_node(), InitProducerIdRequest(
                    transactional_id=None, transaction_timeout_ms=60_000))
            except KafkaError:
                return False
            error = errors.for_code(response.error_code)
            if error is errors.NoError:
                return True
            if not error.retriable:  # e.g. Tansu's "unknown error"
                return False
            await asyncio.sleep(0.2 * (attempt + 1))  # a broker just started loads its coordinator
        return False


async def ensure_topics(bootstrap: str, topics: Iterable[str], partitions: int = DEFAULT_PARTITIONS,
                        **options: Any) -> None:
    """Create the topics that do not exist yet.

    In production topics come from Strimzi ``KafkaTopic`` resources and creation may be
    denied; that is not an error here, publishing then tells whether the topic exists.
    A topic created here has a replica on each broker, up to :data:`MAX_REPLICATION`: with
    one only, the loss of its broker would take its partitions with it. It returns once
    the topics it created have a leader for every partition (a few seconds at most).
    """
    wanted = sorted(set(topics))
    if not wanted:
        return
    admin = AIOKafkaAdminClient(**options, bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        created = list(missing)
        replicas = await _replication(admin) if missing else 1
        for attempt in range(5):
            if not missing:
                break
            with contextlib.suppress(TopicAlreadyExistsError):
                response = await admin.create_topics([NewTopic(t, partitions, replicas) for t in missing])
                # Errors come per topic, not raised. Just after a cluster starts, its controller
                # may not see every broker yet and refuses the replication factor: try again.
                missing = [entry[0] for entry in response.topic_errors
                           if entry[1] == _INVALID_REPLICATION_FACTOR or errors.for_code(entry[1]).retriable]
                if missing:
                    await asyncio.sleep(0.5 * (attempt + 1))
        await _until_led(admin, [t for t in created if t not in missing])
    except KafkaError:
        pass
    finally:
        await admin.close()


_INVALID_REPLICATION_FACTOR = 38


async def _until_led(admin: AIOKafkaAdminClient, topics: list[str], attempts: int = 20) -> None:
    """Wait (a few seconds at most) until the brokers' metadata shows each topic just
    created with a leader for every partition: a topic's creation is answered before
    every broker has it, and a client using it at once would be told it does not exist
    (a replica count read then comes back empty)."""
    for attempt in range(attempts):
        if not topics:
            return
        described = await admin.describe_topics(topics)
        topics = [d["topic"] for d in described
                  if d["error_code"] or not d["partitions"] or any(p["leader"] < 0 for p in d["partitions"])]
        if topics:
            await asyncio.sleep(0.05 * (attempt + 1))


async def _replication(admin: AIOKafkaAdminClient) -> int:
    """Replicas for a new topic: the brokers of the cluster, up to :data:`MAX_REPLICATION`
    (one where the broker does not describe its cluster)."""
    try:
        brokers = (await admin.describe_cluster())["brokers"]
    except (KafkaError, KeyError, TypeError):
        return 1
    return max(1, min(MAX_REPLICATION, len(brokers)))
