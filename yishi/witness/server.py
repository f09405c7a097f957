"""``yishi witness serve``: the HTTP witness a third party runs (https://c2sp.org/tlog-witness).

* ``POST /add-checkpoint``: ``old <size>``, the consistency proof lines, a blank line and
  the log's signed checkpoint; answers this witness's cosignature/v1 line (text/plain).
  400 for a body that is not such a request, 403 when the log's key did not sign it, 404
  for a log it does not witness, 409 (``text/x.tlog.size``: the size it last cosigned)
  when ``old`` is not that size or the same size comes with another root, 422 when the
  proof fails. Errors other than 409 are problem+json.
* ``GET /checkpoint?origin=…`` (a Yishi extension, tlog-witness leaves monitoring open):
  the newest checkpoint it cosigned for that log, with its cosignature, so an auditor can
  compare what the log showed it with what it showed the witness (a split view).
* ``GET /readyz``: 200 once the state file is open.

The configuration is a TOML file::

    name = "board.gulou.example/witness"   # the key name of its cosignatures
    key_file = "witness.pem"               # Ed25519 PKCS#8 PEM (yishi witness keygen)
    state = "witness.sqlite3"              # the last cosigned head per log
    [[logs]]
    origin = "yishi.gulou/voting"
    keys = ["yishi.gulou/voting+1a2b3c4d+AQ…"]   # the log's verifier keys

Relative paths are read from the file's folder.
"""

from __future__ import annotations

import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse, Response

from yishi import problems
from yishi.tlog import note
from yishi.tlog.note import COSIGNATURE_V1, ED25519, NoteError, Signer, Verifier
from yishi.witness import core
from yishi.witness.store import WitnessStore

SIZE_MEDIA_TYPE = "text/x.tlog.size"


class ConfigError(ValueError):
    """A witness configuration that cannot be used; the message names the setting."""


@dataclass(frozen=True)
class WitnessConfig:
    """Who the witness is (its cosigning key), what it witnesses, where it keeps its state."""

    signer: Signer
    logs: dict[str, core.Log]
    state: Path

    @classmethod
    def load(cls, path: str | Path) -> WitnessConfig:
        """Read the TOML file at ``path`` (see the module's documentation)."""
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read the witness configuration {path}: {exc}") from exc
        base = path.parent
        try:
            name, key_file, state = raw["name"], raw["key_file"], raw.get("state", "witness.sqlite3")
        except KeyError as exc:
            raise ConfigError(f"{path}: {exc.args[0]} is missing") from None
        try:
            key = load_pem_private_key((base / key_file).read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(f"cannot read the witness key {base / key_file}: {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"{base / key_file} is not an Ed25519 private key")
        logs = {}
        for entry in raw.get("logs", []):
            try:
                keys = tuple(Verifier.parse(k) for k in entry["keys"])
                origin = entry["origin"]
            except KeyError as exc:
                raise ConfigError(f"{path}: a [[logs]] entry has no {exc.args[0]}") from None
            except NoteError as exc:
                raise ConfigError(f"{path}: log {entry.get('origin')!r}: {exc}") from None
            if any(k.signature_type != ED25519 for k in keys):
                raise ConfigError(f"{path}: log {origin!r}: a log key is an Ed25519 (type 0x01) verifier key")
            logs[origin] = core.Log(origin, keys)
        try:
            signer = Signer(name, key, COSIGNATURE_V1)
        except NoteError as exc:
            raise ConfigError(f"{path}: name: {exc}") from None
        return cls(signer, logs, base / state)


class Witness:
    """The witness's one operation, ``add_checkpoint``, atomic over its state file."""

    def __init__(self, config: WitnessConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.store = WitnessStore(config.state)
        self.clock = clock

    def add_checkpoint(self, body: bytes) -> str:
        """Cosign the checkpoint in an add-checkpoint ``body``, or raise the :class:`core.Refusal`.

        The latest head is read, checked against and replaced in one write transaction:
        two requests from the same old size are serialised, and the second gets 409.
        """
        request = core.parse_request(body)
        origin = core.origin_of(request.checkpoint)
        log = self.config.logs.get(origin)
        if log is None:
            raise core.UnknownLog(f"this witness does not witness the log {origin!r}")
        with self.store.transaction() as tx:
            latest = tx.latest(origin)
            try:
                checkpoint = core.check(request, log, latest.head if latest else None)
            except core.Refusal as refusal:
                if refusal.evidence:
                    tx.keep_evidence(origin, refusal.message, body)
                raise
            # the body exactly as the log signed it (check() parsed it strictly, so it is canonical)
            line = note.cosignature_lines(note.parse(request.checkpoint).text, self.config.signer, int(self.clock()))
            tx.advance(origin, core.TreeHead(checkpoint.size, checkpoint.root_hash),
                       note.add_signature_lines(request.checkpoint, line))
        return line


def create_witness_app(config: WitnessConfig, clock: Callable[[], float] = time.time) -> FastAPI:
    """The witness's ASGI application."""
    witness = Witness(config, clock)
    app = FastAPI(title="Yishi witness", description=__doc__, version="1")
    problems.install(app)
    app.state.witness = witness

    @app.post("/add-checkpoint", response_class=PlainTextResponse)
    async def add_checkpoint(request: Request) -> Response:
        """Cosign a checkpoint consistent with the last one cosigned (tlog-witness)."""
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > core.MAX_REQUEST_BYTES:
                return problems.problem(413, f"the request has more than {core.MAX_REQUEST_BYTES} bytes")
        try:
            line = await run_in_threadpool(witness.add_checkpoint, bytes(body))
        except core.Conflict as conflict:
            # exactly this type, without the charset Starlette would add to a text/* one
            return Response(f"{conflict.size}\n", status_code=409, headers={"content-type": SIZE_MEDIA_TYPE})
        except core.Refusal as refusal:
            return problems.problem(refusal.status, refusal.message)
        return PlainTextResponse(line, media_type="text/plain; charset=utf-8")

    @app.get("/checkpoint", response_class=PlainTextResponse)
    async def latest(origin: str) -> Response:
        """The newest checkpoint this witness cosigned for ``origin``, with its cosignature."""
        head = await run_in_threadpool(witness.store.latest, origin)
        if head is None:
            return problems.problem(404, f"no checkpoint cosigned for {origin!r}")
        return PlainTextResponse(head.note.decode(), media_type="text/plain; charset=utf-8")

    @app.get("/readyz", response_class=PlainTextResponse)
    async def readyz() -> str:
        """Ready: the state file is open."""
        return "ok\n"

    return app
