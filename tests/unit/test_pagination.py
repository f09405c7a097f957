"""The one pagination helper without I/O: a page knows whether another follows, its
cursor names the last item's key and reads back as it, and nothing else is a cursor."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

import pytest
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime

from yishi.pagination import DEFAULT_LIMIT, MAX_LIMIT, page_query

T0 = datetime(2026, 3, 2, 1, 0, 0, 123456, tzinfo=UTC)


def test_a_page_has_a_cursor_only_when_more_follow():
    by_id = page_query(str)
    query = by_id(limit=2, cursor=None)
    assert query.fetch == 3 and query.after is None and query.after_value is None
    assert query.page(["a", "b"], lambda i: (i,)) == {"items": ["a", "b"], "next_cursor": None}
    assert query.page([], lambda i: (i,)) == {"items": [], "next_cursor": None}
    page = query.page(["a", "b", "c"], lambda i: (i,))
    assert page["items"] == ["a", "b"]
    assert by_id(limit=2, cursor=page["next_cursor"]).after == ("b",)
    assert (DEFAULT_LIMIT, MAX_LIMIT) == (50, 200)


def test_a_cursor_of_several_typed_columns_reads_back_as_it_was():
    by_time = page_query(AwareDatetime, uuid.UUID)
    key = (T0, uuid.uuid4())
    cursor = by_time(limit=1, cursor=None).page([key, key], lambda k: k)["next_cursor"]
    assert "=" not in cursor and "/" not in cursor and "+" not in cursor  # safe in a query string as it is
    assert by_time(limit=1, cursor=cursor).after == key


@pytest.mark.parametrize("cursor", [
    "", "!!", "e30", base64.urlsafe_b64encode(b"[1, 2]").decode(), base64.urlsafe_b64encode(b"[1]").decode(),
    base64.urlsafe_b64encode(b'["2026-03-02T01:00:00", "not-a-uuid"]').decode(),
    base64.urlsafe_b64encode(b'["2026-03-02T01:00:00"]').decode(),  # naive, and a column short
    base64.urlsafe_b64encode(b"\xff\xfe").decode(), base64.urlsafe_b64encode(b"[" * 5000).decode()[:900],
])
def test_anything_else_is_refused_as_a_field_of_the_query(cursor):
    with pytest.raises(RequestValidationError) as caught:
        page_query(AwareDatetime, uuid.UUID)(limit=1, cursor=cursor)
    assert [(e["loc"], e["type"]) for e in caught.value.errors()] == [(("query", "cursor"), "cursor_invalid")]
