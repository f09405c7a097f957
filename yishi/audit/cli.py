"""``yishi audit …``: replay, reports, verification, export and recounts for auditors.

Sources: the services' stores (``YISHI_DATABASE_URL``; each service's schema is its name
unless ``--schema service=schema``), their Kafka topics from offset zero
(``--source kafka``, ``YISHI_KAFKA_BOOTSTRAP``) or an exported bundle (``--bundle``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from yishi.audit import reports
from yishi.audit.replay import (
    AsOf,
    Stats,
    audit_view_from_events,
    audit_view_from_kafka,
    audit_view_from_stores,
    service_state,
    service_state_from_store,
)
from yishi.audit.proofs_cli import log_app, read_note
from yishi.audit.verify import Verdict
from yishi.audit.views import AuditView
from yishi.cli_support import UserError, console, database_pool, progress
from yishi.names import SERVICES, check_service
from yishi.settings import Settings

audit_app = typer.Typer(help="Auditors: replay history, reports, verification and export.", no_args_is_help=True)


class Source(StrEnum):
    STORE = "store"
    KAFKA = "kafka"


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


ServicesOpt = Annotated[Optional[list[str]], typer.Option("--service", "-s", help="only these services (default all)")]
SchemaOpt = Annotated[Optional[list[str]], typer.Option("--schema", help="SERVICE=SCHEMA when not the service name")]
DistrictOpt = Annotated[Optional[str], typer.Option(help="only this district (default all)")]
AsOfOpt = Annotated[Optional[datetime], typer.Option("--as-of", help="events that occurred at or before this time")]
PositionOpt = Annotated[Optional[int], typer.Option("--position", help="stores: events at or before this log position")]
SourceOpt = Annotated[Source, typer.Option(help="read the stores or the Kafka topics (from offset zero)")]
BundleOpt = Annotated[Optional[Path], typer.Option("--bundle", help="replay an exported bundle instead")]
KeyOpt = Annotated[Optional[list[str]], typer.Option("--public-key", help="SERVICE=HEX: trusted checkpoint keys")]


def _services(names: list[str] | None) -> list[str]:
    return [check_service(n) for n in (names or SERVICES)]


def _pairs(values: list[str] | None, what: str) -> dict[str, str]:
    out = {}
    for value in values or ():
        name, sep, rest = value.partition("=")
        if not sep:
            raise typer.BadParameter(f"{what} must be SERVICE=VALUE, got {value!r}")
        out[check_service(name)] = rest
    return out


def _keys(values: list[str] | None) -> dict[str, bytes]:
    return {s: bytes.fromhex(k) for s, k in _pairs(values, "--public-key").items()}


@contextlib.asynccontextmanager
async def _pools(services: list[str], schemas: list[str] | None) -> AsyncIterator[dict]:
    settings = Settings()
    if not settings.database_url:
        raise UserError("set YISHI_DATABASE_URL (or use --bundle)", code=2)
    names = _pairs(schemas, "--schema")
    async with contextlib.AsyncExitStack() as stack:
        yield {s: await stack.enter_async_context(database_pool(settings.database_url, names.get(s, s), max_size=2))
               for s in services}


def _manifest(bundle: Path) -> dict:
    """The bundle's manifest; a path that holds no bundle is a user error."""
    from yishi.audit.export import read_manifest

    try:
        return read_manifest(bundle)
    except FileNotFoundError:
        raise UserError(f"no audit bundle at {bundle} (no manifest.json there)", code=2) from None
    except (OSError, ValueError) as exc:
        raise UserError(f"no audit bundle at {bundle}: {exc}", code=2) from exc


def _audit_view(services: list[str], schemas: list[str] | None, district: str | None, as_of: AsOf,
                source: Source, bundle: Path | None) -> tuple[AuditView, Stats]:
    if bundle is not None:
        return _bundle_view(bundle, services, district, as_of)
    return asyncio.run(_live_view(services, schemas, district, as_of, source))


def _bundle_view(bundle: Path, services: list[str], district: str | None, as_of: AsOf) -> tuple[AuditView, Stats]:
    from yishi.audit.export import bundle_events
    from yishi.audit.sources import to_public, translator

    manifest = _manifest(bundle)
    services = [s for s in services if s in manifest["services"]]

    def events():
        for s in services:
            translate = translator(s)
            for e in bundle_events(bundle, s):
                if district is None or e.district == district:
                    yield to_public(s, translate, e)

    with progress("replaying", sum(manifest["services"][s]["events"] for s in services)) as advance:
        return audit_view_from_events(events(), as_of=as_of, progress=advance)


