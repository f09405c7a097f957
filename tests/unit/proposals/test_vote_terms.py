"""A proposal's vote runs on the terms requested (issue 15, item 1), bounded by its
council's voting rules: terms the rules forbid are refused with ``council_rule`` naming
the rule, never replaced by the council's."""

from __future__ import annotations

from contracts.common import RejectionReason as R
from tests.unit.proposals.support import DAY, T0, council, ready_for_vote, rejects, terms_for

RESIDENTS = [f"r{i:02d}" for i in range(60)]


def meeting(**changes) -> dict:
    """A secret residents' meeting of 60 (its roll given), online, two thirds, quorum 1/2."""
    return {"electorate": {"kind": "residents_meeting", "scope_id": "xikang", "size": 60, "roll": RESIDENTS},
            "method": "online", "majority": "two_thirds", "quorum": {"numerator": 1, "denominator": 2},
            "quorum_percent": None, "secrecy": "secret", **changes}


def test_a_residents_meeting_decides_on_the_terms_requested():
    c = council(quorum_percent=50, majority="simple", method="paper_ballot", secrecy="open")
    p = ready_for_vote(c)
    asked = terms_for(c, T0 + 9 * DAY, **meeting())
    decided = p.request_vote(council=c, vote_id="v", terms=asked, now=T0 + 7 * DAY)
    assert decided == asked.model_dump(mode="json")
    assert p.votes[-1]["terms"]["electorate"]["size"] == 60 and p.votes[-1]["terms"]["secrecy"] == "secret"


def test_a_council_vote_is_its_seated_members_and_only_its_roll_is_filled_in():
    c = council(quorum_percent=50)
    p = ready_for_vote(c)
    decided = p.request_vote(council=c, vote_id="v", terms=terms_for(c, T0 + 9 * DAY, method="online"),
                             now=T0 + 7 * DAY)
    assert decided["electorate"] == {"kind": "council_members", "scope_id": "c-1", "size": 3,
                                     "roll": ["m1", "m2", "m3"]}
    assert decided["method"] == "online"  # the council's usual method does not bind


def test_terms_the_council_rules_forbid_are_refused_naming_the_rule():
    c = council(quorum_percent=60, majority="two_thirds", secrecy="secret")
    p = ready_for_vote(c)
    cases = {
        "quorum": meeting(quorum={"numerator": 1, "denominator": 2}),
        "majority": meeting(majority="simple", quorum={"numerator": 2, "denominator": 3}),
        "secrecy": meeting(secrecy="open", quorum=None, quorum_percent=60),
    }
    for rule, changes in cases.items():
        error = rejects(R.COUNCIL_RULE, p.request_vote, council=c, vote_id="v",
                        terms=terms_for(c, T0 + 9 * DAY, **changes), now=T0 + 7 * DAY)
        assert f"rule {rule}" in error.message, error.message
    # At least as strict is allowed: unanimity under two thirds, an exact 2/3 over 60 %.
    p.request_vote(council=c, vote_id="v", now=T0 + 7 * DAY, terms=terms_for(
        c, T0 + 9 * DAY, **meeting(majority="unanimity", quorum={"numerator": 2, "denominator": 3})))


def test_an_electorate_must_be_checkable():
    c = council()
    p = ready_for_vote(c)
    ask = p.request_vote
    wrong_size = terms_for(c, T0 + 9 * DAY, electorate={"kind": "council_members", "scope_id": "c-1", "size": 1})
    error = rejects(R.COUNCIL_RULE, ask, council=c, vote_id="v", terms=wrong_size, now=T0 + 7 * DAY)
    assert "3 seated members" in error.message
    other_roll = terms_for(c, T0 + 9 * DAY, electorate={"kind": "council_members", "scope_id": "c-1", "size": 3,
                                                        "roll": ["m1", "m2", "x"]})
    rejects(R.COUNCIL_RULE, ask, council=c, vote_id="v", terms=other_roll, now=T0 + 7 * DAY)
    other_council = terms_for(c, T0 + 9 * DAY, electorate={"kind": "council_members", "scope_id": "c-9", "size": 3})
    rejects(R.INVALID_COMMAND, ask, council=c, vote_id="v", terms=other_council, now=T0 + 7 * DAY)
    no_roll = terms_for(c, T0 + 9 * DAY, electorate={"kind": "residents_meeting", "scope_id": "xikang", "size": 60})
    error = rejects(R.INVALID_COMMAND, ask, council=c, vote_id="v", terms=no_roll, now=T0 + 7 * DAY)
    assert "roll" in error.message
