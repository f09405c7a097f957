"""The notify service's commands: what each needs, and its refusals, in the order
``application.py`` checks them. Rendered into contracts/README.md by
``python -m contracts.generate`` (see :mod:`contracts.preconditions`)."""

from __future__ import annotations

from contracts.common import RejectionReason as R
from contracts.preconditions import Refusal

PRECONDITIONS: dict[str, tuple[Refusal, ...]] = {
    "Subscribe": (
        (R.NOT_AUTHORISED, "the actor is neither the subscriber nor staff"),
        (R.INVALID_COMMAND, "the channel cannot be subscribed to; the subscriber is not a person or a system; the "
                            "address is not valid for the channel; it follows a type that cannot be followed"),
        (R.ALREADY_EXISTS, "the subscription id is used by another subscription"),
    ),
    "Unsubscribe": (
        (R.NOT_FOUND, "the subscription does not exist"),
        (R.NOT_AUTHORISED, "the actor is neither the subscriber nor staff"),
    ),
    "SetDefaultContact": (
        (R.INVALID_COMMAND, "the address is not valid for the channel"),
    ),
    "RemoveDefaultContact": (
        (R.NOT_FOUND, "the party has no default contact (never set, or removed)"),
    ),
    "RequestNotification": (
        (R.INVALID_COMMAND, "the template or its values do not fit (unknown template, a missing value)"),
    ),
}
