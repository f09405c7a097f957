"""The HTTP edge of every service's commands: ``POST /{district}/commands/{Type}``, the
per-caller rate limit, and the status of each rejection reason. The bus behind it
(:mod:`yishi.commands`) is the same for HTTP and the command topic."""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Header
from fastapi import Request as HTTPRequest
from fastapi.exceptions import RequestValidationError
from limits import parse_many
from pydantic import ValidationError

from contracts import registry
from contracts.common import Command, CommandAccepted, CommandRejected, RejectionReason
from contracts.registry import Kind
from yishi import problems
from yishi.auth import Principal, authenticate
from yishi.commands import CommandBus
from yishi.jsonbody import LimitedJSONRoute

HTTP_STATUS: dict[RejectionReason, int] = {
    RejectionReason.UNKNOWN_COMMAND: 404,
    RejectionReason.UNSUPPORTED_SCHEMA_VERSION: 422,
    RejectionReason.INVALID_COMMAND: 422,
    RejectionReason.WRONG_DISTRICT: 404,  # another district's ids are answered as not found
    RejectionReason.NOT_AUTHORISED: 403,
    RejectionReason.NOT_FOUND: 404,
    RejectionReason.ALREADY_EXISTS: 409,
    RejectionReason.INVALID_STATE: 409,
    RejectionReason.DUPLICATE: 409,
    RejectionReason.NOT_ELIGIBLE: 403,
    RejectionReason.DEADLINE_PASSED: 409,
    RejectionReason.OVER_BUDGET: 422,
    RejectionReason.CONFLICT: 409,
    RejectionReason.IDEMPOTENCY_KEY_REUSED: 422,
    RejectionReason.COUNCIL_RULE: 409,
    RejectionReason.VOTE_REQUESTED_THROUGH_PROPOSALS: 409,
}


COMMAND_RESPONSES: dict[int | str, dict] = {
    400: {"description": "The body could not be read."},
    403: {"description": "The caller may not send this command (recorded as CommandRejected)."},
    404: {"description": "Not found (another district's too), or the command names what does not exist."},
    409: {"description": "The command does not fit the state of what it addresses, or is a duplicate."},
    413: {"description": "The body is larger than YISHI_MAX_BODY_BYTES."},
    422: {"description": "The body is not a valid command, a value is out of bounds, the command was rejected "
                         "so, or its Idempotency-Key was used before for another request."},
    429: {"description": "More commands than YISHI_COMMAND_RATE_LIMIT allows; retry after Retry-After seconds."},
}
"""The documented error answers of every command endpoint; each body is problem details
(:mod:`yishi.problems`), a rejection's carrying its ``CommandRejected`` reply."""



def command_router(bus: CommandBus, prefix: str = "/{district}/commands", rate_limit: str = "20/second") -> APIRouter:
    """``POST /{district}/commands/{Type}`` for every command ``bus`` handles (its internal
    commands, the platform's reactions, excepted).

    The body is the command; ``Idempotency-Key`` makes retries safe (the first
    reply is returned again). Rejections map to 4xx with the reply in a problem
    details body (:func:`yishi.problems.rejection`). Each
    caller may send ``rate_limit`` commands (``limits`` notation) to this instance.
    Callers authenticate with a bearer token (:func:`yishi.auth.authenticate`; the
    app's ``state.verifier`` checks it).
    """
    router = APIRouter(prefix=prefix, tags=["commands"], route_class=LimitedJSONRoute)
    limiter = RateLimit(rate_limit)
    for model in bus.public_commands:
        router.add_api_route(
            f"/{registry.type_name(model)}", _endpoint(bus, model, limiter), methods=["POST"],
            response_model=CommandAccepted, status_code=200,
            responses=COMMAND_RESPONSES,
            summary=(model.__doc__ or model.__name__).strip().splitlines()[0],
        )
    return router

