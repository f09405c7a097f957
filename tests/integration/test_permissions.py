"""The authorisation matrix: every command of every service × every role a token can
carry, sent over HTTP with a real token, is refused or let through exactly as the
permission table (:mod:`contracts.permissions`) says; plus the identity checks that
come before the table (the actor is the caller, the role and seat are granted)."""

from __future__ import annotations

import itertools

import pytest

from contracts import registry
from contracts.common import Actor, Role
from contracts.examples import sample
from contracts.permissions import PERMISSIONS
from services.notify.main import spec as notify_spec
from services.oversight.main import spec as oversight_spec
from services.proposals.main import spec as proposals_spec
from services.voting.main import spec as voting_spec
from tests.support.auth import bearer
from tests.support.service import running
from yishi.auth import GRANTABLE_ROLES

SPECS = {"proposals": proposals_spec, "voting": voting_spec, "oversight": oversight_spec, "notify": notify_spec}
SEAT = "seat-7"


def table_denial(role: Role, name: str) -> str:
    return f"a {role} may not send {name}"


async def post(svc, name: str, actor: Actor, headers: dict | None = None):
    command = sample(registry.spec(name).model).model_copy(update={"district": svc.district, "actor": actor})
    return await svc.client.post(f"/{svc.district}/commands/{name}", content=command.model_dump_json(),
                                 headers={"content-type": "application/json", **(headers or {})})


@pytest.mark.parametrize("service", sorted(SPECS))
async def test_every_command_by_every_role_is_decided_by_the_table(service, servers):
    async with running(SPECS[service](), servers, command_rate_limit="10000/second") as svc:
        names = sorted(svc.ctx.command_types)
        assert names and set(names) <= set(PERMISSIONS)
        outcomes: dict[tuple[str, Role], bool] = {}
        for name, role in itertools.product(names, sorted(GRANTABLE_ROLES)):
            actor = Actor(id=f"m-{role}", role=role, seat_id=SEAT if role is Role.COUNCIL_MEMBER else None)
            response = await post(svc, name, actor)
            reply = response.json()
            denied = response.status_code == 403 and reply.get("reason") == "not_authorised" \
                and reply.get("message") == table_denial(role, name)
            outcomes[(name, role)] = not denied
            assert response.status_code < 500, response.text
        expected = {(name, role): role in PERMISSIONS[name] for name, role in outcomes}
        wrong = sorted(f"{name} by {role}: {'allowed' if got else 'denied'}"
                       for (name, role), got in outcomes.items() if got != expected[(name, role)])
        assert not wrong, "\n".join(wrong)
        # Every role is allowed something or, for the read-only auditor, nothing at all.
        assert not any(outcomes[(n, Role.AUDITOR)] for n in names)


async def test_identity_is_checked_before_the_table(servers):
    async with running(proposals_spec(), servers, command_rate_limit="10000/second") as svc:
        d = svc.district
        member = Actor(id="cm-1", role=Role.COUNCIL_MEMBER, seat_id=SEAT)

        # Someone else's name in the actor field.
        response = await post(svc, "SecondMotion", member, bearer("cm-2", d, "council_member", seats=(SEAT,)))
        assert (response.status_code, response.json()["reason"]) == (403, "not_authorised")
        assert "authenticated caller" in response.json()["message"]

        # A role the token does not grant.
        response = await post(svc, "SecondMotion", member, bearer("cm-1", d, "resident"))
        assert response.status_code == 403 and "do not grant the role" in response.json()["message"]

        # A seat the token does not list.
        response = await post(svc, "SecondMotion", member, bearer("cm-1", d, "council_member", seats=("seat-8",)))
        assert response.status_code == 403 and "from a seat" in response.json()["message"]

        # The platform's own role cannot be claimed.
        system = Actor(id="sys-1", role=Role.SYSTEM)
        response = await post(svc, "FormCouncil", system, bearer("sys-1", d, "system"))
        assert response.status_code == 403 and "do not grant the role system" in response.json()["message"]

        # The same caller with what the token grants passes the checks (the motion does not exist).
        response = await post(svc, "SecondMotion", member, bearer("cm-1", d, "council_member", seats=(SEAT,)))
        assert response.json()["reason"] != "not_authorised", response.text


PUBLIC_LOG = ("/log/checkpoint", "/log/proof/inclusion", "/log/proof/consistency")
"""The Merkle log's public, read-only proofs (yishi/tlog/http.py)."""


@pytest.mark.parametrize("headers, detail", [
    ({}, "a bearer token is required"),
    ({"authorization": "Bearer not-a-jwt"}, "invalid token"),
    ({"authorization": "Basic dXNlcjpwYXNz"}, "a bearer token is required"),
])
async def test_requests_without_a_valid_token_are_refused_everywhere_but_health_and_the_public_log(
        servers, headers, detail):
    async with running(voting_spec(), servers) as svc:
        plain = svc.client
        paths = [p for p in svc.app.openapi()["paths"] if p not in ("/healthz", "/readyz", "/healthz/kafka")
                 and p not in PUBLIC_LOG]
        assert paths
        for path in paths:
            url = path.replace("{district}", svc.district)
            url = url.replace("{vote_id}", "v-1").replace("{ballot_id}", "b-1")
            method = "post" if "/commands/" in path else "get"
            response = await plain.request(method, url, headers=headers, auth=None,
                                           json={} if method == "post" else None)
            assert response.status_code == 401, (path, response.text)
            assert detail in response.json()["detail"]
            assert response.headers["www-authenticate"].startswith("Bearer")
        assert (await plain.get("/healthz", auth=None)).status_code == 200
        assert (await plain.get("/readyz", auth=None)).status_code == 200
        for path in PUBLIC_LOG:  # anyone checks the log: no token asked, whatever is sent
            response = await plain.get(path, headers=headers, auth=None)
            assert response.status_code in (400, 404), (path, response.text)


async def test_commands_over_the_limit_get_429_per_caller(servers):
    async with running(notify_spec(), servers, command_rate_limit="3/minute") as svc:
        worker = Actor(id="w-1", role=Role.COMMUNITY_WORKER)
        codes = [(await post(svc, "Subscribe", worker)).status_code for _ in range(4)]
        assert codes[:3] != [429] * 3 and codes[3] == 429
        limited = await post(svc, "Subscribe", worker)
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        # Another caller is not slowed by the first one.
        other = await post(svc, "Subscribe", Actor(id="w-2", role=Role.COMMUNITY_WORKER))
        assert other.status_code != 429
        # Reads are not rate limited.
        assert (await svc.client.get(f"/{svc.district}/subscriptions?subscriber_id=w-1")).status_code == 200
