"""How many database round trips a ballot costs, counted from its trace.

Every asyncpg statement of a request is a client span in the request's trace (the
asyncpg instrumentation, :mod:`yishi.tracing`), the transaction's ``BEGIN`` and
``COMMIT`` too; with asyncpg's statement cache warm (one ballot cast first), each is one
round trip. A count, never a time.
"""

from __future__ import annotations

import pytest
import pytest_asyncio
from datetime import UTC, datetime, timedelta
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from services.voting.main import spec as voting_spec
from tests.support.service import running
from yishi import tracing
from yishi.clock import ManualClock

pytestmark = pytest.mark.asyncio(loop_scope="session")

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
WORKER = {"id": "worker-1", "role": "community_worker"}

BALLOT_ROUND_TRIPS = [
    "BEGIN, with the vote's lock taken shared (the handler's declared lock), in one simple query: a close waits "
    "for the ballot, and every later statement sees every close committed before",
    "the stored reply of the command's identity, if any, and the vote's and the voter's ballot streams (the "
    "handler's declared reads), in one read: a resend is answered from it before the handler runs",
    "the voter registered (participants) and the ballot recorded (open_ballots), in one statement: its outcome "
    "(the voter already registered) decides before the ballot is saved",
    "the ballot's event and the command's reply appended, in one statement",
    "COMMIT",
]
"""What one new ballot on an open vote does in the database, one round trip each."""


@pytest.fixture(scope="module")
def exporter():
    spans = InMemorySpanExporter()
    tracing.configure("tests", SimpleSpanProcessor(spans))
    yield spans
    spans.shutdown()


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def voting(servers, exporter):
    async with running(voting_spec(), servers, clock=ManualClock(T0)) as r:
        opened = await r.client.post(f"/{r.district}/commands/OpenVote", json={
            "district": r.district, "actor": WORKER, "vote_id": "vote-1", "council_id": "c-1",
            "matter": {"kind": "question", "id": "q-1"},
            "terms": {"question": "?", "method": "online", "majority": "simple", "quorum_percent": 50,
                      "secrecy": "open", "closes_at": (T0 + timedelta(days=1)).isoformat(),
                      "electorate": {"kind": "residents_meeting", "scope_id": "community-1", "size": 100}}})
        assert opened.status_code == 200, opened.text
        yield r


async def ballot(r, voter: str, key: str) -> None:
    response = await r.client.post(f"/{r.district}/commands/CastBallot", headers={"Idempotency-Key": key}, json={
        "district": r.district, "actor": {"id": voter, "role": "resident"}, "vote_id": "vote-1",
        "ballot_id": f"b-{voter}", "choice": "in_favour"})
    assert response.status_code == 200, response.text


def statements(exporter) -> list[str]:
    """The database statements of the one command request traced since the exporter was cleared."""
    spans = exporter.get_finished_spans()
    (server,) = [s for s in spans if s.kind is SpanKind.SERVER
                 and s.attributes.get("http.route") == "/{district}/commands/CastBallot"]
    return [s.attributes.get("db.statement", s.name) for s in sorted(spans, key=lambda s: s.start_time)
            if s.kind is SpanKind.CLIENT and s.context.trace_id == server.context.trace_id
            and s.attributes.get("db.system") == "postgresql"]


async def test_a_new_ballot_costs_five_round_trips(voting, exporter):
    await ballot(voting, "resident-1", "k-1")  # asyncpg's statement cache warm
    exporter.clear()
    await ballot(voting, "resident-2", "k-2")
    done = statements(exporter)
    assert len(done) == len(BALLOT_ROUND_TRIPS), "\n".join(done)
    assert done[0].startswith("BEGIN") and done[-1].startswith("COMMIT"), done


async def test_a_resent_ballot_costs_three_round_trips(voting, exporter):
    await ballot(voting, "resident-3", "k-3")
    exporter.clear()
    await ballot(voting, "resident-3", "k-3")  # the same command again: its stored reply
    done = statements(exporter)
    assert len(done) == 3, "\n".join(done)
