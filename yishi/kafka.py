"""Kafka plumbing shared by the relay and the consumers: producers and topic creation.

Producers use ``acks=all`` and no idempotence or transactions: the relay's delivery
guarantee comes from its stored position plus idempotent consumers, so it works on any
Kafka-compatible broker (the embedded Tansu refuses idempotent producers).
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from yishi.settings import Settings

DEFAULT_PARTITIONS = 3


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


def client_options(settings: Settings) -> dict[str, Any]:
    """aiokafka keyword arguments for the configured security (empty for plaintext)."""
    return parse_security(security(settings))


def new_producer(bootstrap: str, *, client_id: str = "yishi", linger_ms: int = 5,
                 **options: Any) -> AIOKafkaProducer:
    """A producer for at-least-once publishing: every write acknowledged by all in-sync replicas.
    ``options`` are :func:`client_options`."""
    return AIOKafkaProducer(
        **options,
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=False,
        linger_ms=linger_ms,
        max_batch_size=256 * 1024,
        request_timeout_ms=15_000,
        retry_backoff_ms=200,
    )


async def ensure_topics(bootstrap: str, topics: Iterable[str], partitions: int = DEFAULT_PARTITIONS,
                        **options: Any) -> None:
    """Create the topics that do not exist yet.

    In production topics come from Strimzi ``KafkaTopic`` resources and creation may be
    denied; that is not an error here, publishing then tells whether the topic exists.
    """
    wanted = sorted(set(topics))
    if not wanted:
        return
    admin = AIOKafkaAdminClient(**options, bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(t, partitions, 1) for t in wanted if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
    except KafkaError:
        pass
    finally:
        await admin.close()
