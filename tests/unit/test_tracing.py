"""The trace context travels with the events: stored metadata → ``ce_traceparent`` on the
wire → the consumer's span; and log lines name their correlation and trace ids."""

from __future__ import annotations

import io
import json
import logging
import uuid

import structlog
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from contracts.envelope import Envelope
from yishi import tracing
from yishi.logging import bound_correlation, configure_logging
from yishi.relay import kafka_message, passthrough, to_envelope
from yishi.store import RecordedEvent

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def recorded(from_log: bool, **trace: str) -> RecordedEvent:
    meta = {"actor": "w-1", "district": "gulou", "correlation_id": "corr-1", "occurred_at":
            "2026-03-02T01:00:00+00:00", "recorded_at": "2026-03-02T01:00:00+00:00", **trace}
    columns = ((meta["occurred_at"], meta["correlation_id"], None, trace.get("traceparent"), trace.get("tracestate"))
               if from_log else ())
    return RecordedEvent(1, 1, "proposal-1", 1, uuid.uuid4(), "gulou", "x:ProposalRaised",
                         b'{"class_version":1}', json.dumps(meta), b"", *columns)


def headers_of(event: RecordedEvent) -> dict[str, bytes]:
    return dict(kafka_message(event, "proposals", passthrough(event))[1])


def test_the_relay_publishes_the_stored_trace_context_as_the_cloudevents_extension():
    for from_log in (True, False):
        event = recorded(from_log, traceparent=TRACEPARENT, tracestate="yishi=1")
        headers = headers_of(event)
        assert headers["ce_traceparent"] == TRACEPARENT.encode()
        assert headers["ce_tracestate"] == b"yishi=1"
        sdk = from_binary(KafkaMessage(headers=headers, key=None, value=b"{}"), JSONFormat(), CloudEvent)
        assert sdk.get_extension("traceparent") == TRACEPARENT
        envelope = Envelope.from_kafka(headers, b"{}")
        assert envelope.extra == {"traceparent": TRACEPARENT, "tracestate": "yishi=1"}
        assert dict(to_envelope(event, "proposals", passthrough(event)).to_kafka()[1]) == headers


def test_an_event_caused_outside_any_trace_has_no_trace_headers():
    assert not {"ce_traceparent", "ce_tracestate"} & set(headers_of(recorded(True)))
    assert not {"ce_traceparent", "ce_tracestate"} & set(headers_of(recorded(False)))


def test_a_consumed_messages_trace_goes_on_in_what_its_handler_stores():
    headers = [("ce_id", b"e-1"), ("ce_traceparent", TRACEPARENT.encode()), ("ce_correlationid", b"corr-1")]
    assert tracing.trace_fields() == {}
    with tracing.consuming("voting.vote-requests", "gulou.proposals.events", 0, 7, headers):
        # Recorded or not (no provider configured), the context is the message's trace.
        assert tracing.trace_fields()["traceparent"].startswith(f"00-{TRACE_ID}-")
    assert tracing.trace_fields() == {}


def test_log_lines_carry_the_correlation_id_and_the_trace_ids():
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging("INFO", json_lines=True)
    lines = io.StringIO()
    root.handlers[0].setStream(lines)
    try:
        headers = [("ce_traceparent", TRACEPARENT.encode())]
        with tracing.consuming("c", "gulou.proposals.events", 0, 1, headers), bound_correlation("corr-1"):
            structlog.get_logger("yishi.test").info("structlog line")
            logging.getLogger("aiokafka.test").warning("standard library line")
        structlog.get_logger("yishi.test").info("after")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    inside, library, after = (json.loads(line) for line in lines.getvalue().splitlines())
    for line in (inside, library):
        assert line["correlation_id"] == "corr-1"
        assert line["trace_id"] == TRACE_ID
        assert len(line["span_id"]) == 16
    assert "correlation_id" not in after and "trace_id" not in after
