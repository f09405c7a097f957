"""User input never names a stream, in any service. Every id field of every command and
every id in a query's path is tried with the names of streams the service's store holds
(its aggregates' and its replies') and with odd ids (``..``, ``%2F``, 300 characters,
empty, ``vote-<uuid4>``, ``reply-http:k9``):

* a misshapen id is a 4xx (404 or 422), never a 500 nor a redirect;
* where an unknown id is refused (a lookup), a stream's name is answered exactly like
  it (the same status and reason), and nothing is recorded;
* a query answers a stream's name as it answers an unknown id.

The commands are the contracts' samples with an actor allowed to send them; the routes
come from the service's OpenAPI document, so a route added later is tried at once.
"""

from __future__ import annotations

import re
import uuid

import pytest
import pytest_asyncio

from contracts import examples, registry
from contracts.permissions import PERMISSIONS
from contracts.registry import Kind
from services.notify.main import spec as notify_spec
from services.notify.settings import NotifySettings
from services.oversight.main import spec as oversight_spec
from services.proposals.main import spec as proposals_spec
from services.voting.main import spec as voting_spec
from tests.support.service import Running, running

pytestmark = pytest.mark.asyncio(loop_scope="session")

SPECS = {
    "proposals": proposals_spec,
    "voting": voting_spec,
    "oversight": oversight_spec,
    "notify": lambda: notify_spec(NotifySettings(webhook_secret="stream-names-test", worker_interval_s=3600)),
}
MISSHAPEN = ("..", "%2F", "i" * 300, "")
"""Ids no contract accepts: dot segments, an escaped slash, too long, empty."""
STREAM_LIKE = (f"vote-{uuid.uuid4()}", "reply-http:k9")
"""Well-formed ids shaped like stream names (guessed, not taken from the store)."""
COMMANDS = "/{district}/commands/"


def sample(r: Running, type_: str) -> dict:
    """The contracts' sample of ``type_`` in the service's district, sent by a role allowed to."""
    role = min(PERMISSIONS[type_])
    actor = {"id": "someone", "role": str(role), "seat_id": "seat-1" if role == "council_member" else None}
    model = registry.spec(type_, Kind.COMMAND).model
    return {**examples.sample(model).model_dump(mode="json"), "district": r.district, "actor": actor}


def id_fields(body: dict) -> list[str]:
    """The top-level id fields of a command body."""
    return [k for k, v in body.items() if k.endswith("_id") and isinstance(v, str)]


async def send(r: Running, type_: str, body: dict, headers: dict | None = None):
    return await r.client.post(f"/{r.district}/commands/{type_}", json=body, headers=headers or {})


def answer(got) -> tuple[int, str | None]:
    body = got.json()
    return got.status_code, body.get("reason") if isinstance(body, dict) else None


def command_types(r: Running) -> list[str]:
    return sorted(p.removeprefix(COMMANDS) for p in r.app.openapi()["paths"] if p.startswith(COMMANDS))


async def recorded(r: Running) -> int:
    """Events of aggregates (replies aside)."""
    return await r.ctx.pool.fetchval("SELECT count(*) FROM events WHERE stream_id NOT LIKE 'reply-%'")


@pytest_asyncio.fixture(loop_scope="session", scope="module", params=sorted(SPECS))
async def service(request, servers):
    """The service with every command's sample sent once (the first with the
    ``Idempotency-Key`` ``k9``), so its store holds aggregate and reply streams."""
    async with running(SPECS[request.param](), servers, command_rate_limit="10000/second") as r:
        for n, type_ in enumerate(command_types(r)):
            got = await send(r, type_, sample(r, type_), headers={"Idempotency-Key": "k9"} if n == 0 else None)
            assert got.status_code < 500, f"{type_}: {got.text}"
        yield r


async def stream_names(r: Running) -> list[str]:
    """A few names of each kind of stream the store holds (replies and aggregates)."""
    rows = await r.ctx.pool.fetch(
        "SELECT stream_id FROM (SELECT stream_id, row_number() OVER (PARTITION BY stream_id LIKE 'reply-%'"
        " ORDER BY min(position)) AS n FROM events GROUP BY stream_id) s WHERE n <= 3")
    names = [row["stream_id"] for row in rows]
    assert any(n.startswith("reply-") for n in names), names
    return [*names, *STREAM_LIKE]


async def test_commands_naming_streams_or_odd_ids(service):
    r = service
    names = await stream_names(r)
    for type_ in command_types(r):
        base = sample(r, type_)
        for field in id_fields(base):
            fresh = await send(r, type_, {**base, field: f"nx-{uuid.uuid4().hex[:12]}"})
            assert fresh.status_code < 500, f"{type_}.{field} unknown: {fresh.text}"
            for odd in MISSHAPEN:
                got = await send(r, type_, {**base, field: odd})
                assert 400 <= got.status_code < 500, f"{type_}.{field} = {odd!r}: {got.status_code} {got.text}"
            if fresh.status_code < 400:
                # The field is the id of a new record: any well-formed id is just that
                # (and using stream names here would make them records' ids).
                continue
            # Refused with an unknown id: the field names a record to look up (or the
            # command is refused before any lookup).
            before = await recorded(r)
            for name in names:
                got = await send(r, type_, {**base, field: name})
                assert answer(got) == answer(fresh), \
                    f"{type_}.{field} = stream {name}: {got.text}; an unknown id: {fresh.text}"
            assert await recorded(r) == before, f"{type_}.{field}: a refused id recorded something"


async def test_queries_naming_streams_or_odd_ids(service):
    r = service
    names = await stream_names(r)
    for path, ops in r.app.openapi()["paths"].items():
        params = [p for p in re.findall(r"{(\w+)}", path) if p != "district"]
        if "get" not in ops or not params:
            continue
        filled = {p: "2026" if p == "year" else f"nx-{uuid.uuid4().hex[:12]}" for p in params}

        def url(**values: str) -> str:
            out = path.replace("{district}", r.district)
            for p, v in {**filled, **values}.items():
                out = out.replace("{" + p + "}", v)
            return out
        for p in (p for p in params if p.endswith("_id")):
            fresh = await r.client.get(url())
            assert fresh.status_code < 500, f"GET {url()}: {fresh.text}"
            for name in names:
                got = await r.client.get(url(**{p: name}))
                assert got.status_code == fresh.status_code, f"GET {path} {p}={name}: {got.text}"
            for odd in MISSHAPEN:
                got = await r.client.get(url(**{p: odd}))
                assert 400 <= got.status_code < 500, f"GET {path} {p}={odd!r}: {got.status_code} {got.text}"
