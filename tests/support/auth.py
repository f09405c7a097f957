"""The tests' identity provider: one :class:`yishi.auth.LocalIssuer` per test process,
whose tokens every service under test verifies like any provider's (nothing disables
the check). ``ActingAs`` clients send each command with a token of the actor it names.

Whom a person acts for (the ``acts_for`` claim, :mod:`contracts.permissions`): a test
that is about it names the parties (``acting(acts_for=…)``, ``token_for(…, acts_for=…)``,
``bearer(…, acts_for=…)``); otherwise commands' tokens act for the whole district (``*``),
as every token did before parties were checked, and ``bearer`` mints no such claim."""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Iterable, Mapping
from typing import Any

from contracts.common import Actor, Command, Contract
from contracts.permissions import ANY_PARTY
from yishi.auth import ActingAs, LocalIssuer


@functools.cache
def issuer() -> LocalIssuer:
    """The process's test issuer (its keys live in a temporary directory; its JWKS is
    served on loopback for the services, in-process or not)."""
    found = LocalIssuer(tempfile.mkdtemp(prefix="yishi-test-issuer-"))
    found.serve()
    return found


def auth_settings() -> dict[str, Any]:
    """Settings keyword arguments that make a service trust the test issuer."""
    i = issuer()
    return {"auth_issuer": i.issuer, "auth_audience": i.audience, "auth_jwks_url": i.jwks_url}


def auth_env() -> dict[str, str]:
    """The same as ``YISHI_AUTH_*`` variables, for services run as processes."""
    return issuer().settings()


def acting(acts_for: Mapping[str, Iterable[str]] | None = None) -> ActingAs:
    """httpx auth: commands as their actor (acting for the parties ``acts_for`` lists for
    them, else the whole district), reads as the district's auditor."""
    return ActingAs(issuer(), acts_for=acts_for)


def token_for(actor: Actor, district: str, acts_for: Iterable[str] = (ANY_PARTY,)) -> str:
    """A bearer token for ``actor`` in ``district`` (e.g. for a command sent over Kafka)."""
    return issuer().for_actor(actor.model_dump(mode="json"), district, acts_for=acts_for)


def bearer(subject: str, district: str, *roles: str, seats: tuple[str, ...] = (),
           acts_for: Iterable[str] | None = None) -> dict[str, str]:
    """An ``Authorization`` header for ``subject`` with ``roles`` in ``district`` (and an
    ``acts_for`` claim unless it is None)."""
    return {"authorization": f"Bearer {issuer().mint(subject, district, roles, seats=seats, acts_for=acts_for)}"}


def kafka_token(model: Contract) -> str | None:
    """The token a message sent over Kafka carries: its actor's for a command, none else."""
    return token_for(model.actor, model.district) if isinstance(model, Command) else None
