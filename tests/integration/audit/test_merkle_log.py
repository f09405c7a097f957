"""The Merkle log in PostgreSQL, through the public endpoints: the sealer extends it with
every sealed event, its roots equal the tree recomputed from the events, and the proofs the
endpoints serve verify (yishi.tlog.merkle) against those roots; bad input is 400, an event
not in the tree 404."""

from __future__ import annotations

import base64
import uuid
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from tests.support.store import events, meta
from yishi import problems
from yishi.store import EventStore
from yishi.tlog import log as tlog
from yishi.tlog import merkle
from yishi.tlog.http import log_router


def app_for(pool) -> FastAPI:
    app = FastAPI()
    problems.install(app)
    app.state.ctx = SimpleNamespace(pool=pool)
    app.include_router(log_router())
    return app


@pytest.fixture
async def client(pool):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app_for(pool)), base_url="http://test") as c:
        yield c


async def leaves_of(pool) -> list[bytes]:
    """The leaf hashes recomputed from the events, in seal order."""
    rows = await pool.fetch("SELECT e.position, e.stream_id, e.version, e.hash FROM log_chain c "
                            "JOIN events e USING (position) ORDER BY c.seq")
    return [tlog.leaf_hash(r["position"], r["stream_id"], r["version"], r["hash"]) for r in rows]


def b64(values: list[str]) -> list[bytes]:
    return [base64.b64decode(v) for v in values]


async def test_the_sealer_extends_the_tree_with_every_sealed_event_in_the_same_transaction(pool):
    store = EventStore(pool)
    sizes = []
    for batch in range(7):
        for s in range(batch + 1):
            await store.append(f"b{batch}-s{s}", 0, events(3, f"b{batch}"), meta())
        sealed = await store.seal(limit=5)  # several seals per batch, not aligned on subtrees
        while sealed:
            sizes.append(await tlog.size(pool))
            assert sizes[-1] == await pool.fetchval("SELECT max(seq) FROM log_chain")
            sealed = await store.seal(limit=5)
    leaves = await leaves_of(pool)
    assert len(leaves) == 84 == sizes[-1]
    in_memory = merkle.from_leaves(leaves)
    for n in (1, 2, 3, 5, 31, 32, 33, 64, 83, 84):
        assert await tlog.root(pool, n) == merkle.root(n, in_memory)
    # about two stored nodes per leaf: every complete subtree, nothing else
    assert await pool.fetchval("SELECT count(*) FROM merkle_nodes") == sum(84 >> level for level in range(7))


async def test_a_log_sealed_before_the_merkle_log_is_caught_up_by_the_sealer(pool):
    store = EventStore(pool)
    for s in range(4):
        await store.append(f"old-{s}", 0, events(5, "old"), meta())
    assert await store.seal() == 20
    await pool.execute("DELETE FROM merkle_nodes")  # as the log was before revision yishi_0003
    await store.append("new", 0, events(2, "new"), meta())
    while await store.seal(limit=8):
        pass
    leaves = await leaves_of(pool)
    assert len(leaves) == 22 == await tlog.size(pool)
    assert await tlog.root(pool, 22) == merkle.root(22, merkle.from_leaves(leaves))


async def test_the_endpoints_serve_proofs_that_verify_against_the_roots(pool, client):
    store = EventStore(pool)
    for s in range(6):
        await store.append(f"stream-{s}", 0, events(3, f"s{s}"), meta())
    assert await store.seal() == 18
    leaves = await leaves_of(pool)
    roots = {n: merkle.root(n, merkle.from_leaves(leaves)) for n in range(1, 19)}
    row = await pool.fetchrow("SELECT event_id, position, hash FROM events WHERE stream_id = 'stream-4' AND version = 2")

    for params in ({"event_id": str(row["event_id"]), "tree_size": "18"},
                   {"stream_id": "stream-4", "version": "2", "tree_size": "18"}):
        r = await client.get("/log/proof/inclusion", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["tree_size"], body["leaf"]["position"], body["leaf"]["event_hash"]) == (
            18, row["position"], row["hash"].hex())
        leaf = tlog.leaf_hash(body["leaf"]["position"], body["leaf"]["stream_id"], body["leaf"]["version"],
                              bytes.fromhex(body["leaf"]["event_hash"]))
        assert base64.b64decode(body["leaf_hash"]) == leaf == leaves[body["leaf_index"]]
        merkle.verify_inclusion(body["leaf_index"], 18, leaf, b64(body["hashes"]), roots[18])
    smaller = (await client.get("/log/proof/inclusion", params={**params, "tree_size": "16"})).json()
    merkle.verify_inclusion(smaller["leaf_index"], 16, leaf, b64(smaller["hashes"]), roots[16])

    for m, n in ((1, 18), (5, 18), (16, 18), (7, 9), (18, 18)):
        r = await client.get("/log/proof/consistency", params={"from": m, "to": n})
        assert r.status_code == 200, r.text
        assert (r.json()["from"], r.json()["to"]) == (m, n)
        merkle.verify_consistency(m, n, roots[m], roots[n], b64(r.json()["hashes"]))


