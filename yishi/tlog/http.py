"""The Merkle log's public, read-only endpoints, mounted on every service by
:func:`yishi.runtime.create_app` without a token: what they serve is what anyone may check.

* ``GET /log/checkpoint``: the newest signed checkpoint, a C2SP signed note (text/plain);
* ``GET /log/proof/inclusion?event_id=…`` (or ``stream_id=…&version=…``), optionally
  ``&tree_size=n`` (default: the newest checkpoint's): the event's leaf and audit path;
* ``GET /log/proof/consistency?from=m&to=n`` (``to`` default: the newest checkpoint's).

Hashes are base64, as in the checkpoint. Bad input is 400, an event not (yet) in the tree
404, both problem+json.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

import asyncpg
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse

from yishi.tlog import log as tlog


def _b64(h: bytes) -> str:
    return base64.b64encode(h).decode()


def _int(name: str, value: str | None, *, least: int, most: int = 2**63 - 1) -> int | None:
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise HTTPException(400, f"{name} must be an integer, got {value[:40]!r}") from None
    if not least <= number <= most:
        raise HTTPException(400, f"{name} must be at least {least} and at most {most}, got {number}")
    return number


async def _newest(pool: asyncpg.Pool) -> asyncpg.Record | None:
    return await pool.fetchrow("SELECT seq, note FROM checkpoints WHERE note IS NOT NULL ORDER BY seq DESC LIMIT 1")


async def _tree_size(pool: asyncpg.Pool, asked: int | None) -> int:
    """The tree size a proof is asked for: ``asked`` (at most the tree's), else the newest
    checkpoint's."""
    if asked is None:
        newest = await _newest(pool)
        if newest is None:
            raise HTTPException(404, "no signed checkpoint yet: give tree_size")
        return newest["seq"]
    have = await tlog.size(pool)
    if asked > have:
        raise HTTPException(400, f"the log has {have} leaves, fewer than {asked}")
    return asked


_ERRORS: dict[int | str, dict] = {
    400: {"description": "A parameter that is not a number, a UUID, or a size the tree has."},
    404: {"description": "No signed checkpoint yet, or no such event in the tree of that size."},
}


def log_router() -> APIRouter:
    """The router of ``/log/…``; its handlers read the pool of ``request.app.state.ctx``."""
    router = APIRouter(prefix="/log", tags=["transparency log"])

    @router.get("/checkpoint", response_class=PlainTextResponse,
                responses={200: {"content": {"text/plain": {}}, "description": "a C2SP signed note"},
                           404: _ERRORS[404]})
    async def checkpoint(request: Request) -> PlainTextResponse:
        """The newest signed checkpoint: a C2SP tlog-checkpoint (origin, tree size, root
        hash) signed as a C2SP signed note with the service's Ed25519 key."""
        newest = await _newest(request.app.state.ctx.pool)
        if newest is None:
            raise HTTPException(404, "no signed checkpoint yet")
        return PlainTextResponse(newest["note"], media_type="text/plain; charset=utf-8")

    @router.get("/proof/inclusion", responses=_ERRORS)
    async def inclusion(request: Request, event_id: str | None = None, stream_id: str | None = None,
                        version: str | None = None, tree_size: str | None = None) -> dict[str, Any]:
        """The leaf of one event (by ``event_id``, or ``stream_id`` and ``version``) and its
        audit path in the tree of ``tree_size`` leaves (RFC 9162 §2.1.3)."""
        pool = request.app.state.ctx.pool
        if event_id is not None:
            if stream_id is not None or version is not None:
                raise HTTPException(400, "give event_id, or stream_id and version, not both")
            try:
                leaf = await tlog.find_leaf(pool, event_id=uuid.UUID(event_id))
            except ValueError:
                raise HTTPException(400, f"event_id must be a UUID, got {event_id[:40]!r}") from None
        elif stream_id is not None and version is not None:
            number = _int("version", version, least=1, most=2**31 - 1)
            # PostgreSQL text holds no NUL: no stream has such an id
            leaf = None if "\x00" in stream_id else await tlog.find_leaf(pool, stream_id=stream_id, version=number)
        else:
            raise HTTPException(400, "give event_id, or stream_id and version")
        size = await _tree_size(pool, _int("tree_size", tree_size, least=1))
        if leaf is None or leaf.index >= size:
            raise HTTPException(404, f"no such event in the log's first {size} leaves")
        return {"leaf_index": leaf.index, "tree_size": size,
                "leaf": {"event_id": str(leaf.event_id), "position": leaf.position, "stream_id": leaf.stream_id,
                         "version": leaf.version, "event_hash": leaf.event_hash.hex()},
                "leaf_hash": _b64(leaf.hash),
                "hashes": [_b64(h) for h in await tlog.inclusion_proof(pool, leaf.index, size)]}

    @router.get("/proof/consistency", responses=_ERRORS)
    async def consistency(request: Request, first: str | None = Query(None, alias="from"),
                          second: str | None = Query(None, alias="to")) -> dict[str, Any]:
        """The proof that the tree of ``to`` leaves extends the tree of ``from`` leaves
        (RFC 9162 §2.1.4)."""
        pool = request.app.state.ctx.pool
        m = _int("from", first, least=1)
        if m is None:
            raise HTTPException(400, "give from (and to, or the newest checkpoint's size is taken)")
        n = await _tree_size(pool, _int("to", second, least=1))
        if m > n:
            raise HTTPException(400, f"from ({m}) is beyond to ({n})")
        return {"from": m, "to": n, "hashes": [_b64(h) for h in await tlog.consistency_proof(pool, m, n)]}

    return router