async def _live_view(services: list[str], schemas: list[str] | None, district: str | None, as_of: AsOf,
                     source: Source) -> tuple[AuditView, Stats]:
    if source is Source.KAFKA:
        from yishi.kafka import client_options

        settings = Settings()
        if not settings.kafka_bootstrap:
            raise UserError("set YISHI_KAFKA_BOOTSTRAP", code=2)
        with progress("replaying") as advance:
            return await audit_view_from_kafka(settings.kafka_bootstrap, services,
                                               districts=[district] if district else None, as_of=as_of,
                                               progress=advance, kafka_options=client_options(settings))
    from yishi.audit.sources import count_stored

    async with _pools(services, schemas) as pools:
        total = sum([await count_stored(p, district=district, upto=as_of.position) for p in pools.values()])
        with progress("replaying", total) as advance:
            return await audit_view_from_stores(pools, district=district, as_of=as_of, progress=advance)


def _print_stats(stats: Stats) -> None:
    console.print(f"replayed {stats.events:,} events ({stats.applied:,} into the view) in {stats.seconds:.2f} s: "
                  f"{stats.events_per_s:,.0f} events/s")


@audit_app.command()
def replay(services: ServicesOpt = None, schema: SchemaOpt = None, district: DistrictOpt = None,
           as_of: AsOfOpt = None, position: PositionOpt = None, source: SourceOpt = Source.STORE,
           bundle: BundleOpt = None,
           state: Annotated[bool, typer.Option(help="one service's own state (its read models) instead of the "
                                                    "cross-service audit view")] = False) -> None:
    """Rebuild the audit view (or, with --state, one service's state) as of a moment; JSON on stdout."""
    moment = AsOf(as_of, position)
    names = _services(services)
    if state:
        if len(names) != 1:
            raise typer.BadParameter("--state needs exactly one --service")
        result = _state(names[0], schema, district, moment, bundle)
    else:
        view, stats = _audit_view(names, schema, district, moment, source, bundle)
        _print_stats(stats)
        result = view.snapshot()
    json.dump(result, sys.stdout, ensure_ascii=False, indent=1, default=str)
    sys.stdout.write("\n")


def _state(service: str, schemas: list[str] | None, district: str | None, as_of: AsOf,
           bundle: Path | None) -> dict[str, Any]:
    if bundle is not None:
        from yishi.audit.export import bundle_events

        _manifest(bundle)
        return service_state(service, (e for e in bundle_events(bundle, service)
                                       if district is None or e.district == district), as_of)

    async def from_store() -> dict[str, Any]:
        async with _pools([service], schemas) as pools:
            return await service_state_from_store(pools[service], service, district=district, as_of=as_of)

    return asyncio.run(from_store())


@audit_app.command()
def report(services: ServicesOpt = None, schema: SchemaOpt = None, district: DistrictOpt = None,
           as_of: AsOfOpt = None, position: PositionOpt = None, source: SourceOpt = Source.STORE,
           bundle: BundleOpt = None,
           proposal: Annotated[Optional[str], typer.Option(help="a proposal and all that followed it")] = None,
           resolution: Annotated[Optional[str], typer.Option(help="a resolution and its proposal")] = None,
           council: Annotated[Optional[str], typer.Option(help="a council's proposals")] = None,
           since: Annotated[Optional[datetime], typer.Option(help="period start (inclusive)")] = None,
           until: Annotated[Optional[datetime], typer.Option(help="period end (exclusive)")] = None,
           format: Annotated[Format, typer.Option("--format", "-f")] = Format.TABLE) -> None:
    """Who proposed, seconded, objected, spoke, voted, decided, delivered, inspected and rated, and when."""
    view, stats = _audit_view(_services(services), schema, district, AsOf(as_of, position), source, bundle)
    _print_stats(stats)
    entries = reports.select(view, proposal=proposal, resolution=resolution, council=council, since=since,
                             until=until)
    if format is Format.TABLE:
        subject = " ".join(f"{k} {v}" for k, v in (("proposal", proposal), ("resolution", resolution),
                                                   ("council", council)) if v) or "all"
        Console().print(reports.table(entries, f"Audit report: {subject}"))
    else:
        sys.stdout.write(reports.to_json(entries) + "\n" if format is Format.JSON else reports.to_csv(entries))


