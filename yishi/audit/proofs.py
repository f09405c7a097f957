"""Checking a service's Merkle log from outside: its signed checkpoints, inclusion and
consistency proofs fetched from its public ``/log/…`` endpoints (:mod:`yishi.tlog.http`),
and an export bundle recomputed against a checkpoint, all verified offline against a
public key the auditor trusts, never one the service hands out with what it proves.

Each check answers findings (strings; none: it holds). ``yishi audit checkpoint``,
``inclusion``, ``consistency`` and ``verify-bundle --checkpoint`` (:mod:`yishi.audit.cli`)
print them and exit 1 on any.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

from yishi.store import RecordedEvent
from yishi.tlog import log as tlog
from yishi.tlog import merkle, note


class ProofFailure(Exception):
    """The service cannot be asked (unreachable, an error answer, a malformed body)."""


@dataclass(frozen=True)
class Trusted:
    """The log key an auditor trusts: a note verifier key (``origin+keyid+key``), or a raw
    Ed25519 public key in hex (then the log's name is taken from the checkpoint's origin)."""

    key: str

    def verifier(self, origin: str) -> note.Verifier:
        """The verifier for a checkpoint of ``origin``."""
        if "+" in self.key:
            return note.Verifier.parse(self.key)
        try:
            raw = bytes.fromhex(self.key)
        except ValueError:
            raise note.MalformedKey(f"{self.key!r} is neither a verifier key (name+id+key) nor hex") from None
        return note.Verifier(origin, note.ED25519, raw)


def open_checkpoint(signed: bytes, trusted: Trusted) -> tuple[note.Checkpoint | None, list[str]]:
    """The checkpoint of a signed note if the trusted key signed it, else findings."""
    try:
        origin = signed.split(b"\n", 1)[0].decode()
        checkpoint, _ = note.open_checkpoint(signed, trusted.verifier(origin))
    except (note.NoteError, UnicodeDecodeError) as exc:
        return None, [f"the checkpoint does not verify against the trusted key: {exc}"]
    return checkpoint, []


def _hashes(values: object) -> list[bytes]:
    if not isinstance(values, list):
        raise ProofFailure("the proof holds no list of hashes")
    try:
        return [base64.b64decode(v, validate=True) for v in values]
    except (binascii.Error, TypeError) as exc:
        raise ProofFailure(f"a proof hash is not base64: {exc}") from None


def check_inclusion(checkpoint: note.Checkpoint, proof: dict, *, event_hash: bytes | None = None) -> list[str]:
    """Whether ``proof`` (a ``/log/proof/inclusion`` answer) puts its event in the
    checkpoint's tree: the leaf recomputed from the event's position, stream, version and
    hash (never the leaf hash the service sends) and the path lead to the signed root.
    ``event_hash``: the hash the auditor holds for the event, which must be the leaf's."""
    try:
        leaf, index, size = proof["leaf"], int(proof["leaf_index"]), int(proof["tree_size"])
        hashed = bytes.fromhex(leaf["event_hash"])
        leaf_hash = tlog.leaf_hash(int(leaf["position"]), str(leaf["stream_id"]), int(leaf["version"]), hashed)
    except (KeyError, TypeError, ValueError) as exc:
        raise ProofFailure(f"the inclusion proof is malformed: {exc!r}") from None
    findings = []
    if size != checkpoint.size:
        findings.append(f"the proof is for a tree of {size} leaves, the checkpoint has {checkpoint.size}")
    if event_hash is not None and hashed != event_hash:
        findings.append(f"the log holds event hash {hashed.hex()} for {leaf['stream_id']} v{leaf['version']}, "
                        f"not {event_hash.hex()}")
    try:
        merkle.verify_inclusion(index, checkpoint.size, leaf_hash, _hashes(proof.get("hashes")), checkpoint.root_hash)
    except merkle.ProofError as exc:
        findings.append(f"event {leaf.get('event_id')} is not proven in the checkpoint's tree: {exc}")
    return findings


def check_consistency(old: note.Checkpoint, new: note.Checkpoint, proof: dict | None) -> list[str]:
    """Whether the tree of ``new`` extends the tree of ``old`` by ``proof`` (a
    ``/log/proof/consistency`` answer from ``old.size`` to ``new.size``; None when the
    sizes need none). A failure means the log forked or rewrote history after ``old``."""
    if old.origin != new.origin:
        return [f"the checkpoints are of two logs: {old.origin!r} and {new.origin!r}"]
    if new.size < old.size:
        return [f"the log shrank from {old.size} to {new.size} leaves: history was removed"]
    hashes = _hashes(proof.get("hashes")) if proof is not None else []
    if proof is not None and (proof.get("from"), proof.get("to")) != (old.size, new.size):
        return [f"the proof is from {proof.get('from')} to {proof.get('to')}, not {old.size} to {new.size}"]
    try:
        merkle.verify_consistency(old.size, new.size, old.root_hash, new.root_hash, hashes)
    except merkle.ProofError as exc:
        return [f"the tree of {new.size} leaves does not extend the checkpoint of {old.size} leaves ({exc}): "
                "history up to it was rewritten or removed"]
    return []


def check_bundle_leaves(checkpoint: note.Checkpoint, events: Iterable[RecordedEvent]) -> tuple[int, list[str]]:
    """Recompute the tree over a bundle's events (in log order, as exported) and compare
    its head at the checkpoint's size with the signed root; answers the leaves read."""
    frontier: list[bytes] = []
    size = 0
    for e in events:
        if size == checkpoint.size:
            break
        _, frontier = merkle.append(size, frontier, [tlog.leaf_hash(e.position, e.stream_id, e.version, e.hash)])
        size += 1
    if size < checkpoint.size:
        return size, [f"the bundle holds {size} events, the checkpoint commits to {checkpoint.size}: "
                      "history was removed"]
    if merkle.fold(frontier) != checkpoint.root_hash:
        return size, [f"the bundle's first {size} events do not hash to the checkpoint's root: "
                      "history was altered, removed or reordered"]
    return size, []


def fetch(client: httpx.Client, path: str, params: dict | None = None) -> httpx.Response:
    """GET ``path`` of the service; an unreachable service or an error answer is a
    :class:`ProofFailure` naming the status and the service's detail."""
    try:
        response = client.get(path, params=params)
    except httpx.HTTPError as exc:
        raise ProofFailure(f"cannot reach {client.base_url}: {exc}") from None
    if response.status_code != 200:
        detail = response.text
        try:
            detail = response.json().get("detail", detail)
        except ValueError:
            pass
        raise ProofFailure(f"{path} answered {response.status_code}: {detail}")
    return response


def fetch_json(client: httpx.Client, path: str, params: dict | None = None) -> dict:
    """:func:`fetch`, the body read as a JSON object."""
    try:
        body = fetch(client, path, params).json()
    except ValueError as exc:
        raise ProofFailure(f"{path} answered no JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ProofFailure(f"{path} answered no JSON object")
    return body
