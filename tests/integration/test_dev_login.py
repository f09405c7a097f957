"""The development issuer's sign-in (``yishi.dev_login``, served by ``LocalIssuer.serve``):
OpenID Connect's authorisation code flow with PKCE, driven over HTTP as a browser and a
client would — discovery, the login form, the redirect with a code, the token endpoint
checking the verifier — and the tokens it hands out verified as every service does."""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest

from contracts.common import Role
from tests.support.auth import auth_settings, issuer
from yishi.auth import TokenVerifier
from yishi.settings import Settings

CLIENT = "yishi-portal"
REDIRECT = "http://127.0.0.1:9/auth/callback"


def challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@pytest.fixture
def discovery() -> dict:
    found = issuer()
    return httpx.get(found.discovery_url).json()


def authorize_params(verifier: str, **changes: str) -> dict[str, str]:
    return {"response_type": "code", "client_id": CLIENT, "redirect_uri": REDIRECT, "scope": "openid",
            "state": "state-1", "nonce": "nonce-1", "code_challenge": challenge(verifier),
            "code_challenge_method": "S256", **changes}


def sign_in(discovery: dict, verifier: str, **person: str | list[str]) -> str:
    """The code the login form's redirect carries, for ``person``."""
    form = {**authorize_params(verifier), "subject": "resident-zhou", "district": "gulou",
            "roles": ["resident"], "seat": "", "acts_for": "", **person}
    answer = httpx.post(discovery["authorization_endpoint"], data=form)
    assert answer.status_code == 303, answer.text
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    query = parse_qs(location.query)
    assert query["state"] == ["state-1"]
    return query["code"][0]


def redeem(discovery: dict, code: str, verifier: str, **changes: str) -> httpx.Response:
    return httpx.post(discovery["token_endpoint"], data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "client_id": CLIENT,
        "code_verifier": verifier, **changes})


def test_the_discovery_document_names_the_authorisation_code_endpoints(discovery):
    assert discovery["issuer"] == issuer().issuer
    assert discovery["jwks_uri"] == issuer().jwks_url
    assert discovery["response_types_supported"] == ["code"]
    assert discovery["code_challenge_methods_supported"] == ["S256"]
    assert "authorization_code" in discovery["grant_types_supported"]
    assert httpx.get(discovery["jwks_uri"]).json() == issuer().jwks()


def test_the_login_form_offers_a_person_district_and_roles_and_keeps_the_request(discovery):
    verifier = secrets.token_urlsafe(48)
    page = httpx.get(discovery["authorization_endpoint"], params=authorize_params(verifier))
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    for field in ("subject", "district", "seat", "acts_for"):
        assert f'id="{field}"' in html and f'for="{field}"' in html
    for role in ("resident", "implementer", "supervisor"):
        assert f'value="{role}"' in html
    assert 'value="system"' not in html  # never granted by a token
    assert f'value="{challenge(verifier)}"' in html and 'value="nonce-1"' in html


@pytest.mark.parametrize("changes", [{"code_challenge": ""}, {"code_challenge_method": "plain"},
                                     {"response_type": "token"}, {"redirect_uri": "https://evil.example/cb"}])
def test_an_authorisation_request_without_pkce_or_to_a_foreign_redirect_is_refused(discovery, changes):
    verifier = secrets.token_urlsafe(48)
    page = httpx.get(discovery["authorization_endpoint"], params=authorize_params(verifier, **changes))
    assert page.status_code == 400
    assert "location" not in page.headers


async def test_the_code_gives_tokens_only_with_the_verifier_of_its_challenge_and_only_once(discovery):
    verifier = secrets.token_urlsafe(48)
    code = sign_in(discovery, verifier)
    wrong = redeem(discovery, code, secrets.token_urlsafe(48))
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    assert redeem(discovery, code, verifier).status_code == 400  # a failed attempt spends the code

    code = sign_in(discovery, verifier, subject="staff-sun", roles=["implementer", "resident"],
                   acts_for="org-green, org-blue")
    answer = redeem(discovery, code, verifier)
    assert answer.status_code == 200, answer.text
    tokens = answer.json()
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] > 0
    principal = await TokenVerifier(Settings(**auth_settings())).verify(tokens["access_token"])
    assert principal.subject == "staff-sun" and principal.district == "gulou"
    assert principal.roles == {Role.IMPLEMENTER, Role.RESIDENT}
    assert principal.acts_for == {"org-green", "org-blue"}
    id_token = jwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert id_token["aud"] == CLIENT and id_token["nonce"] == "nonce-1" and id_token["sub"] == "staff-sun"
    assert id_token["iss"] == issuer().issuer
    assert redeem(discovery, code, verifier).json()["error"] == "invalid_grant"  # spent


def test_a_code_is_refused_to_another_client_or_redirect(discovery):
    verifier = secrets.token_urlsafe(48)
    assert redeem(discovery, sign_in(discovery, verifier), verifier, client_id="other").status_code == 400
    assert redeem(discovery, sign_in(discovery, verifier), verifier,
                  redirect_uri="http://127.0.0.1:9/other").status_code == 400
