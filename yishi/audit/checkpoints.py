"""Signed checkpoints: the head of a service's log chain, signed with the service's
Ed25519 key, recorded periodically in its ``checkpoints`` table.

The log chain (``log_chain``, see :meth:`yishi.store.EventStore.seal`) commits to every
event before it, but whoever can write the database can recompute it after rewriting
history. A checkpoint's signature cannot be recomputed without the private key, which
the database administrator does not hold: an auditor holding the public key checks that
the chain at each checkpoint's ``seq`` is still the signed one
(:func:`yishi.audit.verify.check_checkpoints`), which proves that nothing at or before
that point was rewritten.

Keys: ``YISHI_SIGNING_KEY_FILE`` names a PEM (PKCS#8) Ed25519 private key, one per
service in production (a Kubernetes secret). Without it (development, the embedded
stack) a key is generated once per service and kept in
``$XDG_STATE_HOME/yishi/keys/{service}.ed25519.pem`` (default ``~/.local/state``); its
public key is logged at start-up.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg
import structlog
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from yishi.clock import Clock, SystemClock
from yishi.tlog import log as tlog
from yishi.tlog import note

log = structlog.get_logger("yishi.audit.checkpoints")

# Table checkpoints: yishi/migrations/versions.

_DOMAIN = b"yishi-checkpoint-v1"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The log chain of ``service`` at ``seq`` (the event at ``position``), signed; and,
    since the Merkle log (:mod:`yishi.tlog`), the ``root`` of its tree of ``seq`` leaves
    and the C2SP signed ``note`` of that tree head (None on checkpoints signed before)."""

    service: str
    seq: int
    position: int
    chain: bytes
    signed_at: datetime
    public_key: bytes
    signature: bytes
    root: bytes | None = None
    note: str | None = None

    def message(self) -> bytes:
        """What is signed: service, seq, position and chain (signed_at is informational)."""
        return message(self.service, self.seq, self.position, self.chain)

    def signed_by(self, public_key: bytes) -> bool:
        """Whether the signature is valid for ``public_key`` (raw 32 bytes)."""
        try:
            Ed25519PublicKey.from_public_bytes(public_key).verify(self.signature, self.message())
        except (InvalidSignature, ValueError):
            return False
        return True

    def to_json(self) -> dict:
        """One JSON object, bytes as hex (the line format of bundles)."""
        return {"service": self.service, "seq": self.seq, "position": self.position, "chain": self.chain.hex(),
                "signed_at": self.signed_at.isoformat(), "public_key": self.public_key.hex(),
                "signature": self.signature.hex(), "root": self.root.hex() if self.root else None,
                "note": self.note}

    @classmethod
    def from_json(cls, d: dict) -> "Checkpoint":
        return cls(d["service"], d["seq"], d["position"], bytes.fromhex(d["chain"]),
                   datetime.fromisoformat(d["signed_at"]), bytes.fromhex(d["public_key"]),
                   bytes.fromhex(d["signature"]), bytes.fromhex(d["root"]) if d.get("root") else None,
                   d.get("note"))


def message(service: str, seq: int, position: int, chain: bytes) -> bytes:
    """The signed bytes; the service name is included so one service's checkpoint cannot
    vouch for another's log."""
    name = service.encode()
    return _DOMAIN + len(name).to_bytes(2, "big") + name + seq.to_bytes(8, "big") + position.to_bytes(8, "big") + chain


