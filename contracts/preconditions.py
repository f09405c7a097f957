"""What a command needs before it is accepted, and why it is refused otherwise: the one
source of ``contracts/README.md``'s section "Commands: preconditions and refusals".

Each service keeps its commands' preconditions beside its rules, in
``services/NAME/preconditions.py``: a mapping ``PRECONDITIONS`` from each command type it
handles to the refusals it may answer, in the order its rules check them, each a
:class:`RejectionReason` and when it is given. :data:`EVERY_COMMAND` holds the refusals of
the command bus, common to all. ``python -m contracts.generate`` renders them;
``tests/unit/contracts/test_preconditions.py`` checks that every command has its entry and
that each service documents exactly the reasons its code raises.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from contracts.common import RejectionReason as R

Refusal = tuple[R, str]
"""A reason and when it is given ("the proposal is not published")."""

EVERY_COMMAND: tuple[Refusal, ...] = (
    (R.INVALID_COMMAND, "the body does not match the command's schema or a value check (dates at most five "
                        "years ahead, lengths, ids); `errors` names the fields"),
    (R.WRONG_DISTRICT, "body, `ce_district` and topic disagree, or the token is another district's"),
    (R.NOT_AUTHORISED, "the actor is not the caller, or acts in a role (or from a seat) the token does not "
                       "grant, or the permission table does not allow the role this command"),
    (R.IDEMPOTENCY_KEY_REUSED, "the caller's key was used before for another body of this command type"),
    (R.CONFLICT, "a concurrent command changed the same record three times running; send it again"),
    (R.UNKNOWN_COMMAND, "the type is not a command of this service"),
    (R.UNSUPPORTED_SCHEMA_VERSION, "the command's schema version is newer than the service's"),
)


def preconditions(service: str) -> Mapping[str, tuple[Refusal, ...]]:
    """``service``'s ``PRECONDITIONS`` (empty when it has none)."""
    try:
        module = importlib.import_module(f"services.{service}.preconditions")
    except ModuleNotFoundError as exc:
        if exc.name != f"services.{service}.preconditions":
            raise
        return {}
    return module.PRECONDITIONS
