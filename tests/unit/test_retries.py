"""The backoff of the long-running loops (relay, background jobs), as they log it: measured
pauses would be the machine's load as much as the backoff (no I/O)."""

from __future__ import annotations

import asyncio

from aiokafka.errors import KafkaConnectionError

import yishi.jobs
import yishi.relay
import yishi.runtime
from tests.support.logs import logs_of
from yishi.failures import RetryPolicy, retried
from yishi.store import LogCursor


async def test_a_pause_is_cut_short_and_no_attempt_follows_once_stop_is_set():
    stop, attempts = asyncio.Event(), []

    async def work():
        attempts.append(1)
        stop.set()
        if len(attempts) == 1:
            raise ConnectionRefusedError(111, "Connection refused")
        return "tried again"

    assert await asyncio.wait_for(retried(work, stop, lambda _: 600), 5) is None
    assert len(attempts) == 1


async def test_the_relays_publish_retries_double_from_a_tenth_of_a_second_to_their_cap():
    from yishi.relay import FAILURES, Relay

    stop = asyncio.Event()
    relay = Relay(None, "", "test-backoff", batch_size=10, max_backoff=0.2)
    outcomes = ["fail", "fail", "fail", "ok", "fail", "fail"]  # a batch in between starts a new series

    async def take_over(_conn, _stop):
        return LogCursor()

    async def publish_batch(cursor, _conn):
        if not outcomes:
            stop.set()
        if not outcomes or outcomes.pop(0) == "fail":
            raise KafkaConnectionError("no broker")
        return 10, cursor

    relay._take_over, relay.publish_batch = take_over, publish_batch
    failures = FAILURES.labels("test-backoff")._value.get()
    with logs_of(yishi.relay) as logs:
        await asyncio.wait_for(relay._relay_under_lock(None, stop), 5)
    pauses = [e["retry_in_s"] for e in logs if e["event"] == "relay publish failed; retrying"]
    assert pauses == [0.1, 0.2, 0.2, 0.1, 0.2, 0.2]
    assert FAILURES.labels("test-backoff")._value.get() - failures == 6


async def test_the_relay_retries_a_lost_database_every_second_until_stopped():
    from yishi.relay import Relay

    stop, attempts = asyncio.Event(), []

    class DatabaseAway:
        def acquire(self):
            attempts.append(1)
            if len(attempts) == 2:
                stop.set()
            raise ConnectionRefusedError(111, "Connection refused")

    relay = Relay(type("Store", (), {"pool": DatabaseAway()})(), "", "test-lost")
    with logs_of(yishi.relay) as logs:
        await asyncio.wait_for(relay.run(stop), 5)
    assert len(attempts) == 2 and not relay.active and relay.losses == 0
    assert [e["event"] for e in logs] == ["relay lost the database; retrying"] * 2


async def test_a_background_job_backs_off_transient_failures_never_below_its_interval():
    from yishi.jobs import STEP_FAILURES, every

    stop, outcomes = asyncio.Event(), [ConnectionRefusedError(111, "refused")] * 4 + [ValueError("a bug"), 3, 0]

    class Session:
        async def fetchval(self, *_args, **_kwargs):
            return True

        async def execute(self, *_args, **_kwargs):
            return "SELECT 1"

    class Pool:
        async def acquire(self):
            return Session()

        async def release(self, _conn):
            pass

    async def step():
        outcome = outcomes.pop(0)
        if not outcomes:
            stop.set()
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    job = every(0.02, step, "test.backoff", RetryPolicy(backoff_initial=0.01, backoff_max=0.05))
    transient = STEP_FAILURES.labels("test.backoff", "transient")._value.get()
    with logs_of(yishi.jobs) as logs:
        await asyncio.wait_for(job(stop, Pool()), 5)
    assert [e.get("retry_in") for e in logs if e["event"].startswith("background job failed")] == \
        [0.02, 0.02, 0.04, 0.05, None]
    assert STEP_FAILURES.labels("test.backoff", "transient")._value.get() - transient == 4
    assert not outcomes


async def test_a_job_that_ran_well_for_a_while_before_crashing_restarts_quickly_again():
    from yishi.runtime import _supervised

    stop, runs = asyncio.Event(), []

    async def crashes(stop_event, _pool):
        runs.append(1)
        if len(runs) == 4:
            await asyncio.sleep(0.1)  # longer than the longest pause
        if len(runs) == 6:
            stop_event.set()
        raise RuntimeError("a bug")

    with logs_of(yishi.runtime) as logs:
        await asyncio.wait_for(_supervised(crashes, stop, None, RetryPolicy(backoff_initial=0.01, backoff_max=0.05)), 5)
    pauses = [e["restart_in"] for e in logs if e["event"] == "background job crashed; restarting"]
    assert pauses == [0.01, 0.02, 0.04, 0.01, 0.02, 0.04]
    assert {e["log_level"] for e in logs} == {"error"} and all(e["exc_info"] for e in logs)


async def test_a_retry_loop_leaves_no_reference_cycle_to_the_garbage_collector():
    """The relay retries each batch through ``retried``; tenacity's ``AsyncRetrying`` was a
    reference cycle per call, hundreds a second left to the garbage collector (whose full
    collections then took up to 87 ms of the voting service's CPU at 400 ballots/s)."""
    import gc

    stop, failures = asyncio.Event(), []

    async def work():
        if len(failures) % 3 == 0:  # every third call fails once, then succeeds
            failures.append(1)
            raise ConnectionRefusedError(111, "Connection refused")
        failures.append(0)
        return "done"

    gc.collect()
    gc.disable()
    try:
        for _ in range(30):
            assert await retried(work, stop, lambda _: 0, before_sleep=lambda failed: None) == "done"
        assert gc.collect() == 0
    finally:
        gc.enable()
