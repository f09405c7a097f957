"""Kafka plumbing shared by the relay and the consumers: producers and topic creation.

Producers use ``acks=all`` and no idempotence or transactions: the relay's delivery
guarantee comes from its stored position plus idempotent consumers, so it works on any
Kafka-compatible broker (the embedded Tansu refuses idempotent producers).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

DEFAULT_PARTITIONS = 3


def new_producer(bootstrap: str, *, client_id: str = "yishi", linger_ms: int = 5) -> AIOKafkaProducer:
    """A producer for at-least-once publishing: every write acknowledged by all in-sync replicas."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=False,
        linger_ms=linger_ms,
        max_batch_size=256 * 1024,
        request_timeout_ms=15_000,
        retry_backoff_ms=200,
    )


async def ensure_topics(bootstrap: str, topics: Iterable[str], partitions: int = DEFAULT_PARTITIONS) -> None:
    """Create the topics that do not exist yet.

    In production topics come from Strimzi ``KafkaTopic`` resources and creation may be
    denied; that is not an error here, publishing then tells whether the topic exists.
    """
    wanted = sorted(set(topics))
    if not wanted:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
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