@audit_app.command("recount")
def recount_cmd(
        bundle: Annotated[Optional[Path], typer.Option("--bundle", help="recount from an export bundle")] = None,
        url: Annotated[Optional[str], typer.Option(help="recount from the voting service at this URL")] = None,
        token: Annotated[Optional[str], typer.Option(help="--url: a bearer token of the district")] = None,
        district: DistrictOpt = None,
        vote: Annotated[Optional[str], typer.Option(help="only this vote (required with --url)")] = None) -> None:
    """Recount verifiable secret votes from their published boards and compare with their
    tallies; check participants against the board and the electorate; exit 1 on any finding."""
    from yishi.audit.recount import describe, recount_vote

    if (bundle is None) == (url is None):
        raise UserError("give one of --bundle and --url", code=2)
    if url is not None:
        if not (district and vote and token):
            raise UserError("--url needs --district, --vote and --token", code=2)
        votes, boardless = [_board_from_service(url, token, district, vote)], []
    else:
        votes, boardless = _boards_from_bundle(bundle, district, vote)
    for skipped in boardless:
        console.print(f"{skipped.district}/{skipped.vote_id}: secret, closed, published no board (closed before "
                      "boards, or turned off): not recountable", markup=False)
    if not votes:
        raise UserError("no closed vote with a published board" + (f" named {vote}" if vote else ""))
    results = [recount_vote(v) for v in votes]
    for result in results:
        console.print(describe(result), style=None if result.ok else "red", markup=False)
    if not all(r.ok for r in results):
        raise typer.Exit(1)


def _boards_from_bundle(bundle: Path, district: str | None, vote: str | None) -> tuple[list, list]:
    from yishi.audit.export import bundle_events
    from yishi.audit.recount import published_votes
    from yishi.audit.sources import to_public, translator

    if "voting" not in _manifest(bundle)["services"]:
        raise UserError(f"the bundle {bundle} holds no voting events", code=2)
    translate = translator("voting")
    events = (to_public("voting", translate, e) for e in bundle_events(bundle, "voting")
              if district is None or e.district == district)
    boarded, boardless = published_votes(e for e in events if e is not None)
    keep = (lambda v: v.vote_id == vote) if vote else (lambda v: True)
    return [v for v in boarded if keep(v)], [v for v in boardless if keep(v)]


def _board_from_service(url: str, token: str, district: str, vote: str):
    import httpx

    from yishi.audit.recount import published_board

    try:
        response = httpx.get(f"{url.rstrip('/')}/{district}/votes/{vote}/board",
                             headers={"Authorization": f"Bearer {token}"}, timeout=30)
    except httpx.HTTPError as exc:
        raise UserError(f"cannot reach the voting service at {url}: {exc}") from exc
    if response.status_code != 200:
        detail = response.json().get("detail", response.text) if response.headers.get(
            "content-type", "").endswith("json") else response.text
        raise UserError(f"{url} answered {response.status_code} for vote {vote}'s board: {detail}")
    return published_board(district, response.json())


def _show(verdict: Verdict) -> None:
    console.print("checked " + ", ".join(f"{n:,} {what}" for what, n in verdict.checked.items()))
    if verdict.ok:
        console.print("[green]history intact[/green]")
        return
    first = verdict.first
    console.print(f"[red]first broken position: {first.position}[/red] ({first.service}): {first.reason}")
    for f in verdict.findings[:50]:
        console.print(f"[red]{f.service} position {f.position}[/red]: {f.reason}")
    raise typer.Exit(1)


@audit_app.command()
def verify(services: ServicesOpt = None, schema: SchemaOpt = None, public_key: KeyOpt = None,
           kafka: Annotated[bool, typer.Option(help="also check Kafka against the stores")] = False,
           district: DistrictOpt = None) -> None:
    """Hash chains, signed checkpoints and (with --kafka) Kafka against the stores; exit 1 on any finding."""
    from yishi.audit.verify import check_kafka, verify_store
    from yishi.kafka import client_options

    keys = _keys(public_key)
    names = _services(services)
    settings = Settings()
    if kafka and not settings.kafka_bootstrap:
        raise UserError("set YISHI_KAFKA_BOOTSTRAP to check Kafka", code=2)

    async def main() -> Verdict:
        verdict = Verdict()
        async with _pools(names, schema) as pools:
            for service, pool in pools.items():
                with progress(f"verifying {service}", unit="rows") as tick:
                    verdict.extend(await verify_store(pool, service, keys.get(service), progress=tick))
                if kafka:
                    verdict.extend(await check_kafka(pool, service, settings.kafka_bootstrap,
                                                     [district] if district else None, client_options(settings)))
        return verdict

    _show(asyncio.run(main()))


