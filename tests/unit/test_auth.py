"""Bearer-token verification (:mod:`yishi.auth`) against a real key set over HTTP.

Every test signs tokens with the RSA keys of a :class:`LocalIssuer` kept in ``tmp_path``
and checks them with a :class:`TokenVerifier` that fetches the issuer's JWKS over
loopback HTTP, usually from :class:`StubServer`, which counts the requests it answers so
that the tests can show when the verifier fetches keys and when it uses its cache.
No database, no broker.

What PyJWT 2.15's ``PyJWKClient`` does, and these tests rely on:

* the key set is cached for ``auth_jwks_cache_s`` and fetched again once that expires;
* a token whose ``kid`` is not in the cached set forces one refresh, unless the last
  successful fetch (any fetch: the first, an expiry refetch or a forced refresh) was
  less than ``auth_jwks_refresh_cooldown_s`` ago; then the token is refused without
  any request.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import http.server
import json
import socket
import struct
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from contracts.common import Actor, Role
from yishi.auth import (
    GRANTABLE_ROLES,
    LocalIssuer,
    Principal,
    ProviderUnavailable,
    TokenVerifier,
    Unauthenticated,
    principal_from_claims,
)
from yishi.settings import Settings

DISTRICT = "gulou"
DROP = object()
"""A claim value meaning "leave this claim out" (see :func:`claims_for`)."""


# -- helpers -------------------------------------------------------------------

Route = Callable[[http.server.BaseHTTPRequestHandler], "tuple[int, bytes] | None"]


class StubServer:
    """A loopback HTTP server answering GETs from ``routes`` (path -> route) and counting
    the requests per path. A route returns ``(status, body)``, or None when it wrote the
    (possibly broken) answer itself."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self._hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with stub._lock:
                    stub._hits[self.path] += 1
                route = stub.routes.get(self.path)
                answer = route(self) if route else (404, b"not found")
                if answer is not None:
                    status, body = answer
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="stub-http",
                         daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def route(self, path: str, route: Route) -> str:
        """Answer GET ``path`` with ``route``; returns the full URL."""
        self.routes[path] = route
        return self.url + path

    def hits(self, path: str) -> int:
        with self._lock:
            return self._hits[path]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def serve_file(path: Path) -> Route:
    """A route answering with the file's current content (so rotations are published)."""
    return lambda _handler: (200, path.read_bytes())


def serve_json(document: Any, status: int = 200) -> Route:
    return lambda _handler: (status, json.dumps(document).encode())


def stop_in_background(server: http.server.HTTPServer) -> None:
    """Stop a server started by LocalIssuer.serve() (which has no stop method) without
    waiting out its half-second shutdown poll."""
    threading.Thread(target=lambda: (server.shutdown(), server.server_close()), daemon=True).start()


