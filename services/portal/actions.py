"""What a signed-in person does through the portal: each form is one of the services'
PUBLIC commands, sent over HTTP (``POST {service}/{district}/commands/{Type}``) with the
person's own token and an ``Idempotency-Key``. The portal holds no rules: the service
decides, and its answer (a reply, or a refusal as problem+json) is what the person is
told, in plain words (:mod:`services.portal.messages`, keys ``done.*`` and ``refused.*``).

The key comes with the form (a hidden field drawn when the page was rendered), so sending
the same form twice — a double click, a reload — is one command, answered twice.
Whose capacity the command is sent in (the ``actor.role``) is the first role of the
person's token that the permission table (:data:`contracts.permissions.PERMISSIONS`)
lets send it; a person with none of them is still sent through, as their first role, and
told the service's refusal."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from contracts.common import Role
from contracts.permissions import PERMISSIONS

Form = Mapping[str, Any]
_ROLES = frozenset(r.value for r in Role)


def _text(form: Form, name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def _optional(form: Form, name: str) -> str | None:
    return _text(form, name) or None


def _number(form: Form, name: str) -> int | str:
    """A number field as JSON's number (commands are strict); text that is none is sent
    as it is, for the service to refuse."""
    text = _text(form, name)
    return int(text) if text.lstrip("-").isdigit() else text


def _listed(form: Form, name: str) -> list[str]:
    value = form.get(name, [])
    return [v for v in ([value] if isinstance(value, str) else value) if v]


@dataclass(frozen=True)
class Action:
    """One form: the service it goes to, the command type, and its fields from the form
    (``subject`` is the signed-in person; ``key`` the form's idempotency key)."""

    service: str
    command_type: str
    fields: Callable[[Form, str, str], dict[str, Any]]


ACTIONS: dict[str, Action] = {
    "raise": Action("proposals", "RaiseProposal", lambda f, who, key: {
        "council_id": _text(f, "council_id"), "title": _text(f, "title"), "summary": _text(f, "summary")}),
    "second": Action("proposals", "SecondMotion", lambda f, who, key: {"proposal_id": _text(f, "proposal_id")}),
    "object": Action("proposals", "LodgeObjection", lambda f, who, key: {
        "proposal_id": _text(f, "proposal_id"), "grounds": _text(f, "grounds")}),
    # The ballot id is the voter's receipt in a secret vote: drawn with the form, told to
    # the voter only (services/voting), the same on a resend.
    "vote": Action("voting", "CastBallot", lambda f, who, key: {
        "vote_id": _text(f, "vote_id"), "ballot_id": f"ballot-{key}", "choice": _text(f, "choice")}),
    "progress": Action("oversight", "ReportProgress", lambda f, who, key: {
        "task_id": _text(f, "task_id"), "percent_complete": _number(f, "percent_complete"),
        "summary": _text(f, "summary")}),
    "inspect": Action("oversight", "RecordInspection", lambda f, who, key: {
        "resolution_id": _text(f, "resolution_id"), "task_id": _optional(f, "task_id"), "inspector_ids": [who],
        "aspects": _listed(f, "aspects"), "finding": _text(f, "finding"), "notes": _text(f, "notes")}),
}


def new_key() -> str:
    """A fresh idempotency key for a form about to be drawn."""
    return secrets.token_urlsafe(18)


@dataclass(frozen=True)
class Person:
    """The signed-in person, as their verified token describes them."""

    subject: str
    district: str
    roles: tuple[str, ...]
    seats: tuple[str, ...] = ()

    def may(self, command_type: str) -> bool:
        """Whether one of the person's roles is one the permission table lets send it (to
        draw the forms a person can use; the service still decides)."""
        return any(Role(r) in PERMISSIONS.get(command_type, ()) for r in self.roles if r in _ROLES)

    def actor(self, command_type: str) -> dict[str, Any]:
        """The command's ``actor``: the person, in the first capacity that may send it."""
        allowed = PERMISSIONS.get(command_type, frozenset())
        role = next((r for r in self.roles if r in _ROLES and Role(r) in allowed),
                    self.roles[0] if self.roles else Role.RESIDENT.value)
        seat = self.seats[0] if role == Role.COUNCIL_MEMBER and self.seats else None
        return {"id": self.subject, "role": role, **({"seat_id": seat} if seat else {})}


@dataclass(frozen=True)
class Outcome:
    """The service's answer to a form: accepted (with the ids it names), or refused for
    ``reason`` (a :class:`contracts.common.RejectionReason` value, or ``unauthenticated``,
    ``rate_limited``, ``unavailable``)."""

    action: str
    accepted: bool
    reason: str | None = None
    detail: str = ""
    ids: Mapping[str, str] | None = None
    ballot_id: str | None = None


def command_body(action: str, form: Form, person: Person, district: str, key: str) -> dict[str, Any]:
    """The command a form sends (None fields left out: the service chooses or defaults)."""
    found = ACTIONS[action]
    fields = {k: v for k, v in found.fields(form, person.subject, key).items() if v is not None}
    return {"district": district, "actor": person.actor(found.command_type), **fields}


async def send(client: httpx.AsyncClient, urls: Mapping[str, str], action: str, form: Form, person: Person,
               token: str, district: str, key: str) -> Outcome:
    """Send the form's command with the person's token; the service's answer as an :class:`Outcome`."""
    found = ACTIONS[action]
    body = command_body(action, form, person, district, key)
    if found.service not in urls:
        return Outcome(action, False, "unavailable", f"no URL for {found.service} (YISHI_PORTAL_SERVICE_URLS)")
    try:
        answer = await client.post(f"{urls[found.service].rstrip('/')}/{district}/commands/{found.command_type}",
                                   json=body, headers={"authorization": f"Bearer {token}", "idempotency-key": key})
    except httpx.HTTPError as exc:
        return Outcome(action, False, "unavailable", str(exc))
    if answer.status_code == 200:
        reply = answer.json()
        return Outcome(action, True, ids=reply.get("ids") or {}, ballot_id=body.get("ballot_id"))
    try:
        problem = answer.json()
    except ValueError:
        problem = {}
    reason = problem.get("reason") if isinstance(problem, dict) else None
    if not isinstance(reason, str):
        reason = {401: "unauthenticated", 429: "rate_limited"}.get(answer.status_code,
                                                                   "invalid_command" if answer.status_code == 422
                                                                   else "unavailable")
    detail = (problem.get("detail") or "") if isinstance(problem, dict) else ""
    return Outcome(action, False, reason, str(detail))
