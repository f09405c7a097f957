"""Builders for the proposals domain tests: a council with seated members, a proposal
brought to a given stage, and an assertion on rejections."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from contracts.common import RejectionReason, VoteTerms
from contracts.proposals import CouncilRules
from services.proposals.domain import Council, Proposal
from yishi.rules import Rejected

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc)
DAY = timedelta(days=1)
SEATS = [
    ("s-expert", "expert"),
    ("s-unit", "local_unit"),
    ("s-org", "social_organisation"),
    ("s-npc", "npc_deputy"),
    ("s-rr", "resident_representative"),
]
MEMBERS = {"s-expert": "m1", "s-unit": "m2", "s-org": "m3"}


def council(
    *,
    council_id: str = "c-1",
    level: str = "community",
    parent: Council | None = None,
    members: dict[str, str] | None = None,
    **rules,
) -> Council:
    """A council with the standard seats, the given members seated and ``rules`` applied."""
    formed = Council.form(
        district="gulou",
        council_id=council_id,
        name="西康社区议事会",
        level=level,
        area_id="xikang",
        parent=parent,
        seats=list(SEATS),
        rules=CouncilRules(**rules).model_dump(mode="json"),
        now=T0,
    )
    for seat_id, member_id in (MEMBERS if members is None else members).items():
        formed.seat(seat_id=seat_id, member_id=member_id, term_ends_at=None, now=T0)
    return formed


def proposal(c: Council, *, proposer: str = "resident-1", item=None) -> Proposal:
    """A proposal raised by a resident before ``c``."""
    return Proposal.raise_proposal(
        district="gulou",
        proposal_id="p-1",
        council=c,
        proposer_id=proposer,
        proposer_role="resident",
        proposer_seat_id=None,
        item=item,
        title="充电棚",
        summary="在3号院建设集中充电棚。",
        attachments=[],
        now=T0,
    )


def published(c: Council, **kwargs) -> Proposal:
    """A proposal publicised for exactly the council's notice period."""
    p = proposal(c, **kwargs)
    p.publish(
        council=c, form="council", notice_ends_at=T0 + c.rules["notice_period_days"] * DAY, session_at=None, now=T0
    )
    return p


def ready_for_vote(c: Council) -> Proposal:
    """Published, motion presented, seconded by m1: a vote may be requested after the notice period."""
    p = published(c)
    p.make_statement(
        statement_id="st-1", step="motion", speaker_role="proposer", speaker_id=p.proposer_id, text="动议", now=T0
    )
    p.second(council=c, member_id="m1", now=T0)
    return p


def terms_for(c: Council, closes_at: datetime, question: str = "建吗?", **changes) -> VoteTerms:
    """Vote terms on ``c``'s own voting rules (its seated members; the roll left to the
    council), with ``changes`` applied."""
    rules = c.rules
    return VoteTerms.model_validate({
        "question": question, "closes_at": closes_at, "method": rules["method"], "majority": rules["majority"],
        "quorum_percent": rules["quorum_percent"], "secrecy": rules["secrecy"],
        "electorate": {"kind": "council_members", "scope_id": c.council_id, "size": max(len(c.roll), 1)},
        **changes})


def voting(c: Council, vote_id: str = "v-1") -> Proposal:
    """A proposal waiting for the result of ``vote_id``."""
    p = ready_for_vote(c)
    p.request_vote(council=c, vote_id=vote_id, terms=terms_for(c, T0 + 10 * DAY), now=T0 + 7 * DAY)
    return p


def rejects(expected: RejectionReason, call, /, *args, **kwargs) -> Rejected:
    """Assert that ``call`` is rejected for ``reason`` and records nothing on its aggregate."""
    owner = getattr(call, "__self__", None)
    owner = None if isinstance(owner, type) else owner  # class methods create, they record on nothing
    before = len(owner.pending_events) if owner is not None else None
    with pytest.raises(Rejected) as caught:
        call(*args, **kwargs)
    assert caught.value.reason == expected, caught.value.message
    if owner is not None:
        assert len(owner.pending_events) == before
    return caught.value
