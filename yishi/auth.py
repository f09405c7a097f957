"""Who is asking: OIDC bearer tokens checked against the provider's keys, turned into a
:class:`Principal` that the permission table (:mod:`contracts.permissions`) judges.

Every service checks tokens the same way, over HTTP (``Authorization: Bearer …``) and
over Kafka (the same header on a command message). The provider's signing keys come
from its JWKS document (``YISHI_AUTH_JWKS_URL``, or found through the issuer's OpenID
discovery document), cached for ``YISHI_AUTH_JWKS_CACHE_S``; a token signed with a key
the cache does not know makes the cache refresh, at most once per
``YISHI_AUTH_JWKS_REFRESH_COOLDOWN_S`` (PyJWT's cooldown, so forged key ids cannot make
every request fetch), so a provider's key rotation is followed without a restart. Issuer, audience, expiry and not-before are checked.
A token once verified is kept with its principal (the last 4,096) until it expires or its
key set is fetched again, so that the same caller's next request costs no signature check.

Claims (names configurable, see :class:`yishi.settings.Settings`):

* ``sub``: the person or service account; commands must name it as their actor;
* ``district``: the one district the credentials belong to;
* ``roles``: role names of :class:`contracts.common.Role` (others are ignored; the
  platform's own ``system`` role is never granted by a token);
* ``seats``: the council seats a council member holds;
* ``acts_for``: the implementer organisations and councils a scoped role (implementer,
  community worker, chair, supervisor) acts for, ``*`` for all of the district's; absent,
  none (see :mod:`contracts.permissions`).

For development and tests, :class:`LocalIssuer` is a provider in a directory: a key
pair, its JWKS file and a way to mint tokens (``yishi token``). It is what ``yishi run``
uses when no provider is configured; services verify its tokens exactly like any other.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import re
import threading
import time
import urllib.request
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from contracts.common import DISTRICT_PATTERN, Role
from contracts.permissions import ANY_PARTY
from yishi.settings import Settings

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,79}$")
_DISTRICT = re.compile(DISTRICT_PATTERN)
GRANTABLE_ROLES = frozenset(Role) - {Role.SYSTEM}
"""Roles a token can carry; ``system`` is the platform acting on its own records."""


class Unauthenticated(Exception):
    """No usable credentials: missing, malformed, expired or not from our provider."""


class ProviderUnavailable(Unauthenticated):
    """The identity provider's keys could not be fetched; the request may be retried."""


class _KeySetClient(jwt.PyJWKClient):
    """A PyJWKClient for which every failure to obtain a usable key set is the provider's:
    PyJWT lets an error while the body is read (a reset connection) escape as a bare
    OSError, and reports a body that is no key set like a bad token."""

    def fetch_data(self) -> Any:
        try:
            return super().fetch_data()
        except jwt.PyJWKClientConnectionError:
            raise
        except (OSError, ValueError, jwt.PyJWKClientError, jwt.PyJWKSetError) as exc:
            raise jwt.PyJWKClientConnectionError(f"the key set at {self.uri} could not be read: {exc}") from exc


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: who, in which district, in which capacities."""

    subject: str
    district: str | None
    roles: frozenset[Role]
    seats: frozenset[str] = frozenset()
    acts_for: frozenset[str] = frozenset()
    """The parties (organisation and council ids, or ``*``) a scoped role acts for."""
    platform: bool = field(default=False, repr=False)

    @classmethod
    def of_platform(cls, service: str) -> "Principal":
        """The platform itself, acting on facts already recorded (timers, events turned
        into commands): trusted in every district it serves, with the ``system`` role."""
        return cls(subject=f"yishi-{service}", district=None, roles=frozenset({Role.SYSTEM}), platform=True)

    @classmethod
    def of_actor(cls, actor: Any, district: str, acts_for: Iterable[str] = ()) -> "Principal":
        """The principal a token issued to a command's ``actor`` (acting for ``acts_for``)
        would give (for callers inside the process, such as benchmarks, that authenticate
        by other means)."""
        return cls(subject=actor.id, district=district, roles=frozenset({Role(actor.role)}),
                   seats=frozenset({actor.seat_id} if actor.seat_id else ()), acts_for=frozenset(acts_for))

    def serves(self, district: str) -> bool:
        """Whether these credentials belong to ``district``."""
        return self.platform or self.district == district


def claim(claims: Mapping[str, Any], path: str) -> Any:
    """``claims`` at a dotted ``path`` (``realm_access.roles``), or None."""
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def principal_from_claims(claims: Mapping[str, Any], settings: Settings) -> Principal:
    """The principal a verified token's claims describe; refuses claims that name no
    usable subject or district."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not _ID.match(subject):
        raise Unauthenticated("the token's subject is missing or not a valid id")
    district = claim(claims, settings.auth_district_claim)
    if not isinstance(district, str) or not _DISTRICT.match(district):
        raise Unauthenticated(f"the token names no valid district (claim {settings.auth_district_claim!r})")
    roles = claim(claims, settings.auth_roles_claim) or []
    seats = claim(claims, settings.auth_seats_claim) or []
    parties = claim(claims, settings.auth_acts_for_claim) or []
    if not isinstance(roles, list) or not isinstance(seats, list) or not isinstance(parties, list):
        raise Unauthenticated("the token's roles, seats and acts_for must be lists")
    granted = frozenset(Role(r) for r in roles if isinstance(r, str) and r in GRANTABLE_ROLES)
    return Principal(subject=subject, district=district, roles=granted,
                     seats=frozenset(s for s in seats if isinstance(s, str) and _ID.match(s)),
                     acts_for=frozenset(p for p in parties if isinstance(p, str) and (_ID.match(p) or p == ANY_PARTY)))


