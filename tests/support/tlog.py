"""A small log for witness tests: Merkle trees over made-up leaves, signed checkpoints, and
add-checkpoint bodies with their consistency proofs (yishi.tlog.merkle, yishi.tlog.note)."""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from yishi.tlog import merkle, note
from yishi.tlog.note import COSIGNATURE_V1, Checkpoint, Signer
from yishi.witness import core


class FakeLog:
    """A log of ``origin`` whose leaves are ``sha256(prefix + i)``; ``fork`` gives another history."""

    def __init__(self, origin: str = "yishi.test/voting", key: Ed25519PrivateKey | None = None,
                 prefix: bytes = b"event") -> None:
        self.origin = origin
        self.signer = Signer(origin, key or Ed25519PrivateKey.generate())
        self.prefix = prefix

    def leaves(self, size: int) -> list[bytes]:
        return [merkle.leaf_hash(hashlib.sha256(self.prefix + str(i).encode()).digest()) for i in range(size)]

    def root(self, size: int) -> bytes:
        return merkle.root(size, merkle.from_leaves(self.leaves(size)))

    def checkpoint(self, size: int) -> bytes:
        """The signed checkpoint note at ``size``."""
        return note.sign_checkpoint(Checkpoint(self.origin, size, self.root(size)), self.signer)

    def proof(self, old: int, new: int) -> list[bytes]:
        if old == 0 or old == new:
            return []
        return merkle.consistency_proof(old, new, merkle.from_leaves(self.leaves(new)))

    def request(self, old: int, new: int) -> bytes:
        """The add-checkpoint body from ``old`` to ``new``."""
        return core.format_request(old, self.proof(old, new), self.checkpoint(new))

    def fork(self) -> FakeLog:
        """The same origin and key, other leaves: a forked history."""
        return FakeLog(self.origin, self.signer.key, prefix=b"rewritten")

    @property
    def log(self) -> core.Log:
        return core.Log(self.origin, (self.signer.verifier,))


def witness_signer(name: str = "witness.test/board") -> Signer:
    """A witness's cosigning key."""
    return Signer(name, Ed25519PrivateKey.generate(), COSIGNATURE_V1)
