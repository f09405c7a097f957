"""Structured logs (structlog): JSON lines in production, readable lines on a terminal."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from opentelemetry import trace


_SECRET_KEY = re.compile(r"token|authori[sz]ation|password|secret|credential", re.IGNORECASE)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
REDACTED = "[redacted]"


def redact(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: no secret reaches a log line, whoever logged it. Values under
    secret-sounding keys are dropped and anything shaped like a JWT is masked."""
    for key, value in event.items():
        if _SECRET_KEY.search(key):
            event[key] = REDACTED
        elif isinstance(value, str) and "eyJ" in value:
            event[key] = _JWT.sub(REDACTED, value)
    return event


def add_trace_ids(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: the ``trace_id`` and ``span_id`` of the current span, if any,
    so a log line can be found from its trace and the other way round."""
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        event.setdefault("trace_id", f"{span_context.trace_id:032x}")
        event.setdefault("span_id", f"{span_context.span_id:016x}")
    return event


@contextmanager
def bound_correlation(correlation_id: str | None) -> Iterator[None]:
    """Every line logged inside (structlog's or the standard library's, in this task and
    the tasks it starts) carries ``correlation_id``; the binding ends with the block."""
    if not correlation_id:
        yield
        return
    with structlog.contextvars.bound_contextvars(correlation_id=correlation_id):
        yield


def configure_logging(level: str = "INFO", json_lines: bool = True) -> None:
    """Route structlog and the standard library's logging through one renderer on stderr."""
    renderer = structlog.processors.JSONRenderer() if json_lines else structlog.dev.ConsoleRenderer(colors=False)
    shared = [
        structlog.contextvars.merge_contextvars,
        add_trace_ids,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, redact, renderer],
        foreign_pre_chain=shared,
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