class TokenVerifier:
    """Checks bearer tokens against one OIDC provider (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        if not settings.auth_issuer:
            raise ValueError("YISHI_AUTH_ISSUER must be set: every API requires tokens from an OIDC provider "
                             "(`yishi run` starts a development provider when none is configured)")
        if settings.auth_jwks_url and not settings.auth_jwks_url.startswith(("https://", "http://")):
            raise ValueError("YISHI_AUTH_JWKS_URL must be an http(s) URL")
        self.settings = settings
        self.issuer = settings.auth_issuer
        self._jwks_url = settings.auth_jwks_url
        self._client: jwt.PyJWKClient | None = None
        self._lock = asyncio.Lock()
        self._verified: OrderedDict[str, tuple[Principal, float, jwt.PyJWK]] = OrderedDict()

    async def _jwks(self) -> jwt.PyJWKClient:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    url = self._jwks_url or await asyncio.to_thread(discover_jwks_url, self.issuer)
                    self._client = _KeySetClient(
                        url, cache_jwk_set=True, lifespan=self.settings.auth_jwks_cache_s, timeout=5,
                        cooldown_duration=self.settings.auth_jwks_refresh_cooldown_s)
        return self._client

    async def verify(self, token: str) -> Principal:
        """The principal of a valid ``token``; :class:`Unauthenticated` says why not."""
        if len(token) > 16_384:
            raise Unauthenticated("token too large")
        known = self._verified.get(token)
        if known is not None:
            principal, expires, key = known
            if time.time() < expires and self._client is not None and key in _cached_keys(self._client):
                self._verified.move_to_end(token)
                return principal
            del self._verified[token]
        try:
            client = await self._jwks()
            # A key of the cached set is used at once; otherwise PyJWT fetches (blocking
            # I/O, so on a thread), or refuses within its refresh cooldown.
            key = _cached_key(client, token) or await asyncio.to_thread(client.get_signing_key_from_jwt, token)
            claims = jwt.decode(
                token, key, algorithms=self.settings.auth_algorithms, audience=self.settings.auth_audience,
                issuer=self.issuer, leeway=self.settings.auth_leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWKClientConnectionError as exc:
            raise ProviderUnavailable(f"the identity provider's keys are unavailable: {exc}") from None
        except (jwt.PyJWTError, ValueError) as exc:
            raise Unauthenticated(f"invalid token: {exc}") from None
        principal = principal_from_claims(claims, self.settings)
        # As PyJWT judges it: expired once exp (an int) is at or before now less the leeway.
        self._remember(token, principal, int(claims["exp"]) + self.settings.auth_leeway_s, key)
        return principal

    VERIFIED_KEPT = 4096
    """How many verified tokens are kept (at most 16 KiB each, so at most 64 MiB; a few MiB
    in practice), the least recently used given up first."""

    def _remember(self, token: str, principal: Principal, expires: float, key: jwt.PyJWK) -> None:
        """Keep a verified token's principal until it expires (with the leeway, as PyJWT
        judges it) or its key leaves the cached key set: a resident's next request, or a
        district system's, costs no signature check. A key that was rotated out ends
        its tokens' stay with the key set that drops it, as for tokens not seen before."""
        self._verified[token] = (principal, expires, key)
        self._verified.move_to_end(token)
        while len(self._verified) > self.VERIFIED_KEPT:
            self._verified.popitem(last=False)


def _cached_keys(client: jwt.PyJWKClient) -> list[jwt.PyJWK]:
    """The keys of the client's unexpired cached key set, as fetched (each fetch makes new
    key objects, so a key kept from before a fetch is not among them); none once expired."""
    cached = client.jwk_set_cache.get() if client.jwk_set_cache is not None else None
    return cached.keys if cached is not None else []


