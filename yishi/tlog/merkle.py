"""RFC 9162 Merkle trees, pure: hashes, tree heads, inclusion and consistency proofs.

Everything here is a function of its arguments (no I/O), so the store, the HTTP edge and
the offline auditor (``yishi audit``) share one implementation. Proofs are generated from
a ``SubtreeHash``, a function answering the hash of the leaves ``[start, end)``; the
ranges asked for are always subtrees of the big tree as RFC 9162 §2.1 cuts it (``start``
a multiple of the smallest power of two not below ``end - start``), so a store that keeps
the hash of every *complete* subtree (:func:`append`, :func:`from_nodes`) answers each
range from a handful of stored nodes, without reading the leaves. To fetch those nodes in
one query, :func:`nodes_for_inclusion` / :func:`nodes_for_consistency` name them first.

A node is ``(level, index)``: the complete subtree of the ``2**level`` leaves from
``index * 2**level``; level 0 are the leaf hashes.

Why not a library: the maintained Python ones (pymerkle 6) keep their own storage and
proof formats, not RFC 9162's ``inclusion_path`` / ``consistency_path`` over a store we
own; the algorithms are short and checked against transparency-dev/merkle's published
vectors (``tests/vectors/transparency-dev-merkle``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH({}): the hash of an empty tree (RFC 9162 §2.1.1)."""

SubtreeHash = Callable[[int, int], bytes]
"""The Merkle tree hash of the leaves ``[start, end)``."""

Node = tuple[int, int]
"""``(level, index)``: the complete subtree of leaves ``[index << level, (index + 1) << level)``."""


class ProofError(ValueError):
    """A proof that does not verify, or arguments no proof can exist for."""


def leaf_hash(data: bytes) -> bytes:
    """MTH({d}) = SHA-256(0x00 || d)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right), an interior node."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def complete_subtrees(start: int, end: int) -> list[Node]:
    """The complete subtrees that make up ``[start, end)``, left to right, largest first.

    For ``[0, size)`` these are the right frontier of a tree of ``size`` leaves (one per
    bit set in ``size``): what :func:`append` needs to extend it.
    """
    nodes: list[Node] = []
    while start < end:
        level = (start & -start).bit_length() - 1 if start else (end - start).bit_length() - 1
        while (1 << level) > end - start:
            level -= 1
        nodes.append((level, start >> level))
        start += 1 << level
    return nodes


def fold(hashes: Sequence[bytes]) -> bytes:
    """The tree hash of complete subtrees given left to right, largest first."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def from_nodes(nodes: Mapping[Node, bytes]) -> SubtreeHash:
    """A ``SubtreeHash`` answered from stored complete-subtree hashes (KeyError if absent)."""

    def subtree(start: int, end: int) -> bytes:
        return fold([nodes[n] for n in complete_subtrees(start, end)])

    return subtree


def from_leaves(leaf_hashes: Sequence[bytes]) -> SubtreeHash:
    """A ``SubtreeHash`` over leaf hashes held in memory (RFC 9162 §2.1.1 recursion)."""

    def subtree(start: int, end: int) -> bytes:
        n = end - start
        if n == 0:
            return EMPTY_ROOT
        if n == 1:
            return leaf_hashes[start]
        k = _split(n)
        return node_hash(subtree(start, start + k), subtree(start + k, end))

    return subtree


def root(size: int, subtree: SubtreeHash) -> bytes:
    """The tree head MTH(D[size])."""
    return EMPTY_ROOT if size == 0 else subtree(0, size)


def append(size: int, frontier: Sequence[bytes], leaves: Iterable[bytes]) -> tuple[list[tuple[int, int, bytes]], list[bytes]]:
    """Extend a tree of ``size`` leaves by ``leaves`` (leaf hashes).

    ``frontier`` is the hashes of ``complete_subtrees(0, size)``. Answers the new complete
    nodes ``(level, index, hash)`` to store (each leaf, and each subtree it completes) and
    the new frontier.
    """
    stack = list(frontier)
    levels = [level for level, _ in complete_subtrees(0, size)]
    if len(stack) != len(levels):
        raise ValueError(f"a tree of {size} leaves has a frontier of {len(levels)} hashes, not {len(stack)}")
    new: list[tuple[int, int, bytes]] = []
    for h in leaves:
        index, level = size, 0
        new.append((0, index, h))
        while levels and levels[-1] == level:
            h = node_hash(stack.pop(), h)
            levels.pop()
            level += 1
            index >>= 1
            new.append((level, index, h))
        stack.append(h)
        levels.append(level)
        size += 1
    return new, stack


