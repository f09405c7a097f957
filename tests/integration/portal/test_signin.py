"""Signing in to the portal (services/portal/signin.py) against the tests' development
issuer, over HTTP as a browser would: the redirect to the provider carries a fresh state,
nonce and S256 challenge and no token; the callback with the provider's code signs the
person in (the session cookie, signed, HttpOnly, SameSite=Lax, holds who they are); a
callback whose state the session did not start is refused; a form without the session's
CSRF token is refused before anything is sent."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from starlette.middleware.sessions import SessionMiddleware

from services.portal import signin
from services.portal.settings import PortalSettings
from tests.support.auth import auth_settings, issuer
from yishi.settings import Settings

PORTAL = "http://127.0.0.1:9"  # the redirect the issuer accepts: a loopback address


@pytest.fixture
def portal() -> httpx.AsyncClient:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, secret_key="test-secret", session_cookie=signin.SESSION_COOKIE,
                       same_site="lax")
    app.include_router(signin.router(PortalSettings(oidc_discovery_url=issuer().discovery_url),
                                     Settings(districts=["gulou"], **auth_settings())))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PORTAL)


def session_of(client: httpx.AsyncClient) -> dict:
    """The session cookie's content (signed, not encrypted: base64 JSON before the signature)."""
    value = client.cookies[signin.SESSION_COOKIE]
    payload = value.split(".")[0]
    return json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4)))


async def to_provider(portal: httpx.AsyncClient) -> dict[str, str]:
    answer = await portal.get("/auth/login", params={"next": "/gulou/votes/v-1"})
    assert answer.status_code == 302
    url = urlsplit(answer.headers["location"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == httpx.get(issuer().discovery_url).json()[
        "authorization_endpoint"]
    return {k: v[0] for k, v in parse_qs(url.query).items()}


def provider_code(request: dict[str, str], subject: str = "resident-zhou") -> tuple[str, str]:
    """The login form's answer: (code, state) of the redirect back to the portal."""
    answer = httpx.post(httpx.get(issuer().discovery_url).json()["authorization_endpoint"], data={
        **request, "subject": subject, "district": "gulou", "roles": ["resident"], "seat": "", "acts_for": ""})
    assert answer.status_code == 303
    back = urlsplit(answer.headers["location"])
    assert back.path == "/auth/callback"
    query = parse_qs(back.query)
    return query["code"][0], query["state"][0]


async def test_the_login_redirect_carries_state_nonce_and_an_s256_challenge_and_no_token(portal):
    request = await to_provider(portal)
    assert request["response_type"] == "code" and request["client_id"] == "yishi-portal"
    assert request["code_challenge_method"] == "S256" and len(request["code_challenge"]) >= 43
    assert request["state"] and request["nonce"] and request["redirect_uri"] == f"{PORTAL}/auth/callback"
    assert "code_verifier" not in request and "token" not in json.dumps(request)


async def test_the_callback_signs_the_person_in_and_goes_back(portal):
    code, state = provider_code(await to_provider(portal))
    answer = await portal.get("/auth/callback", params={"code": code, "state": state})
    assert answer.status_code == 303 and answer.headers["location"] == "/gulou/votes/v-1"
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    session = session_of(portal)
    assert session["person"]["subject"] == "resident-zhou" and session["person"]["roles"] == ["resident"]
    assert session["flash"] == {"kind": "signed_in"} and session["token"] and session["csrf"]


async def test_a_callback_with_a_state_the_session_did_not_start_is_refused(portal):
    code, _ = provider_code(await to_provider(portal))
    answer = await portal.get("/auth/callback", params={"code": code, "state": "forged"})
    assert answer.status_code == 303
    session = session_of(portal)
    assert "person" not in session and "token" not in session
    assert session["flash"]["kind"] == "signin_failed"


async def test_a_form_without_the_sessions_csrf_token_is_refused(portal):
    anonymous = await portal.post("/act/vote", data={"vote_id": "v-1", "choice": "in_favour", "next": "/gulou"})
    assert anonymous.status_code == 303 and session_of(portal)["flash"] == {"kind": "refused",
                                                                           "reason": "unauthenticated"}
    code, state = provider_code(await to_provider(portal))
    await portal.get("/auth/callback", params={"code": code, "state": state})
    answer = await portal.post("/act/vote", data={"vote_id": "v-1", "choice": "in_favour", "key": "k"})
    assert answer.status_code == 403
    assert (await portal.post("/auth/logout", data={"csrf": "guess"})).status_code == 403
