"""``yishi audit checkpoint``, ``inclusion`` and ``consistency``: a service's Merkle log
checked from outside, through its public ``/log/…`` endpoints, against a log key the
auditor trusts (:mod:`yishi.audit.proofs` does the checking; these fetch and print).
Registered on ``yishi audit`` by :mod:`yishi.audit.cli`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from yishi.cli_support import UserError, console

log_app = typer.Typer()


UrlArg = Annotated[str, typer.Argument(help="the service's base URL, e.g. http://127.0.0.1:8002")]
LogKeyOpt = Annotated[str, typer.Option("--log-key", help="the trusted key of the service's log: a note verifier "
                                        "key (origin+keyid+key) or its Ed25519 public key in hex")]


def _findings(findings: list[str], ok: str) -> None:
    """Print the findings (exit 1) or ``ok``."""
    for finding in findings:
        console.print(f"[red]{finding}[/red]")
    if findings:
        raise typer.Exit(1)
    console.print(f"[green]{ok}[/green]")


def _trusted_checkpoint(signed: bytes, log_key: str, where: str):
    from yishi.audit.proofs import Trusted, open_checkpoint

    checkpoint, findings = open_checkpoint(signed, Trusted(log_key))
    if checkpoint is None:
        _findings([f"{where}: {f}" for f in findings], "")
    return checkpoint


def _service(url: str):
    import httpx

    return httpx.Client(base_url=url, timeout=30)


def read_note(path: Path) -> bytes:
    """A kept checkpoint's bytes; one that cannot be read is a user error."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read the checkpoint {path}: {exc}", code=2) from exc


def _proving(run):
    """Run a check that asks a service; one it cannot ask is one line and exit 1."""
    from yishi.audit.proofs import ProofFailure

    try:
        return run()
    except ProofFailure as exc:
        raise UserError(str(exc)) from exc


@log_app.command()
def checkpoint(url: UrlArg, log_key: LogKeyOpt,
               save: Annotated[Optional[Path], typer.Option(help="keep the checkpoint in this file")] = None,
               previous: Annotated[Optional[Path], typer.Option(
                   help="a checkpoint kept earlier: the new one must extend it (consistency proof)")] = None) -> None:
    """Fetch the service's newest signed checkpoint and verify its signature (and that it
    extends --previous); exit 1 on any finding."""
    from yishi.audit.proofs import check_consistency, fetch, fetch_json

    def run() -> None:
        with _service(url) as client:
            signed = fetch(client, "/log/checkpoint").content
            new = _trusted_checkpoint(signed, log_key, "the service's checkpoint")
            console.print(f"{new.origin}: {new.size:,} leaves, root {new.root_hash.hex()}", markup=False)
            findings = []
            if previous is not None:
                old = _trusted_checkpoint(read_note(previous), log_key, str(previous))
                proof = (fetch_json(client, "/log/proof/consistency", {"from": old.size, "to": new.size})
                         if 0 < old.size < new.size else None)
                findings = check_consistency(old, new, proof)
            if save is not None and not findings:
                save.write_bytes(signed)
        _findings(findings, "checkpoint verified" + (f", consistent with {previous}" if previous else ""))

    _proving(run)


@log_app.command()
def inclusion(url: UrlArg, log_key: LogKeyOpt,
              event_id: Annotated[Optional[str], typer.Option(help="the event's id")] = None,
              stream: Annotated[Optional[str], typer.Option(help="or its stream id (with --version)")] = None,
              version: Annotated[Optional[int], typer.Option(help="and its version in the stream")] = None,
              event_hash: Annotated[Optional[str], typer.Option(help="the event hash (hex) you hold: the log's "
                                                                     "must be it")] = None,
              against: Annotated[Optional[Path], typer.Option(
                  "--checkpoint", help="prove against this kept checkpoint instead of the newest")] = None) -> None:
    """Prove that an event is in the service's log: its inclusion proof checked against a
    signed checkpoint; exit 1 on any finding."""
    from yishi.audit.proofs import check_inclusion, fetch, fetch_json

    if (event_id is None) == (stream is None or version is None):
        raise typer.BadParameter("give --event-id, or --stream and --version")
    params = {"event_id": event_id} if event_id else {"stream_id": stream, "version": version}

    def run() -> None:
        with _service(url) as client:
            signed = read_note(against) if against else fetch(client, "/log/checkpoint").content
            cp = _trusted_checkpoint(signed, log_key, str(against or "the service's checkpoint"))
            proof = fetch_json(client, "/log/proof/inclusion", {**params, "tree_size": cp.size})
        findings = check_inclusion(cp, proof, event_hash=bytes.fromhex(event_hash) if event_hash else None)
        leaf = proof["leaf"]
        _findings(findings, f"event {leaf['event_id']} ({leaf['stream_id']} v{leaf['version']}) is leaf "
                            f"{proof['leaf_index']} of the {cp.size:,} in {cp.origin}'s signed checkpoint")

    _proving(run)


@log_app.command()
def consistency(url: UrlArg, log_key: LogKeyOpt,
                old: Annotated[Path, typer.Option(help="a checkpoint kept earlier")],
                new: Annotated[Optional[Path], typer.Option(help="a later kept checkpoint (default: the "
                                                                 "service's newest)")] = None) -> None:
    """Prove that the service's log only grew since a kept checkpoint (nothing in it was
    rewritten or removed); exit 1 on any finding."""
    from yishi.audit.proofs import check_consistency, fetch, fetch_json

    def run() -> None:
        with _service(url) as client:
            first = _trusted_checkpoint(read_note(old), log_key, str(old))
            second = _trusted_checkpoint(read_note(new) if new else fetch(client, "/log/checkpoint").content,
                                         log_key, str(new or "the service's checkpoint"))
            proof = (fetch_json(client, "/log/proof/consistency", {"from": first.size, "to": second.size})
                     if 0 < first.size < second.size else None)
        _findings(check_consistency(first, second, proof),
                  f"the log of {second.size:,} leaves extends the checkpoint of {first.size:,}")

    _proving(run)
