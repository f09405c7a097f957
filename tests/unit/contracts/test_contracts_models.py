"""Every registered model round-trips through the envelope and matches its committed schema."""

from __future__ import annotations

import inspect
import json
import re
from datetime import datetime, timezone
from functools import cache

import jsonschema
import pytest
from pydantic import ValidationError

import yishi.names
from contracts import common, examples, notify, oversight, proposals, registry, voting
from contracts.common import Command, Contract, Event
from contracts.envelope import Envelope
from contracts.generate import CONTRACTS_DIR, schema_path

VERSIONS = [(spec, version) for spec in registry.REGISTRY.values() for version in spec.versions]
IDS = [f"{spec.name}-v{version}" for spec, version in VERSIONS]
WHEN = datetime(2026, 3, 2, 1, 15, tzinfo=timezone.utc)


@cache
def validator(type_name: str, version: int) -> jsonschema.Validator:
    schema = json.loads((CONTRACTS_DIR / schema_path(type_name, version)).read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def envelope_of(model: Contract, district: str = "gulou") -> Envelope:
    return registry.to_envelope(
        model, id="3f0c8a9e-0000-4000-8000-000000000001", source=yishi.names.source(district, "proposals"),
        subject="subject-1", time=WHEN, correlation_id="corr-1", causation_id="cause-1",
    )


@pytest.mark.parametrize(("spec", "version"), VERSIONS, ids=IDS)
def test_round_trips_through_kafka_and_validates_against_committed_schema(spec, version):
    model = examples.sample(spec.versions[version])
    encoded = registry.encode(model)
    assert (encoded.type, encoded.schema_version) == (spec.name, version)
    validator(spec.name, version).validate(json.loads(encoded.data))

    key, headers, value = envelope_of(model).to_kafka()
    received = Envelope.from_kafka(headers, value, key)
    assert received == envelope_of(model)
    decoded = registry.decode(received)
    assert type(decoded) is spec.model
    if version == spec.latest:
        assert decoded == model


@pytest.mark.parametrize(("spec", "version"), VERSIONS, ids=IDS)
def test_committed_schema_rejects_what_the_model_rejects(spec, version):
    body = json.loads(registry.encode(examples.sample(spec.versions[version])).data)
    del body["district"]
    assert not validator(spec.name, version).is_valid(body)
    with pytest.raises(ValidationError):
        spec.versions[version].model_validate(body)


def test_every_contract_model_in_the_service_modules_is_registered():
    registered = {model for spec in registry.REGISTRY.values() for model in spec.versions.values()}
    defined = {
        cls for module in (common, proposals, voting, oversight, notify)
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, (Event, Command)) and cls not in (Event, Command)
    }
    assert defined - registered == set()


def test_types_are_named_as_facts_and_requests_and_owned_by_a_known_service():
    for spec in registry.REGISTRY.values():
        assert issubclass(spec.model, Command if spec.kind is registry.Kind.COMMAND else Event), spec.name
        assert spec.service in (*yishi.names.SERVICES, None)
        assert set(spec.consumers) <= set(yishi.names.RUNNABLE) - {spec.service}  # readers consume too


def test_district_pattern_is_the_one_topic_names_use():
    assert common.DISTRICT_PATTERN == yishi.names._DISTRICT.pattern


def test_events_ignore_unknown_fields_at_every_level():
    body = json.loads(registry.encode(examples.sample(proposals.ProposalRaised)).data)
    body["added_by_a_newer_producer"] = 1
    body["actor"]["nickname"] = "老王"
    assert proposals.ProposalRaised.model_validate(body) == examples.sample(proposals.ProposalRaised)


def test_commands_reject_unknown_fields():
    body = json.loads(registry.encode(examples.sample(voting.CastBallot)).data)
    body["choise"] = "against"
    with pytest.raises(ValidationError, match="choise"):
        voting.CastBallot.model_validate(body)


def test_models_are_frozen():
    ballot = examples.sample(voting.CastBallot)
    with pytest.raises(ValidationError):
        ballot.choice = voting.BallotChoice.AGAINST


@pytest.mark.parametrize("district", ["Gulou", "1gulou", "gu lou", ""])
def test_bad_district_is_rejected(district):
    body = json.loads(registry.encode(examples.sample(voting.CloseVote)).data) | {"district": district}
    with pytest.raises(ValidationError, match="district"):
        voting.CloseVote.model_validate(body)


def test_events_need_an_aware_time():
    body = json.loads(registry.encode(examples.sample(voting.VoteOpened)).data)
    body["occurred_at"] = "2026-03-02T09:15:00"
    with pytest.raises(ValidationError, match="occurred_at"):
        voting.VoteOpened.model_validate(body)


def test_a_decision_carries_the_resolution_exactly_when_adopted():
    adopted = examples.sample(proposals.ProposalDecided)
    assert adopted.decision is proposals.Decision.ADOPTED
    with pytest.raises(ValidationError, match="resolution"):
        adopted.model_validate(adopted.model_dump() | {"resolution": None})
    with pytest.raises(ValidationError, match="resolution"):
        adopted.model_validate(adopted.model_dump() | {"decision": "rejected"})


def test_an_explicit_roll_must_match_the_electorate_size():
    electorate = examples.sample(common.Electorate)
    with pytest.raises(ValidationError, match="roll"):
        electorate.model_validate(electorate.model_dump() | {"size": 2})


def test_worked_example_messages_validate_and_tell_one_story():
    steps = examples.worked_example()
    for step in steps:
        validator(step.envelope.type, step.envelope.schema_version).validate(step.envelope.payload())
        assert step.topic.startswith("gulou.") and registry.decode(step.envelope)
    types = [step.envelope.type for step in steps]
    assert types[0] == "RaiseProposal" and types[-1] == "ResolutionClosed"
    assert {"VoteClosed", "ProposalDecided", "TaskCompleted", "SatisfactionRated", "CommandRejected"} <= set(types)
    assert len({step.envelope.id for step in steps}) == len(steps)


def test_readme_explains_every_rejection_reason():
    readme = (CONTRACTS_DIR / "README.md").read_text(encoding="utf-8")
    for reason in common.RejectionReason:
        assert re.search(rf"^\| `{reason}` \|", readme, re.MULTILINE), reason
