"""The ``yishi`` command: run the platform, one service, a relay, or verify a store."""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import time
from typing import Annotated, Optional

import typer
from rich.table import Table

from contracts.common import Role
from yishi.audit.cli import audit_app
from yishi.cli_support import UserError, console, database_pool, debug_option, main, progress
from yishi.names import SERVICES, check_service
from yishi.settings import Settings

app = typer.Typer(no_args_is_help=True, callback=debug_option)
app.add_typer(audit_app, name="audit")


def available_services() -> list[str]:
    """Services whose package has a ``main.spec`` factory (the others are not built yet)."""
    found = []
    for name in SERVICES:
        try:
            module = importlib.import_module(f"services.{name}.main")
        except ModuleNotFoundError:
            continue
        if hasattr(module, "spec"):
            found.append(name)
    return found


def load_spec(service: str):
    check_service(service)
    try:
        module = importlib.import_module(f"services.{service}.main")
    except ModuleNotFoundError:
        raise typer.BadParameter(f"service {service!r} is not built yet") from None
    return module.spec()


@app.command()
def serve(service: Annotated[str, typer.Argument(help="proposals, voting, oversight or notify")]) -> None:
    """Run one service (HTTP, consumers, relay) with settings from YISHI_* variables."""
    import uvicorn

    from yishi.runtime import create_app

    settings = Settings(service=service)
    try:
        asgi = create_app(load_spec(service), settings)
    except ValueError as exc:
        raise UserError(str(exc), code=2) from exc
    uvicorn.run(asgi, host=settings.http_host, port=settings.http_port, log_config=None,
                timeout_graceful_shutdown=10)


@app.command("relay")
def relay_cmd(service: Annotated[str, typer.Argument(help="whose log to publish")]) -> None:
    """Run only the outbox relay of a service (the service process runs one too)."""
    from yishi import relay as relay_mod
    from yishi.db import install
    from yishi.kafka import client_options
    from yishi.logging import configure_logging
    from yishi.store import DDL, EventStore

    settings = Settings(service=service)
    check_service(service)
    if not settings.database_url or not settings.kafka_bootstrap:
        raise UserError("set YISHI_DATABASE_URL and YISHI_KAFKA_BOOTSTRAP", code=2)
    configure_logging(settings.log_level, settings.log_json)

    async def run_relay() -> None:
        async with database_pool(settings.database_url, settings.db_schema or service) as pool:
            await install(pool, *DDL, *relay_mod.DDL)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            relay = relay_mod.Relay(EventStore(pool), settings.kafka_bootstrap, service,
                                    batch_size=settings.relay_batch_size, idle_wait=settings.relay_idle_wait_s,
                                    kafka_options=client_options(settings),
                                    takeover_grace=settings.relay_takeover_grace_s)
            await relay.run(stop)

    asyncio.run(run_relay())


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
) -> None:
    """Run the platform: the embedded PostgreSQL and broker and every service as its own process.

    The embedded servers start unless YISHI_DATABASE_URL and YISHI_KAFKA_BOOTSTRAP point
    elsewhere. A service that exits is restarted with backoff; Ctrl-C stops all, and so does a service that keeps
    failing at start (exit 1). Ports already in use are refused before anything starts.
    With --demo a deliberation is then driven through the public APIs (exit 1 if a step fails)."""
    from yishi import demo as demo_story
    from yishi.auth import dev_issuer
    from yishi.embedded import EmbeddedStack, describe_broker
    from yishi.supervisor import GaveUp, PortTaken, Supervisor, check_ports_free

    settings = Settings()
    names = services or available_services()
    for name in names:
        check_service(name)
    ports = {name: base_port + i for i, name in enumerate(names)}
    try:
        check_ports_free(ports)
    except PortTaken as exc:
        console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(1) from None
    stack = None
    env = dict(os.environ)
    if not (settings.database_url and settings.kafka_bootstrap):
        stack = EmbeddedStack()
        with console.status(f"starting embedded PostgreSQL and {describe_broker(stack.kafka)}…"):
            stack.start()
        env["YISHI_DATABASE_URL"] = stack.postgres.url
        env["YISHI_KAFKA_BOOTSTRAP"] = stack.kafka.bootstrap
    issuer = None
    if not settings.auth_issuer:
        issuer = dev_issuer()
        issuer.serve()
        env.update(issuer.settings())
    if demo:
        env.update(demo_story.service_env(env))
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
    supervisor = Supervisor(ports, {**env, "YISHI_LOG_JSON": "false"},
                            say=lambda line: console.print(line, soft_wrap=True))
    try:
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
            table.add_row(name, f"http://127.0.0.1:{port}  (API docs: /docs)")
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
    that run's short reminder-policy day and notify's webhook channel)."""
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
    ttl: Annotated[int, typer.Option(help="lifetime in seconds")] = 3600,
) -> None:
    """Print an access token from the development identity provider that `yishi run`
    starts when YISHI_AUTH_ISSUER is unset (for curl: -H "Authorization: Bearer $TOKEN")."""
    from yishi.auth import GRANTABLE_ROLES, dev_issuer

    unknown = sorted(set(roles) - {r.value for r in GRANTABLE_ROLES})
    if unknown:
        raise typer.BadParameter(f"unknown role(s): {', '.join(unknown)}", param_hint="--role")
    print(dev_issuer().mint(subject, district, roles, seats=seats or (), ttl=ttl))


def entry() -> None:
    """The ``yishi`` command (see :func:`yishi.cli_support.main`)."""
    main(app)


if __name__ == "__main__":
    entry()
