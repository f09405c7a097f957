"""The ``yishi`` command: run the platform, one service, a relay, or verify a store."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import signal
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from contracts.common import Role
from yishi.audit.cli import audit_app
from yishi.cli_support import SERVED, UserError, console, database_pool, debug_option, main, progress
from yishi.names import READERS, RUNNABLE, SERVICES, check_runnable, check_service
from yishi.settings import Settings
from yishi.witness.cli import witness_app

app = typer.Typer(no_args_is_help=True, callback=debug_option)
app.add_typer(audit_app, name="audit")
app.add_typer(witness_app, name="witness")


def available_services() -> list[str]:
    """Services whose package has a ``main.spec`` factory (the others are not built yet)."""
    found = []
    for name in RUNNABLE:
        try:
            module = importlib.import_module(f"services.{name}.main")
        except ModuleNotFoundError:
            continue
        if hasattr(module, "spec"):
            found.append(name)
    return found


def load_spec(service: str):
    check_runnable(service)
    try:
        module = importlib.import_module(f"services.{service}.main")
    except ModuleNotFoundError:
        raise typer.BadParameter(f"service {service!r} is not built yet") from None
    return module.spec()


@app.command()
def serve(service: Annotated[str, typer.Argument(help="proposals, voting, oversight, notify or portal")]) -> None:
    """Run one service (HTTP, consumers, relay) with settings from YISHI_* variables."""
    import uvicorn

    from yishi import migrations
    from yishi.runtime import create_app

    settings = Settings(service=service)
    try:
        spec = load_spec(service)
        asgi = create_app(spec, settings, own_process=True)
    except ValueError as exc:
        raise UserError(str(exc), code=2) from exc
    try:  # the app checks too; here it is one line instead of the lifespan's traceback
        asyncio.run(migrations.check_database(settings.database_url, settings.db_schema or service,
                                              migrations.locations(service, spec.migrations), service))
    except migrations.SchemaOutOfDate as exc:
        raise UserError(str(exc)) from exc
    uvicorn.run(asgi, host=settings.http_host, port=settings.http_port, **SERVED)


@app.command("relay")
def relay_cmd(service: Annotated[str, typer.Argument(help="whose log to publish")]) -> None:
    """Run only the outbox relay of a service (the service process runs one too)."""
    from yishi import migrations
    from yishi import relay as relay_mod
    from yishi.clock import from_settings
    from yishi.kafka import client_options
    from yishi.logging import configure_logging
    from yishi.store import EventStore

    settings = Settings(service=service)
    check_service(service)
    if not settings.database_url or not settings.kafka_bootstrap:
        raise UserError("set YISHI_DATABASE_URL and YISHI_KAFKA_BOOTSTRAP", code=2)
    configure_logging(settings.log_level, settings.log_json)

    async def run_relay() -> None:
        schema = settings.db_schema or service
        async with database_pool(settings.database_url, schema) as pool:
            await migrations.check(pool, schema, migrations.locations(), service)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            relay = relay_mod.Relay(EventStore(pool, from_settings(settings)), settings.kafka_bootstrap, service,
                                    batch_size=settings.relay_batch_size, idle_wait=settings.relay_idle_wait_s,
                                    kafka_options=client_options(settings),
                                    takeover_grace=settings.relay_takeover_grace_s)
            await relay.run(stop)

    try:
        asyncio.run(run_relay())
    except migrations.SchemaOutOfDate as exc:
        raise UserError(str(exc)) from exc


@app.command()
def migrate(service: Annotated[str, typer.Argument(help="whose schema to migrate")]) -> None:
    """Upgrade a service's schema to this release (its versioned migrations, with Alembic):
    once per release, before its pods start (the Kubernetes Job; `yishi run` does it locally)."""
    from yishi import migrations

    settings = Settings(service=service)
    check_runnable(service)
    if not settings.database_url:
        raise UserError("set YISHI_DATABASE_URL", code=2)
    schema = settings.db_schema or service
    applied = asyncio.run(migrations.upgrade(settings.database_url, schema, migrations.locations(service)))
    console.print(f"{schema}: applied {', '.join(applied)}" if applied else f"{schema}: up to date",
                  soft_wrap=True)


@app.command()
def verify(service: Annotated[str, typer.Argument(help="whose event store to verify")]) -> None:
    """Check the hash chains of a service's event store; exit 1 and name the first broken position."""
    from yishi.store import EventStore

    settings = Settings(service=service)
    check_service(service)

    async def check():
        async with database_pool(settings.database_url, settings.db_schema or service) as pool:
            with progress("verifying", unit="rows") as tick:
                return await EventStore(pool).verify(progress=tick)

    report = asyncio.run(check())
    console.print(f"checked {report.events_checked} events, {report.sealed} sealed")
    if report.ok:
        console.print("[green]history intact[/green]")
        return
    for problem in report.problems[:20]:
        console.print(f"[red]position {problem.position}[/red]: {problem.reason}")
    raise typer.Exit(1)


