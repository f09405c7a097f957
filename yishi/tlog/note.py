"""C2SP signed notes, checkpoints and cosignatures, pure (no I/O, no clock).

* **Signed notes** (https://c2sp.org/signed-note): a text ending in a newline, a blank
  line, then signature lines ``— <name> base64(key id || signature)``. Ed25519 keys
  (signature type ``0x01``) sign the text itself; a key ID is
  ``SHA-256(name || 0x0A || type || public key)[:4]``. Verifier keys are written
  ``name+hex(key id)+base64(type || public key)`` (golang.org/x/mod/sumdb/note).
* **Checkpoints** (https://c2sp.org/tlog-checkpoint): the note text ``origin``, tree
  size, base64 root hash (RFC 6962/9162, 32 bytes), then optional extension lines.
* **Cosignatures** (https://c2sp.org/tlog-cosignature, ``cosignature/v1``, type
  ``0x04``): a witness's Ed25519 signature over ``cosignature/v1\\ntime <t>\\n`` and the
  checkpoint text, sent as ``base64(key id || u64 timestamp || signature)``.

Parsing is strict and every refusal says why (:class:`MalformedNote` and its siblings, all
``ValueError``): notes come from the network, and a parser that guesses is a parser an
attacker steers. Two signature lines from one key (same name and key ID) are refused
too, where golang.org/x/mod keeps both silently: a witness's cosignature must count
once towards a quorum, and a note carrying two of its timestamps is ambiguous.

Why not a library: no maintained Python package implements these formats (PyPI lists only
0.0.0 releases of ``sigsum`` and ``sigsum-witness``, from 2022; ``aics-tlog`` is listed but
pip finds no distribution of it); the Go reference (golang.org/x/mod/sumdb/note,
transparency-dev/formats) is what the vectors in ``tests/vectors/signed-note`` come from.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature as _BadEd25519
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ED25519 = 0x01
"""Signature type of plain Ed25519 note signatures (the log's own)."""
COSIGNATURE_V1 = 0x04
"""Signature type of timestamped Ed25519 witness cosignatures (tlog-cosignature)."""

MAX_SIGNATURES = 100
"""Signature lines accepted in one note (the spec asks for at least 16; Go's limit)."""
MAX_LINE_BYTES = 8192
"""Longest line accepted; an ML-DSA cosignature line, the longest defined, is ~3.3 kB."""
MAX_NOTE_BYTES = 1 << 20
"""Largest note accepted: a checkpoint with its cosignatures is well under 10 kB."""

_DASH = "\u2014 "
_HEX8 = re.compile(r"[0-9a-f]{8}")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_COSIGNATURE_HEADER = b"cosignature/v1\n"
_MAX_TIMESTAMP = 2**63 - 1


class NoteError(ValueError):
    """A note, key or checkpoint that cannot be accepted; the message says why."""


class MalformedNote(NoteError):
    """The bytes are not a well-formed signed note."""


class UnverifiedNote(NoteError):
    """No signature on the note is from a known key (it may be signed by unknown ones)."""


class InvalidSignature(NoteError):
    """A signature from a known key does not verify: the note is refused as a whole."""


class AmbiguousKey(NoteError):
    """Two trusted keys share a name and key ID, so a signature cannot be told apart."""


class MalformedKey(NoteError):
    """A verifier or signer key string that is not well formed or not consistent."""


class MalformedCheckpoint(NoteError):
    """A note text that is not a C2SP checkpoint."""


def key_id(name: str, signature_type: int, public_key: bytes) -> int:
    """The key ID: the first four bytes, big-endian, of SHA-256(name || 0x0A || type || key)."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([signature_type]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def valid_name(name: str) -> bool:
    """A key name: non-empty, printable, without Unicode spaces or ``+``."""
    return bool(name) and "+" not in name and not any(c.isspace() or ord(c) < 0x20 for c in name)


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class Signature:
    """One signature line: key name, key ID and the signature bytes after the key ID."""

    name: str
    key_id: int
    signature: bytes

    def line(self) -> str:
        """The signature line, ``— name base64(key id || signature)`` and a newline."""
        blob = self.key_id.to_bytes(4, "big") + self.signature
        return f"{_DASH}{self.name} {base64.b64encode(blob).decode()}\n"


@dataclass(frozen=True)
class Note:
    """A note's text (ending in a newline) and its signatures, in order; not yet verified."""

    text: str
    signatures: tuple[Signature, ...]

    def encode(self) -> bytes:
        """The signed note as bytes: text, blank line, signature lines."""
        return (self.text + "\n" + "".join(s.line() for s in self.signatures)).encode()


@dataclass(frozen=True)
class Verifier:
    """A trusted public key: name, signature type and raw key (Ed25519, 32 bytes).

    Type ``0x01`` verifies plain note signatures over the text; type ``0x04`` verifies
    cosignature/v1 (timestamp and signature over the cosigned message).
    """

    name: str
    signature_type: int
    public_key: bytes

    def __post_init__(self) -> None:
        if not valid_name(self.name):
            raise MalformedKey(f"key name {self.name!r} is empty or holds a space, a control character or '+'")
        if self.signature_type not in (ED25519, COSIGNATURE_V1):
            raise MalformedKey(f"signature type {self.signature_type:#04x} is not supported (0x01, 0x04)")
        if len(self.public_key) != 32:
            raise MalformedKey(f"an Ed25519 public key has 32 bytes, not {len(self.public_key)}")

    @property
    def key_id(self) -> int:
        """This key's ID, as it appears in the first four bytes of its signatures."""
        return key_id(self.name, self.signature_type, self.public_key)

    @property
    def vkey(self) -> str:
        """The verifier key string ``name+hex(key id)+base64(type || key)``."""
        blob = bytes([self.signature_type]) + self.public_key
        return f"{self.name}+{self.key_id:08x}+{base64.b64encode(blob).decode()}"

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        """Read a verifier key string; refuses a key ID that does not match the key."""
        parts = vkey.split("+", 2)  # base64 holds '+' too
        if len(parts) != 3:
            raise MalformedKey(f"a verifier key is name+keyid+key, not {vkey!r}")
        name, hex_id, encoded = parts
        if not _HEX8.fullmatch(hex_id):
            raise MalformedKey(f"key ID {hex_id!r} is not 8 lowercase hex digits")
        blob = _b64(encoded, MalformedKey, "verifier key")
        if not blob:
            raise MalformedKey("verifier key has no key material")
        verifier = cls(name, blob[0], blob[1:])
        if verifier.key_id != int(hex_id, 16):
            raise MalformedKey(f"key ID {hex_id} does not match the key (it is {verifier.key_id:08x})")
        return verifier

    def message(self, text: str, timestamp: int | None) -> bytes:
        """What this key signs for ``text``: the text, or the cosigned message."""
        if self.signature_type == COSIGNATURE_V1:
            return cosigned_message(text, timestamp if timestamp is not None else 0)
        return text.encode()

    def verify(self, text: str, signature: bytes) -> bool:
        """Whether ``signature`` (the bytes after the key ID) signs ``text`` under this key."""
        timestamp = None
        if self.signature_type == COSIGNATURE_V1:
            if len(signature) != 8 + 64:
                return False
            timestamp, signature = int.from_bytes(signature[:8], "big"), signature[8:]
            if timestamp > _MAX_TIMESTAMP:
                return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, self.message(text, timestamp))
        except _BadEd25519:
            return False
        return True


