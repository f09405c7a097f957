"""The ``yishi`` command as a user runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import asyncpg
import psutil

from tests.support.store import events, meta
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
                                          "voting_0003, yishi_0001, yishi_0002, yishi_0003 (it has none): run "
                                          "`yishi migrate voting` first")
        runs = [subprocess.run([sys.executable, "-m", "yishi.cli", "migrate", "voting"], env=env,
                               capture_output=True, text=True, timeout=60) for _ in range(2)]
        assert [r.returncode for r in runs] == [0, 0], runs[0].stderr + runs[1].stderr
        applied = runs[0].stderr.split(f"{schema_name}: applied ", 1)[1].split()
        assert sorted(r.strip(",") for r in applied) == ["voting_0001", "voting_0002", "voting_0003", "yishi_0001",
                                                         "yishi_0002", "yishi_0003"]
        assert f"{schema_name}: up to date" in runs[1].stderr
    finally:
        conn = await asyncpg.connect(servers.database_url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema_name}" CASCADE')
        finally:
            await conn.close()


# What an operator meets when something is wrong: one line naming it, a non-zero exit
# code, and a traceback only with --debug. None of these start the platform.

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def yishi(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("YISHI_")}
    return subprocess.run([sys.executable, "-m", "yishi.cli", *args], env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=60, **kwargs)


def one_line_error(result: subprocess.CompletedProcess, *expected: str) -> str:
    """The run failed with one line on stderr that says ``expected``, and no traceback."""
    assert result.returncode != 0, result
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines
    for text in expected:
        assert text in lines[0], lines
    return lines[0]


def test_dev_alone_prints_help():
    result = subprocess.run(["./dev"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Usage: yishi" in result.stdout and "audit" in result.stdout
    assert "No such command" not in result.stdout + result.stderr


def test_dev_bench_without_a_name_names_the_benchmarks():
    result = subprocess.run(["./dev", "bench"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "unbound variable" not in result.stderr
    assert "usage:" in result.stderr and "store" in result.stderr and "relay" in result.stderr


def test_unknown_service_is_one_line_and_a_traceback_only_with_debug():
    for command in ("verify", "serve", "relay"):
        result = yishi(command, "bogus", env={"YISHI_DATABASE_URL": "postgresql://u@127.0.0.1:1/x",
                                              "YISHI_KAFKA_BOOTSTRAP": "127.0.0.1:1"})
        assert result.returncode == 2, (command, result.stderr)
        one_line_error(result, "unknown service 'bogus'", "proposals, voting, oversight, notify")
    debug = yishi("--debug", "verify", "bogus")
    assert debug.returncode != 0
    assert "Traceback" in debug.stderr and "InvalidName" in debug.stderr


def test_an_unreachable_database_is_one_line_without_the_password(tmp_path):
    url = f"postgresql://auditor:s3cret@127.0.0.1:{_free_port()}/yishi"
    for args in (["verify", "voting"], ["audit", "report"], ["audit", "verify"], ["audit", "export", str(tmp_path / "b")],
                 ["audit", "public-key", "voting"]):
        result = yishi(*args, env={"YISHI_DATABASE_URL": url})
        assert result.returncode == 1, (args, result.stderr)
        line = one_line_error(result, "cannot connect to the database", "127.0.0.1")
        assert "s3cret" not in line


def test_a_missing_bundle_is_one_line(tmp_path):
    missing = tmp_path / "nowhere"
    for args in (["audit", "verify-bundle", str(missing)], ["audit", "report", "--bundle", str(missing)],
                 ["audit", "replay", "--bundle", str(missing)]):
        result = yishi(*args)
        assert result.returncode == 2, (args, result.stderr)
        one_line_error(result, str(missing), "no audit bundle")


def test_boolean_flags_are_shown_as_flags():
    for args in (["run", "--help"], ["audit", "verify", "--help"], ["audit", "replay", "--help"]):
        result = yishi(*args, env={"COLUMNS": "200"})
        assert result.returncode == 0
        assert "<bool>" not in result.stdout, result.stdout
    assert "--kafka" in result.stdout or "--state" in result.stdout
    assert "--no-kafka" in yishi("audit", "verify", "--help", env={"COLUMNS": "200"}).stdout


async def test_public_key_reads_the_services_published_key_and_never_makes_one(pool, servers, schema_name,
                                                                               tmp_path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from yishi.audit.checkpoints import Checkpointer, public_bytes

    env = {"YISHI_DATABASE_URL": servers.database_url, "XDG_STATE_HOME": str(tmp_path), "HOME": str(tmp_path)}
    args = ("audit", "public-key", "voting", "--schema", f"voting={schema_name}")
    none_yet = yishi(*args, env=env)
    assert none_yet.returncode == 1
    one_line_error(none_yet, "no signed checkpoint")
    assert none_yet.stdout == ""

    key = Ed25519PrivateKey.generate()
    store = EventStore(pool)
    await store.append("s", 0, events(2), meta())
    await store.seal()
    assert await Checkpointer("voting", key, interval=0).record(pool) is not None
    result = yishi(*args, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == public_bytes(key).hex()
    assert list(tmp_path.iterdir()) == [], "a key was generated on the auditor's machine"


async def test_verify_and_export_show_progress(pool, servers, schema_name, tmp_path):
    store = EventStore(pool)
    await store.append("s", 0, events(3), meta())
    await store.seal()
    env = {"YISHI_DATABASE_URL": servers.database_url, "TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1"}
    verified = yishi("verify", "voting", env={**env, "YISHI_DB_SCHEMA": schema_name})
    assert verified.returncode == 0, verified.stderr
    assert "verifying" in verified.stderr and "6/6" in verified.stderr  # 3 events, 3 sealed
    exported = yishi("audit", "export", str(tmp_path / "b"), "-s", "voting", "--schema", f"voting={schema_name}",
                     env=env)
    assert exported.returncode == 0, exported.stderr
    assert "exporting" in exported.stderr and "3/3" in exported.stderr
    checked = yishi("audit", "verify-bundle", str(tmp_path / "b"), env=env)
    assert "verifying" in checked.stderr and "3/3" in checked.stderr