@audit_app.command()
def export(path: Annotated[Path, typer.Argument(help="new bundle directory")], services: ServicesOpt = None,
           schema: SchemaOpt = None) -> None:
    """Write a self-contained bundle: events, checkpoints, schemas and a manifest with SHA-256 hashes."""
    from yishi.audit.export import export_bundle

    if path.exists():
        raise UserError(f"{path} exists: give a new directory for the bundle", code=2)

    async def main() -> dict:
        async with _pools(_services(services), schema) as pools:
            with progress("exporting") as tick:
                return await export_bundle(pools, path, progress=tick)

    manifest = asyncio.run(main())
    for service, info in manifest["services"].items():
        console.print(f"{service}: {info['events']:,} events, {info['checkpoints']} checkpoints")
    console.print(f"bundle written to {path}")


@audit_app.command("verify-bundle")
def verify_bundle_cmd(path: Annotated[Path, typer.Argument(help="bundle directory")],
                      public_key: KeyOpt = None,
                      checkpoint: Annotated[Optional[list[str]], typer.Option(
                          "--checkpoint", help="SERVICE=FILE: a signed checkpoint kept from the service (yishi audit "
                          "checkpoint --save); the bundle's events must hash to its root")] = None,
                      log_key: Annotated[Optional[list[str]], typer.Option(
                          "--log-key", help="SERVICE=KEY: the trusted log key each --checkpoint is verified "
                          "with (a note verifier key or hex)")] = None) -> None:
    """Check a bundle offline: manifest hashes, every chain, signed checkpoints, and (with
    --checkpoint) the Merkle root recomputed from its events; exit 1 on any finding."""
    from yishi.audit.export import verify_bundle

    keys = _keys(public_key)
    kept = {s: read_note(Path(f)) for s, f in _pairs(checkpoint, "--checkpoint").items()}
    log_keys = _pairs(log_key, "--log-key")
    if missing := sorted(set(kept) - set(log_keys)):
        raise typer.BadParameter(f"--checkpoint of {', '.join(missing)} needs its --log-key")
    _manifest(path)
    with progress("verifying") as tick:
        verdict = verify_bundle(path, keys, progress=tick, checkpoints={s: (kept[s], log_keys[s]) for s in kept})
    _show(verdict)


@audit_app.command("public-key")
def public_key_cmd(service: Annotated[str, typer.Argument(help="whose checkpoint key")],
                   schema: SchemaOpt = None, bundle: BundleOpt = None,
                   note: Annotated[bool, typer.Option(help="print it as the verifier key of the log's signed "
                                                           "notes (origin+keyid+key), for --log-key")] = False) -> None:
    """Print the public key (hex) the service signs its checkpoints with, as published with
    its newest signed checkpoint in its store (or in a --bundle). Nothing is generated or
    read from this machine's keys. Whoever can write the store could replace it: compare it
    with the key the service's operator gives you before passing it to --public-key."""
    from yishi.audit.checkpoints import newest_public_key

    check_service(service)
    if bundle is not None:
        key, keys = _manifest(bundle)["services"].get(service, {}).get("public_key"), None
        where = f"the bundle {bundle}"
    else:
        async def from_store() -> tuple[bytes | None, int]:
            async with _pools([service], schema) as pools:
                return await newest_public_key(pools[service])

        found, keys = asyncio.run(from_store())
        key, where = found.hex() if found else None, f"{service}'s store"
    if key is None:
        raise UserError(f"no signed checkpoint in {where}: {service} has published no key yet "
                        "(it signs one a minute at most, once it has events)")
    if keys and keys > 1:
        console.print(f"note: {where} holds checkpoints signed by {keys} keys; this is the newest one's",
                      markup=False)
    if note:
        key = _verifier_key(service, schema, bundle, bytes.fromhex(key))
    print(key)


def _verifier_key(service: str, schemas: list[str] | None, bundle: Path | None, public_key: bytes) -> str:
    """The note verifier key of ``public_key`` under the origin of the newest signed note."""
    from yishi.tlog import note

    if bundle is not None:
        from yishi.audit.export import bundle_checkpoints

        signed = next((c.note for c in reversed(bundle_checkpoints(bundle, service)) if c.note), None)
    else:
        async def from_store() -> str | None:
            async with _pools([service], schemas) as pools:
                return await pools[service].fetchval(
                    "SELECT note FROM checkpoints WHERE note IS NOT NULL ORDER BY seq DESC LIMIT 1")

        signed = asyncio.run(from_store())
    if signed is None:
        raise UserError(f"{service} has signed no checkpoint of its Merkle log yet")
    return note.Verifier(signed.split("\n", 1)[0], note.ED25519, public_key).vkey


# The Merkle log's proofs: yishi audit checkpoint, inclusion, consistency (yishi/audit/proofs_cli.py).
audit_app.registered_commands += log_app.registered_commands
