"""Replay of generated events into the cross-service audit view, from public events and
from the stores through the services' translators.

In one run on one PostgreSQL (embedded unless ``YISHI_DATABASE_URL``), in fresh schemas:

* **generate** — a real deliberation (a council; proposals raised, published, moved,
  seconded twice and objected to) is run through the proposals domain once; its stored
  events (what the ``eventsourcing`` mapper wrote) and their public form (what the
  service's own translator makes of them) are the templates, repeated with fresh
  proposal ids, stream ids and event ids: ``--events`` public rows into a table, and
  ``--stored-events`` domain events into a migrated store's ``events`` table, each
  loaded with ``COPY`` (this measures replay, not writing).
* **public events** — what the Kafka and bundle sources do per event: stream the rows
  with a server-side cursor in big batches, parse each JSON body and apply it to
  :class:`yishi.audit.views.AuditView`; ``--rounds`` times, the median reported.
* **stores** — the auditor's real path from the stores,
  :func:`yishi.audit.replay.audit_view_from_stores`: the log read in order from one
  snapshot, each stored event decoded by the mapper and translated by the proposals
  translator (the relay's own) into its public event, then into the view; ``--rounds``
  times, the median reported as ``translated_events_per_s``.

Target (DESIGN.md, issue 18): ≥ 200,000 events/s into the view on each path. Last output
line: JSON.

Profile the stores path with ``python -m cProfile -s tottime -m bench.replay --rounds 1``
(in ``.venv``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from datetime import datetime, timedelta, timezone

import asyncpg

from bench._common import drop_schema, emit, fresh_schema, median, say, servers
from yishi import migrations
from yishi.audit.replay import Replayer, Stats, audit_view_from_stores
from yishi.audit.sources import PublicEvent, to_public, translator
from yishi.audit.views import AuditView
from yishi.db import create_pool
from yishi.repository import Repository
from yishi.store import RecordedEvent

TARGET = 200_000
DISTRICT = "gulou"
T0 = datetime(2026, 5, 1, 1, 0, tzinfo=timezone.utc)
TEMPLATE_ID = "p-template-000000"

DDL = """
CREATE TABLE public_events (
    service         text NOT NULL,
    type            text NOT NULL,
    schema_version  integer NOT NULL,
    data            bytea NOT NULL,
    event_id        text NOT NULL,
    subject         text NOT NULL,
    district        text NOT NULL,
    time            timestamptz NOT NULL,
    position        bigint PRIMARY KEY
)
"""
# The columns of yishi.audit.sources.PublicEvent, in its order, in log order.
COLUMNS = list(PublicEvent._fields)
REPLAY = f"SELECT {', '.join(COLUMNS)} FROM public_events ORDER BY position"


def template() -> list[RecordedEvent]:
    """The stored domain events of one deliberation, as the proposals service writes them."""
    from services.proposals.domain import Council, Proposal

    mapper = Repository(None).mapper
    council = Council.form(district=DISTRICT, council_id="c1", name="西康社区议事会", level="community",
                           area_id="xikang", parent=None,
                           seats=[("seat-1", "expert"), ("seat-2", "local_unit"), ("seat-3", "social_organisation")],
                           rules={"seconds_required": 2, "notice_period_days": 7, "forms": ["council"]}, now=T0)
    for n in (1, 2, 3):
        council.seat(seat_id=f"seat-{n}", member_id=f"m{n}", term_ends_at=None, now=T0)
    proposal = Proposal.raise_proposal(district=DISTRICT, proposal_id=TEMPLATE_ID, council=council,
                                       proposer_id="resident-1", proposer_role="resident", proposer_seat_id=None,
                                       item=None, title="增设电动自行车充电棚", summary="建设集中充电棚,约40个充电位。",
                                       attachments=[], now=T0)
    proposal.publish(council=council, form="council", notice_ends_at=T0 + timedelta(days=7), session_at=None, now=T0)
    proposal.make_statement(statement_id="st-1", step="motion", speaker_role="proposer", speaker_id="resident-1",
                            text="我提议建设充电棚。", now=T0)
    for n in (1, 2):
        proposal.second(council=council, member_id=f"m{n}", now=T0)
    proposal.lodge_objection(objection_id="o-1", objector_id="m3", grounds="占用绿地。", now=T0)
    out = []
    for aggregate, actor in ((council, "worker-1"), (proposal, "resident-1")):
        for event in aggregate.collect_events():
            stored = mapper.to_stored_event(event)
            meta = {"actor": actor, "actor_role": "resident", "district": DISTRICT, "correlation_id": "c",
                    "occurred_at": T0.isoformat(), "recorded_at": T0.isoformat()}
            out.append(RecordedEvent(len(out) + 1, 1, str(stored.originator_id), stored.originator_version,
                                     uuid.uuid4(), DISTRICT, stored.topic, stored.state, meta, b""))
    return out


def rows(count: int, public: list[PublicEvent]):
    """``count`` COPY rows: the template's proposal events repeated with fresh proposal ids."""
    proposal_events = [p for p in public if TEMPLATE_ID.encode() in p.data]
    position = 0
    copy = 0
    while True:
        new_id = f"p-{copy:012d}".encode()
        for p in proposal_events:
            position += 1
            if position > count:
                return
            yield p._replace(data=p.data.replace(TEMPLATE_ID.encode(), new_id), event_id=str(uuid.uuid4()),
                             subject=new_id.decode(), position=position)
        copy += 1


