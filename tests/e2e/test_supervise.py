"""``yishi run`` supervises its services: a crashed one is restarted and the rest keep
running, ports held by another program are refused, and a service that cannot start
stops the platform with the reason."""

from __future__ import annotations

import http.server
import os
import re
import signal
import subprocess
import sys
import threading
import time

import httpx
import psutil

from tests.support.ports import free_ports
from yishi.embedded import free_port

SERVICE_COUNT = 5  # proposals, voting, oversight, notify, portal: consecutive ports in this order


class Run:
    """``yishi run`` as a user starts it, its output (its own and its services') read line by line."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith("YISHI_")}
        self.proc = subprocess.Popen([sys.executable, "-m", "yishi.cli", "run", *args], env={**base, **(env or {})},
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self.lines.append("")  # end of output
            self._changed.notify_all()

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, after: int = 0, timeout: float = 180) -> int:
        """The index of the first line from ``after`` on that matches ``pattern`` (a regex)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for i in range(after, len(self.lines)):
                    if re.search(pattern, self.lines[i]):
                        return i
                if self.lines and self.lines[-1] == "" or time.monotonic() > deadline:
                    raise AssertionError(f"no line matching {pattern!r}:\n{self.text[-6000:]}")
                self._changed.wait(1)

    def finish(self, timeout: float = 60) -> int:
        """Wait for the run to end and all of its output to be read; its exit code."""
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        return code

    def services(self) -> dict[str, psutil.Process]:
        """The ``yishi serve`` processes now running under this run, by service."""
        found = {}
        for child in psutil.Process(self.proc.pid).children(recursive=True):
            try:
                cmdline = child.cmdline()
            except psutil.NoSuchProcess:
                continue
            if "serve" in cmdline and cmdline[-2] == "serve":
                found[cmdline[-1]] = child
        return found

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _gone(processes: list[psutil.Process], timeout: float = 20) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if not alive:
            return []
        time.sleep(0.2)
    return alive


def test_a_killed_service_is_restarted_while_the_others_keep_running():
    base = free_ports(SERVICE_COUNT)
    run = Run("--base-port", str(base))
    try:
        run.wait_for("press Ctrl-C")
        before = run.services()
        assert set(before) == {"proposals", "voting", "oversight", "notify", "portal"}, run.text
        seen = [*psutil.Process(run.proc.pid).children(recursive=True)]
        mark = len(run.lines)
        before["voting"].send_signal(signal.SIGKILL)

        exited = run.wait_for(r"voting.*exited.*SIGKILL", after=mark)
        restarted = run.wait_for(r"voting restarted", after=exited)
        run.wait_for(rf"voting ready on port {base + 1}", after=restarted)
        after = run.services()
        assert after["voting"].pid != before["voting"].pid
        assert all(after[name].pid == before[name].pid for name in ("proposals", "oversight", "notify", "portal"))
        seen += [after["voting"], *after["voting"].children(recursive=True)]
        for i in range(SERVICE_COUNT):
            assert httpx.get(f"http://127.0.0.1:{base + i}/healthz", timeout=5).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{base + 1}/readyz", timeout=5).status_code == 200
        assert run.proc.poll() is None, "the platform stopped"

        run.proc.send_signal(signal.SIGINT)
        assert run.finish() == 0, run.text[-6000:]
        assert "stopped" in run.text
        assert not _gone(seen), f"left behind: {_gone(seen)}"
    finally:
        run.kill()


class _Impostor(http.server.BaseHTTPRequestHandler):
    """Another program on the port: it answers every GET with 200, /readyz included."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"status": "ready"}')

    def log_message(self, *args: object) -> None:
        pass


def test_a_port_taken_by_another_program_is_named_and_never_taken_for_the_service():
    base = free_ports(SERVICE_COUNT)
    impostor = http.server.ThreadingHTTPServer(("127.0.0.1", base + 1), _Impostor)
    threading.Thread(target=impostor.serve_forever, daemon=True).start()
    run = Run("--base-port", str(base))
    try:
        code = run.finish(timeout=180)
        assert code != 0, run.text[-6000:]
        assert not re.search(r"voting ready", run.text), run.text[-6000:]
        assert re.search(rf"port {base + 1}.*voting|voting.*port {base + 1}", run.text), run.text[-6000:]
        assert "--base-port" in run.text
    finally:
        run.kill()
        impostor.shutdown()
        impostor.server_close()


def test_a_service_that_keeps_failing_at_start_stops_the_platform_with_its_reason(servers):
    # The database answers (yishi run migrates the schemas first, and an unreachable
    # database stops it there, in one line); the broker does not, so each start fails.
    unreachable = f"127.0.0.1:{free_port()}"
    run = Run("--service", "voting", "--base-port", str(free_ports(SERVICE_COUNT)),
              env={"YISHI_DATABASE_URL": servers.database_url, "YISHI_KAFKA_BOOTSTRAP": unreachable})
    try:
        code = run.finish(timeout=180)
        assert code == 1, run.text[-6000:]
        failed = run.wait_for(r"voting failed to start \d+ times", timeout=0)
        attempts = int(re.search(r"failed to start (\d+) times", run.lines[failed])[1])
        assert attempts > 1 and len(re.findall(r"voting restarted", run.text)) == attempts - 1, run.text[-6000:]
        tail = "".join(run.lines[failed:])
        # The cause, a refused connection, as asyncio's loop or uvloop words it.
        assert "exit code 3" in tail and re.search(r"Connect call failed|Connection refused", tail), tail
        assert "stopped" in tail
    finally:
        run.kill()


def test_an_unreachable_database_stops_the_run_in_one_line_before_any_service_starts():
    unreachable = f"127.0.0.1:{free_port()}"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("YISHI_")},
           "YISHI_DATABASE_URL": f"postgresql://postgres:secret@{unreachable}/postgres",
           "YISHI_KAFKA_BOOTSTRAP": unreachable}
    done = subprocess.run([sys.executable, "-m", "yishi.cli", "run", "--service", "voting", "--base-port",
                           str(free_ports(SERVICE_COUNT))], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    errors = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Connect call failed" in errors[0] and "secret" not in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr and "voting (pid" not in done.stdout
