"""Self-contained export bundles, checked and replayed offline.

A bundle is a directory::

    manifest.json              format, services, counts, SHA-256 of every other file
    events/{service}.jsonl     the stored events in log order, one JSON object a line
                               (content, metadata and hashes: enough to recompute chains)
    checkpoints/{service}.jsonl  the signed checkpoints
    schemas/…                  the public JSON Schemas (contracts/schemas) the events map to

:func:`verify_bundle` checks the manifest's hashes, recomputes every chain and checks the
checkpoints against the auditor's public keys; the replay reads events with
:func:`bundle_events` and translates them as the service's relay does.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import asyncpg

import contracts
from yishi.audit.checkpoints import Checkpoint, read_checkpoints
from yishi.audit.sources import count_stored, record_from_json, record_to_json, stored_events
from yishi.audit.verify import Finding, Verdict, check_log
from yishi.store import RecordedEvent

FORMAT = "yishi-audit-bundle/1"
SCHEMAS = Path(contracts.__file__).parent / "schemas"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


async def export_bundle(pools: dict[str, asyncpg.Pool], path: Path,
                        progress: Callable[..., None] | None = None) -> dict:
    """Write the whole record of each service (``service -> pool``) to a new bundle at
    ``path``; returns the manifest. Whole logs only: the log chain spans every district.
    ``progress(0, total)`` is told how many events there are, then ``progress(n)`` as n
    more are written."""
    tick = progress or (lambda n, total=None: None)
    if progress is not None:
        tick(0, sum([await count_stored(pool) for pool in pools.values()]))
    path.mkdir(parents=True)
    (path / "events").mkdir()
    (path / "checkpoints").mkdir()
    services = {}
    for service, pool in pools.items():
        count = 0
        with (path / "events" / f"{service}.jsonl").open("w", encoding="utf-8") as f:
            async for event in stored_events(pool):
                f.write(json.dumps(record_to_json(event), ensure_ascii=False, separators=(",", ":")) + "\n")
                count += 1
                if count % 1000 == 0:
                    tick(1000)
        tick(count % 1000)
        checkpoints = await read_checkpoints(pool, service)
        with (path / "checkpoints" / f"{service}.jsonl").open("w", encoding="utf-8") as f:
            f.writelines(json.dumps(c.to_json()) + "\n" for c in checkpoints)
        services[service] = {"events": count, "checkpoints": len(checkpoints),
                             "public_key": checkpoints[-1].public_key.hex() if checkpoints else None}
    shutil.copytree(SCHEMAS, path / "schemas")
    manifest = {
        "format": FORMAT,
        "created_at": datetime.now(timezone.utc).isoformat(),
        "services": services,
        "files": {str(p.relative_to(path)): _sha256(p) for p in sorted(path.rglob("*")) if p.is_file()},
    }
    (path / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")
    return manifest


def read_manifest(path: Path) -> dict:
    """The bundle's manifest; ValueError if it is not a bundle of this format."""
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} bundle")
    return manifest


def bundle_events(path: Path, service: str) -> Iterator[RecordedEvent]:
    """A service's events from the bundle, in log order."""
    with (path / "events" / f"{service}.jsonl").open("rb") as f:
        for line in f:
            yield record_from_json(line)


def bundle_checkpoints(path: Path, service: str) -> list[Checkpoint]:
    """A service's signed checkpoints from the bundle."""
    with (path / "checkpoints" / f"{service}.jsonl").open("rb") as f:
        return [Checkpoint.from_json(json.loads(line)) for line in f]


def verify_bundle(path: Path, public_keys: dict[str, bytes] | None = None,
                  progress: Callable[..., None] | None = None,
                  checkpoints: dict[str, tuple[bytes, str]] | None = None) -> Verdict:
    """Check a bundle offline: every file against the manifest (missing, extra, altered),
    then each service's chains and checkpoints (against ``public_keys`` when given), and
    its events against ``checkpoints``, ``service -> (signed note, trusted log key)`` kept
    from the service itself: the Merkle root recomputed from the bundle's events must be
    the signed one (:func:`yishi.audit.proofs.check_bundle_leaves`).
    ``progress(0, total)`` is told how many events the manifest lists, then
    ``progress(n)`` as n more are checked."""
    manifest = read_manifest(path)
    tick = progress or (lambda n, total=None: None)
    tick(0, sum(info["events"] for info in manifest["services"].values()))

    def counted(events: Iterator[RecordedEvent]) -> Iterator[RecordedEvent]:
        n = 0
        for n, event in enumerate(events, 1):
            if n % 1000 == 0:
                tick(1000)
            yield event
        tick(n % 1000)

    listed = manifest["files"]
    present = {str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()} - {"manifest.json"}
    verdict = Verdict({"files": len(listed)})
    for name in sorted(set(listed) | present):
        if name not in present:
            verdict.findings.append(Finding("bundle", None, f"{name} is listed in the manifest but missing"))
        elif name not in listed:
            verdict.findings.append(Finding("bundle", None, f"{name} is not listed in the manifest"))
        elif _sha256(path / name) != listed[name]:
            verdict.findings.append(Finding("bundle", None, f"{name} does not match its SHA-256 in the manifest"))
    for service in manifest["services"]:
        key = (public_keys or {}).get(service)
        verdict.extend(check_log(service, counted(bundle_events(path, service)), bundle_checkpoints(path, service),
                                 key))
    for service, (signed, log_key) in (checkpoints or {}).items():
        verdict.extend(_against_checkpoint(path, manifest, service, signed, log_key))
    return verdict


def _against_checkpoint(path: Path, manifest: dict, service: str, signed: bytes, log_key: str) -> Verdict:
    from yishi.audit.proofs import Trusted, check_bundle_leaves, open_checkpoint

    if service not in manifest["services"]:
        return Verdict({}, [Finding(service, None, "a checkpoint was given but the bundle holds no such service")])
    checkpoint, findings = open_checkpoint(signed, Trusted(log_key))
    read = 0
    if checkpoint is not None:
        read, findings = check_bundle_leaves(checkpoint, bundle_events(path, service))
    return Verdict({"leaves": read}, [Finding(service, None, f) for f in findings])
