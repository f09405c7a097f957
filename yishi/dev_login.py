"""The development issuer's sign-in: OpenID Connect's authorisation code flow with PKCE
for :class:`yishi.auth.LocalIssuer`, so that the portal signs people in locally and in
tests exactly as it does against a district's provider.

Served by :meth:`LocalIssuer.serve` on loopback beside the JWKS:

* ``GET /.well-known/openid-configuration``: the discovery document (the ``issuer`` is the
  issuer's name, the one its tokens carry, not where it is served);
* ``GET /authorize``: a small login form choosing a development person (subject, district,
  roles, seats, whom they act for). It asks for no password: whoever reaches the loopback
  port may be anyone, which is what a development provider is for. Only the code flow
  (``response_type=code``) with an S256 challenge is accepted, and only redirects to a
  loopback or ``.localhost`` address (a code never travels elsewhere);
* ``POST /authorize``: the form's answer, a redirect (303) back with ``code`` and ``state``;
* ``POST /token``: a code, once, within :data:`CODE_TTL_S`, for the client and redirect it
  was issued to and with the verifier of its challenge, gives an access token (the same as
  ``yishi token`` mints) and an ID token carrying the request's ``nonce``. A failed attempt
  spends the code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import http.server
import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from yishi.clock import is_development_issuer

if TYPE_CHECKING:
    from yishi.auth import LocalIssuer

CODE_TTL_S = 60.0
"""How long an authorisation code may wait for its redemption."""

_REQUEST = ("response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "code_challenge",
            "code_challenge_method")


class AuthorisationError(ValueError):
    """A request the provider refuses, with its OAuth ``error`` code."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


@dataclass(frozen=True)
class Grant:
    """What a code stands for: the request it answers and the person who signed in."""

    client_id: str
    redirect_uri: str
    code_challenge: str
    nonce: str | None
    subject: str
    district: str
    roles: tuple[str, ...]
    seats: tuple[str, ...]
    acts_for: tuple[str, ...] | None
    expires: float


def check_request(params: dict[str, str]) -> None:
    """Refuses an authorisation request this provider does not serve (see the module docstring)."""
    if params.get("response_type") != "code":
        raise AuthorisationError("unsupported_response_type", "only the authorisation code flow is served")
    if not params.get("client_id"):
        raise AuthorisationError("invalid_request", "client_id is required")
    if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
        raise AuthorisationError("invalid_request", "PKCE with an S256 code_challenge is required")
    redirect = urlsplit(params.get("redirect_uri", ""))
    if redirect.scheme not in ("http", "https") or not is_development_issuer(params["redirect_uri"]) \
            or not redirect.hostname:
        raise AuthorisationError("invalid_request", "redirect_uri must be an http(s) loopback or .localhost URL")


