"""What a module logs, for tests that read log fields (a backoff's pauses, say).

``structlog.testing.capture_logs`` sees nothing from a logger already used once the
application configured logging (``cache_logger_on_first_use``, see yishi/logging.py), so
whether it works would depend on which test ran first. This replaces the modules' own
``log`` for the duration instead."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import ModuleType

import structlog
from structlog.testing import LogCapture


@contextlib.contextmanager
def logs_of(*modules: ModuleType) -> Iterator[list[dict]]:
    """The event dicts the modules' ``log`` receives inside the block (with ``log_level``)."""
    capture = LogCapture()
    saved = [(module, module.log) for module in modules]
    try:
        for module in modules:
            module.log = structlog.wrap_logger(structlog.PrintLogger(), processors=[capture])
        yield capture.entries
    finally:
        for module, log in saved:
            module.log = log
