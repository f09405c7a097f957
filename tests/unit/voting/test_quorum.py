"""Exact quorums (issue 15, item 9): a quorum may be an exact share of the electorate
(two thirds), counted on integers; a whole percent stays valid, and the two never disagree."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from contracts.common import VoteTerms
from contracts.voting import OpenVote, VoteOutcome
from services.voting.domain import Tally, decide

NOW = datetime(2026, 3, 1, 9, tzinfo=timezone.utc)


def terms(**quorum) -> VoteTerms:
    return VoteTerms.model_validate({
        "question": "建充电棚?", "method": "online", "majority": "simple", "secrecy": "open",
        "closes_at": (NOW + timedelta(days=1)).isoformat(),
        "electorate": {"kind": "residents_meeting", "scope_id": "xikang", "size": 300}, **quorum})


TWO_THIRDS = {"quorum": {"numerator": 2, "denominator": 3}}


@pytest.mark.parametrize("quorum, cast, met", [
    # Two thirds of 300 is exactly 200: 199 ballots are short of it, 200 reach it.
    (TWO_THIRDS, 199, False),
    (TWO_THIRDS, 200, True),
    # No whole percent says the same: 66 % lets 198 through, 67 % asks for 201.
    ({"quorum_percent": 66}, 198, True),
    ({"quorum_percent": 67}, 200, False),
    ({"quorum_percent": 67}, 201, True),
])
def test_a_quorum_is_counted_exactly(quorum, cast, met):
    result = decide(terms(**quorum), 300, Tally(in_favour=cast, against=0, abstain=0))
    assert result.quorum_met is met
    assert result.outcome == (VoteOutcome.ADOPTED if met else VoteOutcome.NO_QUORUM)


def test_the_quorum_is_given_once_as_a_share_of_at_most_one():
    assert terms(**TWO_THIRDS).quorum_share == terms(quorum={"numerator": 4, "denominator": 6}).quorum_share
    assert terms(quorum_percent=50).quorum is None  # the old way stays valid
    assert terms(quorum_percent=50, quorum={"numerator": 1, "denominator": 2}).quorum_share == terms(
        quorum_percent=50).quorum_share  # both, when they say the same
    for wrong in ({}, {"quorum_percent": 67, **TWO_THIRDS}, {"quorum": {"numerator": 4, "denominator": 3}},
                  {"quorum": {"numerator": 1, "denominator": 0}}):
        with pytest.raises(ValidationError):
            terms(**wrong)
    body = {"district": "gulou", "actor": {"id": "w", "role": "community_worker"}, "vote_id": "v",
            "council_id": "c", "matter": {"kind": "question", "id": "q"},
            "terms": terms(**TWO_THIRDS).model_dump(mode="json")}
    body["terms"]["quorum"]["numerator"] = "2"  # commands give integers as JSON integers
    with pytest.raises(ValidationError):
        OpenVote.model_validate(body)
