"""Verification: hash chains, signed checkpoints, and Kafka against the stores.

Three independent checks, each naming the first broken store position it can:

* :func:`verify_store` recomputes a service's stream chains and log chain
  (:meth:`yishi.store.EventStore.verify`) and compares the log chain with every signed
  checkpoint (:func:`check_checkpoints`). The chains catch an altered, deleted,
  inserted or reordered row; only the checkpoints catch a rewrite whose author
  recomputed every hash, since they cannot re-sign.
* :func:`check_log` does the same offline, for an exported bundle.
* :func:`check_kafka` reads the service's topics from offset zero and checks that
  every published event is in the store with an identical envelope and body, and that
  everything the relay confirmed is on Kafka.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from contracts.envelope import Envelope, EnvelopeError
from yishi.audit.checkpoints import Checkpoint, read_checkpoints
from yishi.audit.sources import kafka_records, stored_events, translator
from yishi.commands import REPLY_TOPIC_PREFIX
from yishi.relay import to_envelope
from yishi.store import GENESIS, EventStore, RecordedEvent, canonical_metadata, chain_hash, event_digest, seal_link
from yishi.tlog import log as tlog
from yishi.tlog import merkle, note


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: the store position it concerns (None when there is none, e.g. a
    Kafka message with no stored event) and what is wrong."""

    service: str
    position: int | None
    reason: str


@dataclass
class Verdict:
    """The findings of a check and how much it looked at."""

    checked: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def first(self) -> Finding | None:
        """The finding at the lowest store position (positionless ones last)."""
        return min(self.findings, key=_order) if self.findings else None

    def extend(self, other: "Verdict") -> None:
        """Add another check's counts and findings."""
        for what, n in other.checked.items():
            self.checked[what] = self.checked.get(what, 0) + n
        self.findings.extend(other.findings)
        self.findings.sort(key=_order)


def _order(f: Finding) -> tuple[int, int]:
    return (0, f.position) if f.position is not None else (1, 0)


def check_checkpoints(service: str, checkpoints: Sequence[Checkpoint], chains: dict[int, tuple[int, bytes]],
                      public_key: bytes) -> list[Finding]:
    """Compare each checkpoint with the log chain (``seq -> (position, chain)``).

    A checkpoint not signed by ``public_key`` is itself suspect; one whose chain differs
    proves that history at or before its position was rewritten (after the position of
    the last checkpoint that still matches).
    """
    findings = []
    last_good = None
    for cp in checkpoints:
        if not cp.signed_by(public_key):
            findings.append(Finding(service, cp.position, f"checkpoint at seq {cp.seq} is not signed by the "
                                    "trusted key: forged or altered"))
            continue
        actual = chains.get(cp.seq)
        if actual is None:
            findings.append(Finding(service, cp.position, f"the signed checkpoint at seq {cp.seq} (position "
                                    f"{cp.position}) is beyond the log: sealed history was removed"))
        elif actual != (cp.position, cp.chain):
            since = f"after position {last_good.position}" if last_good else "from the start"
            findings.append(Finding(service, cp.position, f"log chain at seq {cp.seq} differs from the checkpoint "
                                    f"signed {cp.signed_at.isoformat()}: history {since} up to position "
                                    f"{cp.position} was rewritten (the chain was recomputed to hide it)"))
        else:
            last_good = cp
    return findings


