"""yishi.tlog.merkle against the published RFC 6962/9162 vectors of transparency-dev/merkle
(tests/vectors/transparency-dev-merkle/SOURCE.md): the reference tree's node and root hashes,
every inclusion and consistency probe (happy paths and each tampered variant), and proofs
generated over the reference tree equal to the published ones."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from yishi.tlog import merkle

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "transparency-dev-merkle"


def _reference() -> tuple[list[bytes], list[list[bytes]], list[bytes]]:
    """LeafInputs, NodeHashes and RootHashes of testonly/constants.go, as published."""
    source = (VECTORS / "testonly" / "constants.go").read_text()

    def block(name: str) -> str:
        return source.split(f"func {name}()", 1)[1].split("\n}\n", 1)[0]

    hexes = lambda text: [bytes.fromhex(h) for h in re.findall(r'hd\("([0-9a-f]*)"\)', text)]  # noqa: E731
    leaves = hexes(block("LeafInputs"))
    levels = [hexes(level) for level in block("NodeHashes").split("}, {")]
    roots = [merkle.EMPTY_ROOT, *hexes(block("RootHashes"))]
    empty = re.search(r'EmptyRootHash\(\) \[\]byte \{\s*return hd\("([0-9a-f]+)"\)', source)
    assert empty and bytes.fromhex(empty.group(1)) == merkle.EMPTY_ROOT
    return leaves, levels, roots


LEAVES, LEVELS, ROOTS = _reference()
LEAF_HASHES = [merkle.leaf_hash(d) for d in LEAVES]


def _probes(kind: str) -> list[tuple[str, dict]]:
    found = sorted((VECTORS / "testdata" / kind).rglob("*.json"))
    assert found, f"no {kind} vectors"
    return [(str(p.relative_to(VECTORS / "testdata")), json.loads(p.read_text())) for p in found]


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value or "")


def _proof(values: list[str] | None) -> list[bytes]:
    return [_b64(v) for v in values or []]


def test_the_reference_tree_has_the_published_node_and_root_hashes():
    assert len(LEAVES) == 8 and len(ROOTS) == 9
    assert LEAF_HASHES == LEVELS[0]
    nodes, frontier, size = {}, [], 0
    for h in LEAF_HASHES:
        new, frontier = merkle.append(size, frontier, [h])
        nodes.update({(level, index): value for level, index, value in new})
        size += 1
        assert merkle.root(size, merkle.from_nodes(nodes)) == ROOTS[size]
        assert merkle.fold(frontier) == ROOTS[size]
    for level, hashes in enumerate(LEVELS):
        for index, value in enumerate(hashes):
            assert nodes[(level, index)] == value, (level, index)
    assert len(nodes) == sum(len(level) for level in LEVELS)
    in_memory = merkle.from_leaves(LEAF_HASHES)
    assert [merkle.root(n, in_memory) for n in range(9)] == ROOTS


def test_appending_in_one_batch_stores_the_same_nodes_as_one_by_one():
    new, frontier = merkle.append(0, [], LEAF_HASHES[:3])
    more, frontier = merkle.append(3, frontier, LEAF_HASHES[3:])
    assert {(lv, ix): h for lv, ix, h in new + more} == {
        (level, index): h for level, hashes in enumerate(LEVELS) for index, h in enumerate(hashes)
    }
    with pytest.raises(ValueError):
        merkle.append(3, frontier, [LEAF_HASHES[0]])


@pytest.mark.parametrize(("name", "probe"), _probes("inclusion"), ids=lambda v: v if isinstance(v, str) else "")
def test_inclusion_vectors(name, probe):
    check = lambda: merkle.verify_inclusion(  # noqa: E731
        probe["leafIdx"], probe["treeSize"], _b64(probe["leafHash"]), _proof(probe["proof"]), _b64(probe["root"])
    )
    if probe["wantErr"]:
        with pytest.raises(merkle.ProofError):
            check()
    else:
        check()


@pytest.mark.parametrize(("name", "probe"), _probes("consistency"), ids=lambda v: v if isinstance(v, str) else "")
def test_consistency_vectors(name, probe):
    check = lambda: merkle.verify_consistency(  # noqa: E731
        probe["size1"], probe["size2"], _b64(probe["root1"]), _b64(probe["root2"]), _proof(probe["proof"])
    )
    if probe["wantErr"]:
        with pytest.raises(merkle.ProofError):
            check()
    else:
        check()


def _happy(kind: str) -> list[dict]:
    return [p for name, p in _probes(kind) if name.endswith("happy-path.json")]


def test_generated_proofs_equal_the_published_happy_paths():
    nodes = {(level, index): h for level, hashes in enumerate(LEVELS) for index, h in enumerate(hashes)}
    stored = merkle.from_nodes(nodes)
    in_memory = merkle.from_leaves(LEAF_HASHES)
    checked = 0
    for p in _happy("inclusion"):
        if _b64(p["root"]) != ROOTS[p["treeSize"]]:
            continue  # a probe over another tree
        for subtree in (stored, in_memory):
            assert merkle.inclusion_proof(p["leafIdx"], p["treeSize"], subtree) == _proof(p["proof"])
        checked += 1
    for p in _happy("consistency"):
        if _b64(p["root1"]) != ROOTS[p["size1"]] or _b64(p["root2"]) != ROOTS[p["size2"]]:
            continue
        for subtree in (stored, in_memory):
            assert merkle.consistency_proof(p["size1"], p["size2"], subtree) == _proof(p["proof"])
        checked += 1
    assert checked >= 6


def test_every_proof_over_the_reference_tree_verifies_and_reads_only_the_nodes_it_names():
    nodes = {(level, index): h for level, hashes in enumerate(LEVELS) for index, h in enumerate(hashes)}
    for size in range(1, 9):
        for index in range(size):
            needed = merkle.nodes_for_inclusion(index, size)
            proof = merkle.inclusion_proof(index, size, merkle.from_nodes({n: nodes[n] for n in needed}))
            merkle.verify_inclusion(index, size, LEAF_HASHES[index], proof, ROOTS[size])
            with pytest.raises(merkle.ProofError):
                merkle.verify_inclusion(index, size, LEAF_HASHES[index], proof, ROOTS[size - 1] if size > 1 else ROOTS[2])
        for first in range(1, size + 1):
            needed = merkle.nodes_for_consistency(first, size)
            proof = merkle.consistency_proof(first, size, merkle.from_nodes({n: nodes[n] for n in needed}))
            merkle.verify_consistency(first, size, ROOTS[first], ROOTS[size], proof)
            if first < size:
                with pytest.raises(merkle.ProofError):
                    merkle.verify_consistency(first, size, LEAF_HASHES[0] if first > 1 else ROOTS[2], ROOTS[size], proof)


def test_proofs_of_a_large_tree_verify_and_stay_logarithmic():
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(1000)]
    new, frontier = merkle.append(0, [], leaves)
    stored = merkle.from_nodes({(lv, ix): h for lv, ix, h in new})
    in_memory = merkle.from_leaves(leaves)
    for size in (1, 2, 3, 511, 512, 513, 999, 1000):
        assert merkle.root(size, stored) == merkle.root(size, in_memory)
        for index in {0, size // 2, size - 1}:
            proof = merkle.inclusion_proof(index, size, stored)
            assert len(proof) <= 10
            merkle.verify_inclusion(index, size, leaves[index], proof, merkle.root(size, stored))
        for first in {1, size // 3 or 1, size - 1 or 1, size}:
            proof = merkle.consistency_proof(first, size, stored)
            assert len(proof) <= 20
            merkle.verify_consistency(first, size, merkle.root(first, stored), merkle.root(size, stored), proof)
    assert merkle.fold(frontier) == merkle.root(1000, in_memory)
    assert len(merkle.nodes_for_inclusion(500, 1000)) <= 20


def test_impossible_arguments_are_refused():
    subtree = merkle.from_leaves(LEAF_HASHES)
    for index, size in ((0, 0), (8, 8), (-1, 3)):
        with pytest.raises(merkle.ProofError):
            merkle.inclusion_proof(index, size, subtree)
    for first, second in ((0, 3), (4, 3)):
        with pytest.raises(merkle.ProofError):
            merkle.consistency_proof(first, second, subtree)
    assert merkle.root(0, subtree) == merkle.EMPTY_ROOT
