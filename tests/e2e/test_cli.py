"""The ``yishi`` command as a user runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import asyncpg
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


async def test_serve_refuses_an_unmigrated_schema_and_migrate_upgrades_it_once(servers, schema_name):
    env = {**os.environ, "YISHI_DATABASE_URL": servers.database_url, "YISHI_DB_SCHEMA": schema_name}
    try:
        refused = subprocess.run([sys.executable, "-m", "yishi.cli", "serve", "voting"], capture_output=True,
                                 text=True, timeout=60, env={**env, "YISHI_KAFKA_BOOTSTRAP": servers.kafka_bootstrap,
                                                             "YISHI_AUTH_ISSUER": "http://127.0.0.1:9/unused"})
        assert refused.returncode == 1
        assert refused.stderr.strip() == (f"error: schema '{schema_name}' lacks migrations voting_0001, voting_0002, "
                                          "yishi_0001, yishi_0002 (it has none): run `yishi migrate voting` first")
        runs = [subprocess.run([sys.executable, "-m", "yishi.cli", "migrate", "voting"], env=env,
                               capture_output=True, text=True, timeout=60) for _ in range(2)]
        assert [r.returncode for r in runs] == [0, 0], runs[0].stderr + runs[1].stderr
        applied = runs[0].stderr.split(f"{schema_name}: applied ", 1)[1].split()
        assert sorted(r.strip(",") for r in applied) == ["voting_0001", "voting_0002", "yishi_0001", "yishi_0002"]
        assert f"{schema_name}: up to date" in runs[1].stderr
    finally:
        conn = await asyncpg.connect(servers.database_url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema_name}" CASCADE')
        finally:
            await conn.close()