def closed_port_url() -> str:
    """A loopback URL on which nothing listens (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/jwks.json"


def settings_for(issuer: LocalIssuer, jwks_url: str | None, **overrides: Any) -> Settings:
    """Verifier settings trusting ``issuer`` (every auth field explicit, so that
    ``YISHI_AUTH_*`` variables of the environment change nothing)."""
    values: dict[str, Any] = {
        "auth_issuer": issuer.issuer, "auth_audience": issuer.audience, "auth_jwks_url": jwks_url,
        "auth_jwks_cache_s": 300, "auth_jwks_refresh_cooldown_s": 30, "auth_leeway_s": 30,
        "auth_algorithms": ["RS256", "ES256", "EdDSA"], "auth_district_claim": "district",
        "auth_roles_claim": "roles", "auth_seats_claim": "seats",
    }
    return Settings(**{**values, **overrides})


def verifier_for(issuer: LocalIssuer, jwks_url: str | None, **overrides: Any) -> TokenVerifier:
    return TokenVerifier(settings_for(issuer, jwks_url, **overrides))


def claims_for(issuer: LocalIssuer, **changes: Any) -> dict[str, Any]:
    """The claims ``issuer.mint`` would put in a token, with ``changes`` (``DROP``
    removes a claim)."""
    now = int(time.time())
    claims = {"iss": issuer.issuer, "aud": issuer.audience, "sub": "alice", "iat": now, "nbf": now,
              "exp": now + 600, "jti": uuid.uuid4().hex, "district": DISTRICT, "roles": ["resident"],
              "seats": []}
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not DROP}


def sign(issuer: LocalIssuer, claims: dict[str, Any], *, kid: str | None | object = DROP,
         key: Any = None) -> str:
    """``claims`` signed RS256 with the issuer's current key (or ``key``), with the
    current key id (or ``kid``; None: no ``kid`` header)."""
    current_kid, current_key = issuer._keys[-1]
    headers = {} if kid is None else {"kid": current_kid if kid is DROP else kid}
    return jwt.encode(claims, key or current_key, algorithm="RS256", headers=headers)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_pem(issuer: LocalIssuer) -> bytes:
    """The issuer's current public key as PEM, as anyone can rebuild it from the JWKS."""
    return issuer._keys[-1][1].public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def hs256_with_public_key(issuer: LocalIssuer, claims: dict[str, Any]) -> str:
    """An algorithm-confusion forgery: HS256 keyed with the public key's PEM bytes and
    the real key id. Built by hand, because PyJWT refuses to HMAC with a PEM key."""
    header = {"alg": "HS256", "typ": "JWT", "kid": issuer._keys[-1][0]}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    signature = hmac.new(public_pem(issuer), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def tampered(token: str, **changes: Any) -> str:
    """``token`` with claims changed in its payload and its signature kept."""
    header, payload, signature = token.split(".")
    claims = {**json.loads(unb64url(payload)), **changes}
    return f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"


# -- fixtures -------------------------------------------------------------------


@pytest.fixture
def issuer(tmp_path: Path):
    """A provider with one RSA key in its own directory."""
    found = LocalIssuer(tmp_path / "issuer")
    yield found
    if found._server is not None:
        stop_in_background(found._server)


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> LocalIssuer:
    """Other keys (in their own directory) under the same issuer and audience names as
    the ``issuer`` fixture: what a forger with their own key pair would have."""
    return LocalIssuer(tmp_path_factory.mktemp("stranger"))


@pytest.fixture
def stub():
    server = StubServer()
    yield server
    server.close()


@pytest.fixture
def jwks_url(stub: StubServer, issuer: LocalIssuer) -> str:
    """The issuer's JWKS, served by the counting stub at ``/jwks.json``."""
    return stub.route("/jwks.json", serve_file(issuer.jwks_path))


@pytest.fixture
def verifier(issuer: LocalIssuer, jwks_url: str) -> TokenVerifier:
    """A verifier trusting ``issuer`` with the default cache, cooldown and leeway."""
    return verifier_for(issuer, jwks_url)


# -- valid tokens -----------------------------------------------------------------


async def test_valid_token_gives_its_principal(issuer: LocalIssuer):
    """A minted token, checked against the JWKS that LocalIssuer.serve() publishes, gives
    the subject, district, roles (as Role members) and seats it names."""
    verifier = verifier_for(issuer, issuer.serve())
    token = issuer.mint("alice", DISTRICT, ["council_member", "chair"], seats=["seat-7"])

    principal = await verifier.verify(token)

    assert principal == Principal(subject="alice", district=DISTRICT,
                                  roles=frozenset({Role.COUNCIL_MEMBER, Role.CHAIR}), seats=frozenset({"seat-7"}))
    assert all(type(role) is Role for role in principal.roles)
    assert not principal.platform


async def test_settings_of_the_issuer_make_a_verifier_trust_it(issuer: LocalIssuer, monkeypatch):
    """LocalIssuer.settings() is the environment that makes a service trust it."""
    issuer.serve()
    for name, value in issuer.settings().items():
        monkeypatch.setenv(name, value)
    principal = await TokenVerifier(Settings()).verify(issuer.mint("bob", DISTRICT, ["auditor"]))
    assert (principal.subject, principal.roles) == ("bob", {Role.AUDITOR})


def test_a_verifier_needs_an_issuer():
    """Without YISHI_AUTH_ISSUER there is nothing to trust: construction fails."""
    with pytest.raises(ValueError, match="YISHI_AUTH_ISSUER"):
        TokenVerifier(Settings(auth_issuer=None))


def test_principal_serves_its_own_district_only_and_the_platform_every_one():
    """Principal.serves: a token's principal its district; of_platform all of them."""
    token_principal = Principal(subject="alice", district="gulou", roles=frozenset({Role.RESIDENT}))
    platform = Principal.of_platform("voting")
    assert token_principal.serves("gulou") and not token_principal.serves("chaoyang")
    assert platform.serves("gulou") and platform.serves("chaoyang")
    assert (platform.subject, platform.district, platform.roles) == ("yishi-voting", None, {Role.SYSTEM})


def test_principal_of_actor_is_what_a_token_for_the_actor_gives():
    """Principal.of_actor: subject, role and seat of a command's actor."""
    actor = Actor(id="carol", role=Role.COUNCIL_MEMBER, seat_id="seat-2")
    assert Principal.of_actor(actor, "gulou") == Principal(
        subject="carol", district="gulou", roles=frozenset({Role.COUNCIL_MEMBER}), seats=frozenset({"seat-2"}))
    assert Principal.of_actor(Actor(id="dan", role=Role.RESIDENT), "gulou").seats == frozenset()


# -- refused tokens -----------------------------------------------------------------

def now() -> int:
    """The current time as a claim value (read when each case is built)."""
    return int(time.time())


REFUSED: dict[str, Callable[[LocalIssuer, LocalIssuer], str]] = {
    # time (default leeway: 30 s)
    "expired beyond the leeway": lambda i, o: sign(i, claims_for(i, iat=now() - 600, nbf=now() - 600,
                                                                exp=now() - 120)),
    "not yet valid (nbf)": lambda i, o: sign(i, claims_for(i, nbf=now() + 120)),
    # who it is for and from
    "wrong audience": lambda i, o: sign(i, claims_for(i, aud="another-app")),
    "wrong issuer": lambda i, o: sign(i, claims_for(i, iss="https://elsewhere.example/issuer")),
    "missing exp": lambda i, o: sign(i, claims_for(i, exp=DROP)),
    "missing sub": lambda i, o: sign(i, claims_for(i, sub=DROP)),
    "missing aud": lambda i, o: sign(i, claims_for(i, aud=DROP)),
    "missing iss": lambda i, o: sign(i, claims_for(i, iss=DROP)),
    # signatures
    "signed by a key not in the JWKS": lambda i, o: o.mint("alice", DISTRICT, ["resident"]),
    "signed by a foreign key naming our kid": lambda i, o: sign(i, claims_for(i), key=o._keys[-1][1]),
    "no kid header": lambda i, o: sign(i, claims_for(i), kid=None),
    "alg none": lambda i, o: jwt.encode(claims_for(i), None, algorithm="none", headers={"kid": i._keys[-1][0]}),
    "HS256 keyed with the public key": lambda i, o: hs256_with_public_key(i, claims_for(i)),
    "tampered payload": lambda i, o: tampered(i.mint("alice", DISTRICT, ["resident"]), roles=["district_admin"]),
    "signature stripped": lambda i, o: i.mint("alice", DISTRICT, ["resident"]).rsplit(".", 1)[0] + ".",
    # not a token
    "garbage": lambda i, o: "this is not a token",
    "empty string": lambda i, o: "",
    "three dots of nothing": lambda i, o: "a.b.c",
    "oversized (validly signed)": lambda i, o: i.mint("alice", DISTRICT, ["resident"], extra={"pad": "x" * 20_000}),
    # claims Yishi needs
    "no district claim": lambda i, o: sign(i, claims_for(i, district=DROP)),
    "invalid district": lambda i, o: sign(i, claims_for(i, district="Gu Lou!")),
    "district not a string": lambda i, o: sign(i, claims_for(i, district=["gulou"])),
    "invalid subject": lambda i, o: sign(i, claims_for(i, sub="alice smith")),
    "empty subject": lambda i, o: sign(i, claims_for(i, sub="")),
    "subject not a string": lambda i, o: sign(i, claims_for(i, sub=42)),
    "roles not a list": lambda i, o: sign(i, claims_for(i, roles="district_admin")),
    "seats not a list": lambda i, o: sign(i, claims_for(i, seats="seat-1")),
}


@pytest.mark.parametrize("case", list(REFUSED))
async def test_refused_tokens(case: str, issuer: LocalIssuer, stranger: LocalIssuer, jwks_url: str):
    """Each of these tokens is refused with Unauthenticated (never ProviderUnavailable,
    the provider is up), even with forced refreshes allowed (cooldown 0), while a good
    token from the same issuer, checked first, is accepted."""
    assert (stranger.issuer, stranger.audience) == (issuer.issuer, issuer.audience)
    verifier = verifier_for(issuer, jwks_url, auth_jwks_refresh_cooldown_s=0)
    assert (await verifier.verify(issuer.mint("alice", DISTRICT, ["resident"]))).subject == "alice"

    with pytest.raises(Unauthenticated) as refused:
        await verifier.verify(REFUSED[case](issuer, stranger))
    assert type(refused.value) is Unauthenticated


async def test_oversized_token_is_refused_before_any_key_fetch(issuer: LocalIssuer, stub: StubServer,
                                                               jwks_url: str):
    """Tokens over 16 KiB are refused on their size alone; a 12 KiB one is fine."""
    verifier = verifier_for(issuer, jwks_url)
    with pytest.raises(Unauthenticated, match="too large"):
        await verifier.verify(issuer.mint("alice", DISTRICT, ["resident"], extra={"pad": "x" * 13_000}))
    assert stub.hits("/jwks.json") == 0
    large = issuer.mint("alice", DISTRICT, ["resident"], extra={"pad": "x" * 9_000})
    assert 12_000 < len(large) <= 16_384
    assert (await verifier.verify(large)).subject == "alice"


async def test_hs256_confusion_is_refused_even_if_hs256_is_allowed(issuer: LocalIssuer, jwks_url: str):
    """The key from the JWKS is bound to RS256, so listing HS256 among the accepted
    algorithms still does not let a public-key HMAC through."""
    verifier = verifier_for(issuer, jwks_url, auth_algorithms=["RS256", "HS256"])
    with pytest.raises(Unauthenticated):
        await verifier.verify(hs256_with_public_key(issuer, claims_for(issuer)))


# -- leeway ----------------------------------------------------------------------


@pytest.mark.parametrize(("leeway", "accepted"), [(30, True), (0, False)])
async def test_leeway_on_expiry(issuer: LocalIssuer, jwks_url: str, leeway: int, accepted: bool):
    """A token that expired 10 s ago is within a 30 s leeway and outside a 0 s one."""
    token = sign(issuer, claims_for(issuer, iat=now() - 300, nbf=now() - 300, exp=now() - 10))
    verifier = verifier_for(issuer, jwks_url, auth_leeway_s=leeway)
    if accepted:
        assert (await verifier.verify(token)).subject == "alice"
    else:
        with pytest.raises(Unauthenticated, match="expired"):
            await verifier.verify(token)


@pytest.mark.parametrize(("leeway", "accepted"), [(30, True), (0, False)])
async def test_leeway_on_not_before(issuer: LocalIssuer, jwks_url: str, leeway: int, accepted: bool):
    """A token valid from 10 s in the future (a provider's clock ahead) is within a 30 s
    leeway and outside a 0 s one."""
    token = sign(issuer, claims_for(issuer, nbf=now() + 10))
    verifier = verifier_for(issuer, jwks_url, auth_leeway_s=leeway)
    if accepted:
        assert (await verifier.verify(token)).subject == "alice"
    else:
        with pytest.raises(Unauthenticated):
            await verifier.verify(token)


# -- verified tokens kept -------------------------------------------------------------


async def test_a_token_verified_once_is_not_checked_again(issuer: LocalIssuer, verifier: TokenVerifier,
                                                          monkeypatch):
    """A resident's or district system's next request with the same token costs no
    signature check; another token still gets its own."""
    decoded = Counter()
    real = jwt.decode

    def counting(token, *args, **kwargs):
        decoded[token] += 1
        return real(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    token, other = issuer.mint("alice", DISTRICT, ["resident"]), issuer.mint("bob", DISTRICT, ["resident"])
    for _ in range(3):
        assert (await verifier.verify(token)).subject == "alice"
    assert (await verifier.verify(other)).subject == "bob"
    assert decoded == {token: 1, other: 1}


async def test_a_kept_token_is_refused_once_it_expires(issuer: LocalIssuer, jwks_url: str):
    """Kept until its exp (with the leeway, here none), not a moment longer."""
    verifier = verifier_for(issuer, jwks_url, auth_leeway_s=0)
    token = sign(issuer, claims_for(issuer, exp=now() + 1))
    assert (await verifier.verify(token)).subject == "alice"
    await asyncio.sleep(2.1)
    with pytest.raises(Unauthenticated, match="expired"):
        await verifier.verify(token)


async def test_a_kept_token_with_a_fractional_exp_expires_when_pyjwt_says(issuer: LocalIssuer, jwks_url: str):
    """PyJWT reads exp as an int: a token whose exp is 2.9 s ahead expires after 2 s, kept or not."""
    verifier = verifier_for(issuer, jwks_url, auth_leeway_s=0)
    start = int(time.time())
    token = sign(issuer, claims_for(issuer, exp=start + 2.9))
    assert (await verifier.verify(token)).subject == "alice"
    await asyncio.sleep(start + 2.2 - time.time())
    with pytest.raises(Unauthenticated, match="expired"):
        await verifier.verify(token)


async def test_a_kept_token_is_checked_again_once_its_key_set_is_fetched_again(
        issuer: LocalIssuer, stub: StubServer, jwks_url: str):
    """A token kept under a key that the provider has since removed is refused as soon as
    the key set is fetched again (its cache lifespan, 1 s), as a token never seen is."""
    verifier = verifier_for(issuer, jwks_url, auth_jwks_cache_s=1)
    token = issuer.mint("alice", DISTRICT, ["resident"])
    assert (await verifier.verify(token)).subject == "alice"
    issuer.rotate(keep_old=False)
    await asyncio.sleep(1.2)
    with pytest.raises(Unauthenticated):
        await verifier.verify(token)
    assert stub.hits("/jwks.json") == 2


async def test_at_most_so_many_verified_tokens_are_kept(issuer: LocalIssuer, verifier: TokenVerifier):
    """The least recently used is given up first: memory stays bounded whatever the callers."""
    verifier.VERIFIED_KEPT = 3
    tokens = [issuer.mint(f"r-{i}", DISTRICT, ["resident"]) for i in range(5)]
    for token in tokens:
        await verifier.verify(token)
    await verifier.verify(tokens[2])  # used again: kept over 3 and 4
    await verifier.verify(issuer.mint("r-5", DISTRICT, ["resident"]))
    assert len(verifier._verified) == 3
    assert tokens[2] in verifier._verified and tokens[3] not in verifier._verified


# -- roles, seats and claim paths ---------------------------------------------------


def test_system_is_the_one_role_no_token_grants():
    assert GRANTABLE_ROLES == frozenset(Role) - {Role.SYSTEM}


async def test_unknown_roles_are_ignored_and_system_never_granted(issuer: LocalIssuer, verifier: TokenVerifier):
    """Role names the platform does not know, non-strings and ``system`` are dropped;
    the known roles remain."""
    token = sign(issuer, claims_for(issuer, roles=["resident", "system", "SYSTEM", "superuser", "", 7, None,
                                                  {"x": 1}]))
    assert (await verifier.verify(token)).roles == {Role.RESIDENT}
    only_system = issuer.mint("robot", DISTRICT, ["system"])
    assert (await verifier.verify(only_system)).roles == frozenset()


async def test_every_grantable_role_is_granted(issuer: LocalIssuer, verifier: TokenVerifier):
    token = issuer.mint("alice", DISTRICT, [role.value for role in Role])
    assert (await verifier.verify(token)).roles == GRANTABLE_ROLES


async def test_invalid_seat_ids_are_dropped(issuer: LocalIssuer, verifier: TokenVerifier):
    token = issuer.mint("alice", DISTRICT, ["council_member"], seats=["seat-1", "seat 2", "", 3, "s:3"])
    assert (await verifier.verify(token)).seats == {"seat-1", "s:3"}


async def test_no_roles_or_seats_claim_gives_none(issuer: LocalIssuer, verifier: TokenVerifier):
    token = sign(issuer, claims_for(issuer, roles=DROP, seats=DROP))
    principal = await verifier.verify(token)
    assert (principal.roles, principal.seats) == (frozenset(), frozenset())


async def test_claims_at_dotted_paths(issuer: LocalIssuer, jwks_url: str):
    """Roles, seats and district can be read from nested claims (Keycloak style)."""
    verifier = verifier_for(issuer, jwks_url, auth_roles_claim="realm_access.roles",
                            auth_seats_claim="resource_access.yishi.seats", auth_district_claim="org.district")
    token = sign(issuer, claims_for(
        issuer, district=DROP, roles=["auditor"], seats=["ignored"], org={"district": "chaoyang"},
        realm_access={"roles": ["chair", "system", "offline_access"]},
        resource_access={"yishi": {"seats": ["seat-4"]}}))

    principal = await verifier.verify(token)

    assert principal == Principal(subject="alice", district="chaoyang", roles=frozenset({Role.CHAIR}),
                                  seats=frozenset({"seat-4"}))


async def test_dotted_path_through_a_non_object_finds_nothing(issuer: LocalIssuer, jwks_url: str):
    """A path whose parent is not an object finds no roles (not an error); a district
    path that finds nothing refuses the token."""
    verifier = verifier_for(issuer, jwks_url, auth_roles_claim="realm_access.roles")
    token = sign(issuer, claims_for(issuer, realm_access=["chair"]))
    assert (await verifier.verify(token)).roles == frozenset()

    by_org = verifier_for(issuer, jwks_url, auth_district_claim="org.district")
    with pytest.raises(Unauthenticated, match="org.district"):
        await by_org.verify(sign(issuer, claims_for(issuer, org="chaoyang")))


def test_principal_from_claims_without_a_verifier():
    """The claims-to-principal mapping on its own, with the default claim names."""
    settings = Settings(auth_issuer="https://issuer.example")
    claims = {"sub": "svc:reports", "district": "gulou", "roles": ["integration", "system"], "seats": []}
    assert principal_from_claims(claims, settings) == Principal(
        subject="svc:reports", district="gulou", roles=frozenset({Role.INTEGRATION}))
    with pytest.raises(Unauthenticated):
        principal_from_claims({**claims, "sub": "-leading-dash"}, settings)
    with pytest.raises(Unauthenticated):
        principal_from_claims({**claims, "district": "x" * 41}, settings)


# -- key caching and rotation -----------------------------------------------------


async def test_keys_are_fetched_once_and_cached(issuer: LocalIssuer, stub: StubServer, verifier: TokenVerifier):
    """50 verifications, sequential then concurrent, cause one JWKS fetch."""
    tokens = [issuer.mint(f"user-{n}", DISTRICT, ["resident"]) for n in range(50)]
    assert stub.hits("/jwks.json") == 0  # the verifier fetches lazily
    for token in tokens[:25]:
        await verifier.verify(token)
    await asyncio.gather(*(verifier.verify(token) for token in tokens[25:]))
    assert stub.hits("/jwks.json") == 1


async def test_concurrent_first_verifications_fetch_once(issuer: LocalIssuer, stub: StubServer,
                                                         verifier: TokenVerifier):
    """Verifications racing on a cold cache still make a single fetch."""
    tokens = [issuer.mint(f"user-{n}", DISTRICT, ["resident"]) for n in range(20)]
    principals = await asyncio.gather(*(verifier.verify(token) for token in tokens))
    assert {p.subject for p in principals} == {f"user-{n}" for n in range(20)}
    assert stub.hits("/jwks.json") == 1


async def test_rotation_is_followed_through_a_forced_refresh(issuer: LocalIssuer, stub: StubServer, jwks_url: str):
    """With no cooldown, a token with the rotated-in key's kid makes the verifier
    refresh its cached keys at once (one more fetch); the old key, kept published,
    still works, and both are then served from the cache."""
    verifier = verifier_for(issuer, jwks_url, auth_jwks_refresh_cooldown_s=0)
    old_token = issuer.mint("alice", DISTRICT, ["resident"])
    await verifier.verify(old_token)
    assert stub.hits("/jwks.json") == 1

    issuer.rotate(keep_old=True)
    new_token = issuer.mint("bob", DISTRICT, ["resident"])
    assert (await verifier.verify(new_token)).subject == "bob"
    assert stub.hits("/jwks.json") == 2
    assert (await verifier.verify(old_token)).subject == "alice"
    assert (await verifier.verify(new_token)).subject == "bob"
    assert stub.hits("/jwks.json") == 2


async def test_unknown_kids_within_the_cooldown_fetch_nothing(issuer: LocalIssuer, stub: StubServer, jwks_url: str):
    """With a long cooldown, an unknown kid soon after a fetch does not refresh the keys
    (PyJWT starts the cooldown at every successful fetch, the first included): a
    rotated-in key is refused until the cooldown or the cache lifespan has passed, and
    forged kids cannot make requests fetch the keys."""
    verifier = verifier_for(issuer, jwks_url, auth_jwks_refresh_cooldown_s=3600)
    await verifier.verify(issuer.mint("alice", DISTRICT, ["resident"]))

    issuer.rotate(keep_old=True)
    with pytest.raises(Unauthenticated, match="signing key"):
        await verifier.verify(issuer.mint("bob", DISTRICT, ["resident"]))
    for _ in range(20):
        with pytest.raises(Unauthenticated):
            await verifier.verify(sign(issuer, claims_for(issuer), kid=uuid.uuid4().hex))
    assert stub.hits("/jwks.json") == 1


async def test_a_second_unknown_kid_within_the_cooldown_is_refused(issuer: LocalIssuer, stub: StubServer,
                                                                   jwks_url: str):
    """Once the cooldown since the last fetch has passed, one unknown kid forces a
    refresh; a second unknown kid right after is refused without another fetch."""
    verifier = verifier_for(issuer, jwks_url, auth_jwks_refresh_cooldown_s=1)
    await verifier.verify(issuer.mint("alice", DISTRICT, ["resident"]))
    await asyncio.sleep(1.1)

    issuer.rotate(keep_old=True)
    assert (await verifier.verify(issuer.mint("bob", DISTRICT, ["resident"]))).subject == "bob"
    assert stub.hits("/jwks.json") == 2

    issuer.rotate(keep_old=True)
    with pytest.raises(Unauthenticated, match="signing key"):
        await verifier.verify(issuer.mint("carol", DISTRICT, ["resident"]))
    assert stub.hits("/jwks.json") == 2


async def test_a_removed_key_is_refused_once_the_cache_expires(issuer: LocalIssuer, stub: StubServer, jwks_url: str):
    """After rotate(keep_old=False) the old key is still trusted from the cache; once the
    cache lifespan (1 s) has passed the keys are fetched again and its tokens refused,
    while the new key's are accepted."""
    verifier = verifier_for(issuer, jwks_url, auth_jwks_cache_s=1)
    old_token = issuer.mint("alice", DISTRICT, ["resident"])
    await verifier.verify(old_token)

    issuer.rotate(keep_old=False)
    assert (await verifier.verify(old_token)).subject == "alice"  # cached keys
    assert stub.hits("/jwks.json") == 1

    await asyncio.sleep(1.2)
    with pytest.raises(Unauthenticated):
        await verifier.verify(old_token)
    assert stub.hits("/jwks.json") == 2
    assert (await verifier.verify(issuer.mint("bob", DISTRICT, ["resident"]))).subject == "bob"


# -- provider unavailable -------------------------------------------------------------


async def test_provider_down_is_provider_unavailable(issuer: LocalIssuer):
    """Connection refused on the JWKS URL: ProviderUnavailable (a 503, retry), not a
    plain Unauthenticated (a 401)."""
    verifier = verifier_for(issuer, closed_port_url())
    with pytest.raises(ProviderUnavailable) as refused:
        await verifier.verify(issuer.mint("alice", DISTRICT, ["resident"]))
    assert type(refused.value) is ProviderUnavailable
    assert issubclass(ProviderUnavailable, Unauthenticated)


async def test_provider_error_status_is_provider_unavailable(issuer: LocalIssuer, stub: StubServer):
    """An HTTP error from the JWKS endpoint is the provider's, not the token's."""
    verifier = verifier_for(issuer, stub.route("/jwks.json", serve_json({"error": "down"}, status=503)))
    with pytest.raises(ProviderUnavailable):
        await verifier.verify(issuer.mint("alice", DISTRICT, ["resident"]))


async def test_truncated_key_set_is_provider_unavailable(issuer: LocalIssuer, stub: StubServer):
    """A JWKS answer cut short (fewer bytes than its content-length, then closed)."""
    def truncated(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("content-length", "100000")
        handler.end_headers()
        handler.wfile.write(b'{"keys": [')

    verifier = verifier_for(issuer, stub.route("/jwks.json", truncated))
    with pytest.raises(ProviderUnavailable):
        await verifier.verify(issuer.mint("alice", DISTRICT, ["resident"]))


async def test_connection_reset_while_reading_keys_is_provider_unavailable(issuer: LocalIssuer, stub: StubServer):
    """The provider resets the connection (TCP RST) after sending the headers."""
    def reset(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("content-length", "100000")
        handler.end_headers()
        handler.wfile.write(b'{"keys": [')
        handler.wfile.flush()
        time.sleep(0.2)  # the client has read the headers and waits for the body
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.connection.close()

    verifier = verifier_for(issuer, stub.route("/jwks.json", reset))
    with pytest.raises(ProviderUnavailable):
        await verifier.verify(issuer.mint("alice", DISTRICT, ["resident"]))


@pytest.mark.parametrize("body", [b"<html>proxy error</html>", b'["not", "an", "object"]', b'{"keys": []}'])
async def test_a_broken_key_set_is_provider_unavailable(issuer: LocalIssuer, stub: StubServer, body: bytes):
    verifier = verifier_for(issuer, stub.route("/jwks.json", lambda _handler: (200, body)))
    with pytest.raises(Unauthenticated) as refused:
        await verifier.verify(issuer.mint("alice", DISTRICT, ["resident"]))
    assert type(refused.value) is ProviderUnavailable, refused.value


async def test_cached_keys_outlive_a_provider_outage(issuer: LocalIssuer, stub: StubServer,
                                                     verifier: TokenVerifier):
    """Within the cache lifespan, tokens are verified while the provider is down."""
    await verifier.verify(issuer.mint("alice", DISTRICT, ["resident"]))
    stub.route("/jwks.json", serve_json({"error": "down"}, status=500))
    assert (await verifier.verify(issuer.mint("bob", DISTRICT, ["resident"]))).subject == "bob"


async def test_the_verifier_recovers_when_the_provider_returns(issuer: LocalIssuer, stub: StubServer):
    """A failed fetch is not remembered: once the provider answers, tokens pass."""
    jwks_url = stub.route("/jwks.json", serve_json({"error": "down"}, status=503))
    verifier = verifier_for(issuer, jwks_url)
    token = issuer.mint("alice", DISTRICT, ["resident"])
    with pytest.raises(ProviderUnavailable):
        await verifier.verify(token)
    stub.route("/jwks.json", serve_file(issuer.jwks_path))
    assert (await verifier.verify(token)).subject == "alice"


# -- OpenID discovery --------------------------------------------------------------

DISCOVERY = "/.well-known/openid-configuration"


@pytest.fixture
def discovered(tmp_path: Path, stub: StubServer):
    """An issuer whose identifier is the stub's URL (which serves its discovery document)
    and whose JWKS LocalIssuer.serve() publishes."""
    found = LocalIssuer(tmp_path / "discovered", issuer=stub.url)
    stub.route(DISCOVERY, serve_json({"issuer": stub.url, "jwks_uri": found.serve()}))
    yield found
    stop_in_background(found._server)


async def test_keys_are_found_through_openid_discovery(discovered: LocalIssuer, stub: StubServer):
    """With no JWKS URL, the verifier reads {issuer}/.well-known/openid-configuration
    once, even when the first verifications race, and verifies with the keys at its
    jwks_uri."""
    verifier = verifier_for(discovered, None)
    subjects = [f"user-{n}" for n in range(10)]
    principals = await asyncio.gather(*(verifier.verify(discovered.mint(s, DISTRICT, ["resident"]))
                                        for s in subjects))
    assert [p.subject for p in principals] == subjects
    assert (await verifier.verify(discovered.mint("alice", DISTRICT, ["resident"]))).subject == "alice"
    assert stub.hits(DISCOVERY) == 1


async def test_discovery_failure_is_provider_unavailable_and_retried(discovered: LocalIssuer, stub: StubServer):
    """A failing discovery document is ProviderUnavailable and is tried again on the
    next verification."""
    working = stub.routes[DISCOVERY]
    stub.route(DISCOVERY, serve_json({"error": "down"}, status=503))
    verifier = verifier_for(discovered, None)
    token = discovered.mint("alice", DISTRICT, ["resident"])
    with pytest.raises(ProviderUnavailable):
        await verifier.verify(token)

    stub.route(DISCOVERY, working)
    assert (await verifier.verify(token)).subject == "alice"
    assert stub.hits(DISCOVERY) == 2


@pytest.mark.parametrize("body", [b'{"issuer": "x"}', b"{not json"], ids=["no jwks_uri", "not json"])
async def test_discovery_document_without_jwks_uri_is_provider_unavailable(
        issuer: LocalIssuer, stub: StubServer, body: bytes):
    stub.route(DISCOVERY, lambda _handler: (200, body))
    verifier = verifier_for(issuer, None, auth_issuer=stub.url)
    with pytest.raises(ProviderUnavailable):
        await verifier.verify(issuer.mint("alice", DISTRICT, ["resident"]))


async def test_discovery_document_not_an_object_is_provider_unavailable(issuer: LocalIssuer, stub: StubServer):
    stub.route(DISCOVERY, serve_json(["jwks_uri"]))
    verifier = verifier_for(issuer, None, auth_issuer=stub.url)
    with pytest.raises(ProviderUnavailable):
        await verifier.verify(issuer.mint("alice", DISTRICT, ["resident"]))


async def test_discovery_unreachable_is_provider_unavailable(issuer: LocalIssuer):
    verifier = verifier_for(issuer, None, auth_issuer=closed_port_url().removesuffix("/jwks.json"))
    with pytest.raises(ProviderUnavailable):
        await verifier.verify(issuer.mint("alice", DISTRICT, ["resident"]))
