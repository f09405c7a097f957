"""A service's domain is pure: importing it in a fresh interpreter loads no web, database,
broker or token library (it raises :class:`yishi.rules.Rejected`, not the command bus's
module, which needs them all)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from yishi.names import SERVICES

IO_LIBRARIES = ("fastapi", "starlette", "asyncpg", "aiokafka", "faststream", "jwt", "httpx")


@pytest.mark.parametrize("service", SERVICES)
def test_importing_a_domain_loads_no_io_library(service):
    probe = (f"import json, sys; import services.{service}.domain; "
             f"print(json.dumps(sorted(m for m in {IO_LIBRARIES!r} if m in sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(loaded.stdout) == []
