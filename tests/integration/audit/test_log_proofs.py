"""``yishi audit checkpoint / inclusion / consistency / verify-bundle --checkpoint`` against
a service's public ``/log`` endpoints, served over HTTP, and the tamper suite of the Merkle
log: what an operator holding the signing key can do (delete a whole stream or rewrite a
tail, then reseal and re-sign everything honestly) passes every check that trusts the key
alone, and is caught by a checkpoint an auditor kept from before."""

from __future__ import annotations

import asyncio
import json
import threading
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from typer.testing import CliRunner

from tests.support.store import events, meta
from yishi import problems
from yishi.audit.checkpoints import Checkpointer, public_bytes
from yishi.audit.export import export_bundle
from yishi.audit.verify import canonical_metadata, verify_store
from yishi.cli import app as cli_app
from yishi.cli_support import UserError
from yishi.db import create_pool
from yishi.store import GENESIS, EventStore, chain_hash, event_digest
from yishi.tlog.http import log_router

KEY = Ed25519PrivateKey.generate()
ORIGIN = "yishi.test/voting"
SIGNER = Checkpointer("voting", KEY, interval=0, origin=ORIGIN)


@pytest.fixture
def url(servers, schema_name, pool):
    """The log endpoints of the ``pool``'s schema, served by uvicorn in a thread of its own."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.ctx.pool = await create_pool(servers.database_url, schema_name, max_size=2)
        yield
        await app.state.ctx.pool.close()

    app = FastAPI(lifespan=lifespan)
    problems.install(app)
    app.state.ctx = type("Ctx", (), {})()
    app.include_router(log_router())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


class Said:
    """What a command said: its exit code and all it printed (results go to stderr), unwrapped."""

    def __init__(self, result) -> None:
        said = result.stdout + result.stderr
        if isinstance(result.exception, UserError):  # as yishi.cli_support.main prints it
            said += f"error: {result.exception}"
        self.exit_code, self.text = result.exit_code, " ".join(said.split())


def audit(*args: str) -> Said:
    return Said(CliRunner().invoke(cli_app, ["audit", *map(str, args)]))


async def sealed_and_signed(pool) -> None:
    store = EventStore(pool)
    while await store.seal():
        pass
    assert await SIGNER.record(pool) is not None


@pytest.fixture
async def kept(pool, url, tmp_path) -> Path:
    """Five streams of four events sealed and signed; the auditor keeps that checkpoint."""
    for s in range(5):
        await EventStore(pool).append(f"stream-{s}", 0, events(4, f"s{s}"), meta())
    await sealed_and_signed(pool)
    path = tmp_path / "kept.note"
    got = await asyncio.to_thread(audit, "checkpoint", url, "--log-key", SIGNER.verifier_key, "--save", path)
    assert got.exit_code == 0, got.text
    assert f"{ORIGIN}: 20 leaves" in got.text and "checkpoint verified" in got.text
    return path


async def grow(pool, n: int = 6) -> None:
    await EventStore(pool).append("stream-more", 0, events(n, "more"), meta())
    await sealed_and_signed(pool)


async def test_an_honest_log_proves_inclusion_and_consistency(pool, url, kept, tmp_path):
    await grow(pool)
    vkey, hexkey = SIGNER.verifier_key, public_bytes(KEY).hex()
    for key in (vkey, hexkey):
        got = await asyncio.to_thread(audit, "consistency", url, "--log-key", key, "--old", kept)
        assert got.exit_code == 0, got.text
        assert "the log of 26 leaves extends the checkpoint of 20" in got.text
    got = await asyncio.to_thread(audit, "checkpoint", url, "--log-key", vkey, "--previous", kept)
    assert got.exit_code == 0 and "26 leaves" in got.text and "consistent with" in got.text

    row = await pool.fetchrow("SELECT event_id, hash FROM events WHERE stream_id = 'stream-3' AND version = 2")
    got = await asyncio.to_thread(audit, "inclusion", url, "--log-key", vkey, "--event-id", row["event_id"],
                                  "--event-hash", row["hash"].hex())
    assert got.exit_code == 0, got.text
    assert "of the 26 in yishi.test/voting's signed checkpoint" in got.text
    got = await asyncio.to_thread(audit, "inclusion", url, "--log-key", vkey, "--stream", "stream-more",
                                  "--version", "6", "--checkpoint", kept)
    assert got.exit_code == 1 and "no such event in the log's first 20 leaves" in got.text
    got = await asyncio.to_thread(audit, "inclusion", url, "--log-key", vkey, "--event-id", row["event_id"],
                                  "--event-hash", "00" * 32)
    assert got.exit_code == 1 and "not " + "00" * 32 in got.text

    other = Checkpointer("voting", Ed25519PrivateKey.generate(), origin=ORIGIN).verifier_key
    got = await asyncio.to_thread(audit, "checkpoint", url, "--log-key", other)
    assert got.exit_code == 1 and "does not verify against the trusted key" in got.text

    bundle = tmp_path / "bundle"
    await export_bundle({"voting": pool}, bundle)
    got = await asyncio.to_thread(audit, "verify-bundle", bundle, "--public-key", f"voting={hexkey}",
                                  "--checkpoint", f"voting={kept}", "--log-key", f"voting={vkey}")
    assert got.exit_code == 0, got.text
    printed = CliRunner().invoke(cli_app, ["audit", "public-key", "voting", "--bundle", str(bundle), "--note"])
    assert printed.stdout.strip() == vkey  # what the operator hands auditors for --log-key


async def reseal_and_resign_everything(pool) -> None:
    """What an operator holding the key does to hide a change: recompute the log chain and
    the Merkle tree from the events as they now are, and sign them anew."""
    await pool.execute("DELETE FROM checkpoints")
    await pool.execute("DELETE FROM log_chain")
    await pool.execute("DELETE FROM merkle_nodes")
    await grow(pool, 10)  # and more events, so that the log looks longer than before


async def test_a_whole_stream_deleted_and_resealed_honestly_is_caught_by_an_older_checkpoint(pool, url, kept,
                                                                                              tmp_path):
    await pool.execute("DELETE FROM events WHERE stream_id = 'stream-2'")
    await reseal_and_resign_everything(pool)
    # Every stream chain is whole, the log chain and the tree recomputed, every checkpoint
    # signed by the trusted key: checked against the key alone, nothing is wrong.
    verdict = await verify_store(pool, "voting", public_bytes(KEY))
    assert verdict.ok, verdict.findings
    assert verdict.checked == {"events": 26, "sealed": 26, "checkpoints": 1}

    got = await asyncio.to_thread(audit, "consistency", url, "--log-key", SIGNER.verifier_key, "--old", kept)
    assert got.exit_code == 1
    assert "the tree of 26 leaves does not extend the checkpoint of 20 leaves" in got.text
    got = await asyncio.to_thread(audit, "checkpoint", url, "--log-key", SIGNER.verifier_key, "--previous", kept)
    assert got.exit_code == 1 and "does not extend" in got.text

    bundle = tmp_path / "bundle"
    await export_bundle({"voting": pool}, bundle)
    got = await asyncio.to_thread(audit, "verify-bundle", bundle, "--public-key", f"voting={public_bytes(KEY).hex()}",
                                  "--checkpoint", f"voting={kept}", "--log-key", f"voting={SIGNER.verifier_key}")
    assert got.exit_code == 1 and "do not hash to the checkpoint's root" in got.text


async def test_a_rewritten_tail_is_caught_by_the_checkpoint_consistency_not_by_the_key(pool, url, kept):
    # The last three events before the kept checkpoint are rewritten, their stream's chain
    # recomputed, and everything resealed and re-signed with the service's own key.
    rows = await pool.fetch("SELECT * FROM events WHERE stream_id = 'stream-4' ORDER BY version")
    prev = GENESIS
    for r in rows:
        state = b'{"n":"forged"}' if r["version"] >= 2 else r["state"]
        prev = chain_hash(prev, event_digest(r["stream_id"], r["version"], r["event_id"], r["district"], r["topic"],
                                             state, canonical_metadata(json.loads(r["metadata"]))))
        await pool.execute("UPDATE events SET state = $1, hash = $2 WHERE position = $3", state, prev, r["position"])
    await reseal_and_resign_everything(pool)
    assert (await verify_store(pool, "voting", public_bytes(KEY))).ok

    got = await asyncio.to_thread(audit, "consistency", url, "--log-key", SIGNER.verifier_key, "--old", kept)
    assert got.exit_code == 1 and "history up to it was rewritten or removed" in got.text
    # The rewritten events are still "proven" in the new tree: only the kept checkpoint tells.
    row = await pool.fetchrow("SELECT event_id FROM events WHERE stream_id = 'stream-4' AND version = 3")
    got = await asyncio.to_thread(audit, "inclusion", url, "--log-key", SIGNER.verifier_key, "--event-id",
                                  row["event_id"])
    assert got.exit_code == 0
    got = await asyncio.to_thread(audit, "inclusion", url, "--log-key", SIGNER.verifier_key, "--event-id",
                                  row["event_id"], "--checkpoint", kept)
    assert got.exit_code == 1 and "not proven in the checkpoint's tree" in got.text


async def test_a_store_whose_tree_was_rewritten_under_its_checkpoints_is_reported(pool, kept):
    # Stored nodes altered without re-signing: the checkpoint's root no longer matches
    # the tree recomputed from the events... which verify recomputes, not reads.
    assert (await verify_store(pool, "voting", public_bytes(KEY))).ok
    await pool.execute("UPDATE checkpoints SET root = $1", bytes(32))
    verdict = await verify_store(pool, "voting", public_bytes(KEY))
    assert [f.reason for f in verdict.findings] == [
        "the signed note of the checkpoint at seq 20 is of another tree (20 leaves)",
        "the Merkle tree of the events up to seq 20 does not have the checkpoint's root: history up to it was "
        "rewritten"]


async def test_a_service_that_cannot_be_asked_is_one_line(url, pool, tmp_path):
    got = await asyncio.to_thread(audit, "checkpoint", url, "--log-key", SIGNER.verifier_key)
    assert got.exit_code == 1 and "error: /log/checkpoint answered 404: no signed checkpoint yet" in got.text
    got = await asyncio.to_thread(audit, "checkpoint", "http://127.0.0.1:9", "--log-key", SIGNER.verifier_key)
    assert got.exit_code == 1 and "cannot reach" in got.text
