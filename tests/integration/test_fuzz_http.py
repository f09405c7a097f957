"""Every service's HTTP API fuzzed from its own OpenAPI spec with schemathesis: valid
and invalid requests alike never get a 5xx nor a response the spec does not document.

Each service runs in-process (its real lifespan: pool, tables, broker) behind a real
uvicorn server on a loopback socket; schemathesis generates and sends the requests
from a worker thread so the service keeps the test's event loop to itself.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import hypothesis
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given
from pydantic import ValidationError
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS
from schemathesis.config import SchemathesisConfig
from schemathesis.config._checks import NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES
from schemathesis.core.failures import FailureGroup

from contracts.common import DISTRICT_PATTERN, Actor
from services.notify.main import spec as notify_spec
from services.oversight.main import spec as oversight_spec
from services.proposals.main import spec as proposals_spec
from services.voting.main import spec as voting_spec
from tests.support.auth import bearer
from tests.support.service import running

EXAMPLES_PER_OPERATION = 20
"""Bounded so that all four services are fuzzed in about two minutes."""

CHECK_NAMES = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
               "response_headers_conformance", "response_schema_conformance", "negative_data_rejection")
"""Checks on the response alone; schemathesis' stateful checks re-send requests and
are left to a later, authenticated run."""

SPECS: dict[str, Callable] = {"proposals": proposals_spec, "voting": voting_spec,
                              "oversight": oversight_spec, "notify": notify_spec}


@asynccontextmanager
async def served(app) -> AsyncIterator[str]:
    """Serve an already started ``app`` over HTTP on a free loopback port; yield its URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def fuzz(openapi: dict, base_url: str) -> dict[str, str]:
    """Fuzz every operation of ``openapi`` at ``base_url``; the first failure of each
    failing operation, by operation label."""
    # A too-large body is refused with 413, which is a refusal like any other 4xx.
    config = SchemathesisConfig.from_dict({"checks": {"negative_data_rejection": {
        "expected-statuses": [*NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES, "413"]}}})
    schema = schemathesis.openapi.from_dict(openapi, config=config)
    checks = [check for check in CHECKS.get_all() if check.__name__ in CHECK_NAMES]
    assert len(checks) == len(CHECK_NAMES)
    failures: dict[str, str] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        strategy = operation.as_strategy(generation_mode=GenerationMode.POSITIVE) | operation.as_strategy(
            generation_mode=GenerationMode.NEGATIVE)

        @hypothesis.settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
                             suppress_health_check=list(HealthCheck), phases=[hypothesis.Phase.generate])
        @given(case=strategy)
        def call(case) -> None:
            case.call_and_validate(base_url=base_url, checks=checks, timeout=10, headers=credentials(case))

        try:
            call()
        except (Exception, FailureGroup) as exc:  # a failed check or a transport error: report, go on
            failures[operation.label] = str(exc)[:1500]
    return failures


def credentials(case) -> dict[str, str]:
    """A real token for each generated request, so that requests get past authentication
    and reach validation and the handlers: for a command, a token of the actor it names
    in the district of its path; for a query, an auditor of that district."""
    district = (case.path_parameters or {}).get("district")
    district = district if isinstance(district, str) and re.fullmatch(DISTRICT_PATTERN, district) else "gulou"
    actor = case.body.get("actor") if isinstance(case.body, dict) else None
    try:
        who = Actor.model_validate(actor)
    except ValidationError:
        return bearer("fuzz-auditor", district, "auditor")
    return bearer(who.id, district, who.role.value, seats=(who.seat_id,) if who.seat_id else ())