class Signer:
    """An Ed25519 private key with its name, signing notes (type 0x01) or cosignatures (0x04)."""

    def __init__(self, name: str, key: Ed25519PrivateKey, signature_type: int = ED25519) -> None:
        self.key = key
        self.verifier = Verifier(name, signature_type, _raw_public(key.public_key()))

    @property
    def name(self) -> str:
        """The key name written in signature lines."""
        return self.verifier.name

    @classmethod
    def parse(cls, skey: str, signature_type: int = ED25519) -> Signer:
        """Read a Go-style private key ``PRIVATE+KEY+name+hex(key id)+base64(0x01 || seed)``."""
        parts = skey.split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise MalformedKey("a signer key is PRIVATE+KEY+name+keyid+key")
        name, hex_id, encoded = parts[2:]
        if not _HEX8.fullmatch(hex_id):
            raise MalformedKey(f"key ID {hex_id!r} is not 8 lowercase hex digits")
        blob = _b64(encoded, MalformedKey, "signer key")
        if len(blob) != 33 or blob[0] != ED25519:
            raise MalformedKey("a signer key holds 0x01 and a 32-byte Ed25519 seed")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(blob[1:]), signature_type)
        if key_id(name, ED25519, signer.verifier.public_key) != int(hex_id, 16):
            raise MalformedKey(f"key ID {hex_id} does not match the key")
        return signer

    def sign(self, text: str, *, timestamp: int | None = None) -> Signature:
        """Sign ``text`` (a cosignature needs the POSIX ``timestamp`` of signing)."""
        _check_text(text)
        if self.verifier.signature_type == COSIGNATURE_V1:
            if timestamp is None or not 0 <= timestamp <= _MAX_TIMESTAMP:
                raise ValueError("a cosignature needs a timestamp between 0 and 2**63 - 1")
            raw = timestamp.to_bytes(8, "big") + self.key.sign(cosigned_message(text, timestamp))
        else:
            raw = self.key.sign(text.encode())
        return Signature(self.name, self.verifier.key_id, raw)


