"""The floor of ``bench/run ballots``: the least a ballot endpoint can do on the voting
service's server stack, served as its own process (``python -m bench._floor``).

A bare ASGI app under uvicorn, started exactly as ``yishi serve`` starts a service (same
loop and HTTP implementation, one process), that checks the bearer token with the same
:class:`yishi.auth.TokenVerifier` and settings, then runs one ``INSERT`` transaction per
request on a pool sized like a service's (``YISHI_DB_POOL_*``) and answers 200 with a
small JSON body. No routing, validation, idempotency, event store or outbox: what is left
of a ballot once everything the platform adds is taken away.
"""

from __future__ import annotations

import asyncpg
import uvicorn

from yishi.auth import TokenVerifier, Unauthenticated
from yishi.cli_support import SERVED
from yishi.db import create_pool
from yishi.settings import Settings

_DDL = "CREATE TABLE IF NOT EXISTS floor_ballots (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, " \
       "voter text NOT NULL, body bytea NOT NULL)"
_OK = b'{"status":"accepted"}'


class Floor:
    """The ASGI app: token check, one INSERT transaction, 200."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.verifier = TokenVerifier(settings)
        self.pool: asyncpg.Pool | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        authorization = dict(scope["headers"]).get(b"authorization", b"")
        if not authorization.startswith(b"Bearer "):
            await _answer(send, 401, b'{"detail":"a bearer token is required"}')
            return
        try:
            principal = await self.verifier.verify(authorization[7:].decode())
        except Unauthenticated as exc:
            await _answer(send, 401, f'{{"detail":"{type(exc).__name__}"}}'.encode())
            return
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("INSERT INTO floor_ballots (voter, body) VALUES ($1, $2)", principal.subject, body)
        await _answer(send, 200, _OK)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.pool = await create_pool(self.settings.database_url, self.settings.db_schema or "floor",
                                              min_size=self.settings.db_pool_min, max_size=self.settings.db_pool_max)
                await self.pool.execute(_DDL)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _answer(send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    settings = Settings(service="floor")
    # As yishi.cli.serve runs a service.
    uvicorn.run(Floor(settings), host=settings.http_host, port=settings.http_port, **SERVED)