@pytest.mark.parametrize(("path", "params", "status", "says"), [
    ("/log/proof/inclusion", {}, 400, "give event_id"),
    ("/log/proof/inclusion", {"event_id": "not-a-uuid", "tree_size": "3"}, 400, "UUID"),
    ("/log/proof/inclusion", {"stream_id": "stream-0", "version": "x", "tree_size": "3"}, 400, "integer"),
    ("/log/proof/inclusion", {"stream_id": "stream-0", "version": "1", "tree_size": "0"}, 400, "at least 1"),
    ("/log/proof/inclusion", {"stream_id": "stream-0", "version": "1", "tree_size": "99"}, 400, "has 3 leaves"),
    ("/log/proof/inclusion", {"event_id": str(uuid.uuid4()), "tree_size": "3"}, 404, "no such event"),
    ("/log/proof/inclusion", {"stream_id": "late", "version": "1", "tree_size": "3"}, 404, "no such event"),
    ("/log/proof/inclusion", {"stream_id": "stream-0", "version": "3", "tree_size": "2"}, 404, "first 2 leaves"),
    ("/log/proof/inclusion", {"stream_id": "stream-0", "version": "1"}, 404, "no signed checkpoint"),
    ("/log/proof/inclusion", {"stream_id": "stream-0", "version": str(2**31), "tree_size": "3"}, 400, "at most"),
    ("/log/proof/inclusion", {"stream_id": "stream\x00", "version": "1", "tree_size": "3"}, 404, "no such event"),
    ("/log/proof/consistency", {"to": "3"}, 400, "give from"),
    ("/log/proof/consistency", {"from": "3", "to": "2"}, 400, "beyond"),
    ("/log/proof/consistency", {"from": "0", "to": "2"}, 400, "at least 1"),
    ("/log/proof/consistency", {"from": "1", "to": "4"}, 400, "has 3 leaves"),
    ("/log/checkpoint", {}, 404, "no signed checkpoint"),
])
async def test_bad_input_is_400_and_what_is_not_there_404(pool, client, path, params, status, says):
    store = EventStore(pool)
    await store.append("stream-0", 0, events(3, "s"), meta())
    assert await store.seal() == 3
    await store.append("late", 0, events(1, "late"), meta())  # not sealed
    r = await client.get(path, params=params)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert says in r.json()["detail"]


async def test_every_service_serves_its_log_without_a_token_and_signs_its_tree_head(servers, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from tests.support.echo_service import spec
    from tests.support.service import eventually, running
    from yishi.audit.checkpoints import public_bytes
    from yishi.tlog import note

    key = Ed25519PrivateKey.generate()
    key_file = tmp_path / "voting.pem"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    async with running(spec(), servers, checkpoint_interval_s=0.05, signing_key_file=str(key_file)) as r:
        for s in range(3):
            await r.ctx.store.append(f"s{s}", 0, events(3, "live"), meta(r.district))
        public = httpx.AsyncClient(transport=httpx.ASGITransport(app=r.app), base_url="http://test")

        async def signed_all() -> httpx.Response | None:
            got = await public.get("/log/checkpoint")
            return got if got.status_code == 200 and got.text.split("\n")[1] == "9" else None

        got = await eventually(signed_all)
        assert got.headers["content-type"] == "text/plain; charset=utf-8"
        origin = f"yishi.{r.district}/notify"
        checkpoint, _ = note.open_checkpoint(got.content, note.Verifier(origin, note.ED25519, public_bytes(key)))
        assert (checkpoint.origin, checkpoint.size) == (origin, 9)
        assert checkpoint.root_hash == merkle.root(9, merkle.from_leaves(await leaves_of(r.ctx.pool)))
        proof = (await public.get("/log/proof/inclusion", params={"stream_id": "s1", "version": "3"})).json()
        assert proof["tree_size"] == 9
        merkle.verify_inclusion(proof["leaf_index"], 9, base64.b64decode(proof["leaf_hash"]), b64(proof["hashes"]),
                                checkpoint.root_hash)
        # the service's own API still wants a token
        assert (await public.get(f"/{r.district}/clock")).status_code == 401
