"""``Envelope.to_kafka`` writes what the CloudEvents SDK reads, attribute for attribute."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from contracts import examples, proposals, registry
from contracts.envelope import Envelope, EnvelopeError


def sdk_event(envelope: Envelope) -> CloudEvent:
    key, headers, value = envelope.to_kafka()
    return from_binary(KafkaMessage(headers=dict(headers), key=key, value=value), JSONFormat(), CloudEvent)


@pytest.mark.parametrize("causation_id", [None, "cause-9"])
def test_sdk_parses_the_same_attributes(causation_id):
    model = examples.sample(proposals.ProposalRaised)
    envelope = registry.to_envelope(
        model, id="e-1", source="/yishi/gulou/proposals", subject=model.proposal_id,
        time=datetime(2026, 3, 2, 9, 15, tzinfo=timezone(timedelta(hours=8))),
        correlation_id="wx-7f3c2a9e", causation_id=causation_id,
    )
    event = sdk_event(envelope)
    expected = {
        "specversion": "1.0", "id": "e-1", "source": "/yishi/gulou/proposals", "type": "ProposalRaised",
        "subject": model.proposal_id, "datacontenttype": "application/json", "district": "gulou",
        "correlationid": "wx-7f3c2a9e", "schemaversion": "1",
        "partitionkey": model.proposal_id,  # the SDK's name for the Kafka key, which is the subject
    }
    if causation_id:
        expected["causationid"] = causation_id
    attributes = event.get_attributes()
    assert attributes.pop("time") == envelope.time
    assert attributes == expected
    assert event.get_data() == json.loads(registry.encode(model).data)


def test_every_worked_example_message_is_a_valid_cloudevent():
    for step in examples.worked_example():
        event = sdk_event(step.envelope)
        assert event.get_type() == step.envelope.type
        assert event.get_extension("district") == "gulou"


def test_a_message_without_schema_version_is_refused():
    _, headers, value = registry.to_envelope(
        examples.sample(proposals.SecondMotion), id="e-2", source="/gulou/app", subject="p-1",
        time=examples.SAMPLE_TIME, correlation_id="c",
    ).to_kafka()
    with pytest.raises(EnvelopeError, match="ce_schemaversion"):
        Envelope.from_kafka([(k, v) for k, v in headers if k != "ce_schemaversion"], value)
