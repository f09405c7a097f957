"""The ``yishi`` command as a user runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil

from tests.integration.test_store import events, meta
from yishi.store import EventStore


def test_run_starts_the_stack_and_stops_everything_on_ctrl_c():
    env = {k: v for k, v in os.environ.items() if not k.startswith("YISHI_")}
    proc = subprocess.Popen([sys.executable, "-m", "yishi.cli", "run"], stderr=subprocess.PIPE, text=True, env=env)
    output = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            output.append(line)
            if "press Ctrl-C" in line or not line:
                break
        text = "".join(output)
        assert "press Ctrl-C" in text, text
        assert "PostgreSQL" in text and "Kafka" in text
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children, "no servers were started"
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=60)
        assert proc.returncode == 0, "".join(output) + rest
        assert "stopped" in rest
        time.sleep(0.5)
        alive = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
        assert not alive, f"left behind: {alive}"
    finally:
        if proc.poll() is None:
            proc.kill()


async def test_verify_command_reports_tampering(pool, servers, schema_name):
    store = EventStore(pool)
    await store.append("s", 0, events(3), meta())
    await store.seal()
    env = {**os.environ, "YISHI_DATABASE_URL": servers.database_url, "YISHI_DB_SCHEMA": schema_name}
    ok = subprocess.run([sys.executable, "-m", "yishi.cli", "verify", "voting"], env=env, capture_output=True,
                        text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "history intact" in ok.stderr
    pos = await pool.fetchval("SELECT position FROM events WHERE version = 2")
    await pool.execute("UPDATE events SET state = '\\x7b7d' WHERE position = $1", pos)
    bad = subprocess.run([sys.executable, "-m", "yishi.cli", "verify", "voting"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 1
    assert f"position {pos}" in bad.stderr
