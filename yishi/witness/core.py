"""The witness's decisions, pure: what an ``add-checkpoint`` request says, whether to cosign
it (https://c2sp.org/tlog-witness), and what a verifier concludes from cosignatures (k of
n, split views).

Nothing here reads a file, a clock or the network: the server (:mod:`yishi.witness.server`)
reads the state, calls :func:`check` and writes the new state in one transaction, so the
rules are tested without a process and the atomicity lives in one place.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from yishi.tlog import merkle, note
from yishi.tlog.note import COSIGNATURE_V1, ED25519, Checkpoint, NoteError, Verifier

MAX_PROOF_LINES = 63
"""The most consistency proof lines a request may carry (tlog-witness)."""
MAX_REQUEST_BYTES = 64 * 1024
"""Largest add-checkpoint body read: 63 hashes and a checkpoint with its signatures."""


class Refusal(Exception):
    """A request the witness does not cosign; ``status`` is the HTTP answer tlog-witness asks."""

    status = 400
    evidence = False
    """Whether the log signed something it must not have (a fork), worth keeping as proof."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(Refusal):
    """The body is not an add-checkpoint request (400)."""

    status = 400


class Forbidden(Refusal):
    """No signature of the log's trusted keys verifies on the checkpoint (403)."""

    status = 403


class UnknownLog(Refusal):
    """The checkpoint's origin is not a log this witness witnesses (404)."""

    status = 404


class Conflict(Refusal):
    """``old`` is not the size last cosigned, or the same size came with another root (409).

    ``size`` is the witness's latest cosigned size, the body tlog-witness asks for.
    """

    status = 409

    def __init__(self, message: str, size: int, *, fork: bool = False) -> None:
        super().__init__(message)
        self.size = size
        self.evidence = fork


class BadProof(Refusal):
    """The consistency proof from the cosigned tree to the new one does not verify (422)."""

    status = 422
    evidence = True


@dataclass(frozen=True)
class Log:
    """A log this witness witnesses: its origin and the keys that sign its checkpoints."""

    origin: str
    keys: tuple[Verifier, ...]


@dataclass(frozen=True)
class TreeHead:
    """A log's tree size and root hash, as the witness last cosigned them."""

    size: int
    root_hash: bytes


@dataclass(frozen=True)
class AddCheckpoint:
    """An add-checkpoint request: the size the client thinks was cosigned, its proof, the note."""

    old_size: int
    proof: tuple[bytes, ...]
    checkpoint: bytes


def parse_request(body: bytes) -> AddCheckpoint:
    """Read ``old <size>``, up to 63 base64 hashes, a blank line, then the checkpoint note."""
    if len(body) > MAX_REQUEST_BYTES:
        raise BadRequest(f"the request has more than {MAX_REQUEST_BYTES} bytes")
    head, sep, checkpoint = body.partition(b"\n\n")
    if not sep:
        raise BadRequest("no blank line between the proof and the checkpoint")
    lines = head.split(b"\n")
    first = lines[0].decode("ascii", "replace")
    number = first.removeprefix("old ")
    if not first.startswith("old ") or not (number == "0" or (number.isdigit() and number[0] != "0")):
        raise BadRequest(f"the first line must be 'old <size>', not {first[:40]!r}")
    proof = lines[1:]
    if len(proof) > MAX_PROOF_LINES:
        raise BadRequest(f"{len(proof)} consistency proof lines, more than {MAX_PROOF_LINES}")
    hashes = []
    for line in proof:
        try:
            decoded = base64.b64decode(line, validate=True)
        except ValueError:
            raise BadRequest("a consistency proof line is not base64") from None
        if len(decoded) != merkle.HASH_SIZE:
            raise BadRequest(f"a consistency proof hash has {len(decoded)} bytes, not {merkle.HASH_SIZE}")
        hashes.append(decoded)
    return AddCheckpoint(int(number), tuple(hashes), checkpoint)


def format_request(old_size: int, proof: Sequence[bytes], checkpoint: bytes) -> bytes:
    """The add-checkpoint body a log sends (the inverse of :func:`parse_request`)."""
    lines = [f"old {old_size}", *(base64.b64encode(h).decode() for h in proof)]
    return ("\n".join(lines) + "\n\n").encode() + checkpoint


def origin_of(checkpoint: bytes) -> str:
    """The origin line of a checkpoint note, read before any key is chosen to verify it."""
    try:
        return Checkpoint.parse(note.parse(checkpoint).text).origin
    except NoteError as exc:
        raise BadRequest(f"not a signed checkpoint: {exc}") from None


