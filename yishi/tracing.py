"""Tracing (OpenTelemetry): one trace from an HTTP command to the consumers it reaches in
other services, across the outbox and Kafka.

- The trace context current when an event is appended (a command's span) is stored in the
  event's metadata (``traceparent``, ``tracestate``; :func:`trace_fields`), because the
  relay publishes it later, from another task.
- The relay sends it as the CloudEvents distributed-tracing extension: ``ce_traceparent``
  and ``ce_tracestate`` headers (:func:`contracts.envelope.binary_headers`).
- A consumer's span (:func:`consuming`) is a child of that context, so what its handler
  does (commands, events, statements) continues the trace, in its own service.

Spans are recorded only when tracing is configured (:func:`configure`): an OTLP exporter
when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set
(and ``OTEL_SDK_DISABLED`` is not ``true``), or a span processor the embedding program
passes (the tests' in-memory exporter). Then HTTP requests (FastAPI's own telemetry),
asyncpg and aiokafka are traced too. Otherwise the API's no-op tracer is used: nothing is
recorded or exported, but a context that came in on a message is still passed on to what
it causes, so a trace runs on through a service that does not record. Only entry points start a
trace (HTTP requests, consumed messages): statements and sends outside any span (the
relay's polling, the sealer, timers) are not sampled.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context, trace
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

tracer = trace.get_tracer("yishi")
_W3C = TraceContextTextMapPropagator()
_provider: Any = None  # the SDK TracerProvider once configured


def configure(service: str, processor: Any = None) -> bool:
    """Record spans for this process when an OTLP endpoint is configured or ``processor``
    (an SDK ``SpanProcessor``) is given; True when spans are recorded. Once per process:
    later calls add ``processor`` to the provider already set."""
    global _provider
    if _provider is not None:
        if processor is not None:
            _provider.add_span_processor(processor)
        return True
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    disabled = os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
    if processor is None and (disabled or not endpoint):
        return False
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased

    name = os.environ.get("OTEL_SERVICE_NAME") or f"yishi-{service}"
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}),
                              sampler=ParentBased(root=_EntryPoints(_ratio())))
    if processor is not None:
        provider.add_span_processor(processor)
    if endpoint and not disabled:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _provider = provider
    # HTTP requests are traced by FastAPI's own telemetry (http_telemetry), with this
    # provider; the clients by their instrumentations.
    from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    AsyncPGInstrumentor().instrument(tracer_provider=provider)
    AIOKafkaInstrumentor().instrument(tracer_provider=provider)
    return True


_OPS_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def http_telemetry() -> dict[str, Any]:
    """``FastAPI(telemetry=...)`` for an app built after :func:`configure`: a server span
    per request (a child of the caller's ``traceparent``), but none for probes and
    scrapes, recorded by the provider configured; none at all when spans are not
    recorded. FastAPI's own metrics and logs are off (Prometheus counts requests,
    :mod:`yishi.metrics`). Off, FastAPI does not look for a provider at every request:
    that look read the environment three times per request, about 3 % of the voting
    service's CPU per ballot."""
    off = {"metrics": False, "logs": False}
    if _provider is None:
        return {**off, "tracing": False}
    return {**off, "tracer_provider": _provider, "exclude": lambda scope: scope.get("path") in _OPS_PATHS}


def trace_fields() -> dict[str, str]:
    """The current trace context as W3C ``traceparent`` (and ``tracestate``), for an
    event's metadata; empty outside any trace."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return {}
    fields = {"traceparent": f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-"
                             f"{int(span_context.trace_flags):02x}"}
    if span_context.trace_state:
        fields["tracestate"] = span_context.trace_state.to_header()
    return fields


def extracted(traceparent: str | None, tracestate: str | None = None) -> otel_context.Context | None:
    """The context a ``traceparent`` (and ``tracestate``) names; None when absent or invalid."""
    if not traceparent:
        return None
    carrier = {"traceparent": traceparent, **({"tracestate": tracestate} if tracestate else {})}
    ctx = _W3C.extract(carrier)
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


@contextmanager
def consuming(consumer: str, topic: str, partition: int, offset: int,
              headers: Iterable[tuple[str, bytes]]) -> Iterator[trace.Span]:
    """The span of one consumed message: a child of its ``ce_traceparent`` when it has one
    (else of a plain ``traceparent`` header, as instrumented producers write)."""
    ce = {k: v for k, v in headers if k in _CE_HEADERS}
    parent = (extracted(_text(ce.get("ce_traceparent")), _text(ce.get("ce_tracestate")))
              or extracted(_text(ce.get("traceparent")), _text(ce.get("tracestate"))))
    attributes = {"messaging.system": "kafka", "messaging.operation.type": "process",
                  "messaging.destination.name": topic, "messaging.destination.partition.id": str(partition),
                  "messaging.kafka.offset": offset, "yishi.consumer": consumer}
    for header, attribute in _CE_ATTRIBUTES.items():
        if header in ce:
            attributes[attribute] = _text(ce[header]) or ""
    with tracer.start_as_current_span(f"process {topic}", context=parent or otel_context.Context(),
                                      kind=SpanKind.CONSUMER, attributes=attributes) as span:
        yield span


@contextmanager
def command_span(command_type: str, correlation_id: str, district: str) -> Iterator[trace.Span]:
    """The span of one command's handling, in the current trace (or a new one)."""
    with tracer.start_as_current_span(f"command {command_type}", attributes={
            "yishi.command.type": command_type, "yishi.correlation_id": correlation_id,
            "yishi.district": district}) as span:
        yield span


_CE_ATTRIBUTES = {"ce_id": "cloudevents.event_id", "ce_source": "cloudevents.event_source",
                  "ce_type": "cloudevents.event_type", "ce_subject": "cloudevents.event_subject",
                  "ce_correlationid": "yishi.correlation_id"}
_CE_HEADERS = frozenset({"ce_traceparent", "ce_tracestate", "traceparent", "tracestate", *_CE_ATTRIBUTES})


def _text(value: bytes | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.decode("utf-8", "replace")


def _ratio() -> float:
    """``OTEL_TRACES_SAMPLER_ARG``: the share of new traces recorded (1 by default)."""
    try:
        return min(1.0, max(0.0, float(os.environ.get("OTEL_TRACES_SAMPLER_ARG", "1"))))
    except ValueError:
        return 1.0


class _EntryPoints:
    """Root sampler: a trace starts only at an entry point of work, an HTTP request
    (server span) or a consumed message (its processing span), and for ``ratio`` of them;
    parentless statements and sends (the relay's polling, timers) are dropped."""

    def __init__(self, ratio: float) -> None:
        from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

        self.ratio = TraceIdRatioBased(ratio)

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None,
                      trace_state=None):
        from opentelemetry.sdk.trace.sampling import Decision, SamplingResult

        # A consumed message's entry is its processing span (consuming), not aiokafka's
        # receive span, which has no parent (it reads the plain traceparent header only).
        if kind is SpanKind.SERVER or (kind is SpanKind.CONSUMER and attributes
                                       and attributes.get("messaging.operation.type") == "process"):
            return self.ratio.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)
        return SamplingResult(Decision.DROP)

    def get_description(self) -> str:
        return f"EntryPoints({self.ratio.get_description()})"

