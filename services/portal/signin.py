"""Signing in to the portal and acting through it.

OpenID Connect's authorisation code flow with PKCE against the district's provider
(locally, the development issuer of :mod:`yishi.dev_login`), by Authlib's Starlette
client: ``GET /auth/login`` sends the browser to the provider with a fresh ``state``,
``nonce`` and S256 challenge (kept in the session); ``GET /auth/callback`` checks the
state, redeems the code with the verifier, checks the ID token (signature, issuer,
audience, nonce), then verifies the access token as every service does
(:class:`yishi.auth.TokenVerifier`) to learn who the person is; ``POST /auth/logout``
forgets them. The session is a signed cookie (Starlette's ``SessionMiddleware``,
itsdangerous), HttpOnly and SameSite=Lax; the token lives there and in the requests to
the services, never in a URL.

``POST /act/{action}`` is every form of :mod:`services.portal.actions`: it checks the
session's CSRF token, sends the command with the person's token, and goes back (303) to
the page it came from, which shows the outcome once (the session's ``flash``).
"""

from __future__ import annotations

import secrets
import time
import warnings
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any
from urllib.parse import parse_qs

import httpx
import structlog
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware

from services.portal import actions
from services.portal.settings import PortalSettings
from yishi.auth import TokenVerifier, Unauthenticated
from yishi.runtime import ServiceContext
from yishi.settings import Settings

from authlib.deprecate import AuthlibDeprecationWarning  # noqa: E402 - before the filter below

with warnings.catch_warnings():
    # Authlib 1.9 prefers the httpx2 fork and warns when it falls back to httpx, which
    # it supports and which the platform uses everywhere else.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.starlette_client import OAuth, OAuthError

log = structlog.get_logger("yishi.portal.signin")
SESSION_COOKIE = "yishi_portal"
SESSION_MAX_AGE_S = 8 * 3600


def local_path(target: str | None, default: str = "/") -> str:
    """``target`` if it is a path of this site (no open redirect), else ``default``."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def person(request: Request) -> actions.Person | None:
    """The signed-in person of this request, if their token has not expired."""
    signed = request.session.get("person")
    if not signed or signed.get("expires_at", 0) <= time.time():
        return None
    return actions.Person(subject=signed["subject"], district=signed["district"], roles=tuple(signed["roles"]),
                          seats=tuple(signed["seats"]))


def csrf_token(request: Request) -> str:
    """The session's CSRF token, every form's hidden ``csrf`` field (drawn at sign-in: an
    anonymous reader gets no cookie)."""
    return request.session.get("csrf", "")


def take_flash(request: Request) -> dict[str, Any] | None:
    """The outcome of the last form sent, told once."""
    return request.session.pop("flash", None)


def page_context(request: Request) -> dict[str, Any]:
    """What every template gets for signing in and the forms: the person, the CSRF token,
    the last outcome, and ``key()`` drawing a fresh idempotency key for each form."""
    return {"person": person(request), "csrf": csrf_token(request), "flash": take_flash(request),
            "key": actions.new_key}


async def form_fields(request: Request) -> dict[str, str | list[str]]:
    """A form's fields (``application/x-www-form-urlencoded``, what the portal's forms
    send; its body size is capped by the service's limit); a repeated name is a list."""
    fields = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v if len(v) > 1 else v[0] for k, v in fields.items()}


def install(ctx: ServiceContext, portal: PortalSettings) -> None:
    """Add the session and the sign-in and action routes to the portal's app."""
    secret = portal.session_secret.get_secret_value() if portal.session_secret else secrets.token_urlsafe(32)
    ctx.middleware.append(Middleware(SessionMiddleware, secret_key=secret, session_cookie=SESSION_COOKIE,
                                     max_age=SESSION_MAX_AGE_S, same_site="lax",
                                     https_only=portal.session_https_only))
    ctx.public.include_router(router(portal, ctx.settings))