def _listed(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


class AuthorisationCodes:
    """The codes a development issuer has handed out, until redeemed or expired."""

    def __init__(self, issuer: LocalIssuer, ttl: float = CODE_TTL_S) -> None:
        self.issuer = issuer
        self.ttl = ttl
        self._grants: dict[str, Grant] = {}
        self._lock = threading.Lock()

    def issue(self, form: dict[str, Any]) -> str:
        """A code for the login form's answer (the request's fields and the person's)."""
        from yishi.auth import GRANTABLE_ROLES

        check_request(form)
        subject, district = form.get("subject", "").strip(), form.get("district", "").strip()
        if not subject or not district:
            raise AuthorisationError("invalid_request", "choose a person and a district")
        roles = tuple(r for r in form.get("roles", ()) if r in GRANTABLE_ROLES)
        acts_for = _listed(form.get("acts_for", ""))
        grant = Grant(client_id=form["client_id"], redirect_uri=form["redirect_uri"],
                      code_challenge=form["code_challenge"], nonce=form.get("nonce") or None, subject=subject,
                      district=district, roles=roles, seats=_listed(form.get("seat", "")),
                      acts_for=acts_for or None, expires=time.monotonic() + self.ttl)
        code = secrets.token_urlsafe(32)
        with self._lock:
            now = time.monotonic()
            self._grants = {c: g for c, g in self._grants.items() if g.expires > now}
            self._grants[code] = grant
        return code

    def redeem(self, form: dict[str, str]) -> dict[str, Any]:
        """The token response for a code (see the module docstring)."""
        if form.get("grant_type") != "authorization_code":
            raise AuthorisationError("unsupported_grant_type", "only authorization_code is served")
        with self._lock:
            grant = self._grants.pop(form.get("code", ""), None)
        if grant is None or grant.expires < time.monotonic():
            raise AuthorisationError("invalid_grant", "unknown, expired or spent code")
        if form.get("client_id") != grant.client_id or form.get("redirect_uri") != grant.redirect_uri:
            raise AuthorisationError("invalid_grant", "the code was issued to another client or redirect")
        verifier = form.get("code_verifier", "").encode()
        computed = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=").decode()
        if not hmac.compare_digest(computed, grant.code_challenge):
            raise AuthorisationError("invalid_grant", "the code_verifier does not match the code_challenge")
        ttl = 3600
        return {"token_type": "Bearer", "expires_in": ttl, "scope": "openid",
                "access_token": self.issuer.mint(grant.subject, grant.district, grant.roles, seats=grant.seats,
                                                 acts_for=grant.acts_for, ttl=ttl),
                "id_token": self.issuer.id_token(grant.subject, grant.client_id, nonce=grant.nonce, ttl=ttl)}


def discovery(issuer: LocalIssuer) -> dict[str, Any]:
    """The issuer's OpenID discovery document, naming where it is served."""
    base = issuer.base_url
    return {"issuer": issuer.issuer, "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token", "jwks_uri": f"{base}/jwks.json",
            "response_types_supported": ["code"], "grant_types_supported": ["authorization_code"],
            "code_challenge_methods_supported": ["S256"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"], "scopes_supported": ["openid"],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"]}


def login_form(params: dict[str, str]) -> str:
    """The login page: who to be, carrying the authorisation request in hidden fields."""
    from yishi.auth import GRANTABLE_ROLES

    esc = html.escape
    hidden = "".join(f'<input type="hidden" name="{k}" value="{esc(params.get(k, ""))}">' for k in _REQUEST)
    roles = "".join(f'<label><input type="checkbox" name="roles" value="{r}"{" checked" if r == "resident" else ""}>'
                    f" {r}</label><br>" for r in sorted(GRANTABLE_ROLES))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Development sign-in</title><link rel="icon" href="data:,"></head>
<body><main><h1>Development sign-in</h1>
<p>This provider signs anyone in as the person chosen below: for development and tests only.</p>
<form method="post" action="authorize">{hidden}
<p><label for="subject">Person (subject)</label><br><input id="subject" name="subject" required value="resident-1"></p>
<p><label for="district">District</label><br><input id="district" name="district" required value="gulou"></p>
<fieldset><legend>Roles</legend>{roles}</fieldset>
<p><label for="seat">Council seats (comma-separated)</label><br><input id="seat" name="seat" value=""></p>
<p><label for="acts_for">Acts for (organisations or councils, comma-separated; * for all)</label><br>
<input id="acts_for" name="acts_for" value="*"></p>
<p><button type="submit">Sign in</button></p>
</form></main></body></html>"""


def _basic_client(authorization: str | None) -> dict[str, str]:
    """The client id of an HTTP Basic client authentication (``client_secret_basic``);
    the development issuer takes any secret."""
    if not authorization or not authorization.lower().startswith("basic "):
        return {}
    try:
        client_id = base64.b64decode(authorization[6:]).decode().split(":", 1)[0]
    except ValueError:
        return {}
    return {"client_id": unquote(client_id)}


def handler(issuer: LocalIssuer) -> type[http.server.BaseHTTPRequestHandler]:
    """The request handler of the issuer's loopback server: JWKS, discovery and sign-in."""
    codes = AuthorisationCodes(issuer)

    class Handler(http.server.BaseHTTPRequestHandler):
        def _send(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.send_header("cache-control", "no-store")
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, document: Any) -> None:
            self._send(status, json.dumps(document).encode(), "application/json")

        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            url = urlsplit(self.path)
            if url.path == "/jwks.json":
                self._send(200, issuer.jwks_path.read_bytes(), "application/json")
            elif url.path == "/.well-known/openid-configuration":
                self._json(200, discovery(issuer))
            elif url.path == "/authorize":
                params = {k: v[0] for k, v in parse_qs(url.query).items()}
                try:
                    check_request(params)
                except AuthorisationError as exc:
                    self._send(400, html.escape(f"{exc.error}: {exc.description}").encode(), "text/plain")
                    return
                self._send(200, login_form(params).encode(), "text/html; charset=utf-8")
            else:
                self.send_error(404)

        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            url = urlsplit(self.path)
            length = int(self.headers.get("content-length") or 0)
            fields = parse_qs(self.rfile.read(min(length, 65_536)).decode(), keep_blank_values=True)
            form: dict[str, Any] = {k: v[0] for k, v in fields.items()}
            try:
                if url.path == "/authorize":
                    form["roles"] = fields.get("roles", [])
                    code = codes.issue(form)
                    query = urlencode({"code": code, **({"state": form["state"]} if form.get("state") else {})})
                    separator = "&" if urlsplit(form["redirect_uri"]).query else "?"
                    self._send(303, b"", "text/plain", location=f"{form['redirect_uri']}{separator}{query}")
                elif url.path == "/token":
                    self._json(200, codes.redeem({**_basic_client(self.headers.get("authorization")), **form}))
                else:
                    self.send_error(404)
            except AuthorisationError as exc:
                self._json(400, {"error": exc.error, "error_description": exc.description})

        def log_message(self, *args: Any) -> None:
            pass

    return Handler
