"""Getting a service's checkpoints cosigned: the log side of C2SP tlog-witness.

Each service with ``YISHI_WITNESS_URLS`` runs :func:`cosign_forever` beside its sealer:
every round it takes its newest signed checkpoint (``checkpoints.note``), and for each
witness whose cosignature it lacks, sends ``add-checkpoint`` with a consistency proof
from the size that witness cosigned last (learnt from its answers: a 409 names it), checks
the cosignature line against the witness's key and adds it to the stored note, so that
``GET /log/checkpoint`` serves the checkpoint with its cosignatures. A witness that is
down, slow or refuses is logged and asked again next round: it never holds the sealer,
the checkpointer or a request up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg
import httpx
import structlog

from yishi.failures import sleep_or_stop
from yishi.metrics import WITNESS_COSIGNED
from yishi.tlog import log as tlog
from yishi.tlog import note
from yishi.tlog.note import COSIGNATURE_V1, NoteError, Verifier
from yishi.witness import core

log = structlog.get_logger("yishi.witness")


@dataclass(frozen=True)
class WitnessEndpoint:
    """A witness a log submits to: its ``add-checkpoint`` prefix URL and cosignature key."""

    url: str
    verifier: Verifier


def parse_witness_urls(value: str | None) -> list[WitnessEndpoint]:
    """``YISHI_WITNESS_URLS``: comma-separated ``URL VKEY`` pairs (the witness's
    cosignature/v1 verifier key, as ``yishi witness keygen`` prints it)."""
    endpoints = []
    for entry in (value or "").split(","):
        if not entry.strip():
            continue
        url, _, vkey = entry.strip().partition(" ")
        if not url.startswith(("http://", "https://")) or not vkey.strip():
            raise ValueError(f"YISHI_WITNESS_URLS: {entry.strip()!r} is not 'URL VKEY'")
        try:
            verifier = Verifier.parse(vkey.strip())
        except NoteError as exc:
            raise ValueError(f"YISHI_WITNESS_URLS: {url}: {exc}") from None
        if verifier.signature_type != COSIGNATURE_V1:
            raise ValueError(f"YISHI_WITNESS_URLS: {url}: a witness key is a cosignature/v1 (0x04) key")
        endpoints.append(WitnessEndpoint(url.rstrip("/"), verifier))
    return endpoints


def _has(msg: bytes, verifier: Verifier) -> bool:
    return any((s.name, s.key_id) == (verifier.name, verifier.key_id) for s in note.parse(msg).signatures)


@dataclass
class Submitter:
    """Submits the newest checkpoint to each witness; remembers each one's cosigned size."""

    witnesses: Sequence[WitnessEndpoint]
    log_key: Verifier
    client: httpx.AsyncClient
    service: str = ""
    sizes: dict[str, int] = field(default_factory=dict)

    async def round(self, pool: asyncpg.Pool) -> dict[str, str]:
        """One round over the witnesses; answers each witness's outcome, by URL (for tests and logs)."""
        row = await pool.fetchrow("SELECT seq, note FROM checkpoints WHERE note IS NOT NULL ORDER BY seq DESC LIMIT 1")
        if row is None:
            return {}
        outcomes = {}
        for witness in self.witnesses:
            current = await pool.fetchval("SELECT note FROM checkpoints WHERE seq = $1", row["seq"])
            if _has(current.encode(), witness.verifier):
                outcomes[witness.url] = "cosigned"
                continue
            try:
                outcomes[witness.url] = await self._submit(pool, witness, row["seq"], current)
            except (httpx.HTTPError, OSError, NoteError, core.Refusal) as exc:
                outcomes[witness.url] = f"failed: {exc!r}"
            if outcomes[witness.url] != "cosigned":
                log.warning("witness did not cosign; will retry", witness=witness.url, size=row["seq"],
                            outcome=outcomes[witness.url])
        return outcomes

    async def _submit(self, pool: asyncpg.Pool, witness: WitnessEndpoint, size: int, current: str) -> str:
        old = self.sizes.get(witness.url, 0)
        for _ in range(2):  # a 409 tells the size the witness has: ask once more from there
            if old > size:
                return f"the witness has cosigned size {old}, past this log's {size}"
            proof = await tlog.consistency_proof(pool, old, size) if 0 < old < size else []
            response = await self.client.post(f"{witness.url}/add-checkpoint",
                                              content=core.format_request(old, proof, current.encode()))
            if response.status_code == 409 and response.headers.get("content-type", "").startswith("text/x.tlog.size"):
                known = int(response.text.strip())
                self.sizes[witness.url] = known
                if known == old:  # same size, another root: the witness saw a fork of this log
                    return f"refused as a fork at size {old}"
                old = known
                continue
            if response.status_code != 200:
                return f"refused with {response.status_code}: {response.text[:200]}"
            lines = "".join(line + "\n" for line in response.text.splitlines()
                            if note.parse_signature_line(line).name == witness.verifier.name)
            cosigned = note.add_signature_lines(current.encode(), lines)
            opened = note.open_note(cosigned, [self.log_key, witness.verifier])
            if opened.signed_by(witness.verifier) is None:
                return "answered no cosignature from its key"
            self.sizes[witness.url] = size
            WITNESS_COSIGNED.labels(self.service, witness.verifier.name).set(size)
            updated = await pool.execute("UPDATE checkpoints SET note = $2 WHERE seq = $1 AND note = $3",
                                         size, cosigned.decode(), current)
            return "cosigned" if updated == "UPDATE 1" else "cosigned, stored by another"
        return f"the witness's size moved while asking (now {old})"


async def cosign_forever(service: str, pool: asyncpg.Pool, witnesses: Sequence[WitnessEndpoint],
                         log_key: Verifier, stop: asyncio.Event, interval: float, timeout: float = 10.0) -> None:
    """Run :meth:`Submitter.round` every ``interval`` seconds until ``stop``."""
    async with httpx.AsyncClient(timeout=timeout) as client:
        submitter = Submitter(witnesses, log_key, client, service)
        while not stop.is_set():
            try:
                await submitter.round(pool)
            except Exception as exc:  # noqa: BLE001 - a round that fails must not end the rounds after it
                log.warning("cosigning round failed; will retry", error=repr(exc), exc_info=exc)
            await sleep_or_stop(stop, interval)
