"""Cursor pagination, written once for every list of every service.

A list answers one :class:`Page`: ``items`` in a stable order by a unique key, and
``next_cursor``, the opaque position after the last item (``null`` on the last page).
The next page is asked for with ``?cursor=…`` and the same filters. The cursor is the
last item's key as base64url JSON, and a page is read by keyset (``WHERE key > $last``),
never by offset: items added or removed between two pages neither repeat nor hide the
items already there. ``limit`` is 1 to :data:`MAX_LIMIT` (default :data:`DEFAULT_LIMIT`).

A route declares its key's types once, ``query: PageQuery = Depends(page_query(str))``;
its projection reads ``query.fetch`` rows after ``query.after`` (``None``: from the
first) and the route answers ``query.page(rows, key)``. A limit out of bounds or a cursor that is not one of
this list's positions is refused like every invalid request: 422 problem details
(``invalid_request``, the offending ``query.limit`` or ``query.cursor`` in ``errors``).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fastapi import Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
_MAX_CURSOR = 1_000
"""Characters of a cursor: far more than any key of ours encodes to."""


class Page(BaseModel, Generic[T]):
    """One page of a list."""

    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` (with the same filters) for the next page; null on the last page.")


@dataclass(frozen=True)
class PageQuery:
    """What a list was asked for: at most ``limit`` items after the key ``after``."""

    limit: int
    after: tuple[Any, ...] | None
    _key: TypeAdapter

    @property
    def after_value(self) -> Any:
        """The one value of a single-column key to read after; ``None`` on the first page."""
        return self.after[0] if self.after is not None else None

    @property
    def fetch(self) -> int:
        """Rows to read: one more than the page, to know whether another page follows."""
        return self.limit + 1

    def page(self, rows: Sequence[T], key: Callable[[T], tuple[Any, ...]]) -> dict[str, Any]:
        """The page of ``rows`` (read with :attr:`fetch` as their limit, in key order);
        ``key(row)`` is the row's position, in the route's key types."""
        items = list(rows[: self.limit])
        more = len(rows) > self.limit
        return {"items": items, "next_cursor": encode(self._key, key(items[-1])) if more and items else None}


def encode(adapter: TypeAdapter, key: tuple[Any, ...]) -> str:
    """The opaque cursor of ``key``."""
    raw = json.dumps(adapter.dump_python(key, mode="json"), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _refused(message: str, value: Any) -> RequestValidationError:
    return RequestValidationError([{"type": "cursor_invalid", "loc": ("query", "cursor"), "msg": message,
                                    "input": value}])


def decode(adapter: TypeAdapter, cursor: str) -> tuple[Any, ...]:
    """The key of ``cursor``; :class:`RequestValidationError` when it is not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return adapter.validate_python(json.loads(raw))
    except (binascii.Error, ValueError, ValidationError, RecursionError):
        # json's and UnicodeDecodeError are ValueErrors too.
        raise _refused("not a cursor of this list: pass next_cursor as it was answered", cursor) from None


def page_query(*key: type) -> Callable[..., PageQuery]:
    """The FastAPI dependency of a list ordered by a key of these types (one per column
    of the key, e.g. ``page_query(str)``, ``page_query(datetime, uuid.UUID)``)."""
    adapter = TypeAdapter(tuple[key])  # type: ignore[valid-type]

    def dependency(
        limit: int = Query(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Items per page."),
        cursor: str | None = Query(default=None, max_length=_MAX_CURSOR,
                                   description="The `next_cursor` of the previous page."),
    ) -> PageQuery:
        return PageQuery(limit, decode(adapter, cursor) if cursor is not None else None, adapter)

    return dependency
