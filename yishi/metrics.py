"""What a service exports on ``/metrics``, beyond the metrics of the module that counts
them (``yishi_relay_*`` in :mod:`yishi.relay`, ``yishi_consumer_*`` in :mod:`yishi.inbox`,
``yishi_job_*`` in :mod:`yishi.jobs`).

The ecosystem's parts do what they can: prometheus-fastapi-instrumentator counts HTTP
requests (``http_requests_total``, ``http_request_duration_seconds``, by route template),
faststream's Prometheus middleware counts what each subscriber received and processed
(``faststream_received_*``) and what the broker published (``faststream_published_*``).
Consumer lag per group and partition is not measured here: Strimzi's Kafka exporter
exports it (``kafka_consumergroup_lag``), as it does for every group of the cluster.

:class:`Watch` is the periodic part: it pings the Kafka cluster (``yishi_kafka_up``, also
answered at ``/healthz/kafka``), measures the relay's lag and how far the log chain runs
ahead of its last signed checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import asyncpg
import structlog
from fastapi import FastAPI
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_fastapi_instrumentator import Instrumentator

from yishi.failures import sleep_or_stop

if TYPE_CHECKING:
    from faststream.kafka import KafkaBroker

    from yishi.relay import Relay

log = structlog.get_logger("yishi.metrics")

KAFKA_UP = Gauge("yishi_kafka_up", "1 while the Kafka cluster answered this service's last ping, else 0", ["service"])
DELIVERIES = Counter("yishi_notify_deliveries_total", "Delivery attempts by channel and outcome "
                     "(delivered, or the failure reason)", ["channel", "outcome"])
TIMERS_FIRED = Counter("yishi_timers_fired_total", "Timers that fired: votes closed, reminders recorded", ["timer"])
UNSIGNED = Gauge("yishi_checkpoint_unsigned_events", "Events chained into the log chain after its last signed "
                 "checkpoint", ["service"])
LAST_SIGNED = Gauge("yishi_checkpoint_last_signed_timestamp_seconds", "signed_at of the newest signed checkpoint "
                    "(0: none yet)", ["service"])
WITNESS_COSIGNED = Gauge("yishi_witness_cosigned_size", "Tree size of the newest checkpoint each witness "
                         "cosigned for this service's log (yishi/witness/submit.py)", ["service", "witness"])

_CHECKPOINT_LAG = """
SELECT COALESCE((SELECT max(seq) FROM log_chain), 0) - COALESCE((SELECT max(seq) FROM checkpoints), 0) AS unsigned,
       (SELECT extract(epoch FROM max(signed_at)) FROM checkpoints) AS signed_at
"""


def instrument(app: FastAPI) -> None:
    """HTTP request metrics for ``app``, by method, route template and status class.
    ``/metrics`` itself and the probes are left out."""
    Instrumentator(excluded_handlers=["/metrics", "/healthz", "/healthz/kafka", "/readyz"]).instrument(app)


def broker_middleware(service: str) -> KafkaPrometheusMiddleware:
    """faststream's Prometheus middleware for a service's ``KafkaBroker`` (in the default
    registry, so ``/metrics`` serves it; shared by every app of the process)."""
    return KafkaPrometheusMiddleware(registry=REGISTRY, app_name=f"yishi-{service}")


class Watch:
    """Measures what no request or message would: the Kafka cluster's health, the relay's
    lag and the checkpoints, every ``interval`` seconds while the service runs."""

    def __init__(self, service: str, broker: "KafkaBroker", relay: "Relay", pool: asyncpg.Pool, *,
                 interval: float = 5.0, timeout: float = 2.0) -> None:
        self.service = service
        self.broker = broker
        self.relay = relay
        self.pool = pool
        self.interval = interval
        self.timeout = timeout
        self.kafka_up: bool | None = None  # None until the first ping

    async def ping_kafka(self) -> bool:
        """Whether the cluster answers the service's broker client now; sets ``yishi_kafka_up``."""
        up = False
        with contextlib.suppress(Exception):
            up = bool(await self.broker.ping(timeout=self.timeout))
        self.kafka_up = up
        KAFKA_UP.labels(self.service).set(1 if up else 0)
        return up

    async def checkpoints(self) -> tuple[int, float]:
        """(events chained after the last signed checkpoint, its signed_at as a Unix time or 0)."""
        row = await self.pool.fetchrow(_CHECKPOINT_LAG)
        unsigned, signed_at = int(row["unsigned"]), float(row["signed_at"] or 0)
        UNSIGNED.labels(self.service).set(unsigned)
        LAST_SIGNED.labels(self.service).set(signed_at)
        return unsigned, signed_at

    async def once(self) -> None:
        await self.ping_kafka()
        try:
            await asyncio.wait_for(self.relay.measure_lag(), self.timeout)
            await asyncio.wait_for(self.checkpoints(), self.timeout)
        except Exception as exc:  # the database away, or a bug: the gauges keep their last values
            log.warning("measuring relay lag and checkpoints failed; will retry", service=self.service,
                        error=repr(exc))

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.once()
            await sleep_or_stop(stop, self.interval)
