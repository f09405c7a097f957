"""HTTP command bodies read within the JSON limits of :mod:`contracts.jsonlimits`.

FastAPI reads a JSON body with the standard library, which accepts ``NaN`` and lone
surrogates (and then cannot render its own 422 about them: a 500) and answers a body it
cannot read, such as 100,000 nested arrays or a 5,000-digit number, with 400 "There was
an error parsing the body". :class:`LimitedJSONRoute` reads the body first, as the
command topics do, and refuses what is outside the limits with FastAPI's own
``RequestValidationError`` (422, ``loc`` naming the field or the position), so every
refusal of a command body has the one shape the app's handlers give validation errors.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from contracts import jsonlimits
from contracts.jsonlimits import JSONLimitError


class _LimitedJSONRequest(Request):
    """A request whose ``json()`` is read within the limits (once; then remembered)."""

    async def json(self) -> Any:
        if not hasattr(self, "_limited_json"):
            self._limited_json = jsonlimits.loads(await self.body())
        return self._limited_json


def _is_json(content_type: str | None) -> bool:
    """Whether FastAPI would read a body of this type as JSON (no type: it may)."""
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class LimitedJSONRoute(APIRoute):
    """An ``APIRoute`` whose JSON bodies are read by :func:`contracts.jsonlimits.loads`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def limited(request: Request) -> Response:
            request = _LimitedJSONRequest(request.scope, request.receive)
            if _is_json(request.headers.get("content-type")) and await request.body():
                try:
                    await request.json()
                except JSONLimitError as exc:
                    raise RequestValidationError(
                        [{"type": "json_invalid", "loc": ("body", *loc), "msg": message, "input": None}
                         for loc, message in exc.errors]) from None
            return await handle(request)

        return limited
