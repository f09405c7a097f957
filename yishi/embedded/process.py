"""Child server processes of the embedded stack: each on a free loopback port, dying
with its owner (``PR_SET_PDEATHSIG``), and able to be stopped, killed and restarted on
the same port and data (the fault tests do)."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import socket
import subprocess
import time
from pathlib import Path


_PR_SET_PDEATHSIG = 1


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
