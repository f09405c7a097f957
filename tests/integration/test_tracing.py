"""One trace from an HTTP command on one service to the consumer in another, across Kafka.

Proposals and voting run in-process on one district. ``RequestVote`` over HTTP records
``VoteRequested`` with the command's trace context in its metadata; the relay publishes
it as the CloudEvents distributed-tracing extension (``ce_traceparent``), and voting's
consumer continues that trace: its span is a child of the command's span. Spans are
read from an in-process exporter; the log lines of a command carry its correlation id
and trace id; an OTLP collector gets spans only when its endpoint is configured.
"""

from __future__ import annotations

import asyncio
import http.server
import io
import json
import logging
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from services.proposals.main import spec as proposals_spec
from services.voting.main import spec as voting_spec
from tests.support.kafka import read_topic
from tests.support.service import eventually, new_district, running
from yishi import tracing
from yishi.clock import ManualClock

pytestmark = pytest.mark.asyncio(loop_scope="session")

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
WORKER = {"id": "worker-1", "role": "community_worker"}


@pytest.fixture(scope="module")
def exporter():
    spans = InMemorySpanExporter()
    tracing.configure("tests", SimpleSpanProcessor(spans))
    yield spans
    spans.shutdown()  # later tests' spans are dropped, not kept in memory


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def services(servers, exporter):
    district, clock = new_district(), ManualClock(T0)
    logs = dict(log_json=True, log_level="INFO")
    async with running(voting_spec(), servers, district=district, clock=clock, **logs) as voting, \
            running(proposals_spec(), servers, district=district, clock=clock, **logs) as proposals:
        yield proposals, voting


def at(days: float) -> str:
    return (T0 + timedelta(days=days)).isoformat()


async def command(r, type_: str, body: dict, status: int = 200) -> dict:
    response = await r.client.post(f"/{r.district}/commands/{type_}", json={"district": r.district, **body})
    assert response.status_code == status, response.text
    return response.json()


async def nomination_in_notice(r, nomination_id: str) -> None:
    """A council and a publicised nomination to its resident representative's seat."""
    seats = [{"seat_id": f"seat-{n}", "kind": kind} for n, kind in
             [(1, "expert"), (2, "local_unit"), (3, "social_organisation"), (4, "resident_representative")]]
    await command(r, "FormCouncil", {"actor": WORKER, "council_id": "c-1", "name": "西康社区议事会",
                                     "level": "community", "area_id": "xikang", "seats": seats,
                                     "rules": {"seconds_required": 1, "notice_period_days": 7}})
    await command(r, "NominateRepresentative", {"actor": WORKER, "nomination_id": nomination_id,
                                                "council_id": "c-1", "seat_id": "seat-4", "nominee_id": "resident-7",
                                                "route": "self_nomination"})
    await command(r, "PubliciseNomination", {"actor": WORKER, "nomination_id": nomination_id,
                                             "notice_ends_at": at(7)})


def request_vote(vote_id: str, nomination_id: str) -> dict:
    return {"actor": WORKER, "vote_id": vote_id, "council_id": "c-1",
            "matter": {"kind": "nomination", "id": nomination_id},
            "terms": {"question": "推选居民代表?", "electorate": {"kind": "council_members", "scope_id": "c-1",
                                                              "size": 2, "roll": ["resident-1", "resident-2"]},
                      "method": "online", "majority": "simple", "quorum_percent": 50, "secrecy": "open",
                      "closes_at": at(10)}}


def ancestors(span, spans) -> list:
    by_id = {s.context.span_id: s for s in spans}
    found = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        found.append(span)
    return found


def one(spans, **where):
    found = [s for s in spans if all(s.attributes.get(k) == v for k, v in where.items())]
    assert len(found) == 1, (where, [s.name for s in spans])
    return found[0]