def _endpoint(bus: CommandBus, model: type[Command], limiter: "RateLimit"):
    async def endpoint(request: HTTPRequest, district: str, command: model,  # type: ignore[valid-type]
                       idempotency_key: str | None = Header(default=None, max_length=200),
                       principal: Principal = Depends(authenticate)) -> Any:
        unknown = unknown_fields(model, await request.json())
        if unknown:
            raise RequestValidationError(unknown)
        retry_after = await limiter.hit(principal)
        if retry_after is not None:
            return problems.problem(429, "too many commands; slow down",
                                    headers={"Retry-After": str(retry_after)})
        if command.district != district:
            # Answered in the documented reply shape, but not recorded: the command
            # never reached a district it names.
            return problems.rejection(CommandRejected(
                district=command.district, actor=command.actor, occurred_at=bus.clock.now(),
                correlation_id=str(uuid.uuid4()), command_type=registry.type_name(model),
                reason=RejectionReason.WRONG_DISTRICT,
                message="the command's district differs from the district in its path"),
                HTTP_STATUS[RejectionReason.WRONG_DISTRICT])
        # The key scopes the command's identity only: ids and the correlation id of what
        # it causes are the platform's own, so callers sharing a key share nothing.
        command_id = str(uuid.uuid4())
        reply = await bus.dispatch(command, command_id=command_id, correlation_id=command_id,
                                    principal=principal,
                                    key=f"http:{idempotency_key}" if idempotency_key else None)
        if isinstance(reply, CommandRejected):
            return problems.rejection(reply, HTTP_STATUS.get(reply.reason, 400))
        return reply
    endpoint.__annotations__["command"] = model  # a local class: FastAPI cannot resolve its name
    endpoint.__name__ = f"command_{model.__name__}"
    return endpoint


def unknown_fields(model: type[Command], body: Any) -> list[dict[str, Any]]:
    """The fields ``body`` names, at any depth, that ``model`` does not know, as FastAPI's
    validation errors. FastAPI reads nested values as their models do, tolerantly (they
    are shared with events): a misspelt nested field would be dropped without a word, so
    the HTTP edge refuses it as the command topic does (:func:`contracts.registry.input_extra`)."""
    try:
        model.model_validate(body, extra=registry.input_extra(Kind.COMMAND))
    except ValidationError as exc:
        return [{**e, "loc": ("body", *e["loc"])} for e in exc.errors() if e["type"] == "extra_forbidden"]
    return []


class RateLimit:
    """Per-caller command limits of one service instance: for each limit (``limits``
    notation) a moving window of the caller's last commands, in memory (with N replicas a
    caller gets up to N times the limit). Constant work per command: ``limits``' own
    memory storage swept every caller's window, a thread hop each, after every command,
    which on a vote with thousands of voters cost more than the ballot itself."""

    SWEEP_S = 10.0
    """How often callers whose windows are all past are forgotten."""

    def __init__(self, spec: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = [(item.amount, float(item.get_expiry())) for item in parse_many(spec)]
        self.longest = max(expiry for _, expiry in self.limits)
        self.clock = clock
        self.windows: dict[tuple[str, str], list[deque[float]]] = {}
        self.swept = clock()

    async def hit(self, principal: Principal) -> int | None:
        """Count one command; None when allowed, else the seconds to wait (a refused
        command is not counted)."""
        now = self.clock()
        if now - self.swept > self.SWEEP_S:
            self.swept = now
            self.windows = {key: w for key, w in self.windows.items()
                            if any(hits and hits[-1] > now - self.longest for hits in w)}
        key = (principal.district or "", principal.subject)
        windows = self.windows.get(key)
        if windows is None:
            windows = self.windows[key] = [deque() for _ in self.limits]
        wait = 0.0
        for (amount, expiry), hits in zip(self.limits, windows):
            while hits and hits[0] <= now - expiry:
                hits.popleft()
            if len(hits) >= amount:
                wait = max(wait, hits[-amount] + expiry - now)
        if wait > 0:
            return max(1, int(wait) + 1)
        for hits in windows:
            hits.append(now)
        return None