def cosigned_message(text: str, timestamp: int) -> bytes:
    """What cosignature/v1 signs: the header line, ``time <t>``, then the checkpoint text."""
    return _COSIGNATURE_HEADER + b"time %d\n" % timestamp + text.encode()


def cosignature_timestamp(signature: Signature) -> int:
    """The POSIX time a cosignature/v1 was made (unverified: check the signature first)."""
    if len(signature.signature) != 8 + 64:
        raise MalformedNote(f"a cosignature/v1 holds 72 bytes after the key ID, not {len(signature.signature)}")
    return int.from_bytes(signature.signature[:8], "big")


def _b64(text: str, error: type[NoteError], what: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise error(f"{what} is not standard base64") from exc
    if base64.b64encode(raw).decode() != text:
        raise error(f"{what} is not canonical base64")
    return raw


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise MalformedNote("the note text does not end in a newline")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise MalformedNote("the note text holds a control character")


def _check_bytes(msg: bytes) -> str:
    if len(msg) > MAX_NOTE_BYTES:
        raise MalformedNote(f"the note has {len(msg)} bytes, more than {MAX_NOTE_BYTES}")
    try:
        decoded = msg.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedNote(f"the note is not UTF-8 (byte {exc.start})") from exc
    for number, line in enumerate(decoded.split("\n"), 1):
        if len(line.encode()) > MAX_LINE_BYTES:
            raise MalformedNote(f"line {number} is longer than {MAX_LINE_BYTES} bytes")
        bad = next((c for c in line if ord(c) < 0x20), None)
        if bad is not None:
            raise MalformedNote(f"line {number} holds the control character {ord(bad):#04x}")
    if not decoded.endswith("\n"):
        raise MalformedNote("the note does not end in a newline")
    return decoded


def parse_signature_line(line: str) -> Signature:
    """One signature line without its newline, ``— name base64``."""
    if not line.startswith(_DASH):
        raise MalformedNote(f"{line[:40]!r} is not a signature line (— name signature)")
    name, space, encoded = line[len(_DASH):].partition(" ")
    if not space or not valid_name(name):
        raise MalformedNote(f"signature line {line[:40]!r} has no valid key name")
    raw = _b64(encoded, MalformedNote, f"the signature of {name}")
    if len(raw) < 5:
        raise MalformedNote(f"the signature of {name} is shorter than a key ID and a signature")
    return Signature(name, int.from_bytes(raw[:4], "big"), raw[4:])


def parse(msg: bytes) -> Note:
    """Split a signed note into its text and signature lines, checking only its form."""
    decoded = _check_bytes(msg)
    split = decoded.rfind("\n\n")
    if split < 0:
        raise MalformedNote("the note has no blank line before its signatures")
    text, block = decoded[: split + 1], decoded[split + 2:]
    if not block:
        raise MalformedNote("the note has no signature")
    signatures = tuple(parse_signature_line(line) for line in block[:-1].split("\n"))
    if len(signatures) > MAX_SIGNATURES:
        raise MalformedNote(f"the note has {len(signatures)} signatures, more than {MAX_SIGNATURES}")
    seen: set[tuple[str, int]] = set()
    for signature in signatures:
        key = (signature.name, signature.key_id)
        if key in seen:
            raise MalformedNote(f"two signatures from key {signature.name}+{signature.key_id:08x}")
        seen.add(key)
    return Note(text, signatures)


@dataclass(frozen=True)
class Opened:
    """A note whose known signatures all verified: ``verified`` by trusted keys, the rest unknown."""

    text: str
    verified: tuple[tuple[Verifier, Signature], ...]
    unverified: tuple[Signature, ...]

    def signed_by(self, verifier: Verifier) -> Signature | None:
        """The signature this trusted key made on the note, if any."""
        return next((sig for v, sig in self.verified if v == verifier), None)


def open_note(msg: bytes, verifiers: Iterable[Verifier]) -> Opened:
    """Parse ``msg`` and verify it against trusted keys.

    Signatures from unknown keys (no trusted key with that name *and* ID) are kept aside,
    unverified; one from a known key that fails refuses the whole note
    (:class:`InvalidSignature`); so does a note with no signature from a known key
    (:class:`UnverifiedNote`).
    """
    note = parse(msg)
    known: dict[tuple[str, int], Verifier] = {}
    ambiguous: set[tuple[str, int]] = set()
    for verifier in verifiers:
        key = (verifier.name, verifier.key_id)
        if key in known and known[key] != verifier:
            ambiguous.add(key)
        known[key] = verifier
    verified: list[tuple[Verifier, Signature]] = []
    unverified: list[Signature] = []
    for signature in note.signatures:
        key = (signature.name, signature.key_id)
        if key in ambiguous:
            raise AmbiguousKey(f"ambiguous key {signature.name}+{signature.key_id:08x}")
        verifier = known.get(key)
        if verifier is None:
            unverified.append(signature)
        elif verifier.verify(note.text, signature.signature):
            verified.append((verifier, signature))
        else:
            raise InvalidSignature(f"invalid signature for key {signature.name}+{signature.key_id:08x}")
    if not verified:
        raise UnverifiedNote("the note has no verifiable signature")
    return Opened(note.text, tuple(verified), tuple(unverified))


def sign(text: str, *signers: Signer, existing: Sequence[Signature] = (), timestamp: int | None = None) -> bytes:
    """A signed note of ``text``: ``existing`` signatures, each signer's replacing its own."""
    _check_text(text)
    if not signers and not existing:
        raise MalformedNote("a note needs at least one signature")
    fresh = [s.sign(text, timestamp=timestamp) for s in signers]
    replaced = {(s.name, s.key_id) for s in fresh}
    kept = [s for s in existing if (s.name, s.key_id) not in replaced]
    return Note(text, tuple(kept + fresh)).encode()


@dataclass(frozen=True)
class Checkpoint:
    """A tlog-checkpoint's text: origin, tree size, root hash and extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or any(ord(c) < 0x20 for c in self.origin):
            raise MalformedCheckpoint("the origin is empty or holds a control character")
        if not 0 <= self.size < 2**64:
            raise MalformedCheckpoint(f"tree size {self.size} is out of range")
        if len(self.root_hash) != 32:
            raise MalformedCheckpoint(f"the root hash has {len(self.root_hash)} bytes, not 32 (SHA-256)")
        if any(not line or any(ord(c) < 0x20 for c in line) for line in self.extensions):
            raise MalformedCheckpoint("an extension line is empty or holds a control character")

    def text(self) -> str:
        """The checkpoint as note text, each line ending in a newline."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode(), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Read a checkpoint from a note's text (as :attr:`Opened.text` gives it)."""
        if not text.endswith("\n"):
            raise MalformedCheckpoint("the checkpoint does not end in a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise MalformedCheckpoint(f"a checkpoint has at least 3 lines, not {len(lines)}")
        origin, size, root, *extensions = lines
        if not _DECIMAL.fullmatch(size):
            raise MalformedCheckpoint(f"tree size {size[:40]!r} is not a decimal without leading zeroes")
        return cls(origin, int(size), _b64(root, MalformedCheckpoint, "the root hash"), tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signer: Signer) -> bytes:
    """The log's signed note of ``checkpoint`` (the key name SHOULD be the origin)."""
    return sign(checkpoint.text(), signer)


def open_checkpoint(msg: bytes, log: Verifier, others: Iterable[Verifier] = ()) -> tuple[Checkpoint, Opened]:
    """Verify a checkpoint note: the log's key must have signed it; ``others`` (witnesses) may."""
    opened = open_note(msg, [log, *others])
    if opened.signed_by(log) is None:
        raise UnverifiedNote(f"the checkpoint is not signed by the log's key {log.name}+{log.key_id:08x}")
    return Checkpoint.parse(opened.text), opened


def cosignature_lines(text: str, signer: Signer, timestamp: int) -> str:
    """A witness's answer: its cosignature/v1 line(s) on a checkpoint text."""
    if signer.verifier.signature_type != COSIGNATURE_V1:
        raise ValueError("a witness cosigns with a cosignature/v1 (0x04) key")
    return signer.sign(text, timestamp=timestamp).line()


def add_signature_lines(msg: bytes, lines: str) -> bytes:
    """``msg`` with signature ``lines`` added (each replacing one from the same key)."""
    note = parse(msg)
    extra = [parse_signature_line(line) for line in lines.splitlines()]
    replaced = {(s.name, s.key_id) for s in extra}
    kept = [s for s in note.signatures if (s.name, s.key_id) not in replaced]
    return Note(note.text, tuple(kept + extra)).encode()


__all__ = [
    "COSIGNATURE_V1", "ED25519", "AmbiguousKey", "Checkpoint", "InvalidSignature", "MalformedCheckpoint",
    "MalformedKey", "MalformedNote", "Note", "NoteError", "Opened", "Signature", "Signer", "UnverifiedNote",
    "Verifier", "add_signature_lines", "cosignature_lines", "cosignature_timestamp", "cosigned_message",
    "key_id", "open_checkpoint", "open_note", "parse", "parse_signature_line", "sign", "sign_checkpoint",
]
