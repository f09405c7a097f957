"""The runtime's supervision of background jobs (no I/O)."""

from __future__ import annotations

import asyncio


async def test_a_crashed_background_job_is_restarted():
    from yishi.runtime import _supervised

    runs = []
    stop = asyncio.Event()

    async def flaky(stop_event):
        runs.append(1)
        if len(runs) < 3:
            raise RuntimeError("outage")
        stop_event.set()

    await asyncio.wait_for(_supervised(flaky, stop, pause=0.01), 5)
    assert len(runs) == 3
