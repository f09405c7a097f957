"""Tamper evidence beyond the operator's key: witnesses (yishi.witness) cosign a service's
checkpoints only while its Merkle log extends what they cosigned, so a history rewritten
and re-signed with the service's own key is caught by a witness, and two auditors shown
two histories see a split view (``yishi audit witnesses``)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import REGISTRY
from typer.testing import CliRunner

from tests.support.store import events, meta
from tests.support.tlog import witness_signer
from yishi.audit.checkpoints import Checkpointer, public_bytes
from yishi.audit.verify import canonical_metadata, verify_store
from yishi.cli import app as cli
from yishi.store import GENESIS, EventStore, chain_hash, event_digest
from yishi.tlog import note
from yishi.witness import core
from yishi.witness.server import WitnessConfig, create_witness_app
from yishi.witness.submit import Submitter, WitnessEndpoint

ORIGIN = "yishi.test/voting"
KEY = Ed25519PrivateKey.generate()
BOARD, STATS = witness_signer("board.test/witness"), witness_signer("stats.test/witness")


class Hosts(httpx.AsyncBaseTransport):
    """Requests to each host answered by its ASGI app; an unknown host is unreachable."""

    def __init__(self, apps: dict[str, object]) -> None:
        self.transports = {host: httpx.ASGITransport(app=a) for host, a in apps.items()}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        transport = self.transports.get(request.url.host)
        if transport is None:
            raise httpx.ConnectError(f"{request.url.host} is down", request=request)
        return await transport.handle_async_request(request)


@pytest.fixture
def checkpointer() -> Checkpointer:
    return Checkpointer("voting", KEY, interval=0, origin=ORIGIN)


@pytest.fixture
def witnesses(tmp_path: Path, checkpointer: Checkpointer):
    """Two witnesses of the log (their apps in process, each with its state file)."""
    log = core.Log(ORIGIN, (checkpointer.signer.verifier,))
    return {name: create_witness_app(WitnessConfig(signer, {ORIGIN: log}, tmp_path / f"{name}.sqlite3"))
            for name, signer in (("board.test", BOARD), ("stats.test", STATS))}


def submitter_for(witnesses: dict, checkpointer: Checkpointer, client: httpx.AsyncClient) -> Submitter:
    endpoints = [WitnessEndpoint("http://board.test", BOARD.verifier), WitnessEndpoint("http://stats.test", STATS.verifier),
                 WitnessEndpoint("http://down.test", witness_signer("down.test/witness").verifier)]
    return Submitter(endpoints, checkpointer.signer.verifier, client, "voting")


@pytest.fixture
async def client(witnesses):
    async with httpx.AsyncClient(transport=Hosts(witnesses)) as c:
        yield c


async def newest_note(pool) -> bytes:
    return (await pool.fetchval("SELECT note FROM checkpoints ORDER BY seq DESC LIMIT 1")).encode()


@pytest.fixture
async def cosigned(pool, checkpointer, witnesses, client):
    """Five streams of four events, sealed, checkpointed at 20 and cosigned by both witnesses."""
    store = EventStore(pool)
    for s in range(5):
        await store.append(f"stream-{s}", 0, events(4, f"s{s}"), meta())
    assert await store.seal() == 20
    assert (await checkpointer.record(pool)).seq == 20
    outcomes = await submitter_for(witnesses, checkpointer, client).round(pool)
    assert outcomes["http://board.test"] == outcomes["http://stats.test"] == "cosigned"
    assert outcomes["http://down.test"].startswith("failed: ConnectError")
    return store


async def rewrite_stream_1(pool) -> None:
    """The DBA rewrites stream-1 v2 with every hash recomputed, cuts the log chain and the
    checkpoints back to before it and lets the sealer redo the rest (as in test_checkpoints)."""
    pos = await pool.fetchval("SELECT position FROM events WHERE stream_id = 'stream-1' AND version = 2")
    prev = GENESIS
    for r in await pool.fetch("SELECT * FROM events WHERE stream_id = 'stream-1' ORDER BY version"):
        state = b'{"n":"forged"}' if r["position"] == pos else r["state"]
        prev = chain_hash(prev, event_digest(r["stream_id"], r["version"], r["event_id"], r["district"], r["topic"],
                                             state, canonical_metadata(json.loads(r["metadata"]))))
        await pool.execute("UPDATE events SET state = $1, hash = $2 WHERE position = $3", state, prev, r["position"])
    seq = await pool.fetchval("SELECT seq FROM log_chain WHERE position = $1", pos)
    await pool.execute("DELETE FROM log_chain WHERE seq >= $1", seq)
    await pool.execute("DELETE FROM checkpoints WHERE seq >= $1", seq)
    await EventStore(pool).seal()


async def test_each_new_checkpoint_gets_cosigned_beside_it_and_a_down_witness_does_not_hold_it(
        pool, cosigned, checkpointer, witnesses, client):
    witnessed = core.verify_witnessed(await newest_note(pool), checkpointer.signer.verifier,
                                      [BOARD.verifier, STATS.verifier], 2)
    assert (witnessed.checkpoint.size, witnessed.cosigners) == (20, ("board.test/witness", "stats.test/witness"))
    await cosigned.append("stream-late", 0, events(3, "late"), meta())
    assert await cosigned.seal() == 3
    assert (await checkpointer.record(pool)).seq == 23
    # a new process: it learns each witness's size from its 409 and proves 20 -> 23
    outcomes = await submitter_for(witnesses, checkpointer, client).round(pool)
    assert [outcomes[f"http://{h}"] for h in ("board.test", "stats.test")] == ["cosigned", "cosigned"]
    assert core.verify_witnessed(await newest_note(pool), checkpointer.signer.verifier,
                                 [BOARD.verifier, STATS.verifier], 2).checkpoint.size == 23
    assert REGISTRY.get_sample_value("yishi_witness_cosigned_size",
                                     {"service": "voting", "witness": "board.test/witness"}) == 23
    # the cosignatures beside the checkpoints leave the store's own verification as it was
    verdict = await verify_store(pool, "voting", public_bytes(KEY))
    assert verdict.ok, verdict.findings


@pytest.mark.parametrize("late_events", [0, 2], ids=["same size", "extended"])
async def test_a_forked_history_resigned_with_the_service_key_is_caught_by_a_witness(
        pool, cosigned, checkpointer, witnesses, client, late_events):
    await rewrite_stream_1(pool)
    if late_events:
        await cosigned.append("stream-late", 0, events(late_events, "late"), meta())
        await cosigned.seal()
    forged = await checkpointer.record(pool)
    assert forged.seq == 20 + late_events
    # The service's own key vouches for the forged history: trusting it alone passes it.
    assert note.open_checkpoint(forged.note.encode(), checkpointer.signer.verifier)[0].size == forged.seq

    outcomes = await submitter_for(witnesses, checkpointer, client).round(pool)
    expected = "refused as a fork at size 20" if not late_events else "refused with 422"
    assert outcomes["http://board.test"].startswith(expected) and outcomes["http://stats.test"].startswith(expected)
    with pytest.raises(core.QuorumNotMet, match="0 of the 1 cosignatures required"):
        core.verify_witnessed(await newest_note(pool), checkpointer.signer.verifier, [BOARD.verifier], 1)
    # and the witness keeps the log's signed fork as evidence
    evidence = witnesses["board.test"].state.witness.store.evidence(ORIGIN)
    assert len(evidence) == 1 and forged.note.encode() in evidence[0][1]


async def test_two_auditors_shown_two_histories_see_a_split_view(pool, cosigned, checkpointer, tmp_path):
    alice = tmp_path / "alice.checkpoint"
    alice.write_bytes(await newest_note(pool))  # what auditor Alice fetched
    await rewrite_stream_1(pool)
    await checkpointer.record(pool)
    bob = tmp_path / "bob.checkpoint"
    bob.write_bytes(await newest_note(pool))  # what Bob is shown later: same size, another root

    runner = CliRunner()
    vkey = checkpointer.signer.verifier.vkey
    seen = runner.invoke(cli, ["audit", "witnesses", "--checkpoint", str(alice), "--checkpoint", str(bob),
                               "--log-key", vkey])
    assert seen.exit_code == 1, seen.output
    split = [line for line in seen.output.splitlines() if line.startswith("SPLIT VIEW")]
    assert len(split) == 1 and f"{ORIGIN} size 20" in split[0]
    assert str(alice) in split[0] and str(bob) in split[0]

    quorum = runner.invoke(cli, ["audit", "witnesses", "--checkpoint", str(alice), "--checkpoint", str(bob),
                                 "--log-key", vkey, "--witness", BOARD.verifier.vkey, "--witness",
                                 STATS.verifier.vkey, "--require", "2"])
    assert quorum.exit_code == 1
    assert f"ok {alice}: {ORIGIN} size 20, cosigned by board.test/witness, stats.test/witness" in quorum.output
    assert "0 of the 2 cosignatures required" in quorum.output and str(bob) in quorum.output

    alone = runner.invoke(cli, ["audit", "witnesses", "--checkpoint", str(alice), "--log-key", vkey,
                                "--witness", BOARD.verifier.vkey, "--require", "1"])
    assert alone.exit_code == 0, alone.output