def inclusion_proof(index: int, size: int, subtree: SubtreeHash) -> list[bytes]:
    """PATH(index, D[size]) (RFC 9162 §2.1.3.1), the audit path from the leaf upwards."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size} leaves")

    def path(m: int, start: int, end: int) -> list[bytes]:
        n = end - start
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return path(m, start, start + k) + [subtree(start + k, end)]
        return path(m - k, start + k, end) + [subtree(start, start + k)]

    return path(index, 0, size)


def consistency_proof(first: int, second: int, subtree: SubtreeHash) -> list[bytes]:
    """PROOF(first, D[second]) (RFC 9162 §2.1.4.1); empty when the sizes are equal."""
    if not 0 < first <= second:
        raise ProofError(f"no consistency proof from {first} to {second} leaves")

    def subproof(m: int, start: int, end: int, whole: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if whole else [subtree(start, end)]
        k = _split(n)
        if m <= k:
            return subproof(m, start, start + k, whole) + [subtree(start + k, end)]
        return subproof(m - k, start + k, end, False) + [subtree(start, start + k)]

    return subproof(first, 0, second, True)


def _recorder() -> tuple[SubtreeHash, list[tuple[int, int]]]:
    asked: list[tuple[int, int]] = []

    def subtree(start: int, end: int) -> bytes:
        asked.append((start, end))
        return EMPTY_ROOT

    return subtree, asked


def _nodes(ranges: Iterable[tuple[int, int]]) -> set[Node]:
    return {node for start, end in ranges for node in complete_subtrees(start, end)}


def nodes_for_inclusion(index: int, size: int) -> set[Node]:
    """The stored nodes :func:`inclusion_proof` reads (and the root of ``size``)."""
    subtree, asked = _recorder()
    inclusion_proof(index, size, subtree)
    return _nodes(asked) | set(complete_subtrees(0, size))


def nodes_for_consistency(first: int, second: int) -> set[Node]:
    """The stored nodes :func:`consistency_proof` reads (and both roots)."""
    subtree, asked = _recorder()
    consistency_proof(first, second, subtree)
    return _nodes(asked) | set(complete_subtrees(0, first)) | set(complete_subtrees(0, second))


def _check_hash(name: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{name} is {len(value)} bytes, not {HASH_SIZE}")


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root_hash: bytes) -> None:
    """Check that ``leaf`` (a leaf hash) is leaf ``index`` of the tree ``root_hash`` of
    ``size`` leaves, by RFC 9162 §2.1.3.2; raises :class:`ProofError` if not."""
    _check_hash("the leaf hash", leaf)
    _check_hash("the root", root_hash)
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size} leaves")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        _check_hash("a proof hash", p)
        if sn == 0:
            raise ProofError("the proof is longer than the path")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the proof is shorter than the path")
    if r != root_hash:
        raise ProofError("the proof leads to another root")


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]) -> None:
    """Check that the tree ``second_root`` of ``second`` leaves extends the tree
    ``first_root`` of ``first`` leaves, by RFC 9162 §2.1.4.2; raises :class:`ProofError`
    if not. Equal sizes need an empty proof and equal roots; an empty first tree proves
    nothing and is refused."""
    if not 0 < first <= second:
        raise ProofError(f"no consistency proof from {first} to {second} leaves")
    if first == second:
        if proof:
            raise ProofError("equal sizes need an empty proof")
        if first_root != second_root:
            raise ProofError("two different roots for the same size")
        return
    if not proof:
        raise ProofError("empty proof")
    path = list(proof)
    for p in path:
        _check_hash("a proof hash", p)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the proof is longer than the path")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the proof is shorter than the path")
    if fr != first_root:
        raise ProofError("the proof does not lead to the first root")
    if sr != second_root:
        raise ProofError("the proof does not lead to the second root")