def check_tree_heads(service: str, checkpoints: Sequence[Checkpoint], roots: dict[int, bytes],
                     public_key: bytes, already: Iterable[Finding] = ()) -> list[Finding]:
    """Compare each checkpoint's Merkle tree head with the tree recomputed from the events
    (``seq -> root``), and check its signed note (origin, size, root) against ``public_key``.
    Checkpoints signed before the Merkle log (no root), and those ``already`` found broken
    by :func:`check_checkpoints`, are skipped: one finding per broken checkpoint."""
    already = {f.position for f in already}
    findings = []
    for cp in checkpoints:
        if cp.root is None or cp.position in already:
            continue
        if cp.note is not None:
            origin = cp.note.split("\n", 1)[0]
            try:
                signed, _ = note.open_checkpoint(cp.note.encode(), note.Verifier(origin, note.ED25519, public_key))
            except note.NoteError as exc:
                findings.append(Finding(service, cp.position, f"the signed note of the checkpoint at seq {cp.seq} "
                                        f"does not verify against the trusted key: {exc}"))
            else:
                if (signed.size, signed.root_hash) != (cp.seq, cp.root):
                    findings.append(Finding(service, cp.position, f"the signed note of the checkpoint at seq "
                                            f"{cp.seq} is of another tree ({signed.size} leaves)"))
        actual = roots.get(cp.seq)
        if actual is None:
            findings.append(Finding(service, cp.position, f"the Merkle tree has fewer leaves than the checkpoint "
                                    f"at seq {cp.seq}: sealed history was removed"))
        elif actual != cp.root:
            findings.append(Finding(service, cp.position, f"the Merkle tree of the events up to seq {cp.seq} does "
                                    "not have the checkpoint's root: history up to it was rewritten"))
    return findings


class _Heads:
    """The Merkle tree heads of a log read leaf by leaf, at the sizes wanted."""

    def __init__(self, wanted: Iterable[int]) -> None:
        self.wanted, self.roots = set(wanted), {}
        self.size, self.frontier = 0, []

    def add(self, position: int, stream_id: str, version: int, event_hash: bytes) -> None:
        _, self.frontier = merkle.append(self.size, self.frontier,
                                         [tlog.leaf_hash(position, stream_id, version, event_hash)])
        self.size += 1
        if self.size in self.wanted:
            self.roots[self.size] = merkle.fold(self.frontier)


async def verify_store(pool: asyncpg.Pool, service: str, public_key: bytes | None,
                       progress: Callable[..., None] | None = None) -> Verdict:
    """Chains of one service's store, and its checkpoints against ``public_key`` (when
    None, the key recorded with the checkpoints is used: that proves nothing against a
    database administrator, and the finding says so). ``progress`` as for
    :meth:`yishi.store.EventStore.verify`."""
    report = await EventStore(pool).verify(progress)
    verdict = Verdict({"events": report.events_checked, "sealed": report.sealed},
                      [Finding(service, p.position, p.reason) for p in report.problems])
    checkpoints = await read_checkpoints(pool, service)
    verdict.checked["checkpoints"] = len(checkpoints)
    if checkpoints:
        if public_key is None:
            public_key = checkpoints[-1].public_key
            verdict.findings.append(Finding(service, None, "no trusted public key given: checkpoints checked "
                                            "against the key stored beside them, which a DBA could replace"))
        chains = {r["seq"]: (r["position"], r["chain"]) for r in await pool.fetch(
            "SELECT seq, position, chain FROM log_chain WHERE seq = ANY($1::bigint[])", [c.seq for c in checkpoints])}
        broken = check_checkpoints(service, checkpoints, chains, public_key)
        verdict.findings.extend(broken)
        heads = _Heads(c.seq for c in checkpoints if c.root is not None)
        async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            async for r in conn.cursor("SELECT e.position, e.stream_id, e.version, e.hash FROM log_chain c "
                                       "JOIN events e USING (position) ORDER BY c.seq", prefetch=5000):
                heads.add(r["position"], r["stream_id"], r["version"], r["hash"])
        verdict.findings.extend(check_tree_heads(service, checkpoints, heads.roots, public_key, broken))
    verdict.findings.sort(key=_order)
    return verdict


