"""One error shape for every HTTP answer that is not a success: RFC 9457 problem details
(``application/problem+json``), written once for every service.

Every error body has ``type``, ``title``, ``status`` and ``detail`` (RFC 9457) and two
members of the platform's own: ``reason``, a stable machine-readable code, and, where
fields were at fault, ``errors``, one entry per field (``field`` is the dotted path
into the request, e.g. ``body.terms.closes_at``). A rejected command's problem also
carries every field of its ``CommandRejected`` reply (``message``, ``subject``,
``correlation_id`` …), so a client reads a refusal the same way over HTTP and Kafka.

``type`` is ``urn:yishi:problem:{reason}``; the reasons of commands are
:class:`contracts.common.RejectionReason`, the others are listed in :data:`REASONS`.
:func:`install` adds the exception handlers and makes the OpenAPI document say so for
every error answer of every route.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from contracts.common import CommandRejected

log = structlog.get_logger("yishi.problems")

MEDIA_TYPE = "application/problem+json"

REASONS: dict[int, str] = {
    400: "bad_request",
    401: "unauthenticated",
    403: "not_authorised",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}
"""The reason code of an error that is not a command's rejection, by HTTP status."""


class FieldError(BaseModel):
    """One offending value of a request."""

    field: str = Field(description="Dotted path into the request: body.terms.title, path.vote_id, header.x.")
    message: str
    type: str = Field(description="The kind of error (pydantic's error type, e.g. string_too_long).")


class Problem(BaseModel):
    """RFC 9457 problem details, with the platform's reason code and the offending fields."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="urn:yishi:problem:{reason}", examples=["urn:yishi:problem:not_found"])
    title: str = Field(description="The HTTP status phrase.", examples=["Not Found"])
    status: int
    detail: str
    reason: str = Field(description="Machine-readable reason: a RejectionReason for commands, else one of "
                                    + ", ".join(sorted(set(REASONS.values()))) + ".")
    errors: list[FieldError] | None = None


class ProblemResponse(JSONResponse):
    """A problem details response. Whatever a detail echoes of the request (a lone
    surrogate in a path, say) is written as a JSON escape: the refusal itself never
    fails to render."""

    media_type = MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        options = dict(allow_nan=False, separators=(",", ":"), default=str)
        try:
            return json.dumps(content, ensure_ascii=False, **options).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: escaped, as JSON allows
            return json.dumps(content, ensure_ascii=True, **options).encode("ascii")


def problem(status: int, detail: str, *, reason: str | None = None, errors: list[dict] | None = None,
            headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    """The response of one problem."""
    reason = reason or REASONS.get(status, "error")
    body: dict[str, Any] = {"type": f"urn:yishi:problem:{reason}", "title": _title(status), "status": status,
                            "detail": detail, "reason": reason, **extra}
    if errors is not None:
        body["errors"] = errors
    return ProblemResponse(body, status_code=status, headers=headers)


def rejection(reply: CommandRejected, status: int) -> JSONResponse:
    """A rejected command's answer: its reply as problem details."""
    return problem(status, reply.message, **reply.model_dump(mode="json"))


def field_errors(errors: Any) -> list[dict]:
    """pydantic's / FastAPI's error list as :class:`FieldError` entries."""
    found = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        found.append({"field": ".".join(loc) or "body", "message": str(error.get("msg", "invalid")),
                      "type": str(error.get("type", "value_error"))})
    return found


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = field_errors(exc.errors())
    reason = "invalid_command" if "/commands/" in request.url.path else "invalid_request"
    fields = ", ".join(e["field"] for e in errors[:5])
    return problem(422, f"the request is not valid: {fields}" if fields else "the request is not valid",
                   reason=reason, errors=errors)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    detail = exc.detail if isinstance(exc.detail, str) else _title(exc.status_code)
    return problem(exc.status_code, detail, headers=getattr(exc, "headers", None))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", path=request.url.path)
    return problem(500, "an internal error occurred; it has been logged")


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` as problem details, and document it so."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(get_openapi(
                title=app.title, version=app.version, routes=app.routes, description=app.description))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Every error answer of every operation is documented as problem details (on a
    command route also as ``CommandProblem``: a problem that is a rejected command's reply
    too), and FastAPI's own error models are gone."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (FieldError, Problem, CommandRejected):
        definition = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, nested in definition.pop("$defs", {}).items():
            components.setdefault(name, nested)
        components[model.__name__] = definition
    components["CommandProblem"] = {
        "description": "A rejected command: problem details and its recorded CommandRejected reply in one.",
        "allOf": [{"$ref": "#/components/schemas/Problem"}, {"$ref": "#/components/schemas/CommandRejected"}]}
    plain = {"$ref": "#/components/schemas/Problem"}
    either = {"anyOf": [{"$ref": "#/components/schemas/CommandProblem"}, plain]}
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            command = "/commands/" in path
            for code, response in operation.get("responses", {}).items():
                if code.isdigit() and int(code) < 400:
                    continue
                response["content"] = {MEDIA_TYPE: {"schema": either if command else plain}}
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    return schema