def public_bytes(key: Ed25519PrivateKey) -> bytes:
    """The raw 32-byte public key (what auditors are given, usually as hex)."""
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def default_key_dir() -> Path:
    """Where development keys are kept when no key file is configured."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "yishi" / "keys"


def load_signing_key(service: str, key_file: str | Path | None = None) -> Ed25519PrivateKey:
    """The service's signing key: ``key_file`` when given, else a development key
    generated once under :func:`default_key_dir` (logged with its public key)."""
    if key_file is not None:
        key = serialization.load_pem_private_key(Path(key_file).read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{key_file} is not an Ed25519 private key")
        return key
    path = default_key_dir() / f"{service}.ed25519.pem"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        # Written aside, then linked into place: of two processes starting together, the
        # first link wins and both use that whole key.
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    key = load_signing_key(service, path)
    log.warning("no YISHI_SIGNING_KEY_FILE: using a development checkpoint key", service=service,
                key_file=str(path), public_key=public_bytes(key).hex())
    return key


def default_origin(service: str, districts: Sequence[str]) -> str:
    """The origin of a service's Merkle log when ``YISHI_LOG_ORIGIN`` is unset:
    ``yishi.<districts joined by ,>/<service>``."""
    return f"yishi.{','.join(districts)}/{service}"


class Checkpointer:
    """Signs the log chain head of one service into its ``checkpoints`` table, at most
    once per ``interval`` seconds and only when the head moved; with it, the Merkle tree
    head at that size as a C2SP tlog-checkpoint of ``origin``, a signed note whose key
    name is the origin (:mod:`yishi.tlog.note`)."""

    def __init__(self, service: str, key: Ed25519PrivateKey, *, interval: float = 60.0,
                 clock: Clock | None = None, origin: str | None = None) -> None:
        self.service = service
        self.key = key
        self.public_key = public_bytes(key)
        self.interval = interval
        self.clock = clock or SystemClock()
        self.origin = origin or f"yishi/{service}"
        self.signer = note.Signer(self.origin, key)
        self._last = float("-inf")

    @property
    def verifier_key(self) -> str:
        """The note verifier key of this log (``origin+keyid+key``), what auditors trust."""
        return self.signer.verifier.vkey

    async def record(self, pool: asyncpg.Pool) -> Checkpoint | None:
        """Sign and store the current chain head if it is new and the interval has passed."""
        if time.monotonic() - self._last < self.interval:
            return None
        head = await pool.fetchrow(
            "SELECT seq, position, chain FROM log_chain WHERE seq > COALESCE((SELECT max(seq) FROM checkpoints), 0) "
            "ORDER BY seq DESC LIMIT 1")
        if head is None:
            return None
        root = signed = None
        if await tlog.size(pool) >= head["seq"]:  # else the sealer is still catching an old log up
            root = await tlog.root(pool, head["seq"])
            signed = note.sign_checkpoint(note.Checkpoint(self.origin, head["seq"], root), self.signer).decode()
        checkpoint = Checkpoint(self.service, head["seq"], head["position"], head["chain"], self.clock.now(),
                                self.public_key,
                                self.key.sign(message(self.service, head["seq"], head["position"], head["chain"])),
                                root, signed)
        await pool.execute(
            "INSERT INTO checkpoints (seq, position, chain, signed_at, public_key, signature, root, note) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (seq) DO NOTHING",
            checkpoint.seq, checkpoint.position, checkpoint.chain, checkpoint.signed_at, checkpoint.public_key,
            checkpoint.signature, checkpoint.root, checkpoint.note)
        self._last = time.monotonic()
        return checkpoint


async def read_checkpoints(pool: asyncpg.Pool, service: str) -> list[Checkpoint]:
    """Every checkpoint of the service whose ``pool`` is given, oldest first."""
    rows = await pool.fetch("SELECT seq, position, chain, signed_at, public_key, signature, root, note "
                            "FROM checkpoints ORDER BY seq")
    return [Checkpoint(service, **dict(r)) for r in rows]


async def newest_public_key(pool: asyncpg.Pool) -> tuple[bytes | None, int]:
    """The public key of the newest checkpoint in the store of ``pool`` (None when none
    is signed yet) and how many distinct keys its checkpoints were signed with."""
    try:
        row = await pool.fetchrow(
            "SELECT (SELECT public_key FROM checkpoints ORDER BY seq DESC LIMIT 1) AS newest, "
            "(SELECT count(DISTINCT public_key) FROM checkpoints) AS keys")
    except asyncpg.UndefinedTableError:  # the service never started on this database
        return None, 0
    return row["newest"], row["keys"]
