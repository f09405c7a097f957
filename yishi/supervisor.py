"""What ``yishi run`` does with the service processes it starts: it checks that their
ports are free, counts a service ready only when its own process answers, restarts one
that exits (with exponential backoff) and gives up when one keeps failing at start.

Every exit, restart and readiness is told in one line through ``say``; the services'
own output is passed through to this process's standard error as it comes.
"""

from __future__ import annotations

import collections
import contextlib
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx
import psutil

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Backoff:
    """Delays between restarts: ``initial`` doubling up to ``maximum``, back to ``initial``
    once the service has stayed up for ``stable_after`` seconds."""

    initial: float = 0.5
    maximum: float = 30.0
    stable_after: float = 60.0


class PortTaken(RuntimeError):
    """A port a service needs is already in use by another program."""


class GaveUp(RuntimeError):
    """A service exited before becoming ready too many times in a row."""


def check_ports_free(ports: Mapping[str, int]) -> None:
    """Raise :class:`PortTaken` naming the first port of ``ports`` (service -> port) that
    something listens on, and who, if the system tells."""
    for name, port in ports.items():
        with socket.socket() as probe:
            # As the servers bind: a socket left in TIME_WAIT by a previous run is no obstacle.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((HOST, port))
            except OSError:
                holder = _listener(port)
                by = f" by {holder}" if holder else ""
                raise PortTaken(f"port {port} for {name} is already in use on {HOST}{by}; stop that program "
                                f"or give the services other ports with --base-port") from None


def _listener(port: int) -> str | None:
    """``name (pid N)`` of the process listening on ``port``, when it may be known."""
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
                return f"{psutil.Process(conn.pid).name()} (pid {conn.pid})"
    return None


def _listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` (or one of its children) holds the listening socket on ``port``."""
    try:
        process = psutil.Process(pid)
        for proc in (process, *process.children(recursive=True)):
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in proc.net_connections("tcp")):
                return True
    except psutil.Error:
        pass
    return False


def describe_exit(returncode: int) -> str:
    """``exit code 3`` or ``signal SIGKILL``, as a ``Popen.returncode`` tells it."""
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-returncode).name}"
        return f"signal {-returncode}"
    return f"exit code {returncode}"


class Service:
    """One supervised ``yishi serve`` process and what is known of its current run."""

    #: Lines of a failed start's output shown: a start's traceback runs through one nested
    #: lifespan frame per router the app includes, so a short tail showed only frames and
    #: the last exception, never the cause chained before it (a refused connection).
    TAIL_LINES = 120

    def __init__(self, name: str, port: int, env: Mapping[str, str], tail_lines: int = TAIL_LINES) -> None:
        self.name = name
        self.port = port
        self.env = dict(env)
        self.proc: subprocess.Popen | None = None
        self.ready = False
        self.started_at = 0.0
        self.restart_at: float | None = None
        self.failed_starts = 0  # exits before becoming ready, in a row
        self.restarts = 0  # since the delay was last reset
        self.tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        """Start the process; its output is passed on and its last lines kept."""
        if self._reader is not None:
            self._reader.join(2)  # the previous run's last lines belong to it, not to this one
        self.tail.clear()
        self.ready = False
        self.restart_at = None
        # Own session: a terminal's Ctrl-C reaches only ``yishi run``, which then stops
        # the services before the servers they depend on.
        self.proc = subprocess.Popen([sys.executable, "-m", "yishi.cli", "serve", self.name], env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.started_at = time.monotonic()
        self._reader = threading.Thread(target=self._pass_on, args=(self.proc,), daemon=True,
                                        name=f"{self.name}-output")
        self._reader.start()

    def _pass_on(self, proc: subprocess.Popen) -> None:
        for raw in proc.stdout:
            line = raw.decode(errors="replace")
            self.tail.append(line)
            with contextlib.suppress(OSError, ValueError):
                sys.__stderr__.write(line)
                sys.__stderr__.flush()
        proc.stdout.close()

    def answers(self) -> bool:
        """Ready: its own process listens on its port (not another program) and says so on /readyz."""
        if self.proc is None or self.proc.poll() is not None or not _listens(self.proc.pid, self.port):
            return False
        try:
            return httpx.get(f"http://{HOST}:{self.port}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def output_tail(self) -> str:
        """The last lines it wrote (all of them once it has exited)."""
        if self._reader is not None:
            self._reader.join(2)
        return "".join(self.tail).rstrip("\n")


class Supervisor:
    """Starts the services, keeps them running and stops them, as ``yishi run`` does."""

    def __init__(self, ports: Mapping[str, int], env: Mapping[str, str], say: Callable[[str], None],
                 backoff: Backoff = Backoff(), start_attempts: int = 5) -> None:
        self.services = {name: Service(name, port, {**env, "YISHI_SERVICE": name, "YISHI_HTTP_PORT": str(port)})
                         for name, port in ports.items()}
        self.say = say
        self.backoff = backoff
        self.start_attempts = start_attempts
        self._delays = {name: backoff.initial for name in ports}

    def start(self) -> None:
        """Start every service (without waiting for any)."""
        for service in self.services.values():
            service.start()

    @property
    def pending(self) -> list[str]:
        """Services not ready (yet, or again)."""
        return [s.name for s in self.services.values() if not s.ready]

    def poll(self) -> None:
        """Look at each service once: note readiness, schedule a restart for one that
        exited, start one whose delay is over. Raises :class:`GaveUp` when a service has
        exited before becoming ready ``start_attempts`` times in a row."""
        now = time.monotonic()
        for service in self.services.values():
            if service.restart_at is not None:
                if now >= service.restart_at:
                    service.start()
                    self.say(f"{service.name} restarted (attempt {service.restarts}, pid {service.proc.pid})")
                continue
            code = service.proc.poll()
            if code is not None:
                self._exited(service, code, now)
            elif not service.ready and service.answers():
                service.ready = True
                service.failed_starts = 0
                self.say(f"[green]✓[/green] {service.name} ready on port {service.port}")

    def _exited(self, service: Service, code: int, now: float) -> None:
        status = describe_exit(code)
        uptime = now - service.started_at
        if not service.ready:
            service.failed_starts += 1
            if service.failed_starts >= self.start_attempts:
                raise GaveUp(f"{service.name} failed to start {service.failed_starts} times in a row "
                             f"(last: {status}); its last output:\n{service.output_tail()}")
        elif uptime >= self.backoff.stable_after:
            self._delays[service.name] = self.backoff.initial
            service.restarts = 0
        delay = self._delays[service.name]
        self._delays[service.name] = min(delay * 2, self.backoff.maximum)
        service.restarts += 1
        service.ready = False
        service.restart_at = now + delay
        self.say(f"[red]{service.name} (pid {service.proc.pid}) exited with {status} after {uptime:.1f} s[/red]; "
                 f"restart attempt {service.restarts} in {delay:g} s")

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM every running service, SIGKILL those still running after ``timeout``."""
        running = [s.proc for s in self.services.values() if s.proc is not None and s.proc.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in running:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for service in self.services.values():
            service.output_tail()  # let the last lines through before "stopped"