@app.command()
def run(
    services: Annotated[Optional[list[str]], typer.Option("--service", "-s", help="only these services")] = None,
    base_port: Annotated[int, typer.Option(help="first HTTP port; services take consecutive ports")] = 8001,
    demo: Annotated[bool, typer.Option("--demo", help="once started, tell the demo story (yishi/demo.py)")] = False,
    demo_exit: Annotated[bool, typer.Option("--demo-exit", help="with --demo: stop when the story is told")] = False,
    wal_archive: Annotated[Optional[Path], typer.Option(help="the embedded database archives its WAL into this "
                                                        "folder (for yishi backup and yishi restore)")] = None,
) -> None:
    """Run the platform: the embedded PostgreSQL and broker and every service as its own process.

    The embedded servers start unless YISHI_DATABASE_URL and YISHI_KAFKA_BOOTSTRAP point
    elsewhere. A service that exits is restarted with backoff; Ctrl-C stops all, and so does a service that keeps
    failing at start (exit 1). Ports already in use are refused before anything starts.
    With --demo a deliberation is then driven through the public APIs (exit 1 if a step fails)."""
    from yishi import demo as demo_story
    from yishi import migrations
    from yishi.auth import dev_issuer
    from yishi.embedded import EmbeddedStack, describe_broker
    from yishi.supervisor import GaveUp, PortTaken, Supervisor, check_ports_free

    settings = Settings()
    names = services or available_services()
    for name in names:
        check_runnable(name)
    ports = {name: base_port + i for i, name in enumerate(names)}
    try:
        check_ports_free(ports)
    except PortTaken as exc:
        console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(1) from None
    stack = None
    env = dict(os.environ)
    if not (settings.database_url and settings.kafka_bootstrap):
        stack = EmbeddedStack(archive=wal_archive.resolve() if wal_archive else None)
        with console.status(f"starting embedded PostgreSQL and {describe_broker(stack.kafka)}…"):
            stack.start()
        env["YISHI_DATABASE_URL"] = stack.postgres.url
        env["YISHI_KAFKA_BOOTSTRAP"] = stack.kafka.bootstrap
    issuer = None
    if not settings.auth_issuer:
        issuer = dev_issuer()
        issuer.serve()
        env.update(issuer.settings())
        env.setdefault("YISHI_PORTAL_OIDC_DISCOVERY_URL", issuer.discovery_url)  # the portal signs in there
    # The portal's forms send their commands to the services of this run.
    env.setdefault("YISHI_PORTAL_SERVICE_URLS", json.dumps({n: f"http://127.0.0.1:{p}" for n, p in ports.items()}))
    if demo:
        env.update(demo_story.service_env(env))
    if float(env.get("YISHI_CLOCK_FACTOR", "1")) != 1 and not env.get("YISHI_CLOCK_EPOCH"):
        # One epoch for every service and each restart: they all tell the same rehearsal time.
        env["YISHI_CLOCK_EPOCH"] = datetime.now(timezone.utc).isoformat()
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    table = Table(title="Yishi is running")
    table.add_column("what")
    table.add_column("where")
    table.add_row("PostgreSQL", env["YISHI_DATABASE_URL"])
    table.add_row("Kafka", env["YISHI_KAFKA_BOOTSTRAP"] + (f"  (embedded {describe_broker(stack.kafka)})"
                                                           if stack else ""))
    table.add_row("identity provider", f"development issuer, keys {issuer.jwks_url} (tokens: yishi token --help)"
                  if issuer else env.get("YISHI_AUTH_ISSUER", ""))
    if "YISHI_CLOCK_EPOCH" in env:
        table.add_row("clock", f"rehearsal: {float(env.get('YISHI_CLOCK_FACTOR', '1')):g} × real time since "
                      f"{env['YISHI_CLOCK_EPOCH']}")
    supervisor = Supervisor(ports, {**env, "YISHI_LOG_JSON": "false"},
                            say=lambda line: console.print(line, soft_wrap=True))
    try:
        with console.status("migrating the schemas…"):
            for name in names:  # what the Kubernetes Jobs do once per release
                asyncio.run(migrations.upgrade(env["YISHI_DATABASE_URL"], name, migrations.locations(name)))
        supervisor.start()
        with console.status(f"starting {', '.join(names) or 'no services'}…") as status:
            deadline = time.monotonic() + 120
            while supervisor.pending and not stopping:
                supervisor.poll()
                status.update(f"starting {', '.join(supervisor.pending)}…")
                if time.monotonic() > deadline:
                    console.print(f"[red]error:[/red] not ready after 120 s: {', '.join(supervisor.pending)}")
                    raise typer.Exit(1)
                time.sleep(0.2)
        for name, port in ports.items():
            table.add_row(name, f"http://127.0.0.1:{port}/{settings.districts[0]}  (public pages, no login)"
                          if name in READERS else f"http://127.0.0.1:{port}  (API docs: /docs)")
        if not names:
            table.add_row("services", "none built yet")
        if not stopping:
            console.print(table)
            console.print("press Ctrl-C to stop")
        story = demo_story.Background(demo_story.urls_from("127.0.0.1", base_port, names), console) \
            if demo and not stopping else None
        while not stopping:
            supervisor.poll()
            if story is not None and story.done():
                if story.error is not None:
                    console.print(f"[red]demo failed:[/red] {story.error}")
                    raise typer.Exit(1)
                stopping, story = demo_exit, None
            time.sleep(0.2)
    except GaveUp as exc:
        console.print("[red]error:[/red] ", end="")
        console.print(str(exc), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    finally:
        console.print("stopping…")
        supervisor.stop()
        if stack:
            stack.stop()
        console.print("stopped")


@app.command("demo")
def demo_cmd(
    host: Annotated[str, typer.Option(help="where the services listen")] = "127.0.0.1",
    base_port: Annotated[int, typer.Option(help="the first service's port, as given to yishi run")] = 8001,
    district: Annotated[str, typer.Option(help="a district the platform serves")] = "gulou",
) -> None:
    """Tell the demo story again to a platform started with `yishi run --demo` (it needs
    that run's rehearsal clock and notify's webhook channel)."""
    from yishi import demo as demo_story

    try:
        demo_story.run(demo_story.urls_from(host, base_port), console, district=district)
    except demo_story.DemoFailed as exc:
        console.print(f"[red]demo failed:[/red] {exc}")
        raise typer.Exit(1) from None


@app.command()
def token(
    subject: Annotated[str, typer.Option("--sub", help="the person or service account (the token's sub)")],
    roles: Annotated[list[str], typer.Option("--role", help="a role: " + ", ".join(
        r.value for r in Role if r is not Role.SYSTEM))],
    district: Annotated[str, typer.Option(help="the district the credentials belong to")] = "gulou",
    seats: Annotated[Optional[list[str]], typer.Option("--seat", help="a council seat held")] = None,
    acts_for: Annotated[Optional[list[str]], typer.Option(
        "--acts-for", help="an implementer organisation or council acted for, * for all of the district's "
                           "(without it the token acts for none)")] = None,
    ttl: Annotated[int, typer.Option(help="lifetime in seconds")] = 3600,
) -> None:
    """Print an access token from the development identity provider that `yishi run`
    starts when YISHI_AUTH_ISSUER is unset (for curl: -H "Authorization: Bearer $TOKEN")."""
    from yishi.auth import GRANTABLE_ROLES, dev_issuer

    unknown = sorted(set(roles) - {r.value for r in GRANTABLE_ROLES})
    if unknown:
        raise typer.BadParameter(f"unknown role(s): {', '.join(unknown)}", param_hint="--role")
    print(dev_issuer().mint(subject, district, roles, seats=seats or (), acts_for=acts_for, ttl=ttl))


@app.command()
def backup(target: Annotated[Path, typer.Argument(help="a new folder for the base backup")]) -> None:
    """Take a base backup of the PostgreSQL at YISHI_DATABASE_URL (pg_basebackup) into TARGET.
    With the WAL archive that server fills (yishi run --wal-archive), `yishi restore` brings
    the database back to any moment after the backup."""
    from yishi.backup import BackupError, archive_current_wal, base_backup

    settings = Settings()
    if not settings.database_url:
        raise UserError("set YISHI_DATABASE_URL", code=2)
    try:
        base_backup(settings.database_url, target.resolve())
        segment = asyncio.run(archive_current_wal(settings.database_url))
    except BackupError as exc:
        raise UserError(str(exc)) from exc
    console.print(f"base backup in {target}; WAL archived up to segment {segment}")


@app.command()
def restore(
    backup_dir: Annotated[Path, typer.Argument(metavar="BACKUP", help="a base backup made by yishi backup")],
    wal_archive: Annotated[Path, typer.Option(help="the WAL archive the backed-up server filled")],
    to: Annotated[str, typer.Option(help="the target time, ISO 8601 (UTC unless an offset is given)")],
    into: Annotated[Path, typer.Option(help="a new folder for the restored server (data in INTO/pgdata)")],
    serve: Annotated[bool, typer.Option(help="keep the restored server running until Ctrl-C")] = True,
) -> None:
    """Restore a base backup and replay the WAL archive up to a moment (every transaction
    committed then and none after), start the embedded PostgreSQL on it and check the hash
    chains of every service's event store there (exit 1 if one is broken)."""
    from datetime import datetime

    import asyncpg

    from yishi.backup import BackupError, prepare_restore, wait_recovered
    from yishi.db import create_pool
    from yishi.embedded import EmbeddedPostgres
    from yishi.store import EventStore

    try:
        target = datetime.fromisoformat(to)
    except ValueError:
        raise typer.BadParameter(f"{to!r} is not an ISO 8601 time", param_hint="--to") from None
    into = into.resolve()
    into.mkdir(parents=True, exist_ok=True)
    postgres = EmbeddedPostgres(into)
    try:
        prepare_restore(backup_dir.resolve(), wal_archive.resolve(), postgres.pgdata, target,
                        owner=postgres.system_user)
    except BackupError as exc:
        raise UserError(str(exc)) from exc

    async def verify_all() -> dict[str, object]:
        await wait_recovered(postgres.url)
        conn = await asyncpg.connect(postgres.url)
        try:
            present = [s for s in SERVICES if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{s}.events")]
        finally:
            await conn.close()
        reports = {}
        for service in present:
            pool = await create_pool(postgres.url, service)
            try:
                reports[service] = await EventStore(pool).verify()
            finally:
                await pool.close()
        return reports

    postgres.start()
    try:
        reports = asyncio.run(verify_all())
        console.print(f"restored to {target.isoformat()}: PostgreSQL at {postgres.url}", soft_wrap=True)
        for service, report in reports.items():
            state = "[green]history intact[/green]" if report.ok else f"[red]{report.first.reason}[/red]"
            console.print(f"{service}: checked {report.events_checked} events, {report.sealed} sealed: {state}")
        if not all(report.ok for report in reports.values()):
            raise typer.Exit(1)
        if serve:
            console.print("press Ctrl-C to stop")
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        postgres.stop()


def entry() -> None:
    """The ``yishi`` command (see :func:`yishi.cli_support.main`)."""
    main(app)


if __name__ == "__main__":
    entry()
