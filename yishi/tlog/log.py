"""A service's Merkle log in PostgreSQL: its leaves, its stored nodes, its proofs.

The tree (RFC 9162, :mod:`yishi.tlog.merkle`) has one leaf per sealed event, in seal order:
leaf ``i`` is the event at ``log_chain.seq = i + 1`` (see :meth:`yishi.store.EventStore.seal`,
which extends both in one transaction). A leaf's bytes are :func:`leaf_data`::

    position  u64 big-endian   the event's store position
    version   u32 big-endian   its version in its stream
    len       u16 big-endian   the byte length of the stream id
    stream_id len bytes        UTF-8
    hash      32 bytes         the event's hash (its stream chain link, which covers its content)

and its hash is ``SHA-256(0x00 || leaf)``. Table ``merkle_nodes`` keeps the hash of every
complete subtree (about two rows per event), so a proof reads ``O(log n)`` rows by primary
key and never the leaves or the events.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import asyncpg
import structlog

from yishi.tlog import merkle

log = structlog.get_logger("yishi.tlog")

# Table merkle_nodes: yishi/migrations/versions/yishi_0003_merkle_log.py.

_NODES = """
SELECT n.level, n.idx, n.hash FROM merkle_nodes n
JOIN unnest($1::smallint[], $2::bigint[]) AS w(level, idx) ON n.level = w.level AND n.idx = w.idx
"""
_INSERT = "INSERT INTO merkle_nodes (level, idx, hash) SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[])"
_LEAF = """
SELECT c.seq - 1 AS idx, e.event_id, e.position, e.stream_id, e.version, e.hash
FROM events e JOIN log_chain c USING (position) WHERE {where}
"""


def leaf_data(position: int, stream_id: str, version: int, event_hash: bytes) -> bytes:
    """The bytes of the leaf for one event (see the module docstring)."""
    name = stream_id.encode()
    return position.to_bytes(8, "big") + version.to_bytes(4, "big") + len(name).to_bytes(2, "big") + name + event_hash


def leaf_hash(position: int, stream_id: str, version: int, event_hash: bytes) -> bytes:
    """The Merkle tree hash of the leaf for one event."""
    return merkle.leaf_hash(leaf_data(position, stream_id, version, event_hash))


@dataclass(frozen=True, slots=True)
class Leaf:
    """An event as the Merkle log holds it: its leaf index and what the leaf is made of."""

    index: int
    event_id: uuid.UUID
    position: int
    stream_id: str
    version: int
    event_hash: bytes

    @property
    def hash(self) -> bytes:
        return leaf_hash(self.position, self.stream_id, self.version, self.event_hash)


async def size(conn: asyncpg.Connection | asyncpg.Pool) -> int:
    """How many leaves the tree has."""
    return await conn.fetchval("SELECT COALESCE(max(idx) + 1, 0) FROM merkle_nodes WHERE level = 0")


async def nodes(conn: asyncpg.Connection | asyncpg.Pool, wanted: Iterable[merkle.Node]) -> dict[merkle.Node, bytes]:
    """The stored hashes of ``wanted`` nodes, in one query (absent ones are left out)."""
    wanted = list(wanted)
    rows = await conn.fetch(_NODES, [lv for lv, _ in wanted], [ix for _, ix in wanted])
    return {(r["level"], r["idx"]): r["hash"] for r in rows}


async def extend(conn: asyncpg.Connection, tree_size: int, leaves: Sequence[bytes]) -> int:
    """Append ``leaves`` (leaf hashes) to the tree of ``tree_size`` leaves, storing every node
    they complete; returns the new size. Runs in the caller's transaction."""
    if not leaves:
        return tree_size
    wanted = merkle.complete_subtrees(0, tree_size)
    found = await nodes(conn, wanted) if wanted else {}
    new, _ = merkle.append(tree_size, [found[n] for n in wanted], leaves)
    await conn.execute(_INSERT, [lv for lv, _, _ in new], [ix for _, ix, _ in new], [h for _, _, h in new])
    return tree_size + len(leaves)


async def root(conn: asyncpg.Connection | asyncpg.Pool, tree_size: int) -> bytes:
    """The tree head of the first ``tree_size`` leaves."""
    wanted = merkle.complete_subtrees(0, tree_size)
    return merkle.root(tree_size, merkle.from_nodes(await nodes(conn, wanted)))


async def inclusion_proof(conn: asyncpg.Connection | asyncpg.Pool, index: int, tree_size: int) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of ``tree_size`` leaves."""
    stored = await nodes(conn, merkle.nodes_for_inclusion(index, tree_size))
    return merkle.inclusion_proof(index, tree_size, merkle.from_nodes(stored))


async def consistency_proof(conn: asyncpg.Connection | asyncpg.Pool, first: int, second: int) -> list[bytes]:
    """The proof that the tree of ``second`` leaves extends the tree of ``first``."""
    stored = await nodes(conn, merkle.nodes_for_consistency(first, second))
    return merkle.consistency_proof(first, second, merkle.from_nodes(stored))


async def find_leaf(conn: asyncpg.Connection | asyncpg.Pool, *, event_id: uuid.UUID | None = None,
                    stream_id: str | None = None, version: int | None = None) -> Leaf | None:
    """The sealed event with ``event_id`` (or at ``stream_id`` and ``version``) as a leaf;
    None when there is none or it is not sealed yet."""
    if event_id is not None:
        row = await conn.fetchrow(_LEAF.format(where="e.event_id = $1"), event_id)
    else:
        row = await conn.fetchrow(_LEAF.format(where="e.stream_id = $1 AND e.version = $2"), stream_id, version)
    if row is None:
        return None
    return Leaf(row["idx"], row["event_id"], row["position"], row["stream_id"], row["version"], row["hash"])


async def truncate(conn: asyncpg.Connection, tree_size: int) -> int:
    """Cut the tree back to its first ``tree_size`` leaves, when the log chain it follows was
    cut back (only a rewrite or a restore does that: the checkpoints signed before still
    hold the old heads, and auditors find the rewrite by them); returns ``tree_size``."""
    dropped = await conn.execute("DELETE FROM merkle_nodes WHERE (idx + 1) << level > $1", tree_size)
    log.warning("the log chain is shorter than the Merkle tree: tree cut back to match", leaves=tree_size,
                nodes_dropped=dropped)
    return tree_size


async def catch_up(conn: asyncpg.Connection, tree_size: int, sealed: int, limit: int) -> int:
    """Extend a tree that lags the log chain (a log sealed before the Merkle log existed) by
    up to ``limit`` sealed events, in seal order; returns how many leaves were added."""
    rows = await conn.fetch(
        "SELECT c.seq, e.position, e.stream_id, e.version, e.hash FROM log_chain c JOIN events e USING (position) "
        "WHERE c.seq > $1 AND c.seq <= $2 ORDER BY c.seq LIMIT $3", tree_size, sealed, limit)
    leaves = []
    for r in rows:
        if r["seq"] != tree_size + len(leaves) + 1:
            break  # a sealed event is gone: the tree cannot be extended past it (verify reports it)
        leaves.append(leaf_hash(r["position"], r["stream_id"], r["version"], r["hash"]))
    await extend(conn, tree_size, leaves)
    return len(leaves)
