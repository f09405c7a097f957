"""Signed checkpoints and store verification: an altered row, a deleted row, and a tail
rewritten with every hash recomputed are each found, the last only through the
checkpoint signed with the service key."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.support.store import events, meta
from yishi.audit.checkpoints import Checkpointer, public_bytes
from yishi.audit.verify import canonical_metadata, verify_store
from yishi.store import GENESIS, EventStore, chain_hash, event_digest

KEY = Ed25519PrivateKey.generate()


@pytest.fixture
async def store(pool):
    """Five streams of four events, sealed and signed at the head, then two more events."""
    store = EventStore(pool)
    for s in range(5):
        await store.append(f"stream-{s}", 0, events(4, f"s{s}"), meta())
    assert await store.seal() == 20
    checkpoint = await Checkpointer("voting", KEY, interval=0).record(pool)
    assert checkpoint is not None and checkpoint.seq == 20
    await store.append("stream-late", 0, events(2, "late"), meta())
    verdict = await verify_store(pool, "voting", public_bytes(KEY))
    assert verdict.ok, verdict.findings
    assert verdict.checked == {"events": 22, "sealed": 20, "checkpoints": 1}
    return store


async def position_of(pool, stream: str, version: int) -> int:
    return await pool.fetchval("SELECT position FROM events WHERE stream_id = $1 AND version = $2", stream, version)


async def test_an_altered_row_is_found_at_its_position(pool, store):
    pos = await position_of(pool, "stream-2", 3)
    await pool.execute("UPDATE events SET state = $1 WHERE position = $2", b'{"n":99}', pos)
    verdict = await verify_store(pool, "voting", public_bytes(KEY))
    assert verdict.first.position == pos and "altered" in verdict.first.reason


async def test_a_deleted_row_is_found_at_its_position(pool, store):
    pos = await position_of(pool, "stream-3", 2)
    await pool.execute("DELETE FROM events WHERE position = $1", pos)
    verdict = await verify_store(pool, "voting", public_bytes(KEY))
    assert verdict.first.position == pos
    assert {f.position for f in verdict.findings} >= {pos}


async def test_a_tail_rewritten_with_recomputed_chains_is_found_by_the_signed_checkpoint(pool, store):
    # The DBA rewrites stream-1 v2 and recomputes everything a hash depends on: the
    # stream's chain from that event on, and the log chain from that event's seal on.
    pos = await position_of(pool, "stream-1", 2)
    rows = await pool.fetch("SELECT * FROM events WHERE stream_id = 'stream-1' ORDER BY version")
    prev = GENESIS
    for r in rows:
        state = b'{"n":"forged"}' if r["position"] == pos else r["state"]
        meta_bytes = canonical_metadata(json.loads(r["metadata"]))
        prev = chain_hash(prev, event_digest(r["stream_id"], r["version"], r["event_id"], r["district"], r["topic"],
                                             state, meta_bytes))
        await pool.execute("UPDATE events SET state = $1, hash = $2 WHERE position = $3", state, prev, r["position"])
    await pool.execute("DELETE FROM log_chain WHERE seq >= (SELECT seq FROM log_chain WHERE position = $1)", pos)
    await EventStore(pool).seal()

    chains_only = await EventStore(pool).verify()
    assert chains_only.ok, "the rewrite must be invisible to the hash chains alone"
    verdict = await verify_store(pool, "voting", public_bytes(KEY))
    checkpoint_position = await pool.fetchval("SELECT position FROM checkpoints")
    assert [f.position for f in verdict.findings] == [checkpoint_position]
    assert "rewritten" in verdict.first.reason and "from the start" in verdict.first.reason


async def test_a_checkpoint_not_signed_by_the_trusted_key_is_reported(pool, store):
    other = public_bytes(Ed25519PrivateKey.generate())
    verdict = await verify_store(pool, "voting", other)
    assert len(verdict.findings) == 1 and "not signed by the trusted key" in verdict.first.reason


async def test_a_checkpoint_does_not_vouch_for_another_service(pool, store):
    verdict = await verify_store(pool, "proposals", public_bytes(KEY))
    assert len(verdict.findings) == 1 and "not signed by the trusted key" in verdict.first.reason