def check(request: AddCheckpoint, log: Log, latest: TreeHead | None) -> Checkpoint:
    """The checkpoint to cosign, or the :class:`Refusal` tlog-witness asks for.

    ``latest`` is what this witness last cosigned for the log (None: never). A fork, the
    same size with another root or a proof that fails, is refused: the witness never signs
    two views of one log.
    """
    try:
        opened = note.open_note(request.checkpoint, log.keys)
    except (note.UnverifiedNote, note.InvalidSignature, note.AmbiguousKey) as exc:
        raise Forbidden(f"the checkpoint is not signed by {log.origin}'s key: {exc}") from None
    except NoteError as exc:
        raise BadRequest(f"not a signed checkpoint: {exc}") from None
    if not any(v.signature_type == ED25519 for v, _ in opened.verified):
        raise Forbidden(f"the checkpoint is not signed by {log.origin}'s key")
    try:
        checkpoint = Checkpoint.parse(opened.text)
    except NoteError as exc:
        raise BadRequest(str(exc)) from None
    if request.old_size > checkpoint.size:
        raise BadRequest(f"old size {request.old_size} is larger than the checkpoint's {checkpoint.size}")
    have = latest.size if latest else 0
    if request.old_size != have:
        raise Conflict(f"the latest cosigned size is {have}, not {request.old_size}", have)
    if latest is None or request.old_size == 0:
        if request.proof:
            raise BadProof("a proof from size 0 must be empty")
        return checkpoint
    if checkpoint.size == latest.size:
        if checkpoint.root_hash != latest.root_hash:
            raise Conflict(f"a fork: size {checkpoint.size} was cosigned with another root hash", have, fork=True)
        if request.proof:
            raise BadProof("a proof between equal sizes must be empty")
        return checkpoint
    try:
        merkle.verify_consistency(latest.size, checkpoint.size, latest.root_hash, checkpoint.root_hash, request.proof)
    except merkle.ProofError as exc:
        raise BadProof(f"the consistency proof from {latest.size} to {checkpoint.size} fails: {exc}") from None
    return checkpoint


# --- what a verifier concludes ----------------------------------------------------------


class QuorumNotMet(NoteError):
    """Fewer valid cosignatures from trusted witnesses than required."""


@dataclass(frozen=True)
class Witnessed:
    """A checkpoint verified under the log's key, and the trusted witnesses that cosigned it."""

    checkpoint: Checkpoint
    cosigners: tuple[str, ...]
    timestamps: Mapping[str, int]


def verify_witnessed(msg: bytes, log: Verifier, witnesses: Sequence[Verifier], require: int) -> Witnessed:
    """Accept a checkpoint only with the log's signature and ``require`` cosignatures.

    Each witness counts once (a note with two signatures from one key is refused), only
    cosignature/v1 keys count, and an invalid signature from any trusted key refuses the
    whole note (C2SP signed-note).
    """
    witnesses = list(dict.fromkeys(witnesses))  # a key given twice is one witness
    if not 0 <= require <= len(witnesses):
        raise ValueError(f"cannot require {require} of {len(witnesses)} witnesses")
    if any(w.signature_type != COSIGNATURE_V1 for w in witnesses):
        raise note.MalformedKey("a witness key is a cosignature/v1 (type 0x04) verifier key")
    checkpoint, opened = note.open_checkpoint(msg, log, witnesses)
    trusted = set(witnesses)
    timestamps = {v.name: note.cosignature_timestamp(s) for v, s in opened.verified if v in trusted}
    cosigners = tuple(sorted(timestamps))
    if len(cosigners) < require:
        names = ", ".join(cosigners) or "none"
        raise QuorumNotMet(f"{len(cosigners)} of the {require} cosignatures required (from: {names})")
    return Witnessed(checkpoint, cosigners, timestamps)


@dataclass(frozen=True)
class SplitView:
    """Two or more roots for one origin and tree size: the log showed different histories.

    ``roots`` maps each base64 root hash to the sources (auditors, witnesses) that saw it;
    each checkpoint was signed by the log, so the pair is proof of its misbehaviour.
    """

    origin: str
    size: int
    roots: Mapping[str, tuple[str, ...]]


def split_views(seen: Iterable[tuple[str, Checkpoint]]) -> list[SplitView]:
    """Every (origin, size) for which the sources were shown different root hashes."""
    by_head: dict[tuple[str, int], dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for source, checkpoint in seen:
        by_head[checkpoint.origin, checkpoint.size][base64.b64encode(checkpoint.root_hash).decode()].append(source)
    return [
        SplitView(origin, size, {root: tuple(sources) for root, sources in roots.items()})
        for (origin, size), roots in sorted(by_head.items())
        if len(roots) > 1
    ]
