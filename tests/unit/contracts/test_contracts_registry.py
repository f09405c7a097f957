"""Decoding failures are distinct and documented; versions are upcast; topics follow yishi.names."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts import examples, oversight, proposals, registry, voting
from contracts.envelope import Envelope
from contracts.registry import InvalidPayload, Kind, UnknownEventType, UnsupportedSchemaVersion
from yishi.names import commands_topic, events_topic, replies_topic

WHEN = examples.SAMPLE_TIME


def envelope(model, **changes) -> Envelope:
    made = registry.to_envelope(model, id="id-1", source="/yishi/gulou/voting", subject="s", time=WHEN,
                                correlation_id="c-1")
    return dataclasses.replace(made, **changes)


def test_unknown_type_is_its_own_error():
    with pytest.raises(UnknownEventType, match="ProposalTeleported") as caught:
        registry.decode(envelope(examples.sample(voting.CloseVote), type="ProposalTeleported"))
    assert caught.value.code == "unknown_type"
    assert caught.value.rejection == "unknown_command"


@pytest.mark.parametrize("version", [3, 0, -1])
def test_versions_this_code_does_not_know_are_their_own_error(version):
    with pytest.raises(UnsupportedSchemaVersion, match="versions 1 to 2") as caught:
        registry.decode(envelope(examples.sample(oversight.FundsAllocated), schema_version=version))
    assert caught.value.code == "unsupported_schema_version"


def test_invalid_body_names_the_fields():
    body = json.loads(registry.encode(examples.sample(voting.CastBallot)).data) | {"choice": "maybe"}
    body.pop("vote_id")
    with pytest.raises(InvalidPayload) as caught:
        registry.decode(envelope(examples.sample(voting.CastBallot), data=json.dumps(body).encode()))
    assert caught.value.code == "invalid_payload"
    assert {loc for loc, _ in caught.value.errors} == {"vote_id", "choice"}
    assert str(caught.value).startswith("CastBallot v1: ")


def test_a_command_naming_an_unknown_field_at_any_depth_is_invalid():
    """Over the command topic as over HTTP: a misspelt nested field is refused, never
    dropped (events, read tolerantly, keep ignoring what they do not know)."""
    body = json.loads(registry.encode(examples.sample(voting.OpenVote)).data)
    body["actor"]["colour"] = "red"
    body["terms"]["quorum_pct"] = 10  # for quorum_percent
    body["terms"]["electorate"]["members"] = 60
    with pytest.raises(InvalidPayload) as caught:
        registry.decode(envelope(examples.sample(voting.OpenVote), data=json.dumps(body).encode()), Kind.COMMAND)
    assert [loc for loc, _ in caught.value.errors] == ["actor.colour", "terms.electorate.members", "terms.quorum_pct"]
    event = json.loads(registry.encode(examples.sample(voting.VoteOpened)).data)
    event["terms"]["quorum_pct"] = 10
    assert registry.decode(envelope(examples.sample(voting.VoteOpened), data=json.dumps(event).encode()))


def test_a_body_from_another_district_is_invalid():
    with pytest.raises(InvalidPayload, match="ce_district"):
        registry.decode(envelope(examples.sample(voting.CloseVote), district="chaoyang"))


def test_decode_can_insist_on_a_kind():
    event = envelope(examples.sample(voting.VoteClosed))
    assert isinstance(registry.decode(event, Kind.EVENT), voting.VoteClosed)
    with pytest.raises(UnknownEventType, match="not a command"):
        registry.decode(event, Kind.COMMAND)


def test_encoding_an_unregistered_model_fails():
    with pytest.raises(UnknownEventType):
        registry.encode(examples.sample(voting.Tally))  # a value type, not a message


def test_funds_allocated_v1_is_upcast_to_v2():
    v1 = oversight.FundsAllocatedV1(
        **examples.sample(oversight.FundsAllocated).model_dump(exclude={"amount_fen"}),
        amount_yuan=Decimal("86000.50"),
    )
    message = envelope(v1)
    assert message.schema_version == 1 and message.type == "FundsAllocated"
    decoded = registry.decode(message)
    assert isinstance(decoded, oversight.FundsAllocated)
    assert decoded.amount_fen == 8_600_050
    assert decoded.model_dump(exclude={"amount_fen"}) == v1.model_dump(exclude={"amount_yuan"})


def test_a_v1_body_is_checked_against_v1_before_upcasting():
    v1 = envelope(examples.sample(oversight.FundsAllocatedV1))
    body = v1.payload() | {"amount_yuan": "12.345"}
    with pytest.raises(InvalidPayload, match="FundsAllocated v1: amount_yuan"):
        registry.decode(dataclasses.replace(v1, data=json.dumps(body).encode()))


@given(st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False, allow_infinity=False))
def test_the_upcaster_converts_yuan_to_fen_exactly(yuan):
    v1 = oversight.FundsAllocatedV1.model_validate(
        examples.sample(oversight.FundsAllocatedV1).model_dump() | {"amount_yuan": yuan}
    )
    upcast = oversight.upcast_funds_allocated_v1(v1.model_dump(mode="json"))
    assert upcast["amount_fen"] == yuan * 100


def test_a_version_without_its_upcaster_cannot_be_registered():
    with pytest.raises(ValueError, match="upcaster"):
        registry.TypeSpec("FundsAllocated", Kind.EVENT, "oversight",
                          {1: oversight.FundsAllocatedV1, 2: oversight.FundsAllocated})
    with pytest.raises(ValueError, match="versions"):
        registry.TypeSpec("FundsAllocated", Kind.EVENT, "oversight", {2: oversight.FundsAllocated})


def test_topics_follow_the_shared_names():
    assert registry.topic("ProposalRaised", "gulou") == events_topic("gulou", "proposals")
    assert registry.topic("CastBallot", "gulou") == commands_topic("gulou", "voting")
    assert registry.topic("CommandRejected", "gulou", "oversight") == replies_topic("gulou", "oversight")
    with pytest.raises(ValueError, match="reply"):
        registry.topic("CommandAccepted", "gulou")


def test_every_service_has_commands_and_events():
    for service in ("proposals", "voting", "oversight", "notify"):
        kinds = {spec.kind for spec in registry.REGISTRY.values() if spec.service == service}
        assert kinds == {Kind.EVENT, Kind.COMMAND}, service
    assert "voting" in registry.spec("VoteRequested").consumers
    assert "oversight" in registry.spec("ProposalDecided").consumers
    assert registry.spec("SecondMotion").model is proposals.SecondMotion


def test_what_a_service_consumes_is_read_from_the_registry_by_publisher():
    """The portal's subscriptions are the registry's portal consumers, grouped by who
    publishes them (one source of truth: the two lists drifted apart before)."""
    from services.portal.consumers import CONSUMED

    portal = registry.consumed_by("portal")
    assert CONSUMED == portal
    assert {name for names in portal.values() for name in names} == {
        name for name, spec in registry.REGISTRY.items() if "portal" in spec.consumers}
    assert all(registry.spec(name, Kind.EVENT).service == service for service, names in portal.items()
               for name in names)
    assert "BallotAccepted" not in portal["voting"]  # a vote's page shows its closing counts only
    assert registry.consumed_by("voting") == {"proposals": ("VoteRequested",)}
    assert registry.consumed_by("nobody") == {}
