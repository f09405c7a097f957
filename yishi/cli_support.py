"""What every ``yishi`` command shares: user errors as one line, the database
connection, progress bars on stderr, and the help's display of flags.

A command raises :class:`UserError` (or lets :class:`yishi.names.InvalidName` through)
for what the operator can fix; :func:`main` prints it as ``error: …`` with its exit
code. Anything else is printed as one line too, naming its type, and ``yishi --debug``
shows the traceback of either.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from urllib.parse import urlsplit

import asyncpg
import typer
import typer.core
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from yishi.names import InvalidName

console = Console(stderr=True)

Tick = Callable[..., None]
"""A progress callback: ``tick(n)`` advances by n; ``tick(0, total)`` sets the total."""


class UserError(Exception):
    """Something the operator can fix (a setting, a path, a server): one line, no traceback."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


SERVED = {"loop": "uvloop", "http": "httptools", "log_config": None, "timeout_graceful_shutdown": 10}
"""How ``yishi serve`` runs a service under uvicorn, and ``bench/run ballots`` its floor, to
compare like with like: uvloop's event loop and httptools' HTTP parser (both pinned
dependencies), named so that a missing one fails the start instead of falling back to
asyncio's loop and the pure-Python h11, which cost a ballot more CPU than its whole command
path in bench/run ballots; our own logging, and ten seconds to finish requests on SIGTERM."""


def redact(url: str) -> str:
    """A database URL without its password, to name it in a message."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return parts._replace(netloc=netloc).geturl()
    except ValueError:
        return "(unparsable URL)"


@contextlib.asynccontextmanager
async def database_pool(url: str | None, schema: str, **kwargs: int) -> AsyncIterator[asyncpg.Pool]:
    """A pool on ``schema`` (see :func:`yishi.db.create_pool`); a missing setting or a
    database that cannot be reached is a :class:`UserError` naming it."""
    from yishi.db import create_pool

    if not url:
        raise UserError("set YISHI_DATABASE_URL", code=2)
    try:
        pool = await create_pool(url, schema, **kwargs)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise UserError(f"cannot connect to the database {redact(url)}: {exc or type(exc).__name__}") from exc
    try:
        yield pool
    finally:
        await pool.close()


@contextlib.contextmanager
def progress(what: str, total: int | None = None, unit: str = "events") -> Iterator[Tick]:
    """A progress bar with a rate on stderr, gone when done; yields its :data:`Tick`."""
    with Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[rate]:,.0f} " + unit + "/s"), console=console, transient=True) as bar:
        task = bar.add_task(what, total=total, rate=0.0)

        def tick(n: int, total: int | None = None) -> None:
            if total is not None:
                bar.update(task, total=total)
            bar.advance(task, n)
            elapsed = bar.tasks[0].elapsed or 0
            bar.update(task, rate=bar.tasks[0].completed / elapsed if elapsed else 0.0)

        yield tick


_debug = False


def debug_option(debug: bool = typer.Option(False, "--debug", help="show the traceback of an error")) -> None:
    """Yishi (议事): community deliberation and co-governance platform."""
    global _debug
    _debug = debug


def main(app: typer.Typer) -> None:
    """Run ``app``: errors are one line on stderr and a non-zero exit code; with
    ``--debug`` (see :func:`debug_option`) the traceback is shown instead."""
    try:
        app()
    except Exception as exc:
        if _debug:
            raise
        if isinstance(exc, UserError):
            message, code = str(exc), exc.code
        elif isinstance(exc, InvalidName):
            message, code = str(exc), 2
        else:
            message, code = f"{type(exc).__name__}: {exc} (yishi --debug … shows the traceback)", 1
        console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True, highlight=False)
        sys.exit(code)


def _flags_have_no_type(option: typer.core.TyperOption, ctx) -> str | None:
    """typer 0.29's rich help shows ``<bool>`` beside a flag as if it took a value; its
    plain help does not. Flags show their names only (``--kafka/--no-kafka``)."""
    if option.is_flag and not option.count:
        return None
    return _display_type_rich(option, ctx)


_display_type_rich = typer.core.TyperOption.display_type_rich
typer.core.TyperOption.display_type_rich = _flags_have_no_type