def router(portal: PortalSettings, settings: Settings) -> APIRouter:
    """``/auth/login``, ``/auth/callback``, ``/auth/logout`` and ``/act/{action}``."""
    routes = APIRouter(include_in_schema=False)
    oauth = OAuth()
    metadata = portal.oidc_discovery_url or (
        f"{(settings.auth_issuer or '').rstrip('/')}/.well-known/openid-configuration")
    oauth.register("district", client_id=portal.oidc_client_id,
                   client_secret=portal.oidc_client_secret.get_secret_value() if portal.oidc_client_secret else None,
                   server_metadata_url=metadata,
                   client_kwargs={"scope": portal.oidc_scope, "code_challenge_method": "S256",
                                  **({} if portal.oidc_client_secret else
                                     {"token_endpoint_auth_method": "none"})})
    verifier = TokenVerifier(settings) if settings.auth_issuer else None
    districts = settings.districts
    client = httpx.AsyncClient(timeout=15)

    def back(request: Request, outcome: Mapping[str, Any], target: str | None) -> Response:
        request.session["flash"] = dict(outcome)
        return RedirectResponse(local_path(target, f"/{districts[0]}"), 303)

    @routes.get("/auth/login")
    async def login(request: Request, next: str | None = None) -> Response:  # noqa: A002 - the query's name
        request.session["after_login"] = local_path(next, f"/{districts[0]}")
        return await oauth.district.authorize_redirect(request, request.url_for("auth_callback"))

    @routes.get("/auth/callback", name="auth_callback")
    async def callback(request: Request) -> Response:
        target = request.session.pop("after_login", None)
        try:
            token = await oauth.district.authorize_access_token(request)
            if verifier is None:
                raise Unauthenticated("the portal trusts no provider (YISHI_AUTH_ISSUER is unset)")
            principal = await verifier.verify(token["access_token"])
        except (OAuthError, Unauthenticated, httpx.HTTPError) as exc:
            log.warning("sign-in failed", reason=str(exc))
            return back(request, {"kind": "signin_failed"}, target)
        if principal.district not in districts:
            log.warning("sign-in refused: another district's account", district=principal.district)
            return back(request, {"kind": "signin_failed"}, target)
        expires_in = float(token.get("expires_in") or 3600)
        request.session["person"] = {"subject": principal.subject, "district": principal.district,
                                     "roles": sorted(principal.roles), "seats": sorted(principal.seats),
                                     "expires_at": time.time() + expires_in}
        request.session["token"] = token["access_token"]
        request.session["csrf"] = secrets.token_urlsafe(24)
        return back(request, {"kind": "signed_in"}, target)

    @routes.post("/auth/logout")
    async def logout(request: Request) -> Response:
        form = await form_fields(request)
        if not request.session.get("csrf") or form.get("csrf") != request.session.get("csrf"):
            return Response("forbidden", 403)
        target = form.get("next")
        request.session.clear()
        return back(request, {"kind": "signed_out"}, target if isinstance(target, str) else None)

    @routes.post("/act/{action}")
    async def act(request: Request, action: str) -> Response:
        fields = await form_fields(request)
        target = fields.get("next") if isinstance(fields.get("next"), str) else None
        if action not in actions.ACTIONS:
            return Response("not found", 404)
        who = person(request)
        if who is None:  # never signed in, or the session or its token expired: sign in again
            return back(request, {"kind": "refused", "reason": "unauthenticated"}, target)
        if fields.get("csrf") != request.session.get("csrf"):
            return Response("forbidden: the form is not this session's", 403)
        key = fields.get("key") if isinstance(fields.get("key"), str) and fields.get("key") else actions.new_key()
        outcome = await actions.send(client, portal.service_urls, action, fields, who, request.session["token"],
                                     who.district, key)
        if outcome.reason == "unauthenticated":
            request.session.pop("person", None)
        return back(request, {"kind": "done" if outcome.accepted else "refused", **asdict(outcome)}, target)

    return routes