async def assert_bad_bodies_refused(svc) -> None:
    """Oversized bodies get 413 (declared or streamed), over-long strings 422."""
    limit = svc.ctx.settings.max_body_bytes
    assert limit == 256 * 1024  # the default of YISHI_MAX_BODY_BYTES
    path = next(path for path in svc.app.openapi()["paths"] if "/commands/" in path)
    url = path.replace("{district}", svc.district)

    declared = await svc.client.post(url, content=b"{" + b" " * limit + b"}",
                                     headers={"content-type": "application/json"})
    assert declared.status_code == 413
    assert declared.headers["content-type"] == "application/problem+json"
    assert declared.json() == {"type": "urn:yishi:problem:body_too_large", "title": "Request Entity Too Large",
                               "status": 413, "detail": f"request body larger than {limit} bytes",
                               "reason": "body_too_large"}

    async def chunks():  # no Content-Length: the limit must hold for a streamed body too
        for _ in range(limit // 4096 + 1):
            yield b" " * 4096

    streamed = await svc.client.post(url, content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413

    # Every command names its actor by an id of at most 80 characters; the idempotency
    # key is bounded too.
    long = await svc.client.post(url, json={"district": svc.district, "actor": {"id": "a" * 81, "role": "resident"}},
                                 headers={"idempotency-key": "k" * 201, **bearer("w-1", svc.district, "resident")})
    assert long.status_code == 422 and long.headers["content-type"] == "application/problem+json"
    assert long.json()["reason"] == "invalid_command"
    errors = {error["field"]: error["type"] for error in long.json()["errors"]}
    assert errors["body.actor.id"] == "string_pattern_mismatch"
    assert errors["header.idempotency-key"] == "string_too_long"


BAD_STRINGS = ("\u0000", "\ud800", "\u200b\u200d", "\u202etxt.exe", "")
"""NUL, a lone surrogate, zero-width only, a bidi override, empty: for every string."""
BAD_NUMBERS = (str(2**63), str(-(2**63) - 1), "1e30", "NaN", "Infinity", "-0.5", '"100"', "9" * 5000)
"""As JSON literals (NaN and Infinity are not JSON, but clients send them): for every number."""
BAD_TIMES = ("9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "2026-03-02T09:15:00", "2026-12-31T23:59:60Z")
"""A far future, a far past, no time zone, a leap second: for every time."""
MARK = "__yishi_bad_value__"


def leaves(value, path=()):
    """Every (path, value) of a JSON value's scalar leaves."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, (*path, index))
    else:
        yield path, value


def with_literal(body, path, literal: str) -> bytes:
    """``body`` as JSON text with the leaf at ``path`` replaced by the raw ``literal``."""
    body = json.loads(json.dumps(body))
    target = body
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = MARK
    return json.dumps(body).replace(json.dumps(MARK), literal).encode()


def bad_literals(value) -> tuple[str, ...]:
    if isinstance(value, bool):
        return ('"true"', "1")
    if isinstance(value, int):
        return BAD_NUMBERS
    if isinstance(value, str):
        if re.fullmatch(r"\d{4}-\d\d-\d\dT.*", value):
            return tuple(json.dumps(t) for t in BAD_TIMES)
        return tuple(json.dumps(t) for t in BAD_STRINGS)
    return ()


async def assert_bad_values_refused(svc) -> int:
    """Every scalar of every command, replaced by each bad value of its kind
    (``../shared/OUTSIDE-IN.md``'s Values), sent with a token of the command's actor:
    never a 5xx, every refusal problem details. Returns how many were refused 422."""
    from contracts import examples, registry

    refused = 0
    for path in svc.app.openapi()["paths"]:
        if "/commands/" not in path:
            continue
        model = registry.spec(path.rsplit("/", 1)[1]).model
        body = examples.sample(model).model_copy(update={"district": svc.district}).model_dump(mode="json")
        actor = Actor.model_validate(body["actor"])
        headers = {"content-type": "application/json",
                   **bearer(actor.id, svc.district, actor.role.value, seats=(actor.seat_id,) if actor.seat_id else ())}
        for leaf, value in leaves(body):
            if leaf in (("district",), ("actor", "role")):
                continue
            for literal in bad_literals(value):
                response = await svc.client.post(path.replace("{district}", svc.district),
                                                  content=with_literal(body, leaf, literal), headers=headers)
                where = f"{path} {'.'.join(map(str, leaf))} = {literal[:40]}"
                assert response.status_code < 500, f"{where}: {response.status_code} {response.text[:300]}"
                if response.status_code >= 400:
                    assert response.headers["content-type"] == "application/problem+json", where
                refused += response.status_code == 422
    return refused


@pytest.mark.parametrize("service", sorted(SPECS))
async def test_bad_input_is_refused(service, servers):
    """Each service is started once for both checks: starting one takes ~10 s."""
    async with running(SPECS[service](), servers, command_rate_limit="10000/second") as svc, \
            served(svc.app) as base_url:
        await assert_bad_bodies_refused(svc)
        assert await assert_bad_values_refused(svc) > 0
        openapi = svc.app.openapi()
        failures = await asyncio.to_thread(fuzz, openapi, base_url)
    assert len(openapi["paths"]) > 2  # the service's own routes, not just health and readiness
    assert not failures, "\n\n".join(f"== {label}\n{text}" for label, text in failures.items())
