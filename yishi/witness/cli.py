"""``yishi witness serve|keygen`` (the witness a third party runs) and ``yishi audit
witnesses`` (k-of-n verification of checkpoints and split-view detection)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import httpx
import typer

from yishi.audit.cli import audit_app
from yishi.cli_support import UserError, console
from yishi.tlog import note
from yishi.tlog.note import COSIGNATURE_V1, NoteError, Signer, Verifier
from yishi.witness import core

witness_app = typer.Typer(help="A witness: cosigns a log's checkpoints only while they extend each other.",
                          no_args_is_help=True)


@witness_app.command()
def serve(config: Annotated[Path, typer.Option("--config", "-c", help="the witness's TOML configuration")],
          host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="port to listen on")] = 8010) -> None:
    """Run the witness (POST /add-checkpoint, per C2SP tlog-witness)."""
    import uvicorn

    from yishi.witness.server import ConfigError, WitnessConfig, create_witness_app

    try:
        loaded = WitnessConfig.load(config)
    except ConfigError as exc:
        raise UserError(str(exc), code=2) from None
    console.print(f"witness {loaded.signer.verifier.vkey} on http://{host}:{port}, "
                  f"{len(loaded.logs)} log(s), state {loaded.state}", soft_wrap=True, highlight=False)
    uvicorn.run(create_witness_app(loaded), host=host, port=port, log_level="warning")


@witness_app.command()
def keygen(name: Annotated[str, typer.Option(help="the witness's key name, e.g. board.example/witness")],
           out: Annotated[Path, typer.Option(help="where to write the private key (PEM, mode 0600)")]) -> None:
    """Make a witness key; prints its cosignature/v1 verifier key, the one logs and auditors trust."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    if out.exists():
        raise UserError(f"{out} exists: not overwriting a key", code=2)
    key = Ed25519PrivateKey.generate()
    try:
        signer = Signer(name, key, COSIGNATURE_V1)
    except NoteError as exc:
        raise UserError(str(exc), code=2) from None
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    typer.echo(signer.verifier.vkey)


@witness_app.command()
def evidence(config: Annotated[Path, typer.Option("--config", "-c", help="the witness's TOML configuration")],
             origin: Annotated[Optional[str], typer.Option(help="only this log (default all it witnesses)")] = None,
             out: Annotated[Optional[Path], typer.Option(help="also write each kept request to this folder")] = None,
             ) -> None:
    """List the requests the witness refused although the log had signed them (forks, failing
    proofs): each is the log's own signed checkpoint of a history it must not have shown."""
    from yishi.witness.server import ConfigError, WitnessConfig
    from yishi.witness.store import WitnessStore

    try:
        loaded = WitnessConfig.load(config)
    except ConfigError as exc:
        raise UserError(str(exc), code=2) from None
    store = WitnessStore(loaded.state)
    count = 0
    for name in [origin] if origin else sorted(loaded.logs):
        for reason, request in store.evidence(name):
            count += 1
            checkpoint = note.Checkpoint.parse(note.parse(core.parse_request(request).checkpoint).text)
            typer.echo(f"{name} size {checkpoint.size}: {reason}")
            if out is not None:
                out.mkdir(parents=True, exist_ok=True)
                (out / f"evidence-{count}.txt").write_bytes(request)
    if not count:
        typer.echo("no evidence kept")


def _verifiers(values: list[str], what: str) -> list[Verifier]:
    try:
        return [Verifier.parse(v) for v in values]
    except NoteError as exc:
        raise UserError(f"{what}: {exc}", code=2) from None


def _read(source: str) -> bytes:
    if source.startswith(("http://", "https://")):
        try:
            response = httpx.get(source, timeout=10.0)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise UserError(f"cannot fetch {source}: {exc}") from None
        return response.content
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {source}: {exc}", code=2) from None


@audit_app.command("witnesses")
def audit_witnesses(
    checkpoint: Annotated[list[str], typer.Option("--checkpoint", help="a signed checkpoint: a URL (a service's "
                                                  "/log/checkpoint) or a file an auditor kept; repeatable")],
    log_key: Annotated[list[str], typer.Option("--log-key", help="a log's verifier key NAME+ID+KEY; repeatable")],
    witness: Annotated[Optional[list[str]], typer.Option(
        "--witness", help="a trusted witness's cosignature/v1 verifier key NAME+ID+KEY; repeatable")] = None,
    require: Annotated[int, typer.Option("--require", help="cosignatures needed from the trusted witnesses")] = 0,
    witness_url: Annotated[Optional[list[str]], typer.Option(
        "--witness-url", help="a witness to ask what it cosigned last (GET /checkpoint); repeatable")] = None,
) -> None:
    """Accept each checkpoint only with the log's signature and --require cosignatures of the
    --witness keys, and report a split view: one origin and size with two roots, as shown to
    the sources given (auditors' copies, services, witnesses). Exit 1 on either failure."""
    logs = {v.name: v for v in _verifiers(log_key, "--log-key")}
    witnesses = list(dict.fromkeys(_verifiers(witness or [], "--witness")))  # a key given twice counts once
    if not 0 <= require <= len(witnesses):
        raise UserError(f"--require {require} needs at least as many --witness keys (have {len(witnesses)})", code=2)
    failed = False
    seen: list[tuple[str, note.Checkpoint]] = []
    for source in checkpoint:
        msg = _read(source)
        try:
            origin = core.origin_of(msg)
            log = logs.get(origin)
            if log is None:
                raise UserError(f"{source}: no --log-key for the origin {origin!r}", code=2)
            result = core.verify_witnessed(msg, log, witnesses, require)
        except (core.Refusal, NoteError) as exc:
            console.print(f"[red]refused[/red] {source}: {exc}", soft_wrap=True, highlight=False)
            failed = True
            continue
        seen.append((source, result.checkpoint))
        cosigners = ", ".join(result.cosigners) or "no witness"
        typer.echo(f"ok {source}: {origin} size {result.checkpoint.size}, cosigned by {cosigners} "
                   f"({len(result.cosigners)} of {len(witnesses)}, {require} required)")
    for url in witness_url or []:
        for origin, log in logs.items():
            try:
                response = httpx.get(url.rstrip("/") + "/checkpoint", params={"origin": origin}, timeout=10.0)
            except httpx.HTTPError as exc:
                raise UserError(f"cannot ask the witness {url}: {exc}") from None
            if response.status_code == 404:
                continue
            try:
                response.raise_for_status()
                seen.append((url, note.open_checkpoint(response.content, log)[0]))
            except (httpx.HTTPError, NoteError) as exc:
                console.print(f"[red]refused[/red] {url} ({origin}): {exc}", soft_wrap=True, highlight=False)
                failed = True
    for split in core.split_views(seen):
        failed = True
        shown = "; ".join(f"{root} to {', '.join(sources)}" for root, sources in split.roots.items())
        typer.echo(f"SPLIT VIEW {split.origin} size {split.size}: {shown}")
    if failed:
        raise typer.Exit(1)
