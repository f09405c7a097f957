"""The voting service's commands: what each needs, and its refusals, in the order the rules
(``domain.py``, ``application.py``, ``ballot_box.py``) check them. Rendered into contracts/README.md by
``python -m contracts.generate`` (see :mod:`contracts.preconditions`)."""

from __future__ import annotations

from contracts.common import RejectionReason as R
from contracts.preconditions import Refusal

PRECONDITIONS: dict[str, tuple[Refusal, ...]] = {
    "OpenVote": (
        (R.ALREADY_EXISTS, "the vote id is used"),
        (R.NOT_AUTHORISED, "the actor's role does not convene votes"),
        (R.INVALID_COMMAND, "`closes_at` is in the past, or not after `opens_at`; an approval vote lists fewer "
                            "than two distinct options, or another vote lists options"),
        (R.VOTE_REQUESTED_THROUGH_PROPOSALS, "the matter is a proposal, a nomination or a slate: their votes are "
                                             "opened by the proposals service from `RequestVote`"),
    ),
    "CastBallot": (
        (R.NOT_FOUND, "the vote does not exist"),
        (R.DEADLINE_PASSED, "the vote has closed"),
        (R.INVALID_STATE, "the vote does not open until `opens_at`; a secret ballot is replaced with another "
                          "ballot id than its first"),
        (R.NOT_ELIGIBLE, "the voter is not in the electorate"),
        (R.INVALID_COMMAND, "approvals do not fit the vote (an approval ballot in favour names one or more of its "
                            "options, an abstention none; other votes take none)"),
        (R.DUPLICATE, "the voter has already voted and the vote allows no change"),
        (R.ALREADY_EXISTS, "the ballot id is used by another ballot"),
    ),
    "CloseVote": (
        (R.NOT_FOUND, "the vote does not exist"),
        (R.INVALID_STATE, "the vote is already closed"),
        (R.NOT_AUTHORISED, "the actor is neither the convener nor in a convening role"),
    ),
}