async def test_one_trace_runs_from_the_http_command_to_the_consumer_in_another_service(services, exporter, servers):
    proposals, voting = services
    await nomination_in_notice(proposals, "nom-1")
    proposals.clock.advance(timedelta(days=8))
    exporter.clear()
    accepted = await command(proposals, "RequestVote", request_vote("vote-1", "nom-1"))

    async def opened():
        return (await voting.client.get(f"/{voting.district}/votes/vote-1")).status_code == 200
    await eventually(opened)
    spans = exporter.get_finished_spans()

    server = one(spans, **{"http.route": "/{district}/commands/RequestVote"})
    assert server.kind is SpanKind.SERVER
    requested = one(spans, **{"yishi.command.type": "RequestVote"})
    assert server in ancestors(requested, spans)  # through FastAPI's endpoint span
    assert requested.attributes["yishi.correlation_id"] == accepted["correlation_id"]
    # The command's statements are traced (asyncpg instrumentation), inside the command.
    assert any(s.kind is SpanKind.CLIENT and s.parent and s.parent.span_id == requested.context.span_id
               for s in spans)

    # Across Kafka: voting's consumer span is a child of the command's span, same trace.
    consumed = one(spans, **{"yishi.consumer": "voting.vote-requests", "cloudevents.event_type": "VoteRequested"})
    assert consumed.kind is SpanKind.CONSUMER
    assert consumed.context.trace_id == server.context.trace_id
    assert consumed.parent.span_id == requested.context.span_id
    assert consumed.parent.is_remote
    assert consumed.attributes["messaging.destination.name"] == f"{proposals.district}.proposals.events"
    # … and the OpenVote it dispatches continues the same trace, in voting.
    opened_by = one(spans, **{"yishi.command.type": "OpenVote"})
    assert opened_by.parent.span_id == consumed.context.span_id
    assert opened_by.attributes["yishi.correlation_id"] == accepted["correlation_id"]

    # On the wire: the published event carries the command's trace context.
    published = await read_topic(servers.kafka_bootstrap, f"{proposals.district}.proposals.events", 4, timeout=10)
    requested_event = next(e for e in published if e.type == "VoteRequested")
    assert requested_event.extra["traceparent"].startswith(
        f"00-{requested.context.trace_id:032x}-{requested.context.span_id:016x}-")


async def test_a_commands_log_lines_carry_its_correlation_and_trace_ids(services, exporter):
    proposals, _ = services
    lines = io.StringIO()
    logging.getLogger().handlers[0].setStream(lines)
    try:
        rejected = await command(proposals, "RequestVote", request_vote("vote-2", "nom-unknown"), status=404)
    finally:
        logging.getLogger().handlers[0].setStream(sys.stderr)
    logged = [json.loads(line) for line in lines.getvalue().splitlines() if line.startswith("{")]
    line = next(entry for entry in logged if entry["event"] == "command rejected")
    assert line["correlation_id"] == rejected["correlation_id"]
    span = one(exporter.get_finished_spans(), **{"yishi.correlation_id": line["correlation_id"]})
    assert line["trace_id"] == f"{span.context.trace_id:032x}"
    assert line["span_id"] == f"{span.context.span_id:016x}"


OTLP_CHILD = """
import os, sys
from opentelemetry import trace
from yishi import tracing
recording = tracing.configure("proposals")
with tracing.tracer.start_as_current_span("probe", kind=trace.SpanKind.SERVER):
    with tracing.command_span("RequestVote", "corr-1", "gulou"):
        print(tracing.trace_fields().get("traceparent", "-"))
if recording:
    trace.get_tracer_provider().force_flush()
print(recording, type(trace.get_tracer_provider()).__name__)
"""


async def test_spans_go_to_an_otlp_collector_only_when_an_endpoint_is_configured():
    """In a process of its own each time (the tracer provider is set once per process)."""
    posts: list[tuple[str, bytes]] = []

    class Collector(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            posts.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    try:
        async def child(**otel: str) -> list[str]:
            done = await asyncio.to_thread(subprocess.run, [sys.executable, "-c", OTLP_CHILD], env={**env, **otel},
                                           capture_output=True, text=True, timeout=60, check=True)
            return done.stdout.split()

        assert await child() == ["-", "False", "ProxyTracerProvider"]  # off: nothing recorded, no exporter
        assert not posts
        traceparent, recording, provider = await child(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{server.server_port}")
        assert traceparent.startswith("00-") and (recording, provider) == ("True", "TracerProvider")
        assert [path for path, _ in posts] == ["/v1/traces"]
        assert b"yishi-proposals" in posts[0][1] and b"command RequestVote" in posts[0][1]
        posts.clear()
        assert (await child(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{server.server_port}",
                            OTEL_SDK_DISABLED="true"))[1:] == ["False", "ProxyTracerProvider"]
        assert not posts
    finally:
        server.shutdown()