def _cached_key(client: jwt.PyJWKClient, token: str) -> jwt.PyJWK | None:
    """The signing key ``token`` names, if the client's unexpired cache holds it."""
    keys = _cached_keys(client)
    if not keys:
        return None
    kid = jwt.get_unverified_header(token).get("kid")
    return next((k for k in keys if kid and k.key_id == kid and k.public_key_use in ("sig", None)), None)


def discover_jwks_url(issuer: str) -> str:
    """The ``jwks_uri`` of ``issuer``'s OpenID discovery document."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - the configured issuer
            jwks_uri = json.load(response)["jwks_uri"]
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
            raise ValueError(f"jwks_uri {jwks_uri!r} is not an http(s) URL")
        return jwks_uri
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise jwt.PyJWKClientConnectionError(f"OpenID discovery at {url} failed: {exc}") from exc


# -- HTTP edge ----------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="An access token from the district's OIDC provider.")

UNAUTHORISED_RESPONSES: dict[int | str, dict] = {
    401: {"description": "No bearer token, or one that is invalid or expired."},
    404: {"description": "Not found; also the answer for another district's data."},
    503: {"description": "The identity provider's keys could not be fetched; retry."},
}


async def authenticate(request: Request,
                       credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Principal:
    """FastAPI dependency that every route but health, readiness and metrics has (set once,
    in :func:`yishi.runtime.create_app`): the caller's principal; 401 without a valid
    token, 404 for a path in another district than the credentials'. A route that needs
    the principal asks for ``Depends(authenticate)`` too: FastAPI runs it once a request."""
    if credentials is None:
        raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    verifier: TokenVerifier = request.app.state.verifier
    try:
        principal = await verifier.verify(credentials.credentials)
    except ProviderUnavailable as exc:
        raise HTTPException(503, str(exc)) from None
    except Unauthenticated as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}) from None
    district = request.path_params.get("district")
    if district is not None and not principal.serves(district):
        raise HTTPException(404, "Not Found")  # another district's data is not even confirmed to exist
    return principal


# -- development and test identity provider ------------------------------------

LOCAL_AUDIENCE = "yishi"


class LocalIssuer:
    """An OIDC-style token issuer kept in a directory: RSA keys, a JWKS file, minting.

    For development (``yishi run``, ``yishi token``) and tests; services verify its tokens
    through :class:`TokenVerifier` like any provider's, fetching its keys over HTTP
    from :meth:`serve`.
    """

    def __init__(self, directory: str | Path, issuer: str = "https://yishi.localhost/dev-issuer",
                 audience: str = LOCAL_AUDIENCE) -> None:
        self.directory = Path(directory)
        self.issuer = issuer
        self.audience = audience
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._server: http.server.ThreadingHTTPServer | None = None
        self._keys: list[tuple[str, rsa.RSAPrivateKey]] = []
        for path in sorted(self.directory.glob("key-*.pem")):
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            self._keys.append((path.stem.removeprefix("key-"), key))  # type: ignore[arg-type]
        if not self._keys:
            self.rotate()

    @property
    def jwks_path(self) -> Path:
        return self.directory / "jwks.json"

    @property
    def jwks_url(self) -> str:
        """Where the JWKS is served (see :meth:`serve`)."""
        if self._server is None:
            raise RuntimeError("call serve() first: services fetch the keys over HTTP")
        return f"{self.base_url}/jwks.json"

    @property
    def base_url(self) -> str:
        """Where the issuer is served (see :meth:`serve`)."""
        if self._server is None:
            raise RuntimeError("call serve() first: services fetch the keys over HTTP")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def discovery_url(self) -> str:
        """Its OpenID discovery document, naming the sign-in endpoints (:mod:`yishi.dev_login`)."""
        return f"{self.base_url}/.well-known/openid-configuration"

    def serve(self, port: int = 0) -> str:
        """Serve the JWKS file (re-read on every request, so a rotation by another process
        is published at once), the discovery document and the sign-in endpoints of
        :mod:`yishi.dev_login` over HTTP on loopback from a daemon thread; returns the
        JWKS's URL."""
        if self._server is None:
            from yishi.dev_login import handler

            self._server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler(self))
            threading.Thread(target=self._server.serve_forever, name="jwks", daemon=True).start()
        return self.jwks_url

    def jwks(self) -> dict:
        """The public keys, newest first, as a JWKS document."""
        keys = []
        for kid, key in reversed(self._keys):
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": keys}

    def rotate(self, *, keep_old: bool = True) -> str:
        """Start signing with a new key; the old one stays published unless ``keep_old``
        is false. Returns the new key id."""
        kid = f"{int(time.time())}-{uuid.uuid4().hex[:8]}"
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        path = self.directory / f"key-{kid}.pem"
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        os.chmod(path, 0o600)
        if not keep_old:
            for old, _ in self._keys:
                (self.directory / f"key-{old}.pem").unlink(missing_ok=True)
            self._keys.clear()
        self._keys.append((kid, key))
        self._write_jwks()
        return kid

    def _write_jwks(self) -> None:
        tmp = self.jwks_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.jwks()))
        tmp.replace(self.jwks_path)

    def settings(self) -> dict[str, str]:
        """The ``YISHI_AUTH_*`` variables that make a service trust this issuer (served)."""
        return {"YISHI_AUTH_ISSUER": self.issuer, "YISHI_AUTH_AUDIENCE": self.audience,
                "YISHI_AUTH_JWKS_URL": self.jwks_url}

    def mint(self, subject: str, district: str, roles: Iterable[str], *, seats: Iterable[str] = (),
             acts_for: Iterable[str] | None = None, ttl: float = 3600,
             extra: Mapping[str, Any] | None = None) -> str:
        """A signed access token for ``subject``; with an ``acts_for`` claim unless it is None."""
        kid, key = self._keys[-1]
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": self.audience, "sub": subject, "iat": now, "nbf": now,
                  "exp": now + int(ttl), "jti": uuid.uuid4().hex, "district": district,
                  "roles": [str(r) for r in roles], "seats": list(seats),
                  **({} if acts_for is None else {"acts_for": list(acts_for)}), **(extra or {})}
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})

    def id_token(self, subject: str, client_id: str, *, nonce: str | None, ttl: float = 3600) -> str:
        """A signed OpenID Connect ID token for ``subject``, issued to ``client_id``."""
        kid, key = self._keys[-1]
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": client_id, "sub": subject, "iat": now, "auth_time": now,
                  "exp": now + int(ttl), **({"nonce": nonce} if nonce else {})}
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})

    def for_actor(self, actor: Mapping[str, Any], district: str, ttl: float = 3600,
                  acts_for: Iterable[str] | None = None) -> str:
        """A token for a command's ``actor`` (``{"id", "role", "seat_id"}``) in ``district``,
        acting for ``acts_for`` (None: no such claim)."""
        seats = [actor["seat_id"]] if actor.get("seat_id") else []
        return self.mint(actor["id"], district, [actor["role"]], seats=seats, acts_for=acts_for, ttl=ttl)