async def replay(pool: asyncpg.Pool, batch: int) -> tuple[AuditView, Stats]:
    """One replay of the whole table into a fresh view, through the replay loop every
    source uses (:class:`yishi.audit.replay.Replayer`)."""
    with Replayer() as replayer:
        async with pool.acquire() as conn, conn.transaction(readonly=True):
            cursor = await conn.cursor(REPLAY)
            while records := await cursor.fetch(batch):
                replayer.feed(records)
        return replayer.done()


STORE_COLUMNS = ["stream_id", "version", "event_id", "district", "topic", "state", "metadata", "hash"]


def stored_rows(count: int, stored: list[RecordedEvent]):
    """``count`` COPY rows for a store's ``events`` table: the template's proposal events
    repeated on fresh proposal streams (a new stream id, proposal id and event ids)."""
    proposal_events = [e for e in stored if TEMPLATE_ID.encode() in e.state]
    template_stream = proposal_events[0].stream_id
    written = 0
    copy = 0
    while True:
        new_id = f"p-{copy:012d}".encode()
        stream = str(uuid.uuid4())
        for e in proposal_events:
            written += 1
            if written > count:
                return
            state = e.state.replace(TEMPLATE_ID.encode(), new_id).replace(template_stream.encode(), stream.encode())
            yield (stream, e.version, uuid.uuid4(), e.district, e.topic, state, json.dumps(e.metadata), b"")
        copy += 1


async def replay_stores(pool: asyncpg.Pool) -> tuple[AuditView, Stats]:
    """One replay of the store into a fresh view, the way ``yishi audit`` replays stores."""
    return await audit_view_from_stores({"proposals": pool})


async def main(args) -> None:
    stored = template()
    public = [p for p in (to_public("proposals", translator("proposals"), e) for e in stored) if p]
    with servers(kafka=False) as srv:
        schema, store_schema = fresh_schema("bench_replay"), fresh_schema("bench_replay_store")
        await migrations.upgrade(srv.database_url, store_schema, migrations.locations())
        pool = await create_pool(srv.database_url, schema, max_size=2)
        store_pool = await create_pool(srv.database_url, store_schema, max_size=2)
        try:
            await pool.execute(DDL)
            say(f"generating {args.events:,} public events and {args.stored_events:,} stored events with COPY")
            started = time.perf_counter()
            async with pool.acquire() as conn:
                await conn.copy_records_to_table("public_events", records=rows(args.events, public), columns=COLUMNS)
            await pool.execute("ANALYZE public_events")
            async with store_pool.acquire() as conn:
                await conn.copy_records_to_table("events", records=stored_rows(args.stored_events, stored),
                                                 columns=STORE_COLUMNS)
            await store_pool.execute("ANALYZE events")
            say(f"generated in {time.perf_counter() - started:.1f} s")
            rates, translated = [], []
            for r in range(args.rounds):
                view = None  # the previous round's view goes before the next is built
                view, stats = await replay(pool, args.batch)
                assert stats.events == args.events == len(view.entries), (stats, len(view.entries))
                rates.append(stats.events_per_s)
                say(f"round {r + 1}, public events: {stats.events:,} events in {stats.seconds:.2f} s = "
                    f"{stats.events_per_s:,.0f} events/s")
                view = None
                view, stats = await replay_stores(store_pool)
                assert stats.events == args.stored_events == len(view.entries), (stats, len(view.entries))
                translated.append(stats.events_per_s)
                say(f"round {r + 1}, stores through the translator: {stats.events:,} events in "
                    f"{stats.seconds:.2f} s = {stats.events_per_s:,.0f} events/s")
            by_what = {}
            for e in view.entries:
                by_what[e.what] = by_what.get(e.what, 0) + 1
        finally:
            await pool.close()
            await store_pool.close()
            await drop_schema(srv.database_url, schema)
            await drop_schema(srv.database_url, store_schema)
    rate, translated_rate = median(rates), median(translated)
    result = {"benchmark": "replay", "events": args.events, "rounds": args.rounds, "batch": args.batch,
              "events_per_s": round(rate), "target_events_per_s": TARGET, "meets_target": rate >= TARGET,
              "rounds_events_per_s": [round(x) for x in rates],
              "stored_events": args.stored_events,
              "translated_events_per_s": round(translated_rate),
              "rounds_translated_events_per_s": [round(x) for x in translated],
              "translated_meets_target": translated_rate >= TARGET,
              "translated_vs_public": round(translated_rate / rate, 3) if rate else None,
              "entries_by_what": by_what}
    emit("Replay into the audit view", ["path", "events/s (median)", "per round"],
         [["public events → audit view", f"{rate:,.0f}", ", ".join(f"{x:,.0f}" for x in rates)],
          ["stores → mapper → translator → audit view", f"{translated_rate:,.0f}",
           ", ".join(f"{x:,.0f}" for x in translated)]],
         [f"target ≥ {TARGET:,} events/s into the view: public events {'met' if rate >= TARGET else 'NOT met'}, "
          f"stores {'met' if translated_rate >= TARGET else 'NOT met'}",
          f"stores path / public path: {translated_rate / rate if rate else float('nan'):.2f}×"],
         result)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run replay", description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=1_000_000, help="events generated and replayed")
    p.add_argument("--rounds", type=int, default=3, help="replays of the whole table; the median is reported")
    p.add_argument("--batch", type=int, default=20_000, help="rows fetched per cursor round trip")
    p.add_argument("--stored-events", type=int, default=300_000,
                   help="domain events generated in a store and replayed through the translator")
    return p.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
