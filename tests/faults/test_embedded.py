"""The embedded stack leaves nothing behind: not on a clean stop, not when its owner is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil

OWNER = """
import sys, time
from yishi.embedded import EmbeddedStack
stack = EmbeddedStack().start()
print(stack.postgres.proc.pid, stack.kafka.proc.pid, flush=True)
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
    try:
        pids = [int(p) for p in owner.stdout.readline().split()]
        assert len(pids) == 2 and all(psutil.pid_exists(p) for p in pids)
        postgres_children = [c.pid for c in psutil.Process(pids[0]).children(recursive=True)]
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        for pid in pids + postgres_children:
            assert _gone(pid), f"process {pid} outlived its owner"
    finally:
        if owner.poll() is None:
            owner.kill()


def test_clean_stop_removes_processes_and_files():
    from yishi.embedded import EmbeddedStack

    stack = EmbeddedStack().start()
    pids = [stack.postgres.proc.pid, stack.kafka.proc.pid]
    workdir = stack.workdir
    stack.stop()
    assert all(_gone(p, 5) for p in pids)
    assert not workdir.exists()