def dev_issuer() -> LocalIssuer:
    """The development provider of this machine (keys beside the development checkpoint
    keys): what ``yishi run`` trusts when no provider is configured and ``yishi token``
    and the demo mint from."""
    from yishi.audit.checkpoints import default_key_dir

    return LocalIssuer(default_key_dir() / "dev-issuer")


class ActingAs(httpx.Auth):
    """httpx auth for development clients of a :class:`LocalIssuer`: each command is sent
    with a token for the actor it names, every other request as ``reader`` (default: an
    auditor of the district in the path). Tokens are minted once per identity.

    ``acts_for`` is the directory of whom each person acts for (what a provider's user
    attributes say): a person it lists gets exactly those parties in the ``acts_for``
    claim; one it does not list acts for the whole district (``*``), as every token did
    before parties were checked."""

    requires_request_body = True

    def __init__(self, issuer: LocalIssuer, reader: Mapping[str, Any] | None = None,
                 acts_for: Mapping[str, Iterable[str]] | None = None) -> None:
        self.issuer = issuer
        self.reader = dict(reader or {"id": "auditor", "role": Role.AUDITOR.value})
        self.acts_for = {person: list(parties) for person, parties in (acts_for or {}).items()}
        self._tokens: dict[tuple, str] = {}

    def token(self, actor: Mapping[str, Any], district: str) -> str:
        key = (actor["id"], actor["role"], actor.get("seat_id"), district)
        if key not in self._tokens:
            self._tokens[key] = self.issuer.for_actor(actor, district,
                                                      acts_for=self.acts_for.get(actor["id"], [ANY_PARTY]))
        return self._tokens[key]

    def auth_flow(self, request: httpx.Request):
        if "authorization" not in request.headers:
            parts = request.url.path.strip("/").split("/")
            district = parts[0] if parts and _DISTRICT.match(parts[0]) else "gulou"
            actor = self.reader
            if request.method == "POST" and request.content:
                try:
                    body = json.loads(request.content)
                except ValueError:
                    body = None
                if isinstance(body, dict) and isinstance(body.get("actor"), dict) \
                        and {"id", "role"} <= body["actor"].keys():
                    actor = body["actor"]
            request.headers["authorization"] = f"Bearer {self.token(actor, district)}"
        yield request
