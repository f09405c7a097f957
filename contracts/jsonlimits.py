"""Reading a JSON body within the platform's limits, the same over HTTP and Kafka.

Bodies are parsed with orjson, which reads strict RFC 8259 JSON in linear time: it
refuses ``NaN`` and ``Infinity`` (not JSON), lone surrogates (not Unicode, and not
storable in PostgreSQL) and numbers beyond the range of a double; integers are exact
up to 2^64 and larger ones become floats, which every integer field refuses. On top of
that, nesting deeper than :data:`MAX_DEPTH` is refused: no command is nested a tenth as
deep, and a deep body would otherwise reach recursive code (validation, error
rendering) that Python bounds with a ``RecursionError``.

A refusal is a :class:`JSONLimitError` whose ``errors`` name where the problem is:
the path of the offending value (found by a second, diagnostic reading with the
standard library, which accepts these values) or, when the text is not JSON at all,
the character position.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import orjson

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects a body may have (the body itself is level 1)."""


class JSONLimitError(ValueError):
    """A body that is not JSON within the limits; ``errors`` lists ``(location, message)``,
    a location being the path to the offending value or ``(position,)`` in the text."""

    def __init__(self, errors: list[tuple[tuple[str | int, ...], str]]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, loc)) or '(body)'}: {msg}" for loc, msg in errors))
        self.errors = errors


def loads(data: bytes | str) -> Any:
    """The value of a JSON text; :class:`JSONLimitError` if it is not JSON within the limits."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise JSONLimitError(_diagnose(data) or [((exc.pos,), exc.msg)]) from None
    raw = data.encode() if isinstance(data, str) else data
    # Nesting d levels deep takes at least d opening brackets: most bodies need no walk.
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH:
        problems = _problems(value)
        if problems:
            raise JSONLimitError(problems)
    return value


@dataclass(frozen=True)
class _Refused:
    """Stands, in the diagnostic reading, for a literal orjson refused."""

    message: str


def _number(literal: str) -> Any:
    # float() of a long digit string is linear, unlike int(); the value is never used.
    if math.isfinite(float(literal)):
        return 0
    shown = literal if len(literal) <= 20 else f"{literal[:20]}… ({len(literal)} characters)"
    return _Refused(f"number {shown} is beyond the range of JSON numbers")


def _diagnose(data: bytes | str) -> list[tuple[tuple[str | int, ...], str]]:
    """Where orjson's refusal lies, by the path of the value, if the standard library can tell."""
    try:
        value = json.loads(data, parse_int=_number, parse_float=_number,
                           parse_constant=lambda name: _Refused(f"{name} is not a JSON number"))
    except RecursionError:
        return [((), f"nested deeper than {MAX_DEPTH} levels")]
    except ValueError:  # not JSON at all (JSONDecodeError, UnicodeDecodeError): orjson's position says where
        return []
    return _problems(value)


def _problems(value: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """The first value too deep, refused or holding a lone surrogate, with its path."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if len(path) >= MAX_DEPTH and isinstance(item, (dict, list)):
            return [(path[:1], f"nested deeper than {MAX_DEPTH} levels")]
        if isinstance(item, _Refused):
            return [(path, item.message)]
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                return [(path, f"a lone surrogate (U+{ord(item[exc.start]):04X} at {exc.start}) is not Unicode")]
        elif isinstance(item, dict):
            for key, member in item.items():
                stack.append((key, path))  # a key is checked where its object is
                stack.append((member, (*path, key)))
        elif isinstance(item, list):
            stack.extend((member, (*path, index)) for index, member in enumerate(item))
    return []