def check_log(service: str, events: Iterable[RecordedEvent], checkpoints: Sequence[Checkpoint],
              public_key: bytes | None) -> Verdict:
    """Offline: recompute every stream chain and the log chain over ``events`` (in log
    order, as exported) and compare them with the stored hashes and the checkpoints."""
    findings: list[Finding] = []
    heads: dict[str, tuple[int, bytes]] = {}  # stream -> (version, hash)
    wanted = {c.seq for c in checkpoints}
    chains: dict[int, tuple[int, bytes]] = {}
    tree = _Heads(c.seq for c in checkpoints if c.root is not None)
    seq, link = 0, GENESIS
    for e in events:
        tree.add(e.position, e.stream_id, e.version, e.hash)
        version, prev = heads.get(e.stream_id, (0, GENESIS))
        if e.version != version + 1:
            findings.append(Finding(service, e.position, f"stream {e.stream_id!r} jumps from version {version} "
                                    f"to {e.version}: an event is missing"))
        digest = event_digest(e.stream_id, e.version, e.event_id, e.district, e.topic, e.state,
                              canonical_metadata(e.metadata))
        if chain_hash(prev, digest) != e.hash:
            findings.append(Finding(service, e.position, f"event {e.stream_id!r} v{e.version} does not match its "
                                    "hash: content altered or events reordered"))
        heads[e.stream_id] = (e.version, e.hash)
        seq += 1
        link = seal_link(link, e.hash, e.position)
        if seq in wanted:
            chains[seq] = (e.position, link)
    if checkpoints:
        if public_key is None:
            public_key = checkpoints[-1].public_key
            findings.append(Finding(service, None, "no trusted public key given: checkpoints checked against the "
                                    "key in the bundle, which whoever wrote the bundle could replace"))
        broken = check_checkpoints(service, checkpoints, chains, public_key)
        findings.extend(broken)
        findings.extend(check_tree_heads(service, checkpoints, tree.roots, public_key, broken))
    return Verdict({"events": seq, "checkpoints": len(checkpoints)}, sorted(findings, key=_order))


_ENVELOPE_FIELDS = ("source", "type", "subject", "time", "district", "correlation_id", "causation_id",
                    "schema_version")


async def check_kafka(pool: asyncpg.Pool, service: str, bootstrap: str, districts: Iterable[str] | None = None,
                      kafka_options: dict[str, Any] | None = None) -> Verdict:
    """Every message on ``service``'s events topics is a stored event with the same
    envelope and body, and every event the relay confirmed (up to its stored cursor) is
    on Kafka."""
    districts = list(districts) if districts is not None else None
    translate = translator(service)
    expected: dict[str, tuple[RecordedEvent, Envelope]] = {}
    async for event in stored_events(pool):
        if (districts is not None and event.district not in districts) or event.topic.startswith(REPLY_TOPIC_PREFIX):
            continue
        publication = translate(event)
        if publication is not None:
            expected[str(event.event_id)] = (event, to_envelope(event, service, publication))
    findings: list[Finding] = []
    seen: set[str] = set()
    messages = 0
    async for _, record in kafka_records(bootstrap, [service], districts, kafka_options):
        messages += 1
        where = f"{record.topic}[{record.partition}] offset {record.offset}"
        try:
            got = Envelope.from_kafka(record.headers or (), record.value, record.key)
        except EnvelopeError as exc:
            findings.append(Finding(service, None, f"{where}: not a valid envelope ({exc})"))
            continue
        stored = expected.get(got.id)
        if stored is None:
            findings.append(Finding(service, None, f"{where}: event {got.id} ({got.type}) is not in the store"))
            continue
        event, want = stored
        seen.add(got.id)
        differs = [f for f in _ENVELOPE_FIELDS if getattr(got, f) != getattr(want, f)]
        if got.data != want.data:
            differs.append(f"body (sha256 {hashlib.sha256(got.data).hexdigest()[:12]} on Kafka, "
                           f"{hashlib.sha256(want.data).hexdigest()[:12]} from the store)")
        if differs:
            findings.append(Finding(service, event.position, f"{where}: event {got.id} differs from the store in "
                                    + ", ".join(differs)))
    cursor = await pool.fetchrow("SELECT tx_id, position FROM relay_position WHERE name = 'kafka'")
    if cursor is not None:
        for event_id, (event, _) in expected.items():
            if event_id not in seen and (event.tx_id, event.position) <= (cursor["tx_id"], cursor["position"]):
                findings.append(Finding(service, event.position, f"event {event_id} was confirmed published by "
                                        "the relay but is not on Kafka"))
    return Verdict({"kafka messages": messages, "published events": len(expected)}, sorted(findings, key=_order))
