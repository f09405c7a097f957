"""Replay of one million generated events into the cross-service audit view.

In one run on one PostgreSQL (embedded unless ``YISHI_DATABASE_URL``), in a fresh schema:

* **generate** — a real deliberation (a council; proposals raised, published, moved,
  seconded twice and objected to) is run through the proposals domain once, its stored
  events translated by the service's own translator into public events, and that
  template is repeated with fresh proposal ids and event ids up to ``--events`` rows,
  loaded with ``COPY`` (not the store's append: this measures replay, not writing).
* **replay** — what the Kafka and bundle sources do per event: stream the rows with a
  server-side cursor in big batches, parse each JSON body and apply it to
  :class:`yishi.audit.views.AuditView`; ``--rounds`` times, the median reported.
* **translate** — for scale, the stores' extra step: the same replay from *stored domain
  events* through the service translator (pydantic models), on ``--sample`` events.

Target (DESIGN.md): ≥ 200,000 events/s into the view. Last output line: JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import datetime, timedelta, timezone

import asyncpg

from bench._common import drop_schema, emit, fresh_schema, median, say, servers
from yishi.audit.replay import Replayer, Stats, audit_view_from_events
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


def translate_rate(stored: list[RecordedEvent], sample: int) -> float:
    """Events/s from stored domain events through the translator into the view."""
    translate = translator("proposals")
    events = (stored * (sample // len(stored) + 1))[:sample]
    _, stats = audit_view_from_events(to_public("proposals", translate, e) for e in events)
    return stats.events_per_s


async def main(args) -> None:
    stored = template()
    public = [p for p in (to_public("proposals", translator("proposals"), e) for e in stored) if p]
    with servers(kafka=False) as srv:
        schema = fresh_schema("bench_replay")
        pool = await create_pool(srv.database_url, schema, max_size=2)
        try:
            await pool.execute(DDL)
            say(f"generating {args.events:,} events with COPY")
            started = time.perf_counter()
            async with pool.acquire() as conn:
                await conn.copy_records_to_table("public_events", records=rows(args.events, public), columns=COLUMNS)
            await pool.execute("ANALYZE public_events")
            say(f"generated in {time.perf_counter() - started:.1f} s")
            rates = []
            for r in range(args.rounds):
                view = None  # the previous round's view goes before the next is built
                view, stats = await replay(pool, args.batch)
                assert stats.events == args.events == len(view.entries), (stats, len(view.entries))
                rates.append(stats.events_per_s)
                say(f"round {r + 1}: {stats.events:,} events in {stats.seconds:.2f} s = "
                    f"{stats.events_per_s:,.0f} events/s")
            by_what = {}
            for e in view.entries:
                by_what[e.what] = by_what.get(e.what, 0) + 1
            translated = translate_rate(stored, args.sample)
            say(f"stored domain events through the translator: {translated:,.0f} events/s")
        finally:
            await pool.close()
            await drop_schema(srv.database_url, schema)
    rate = median(rates)
    result = {"benchmark": "replay", "events": args.events, "rounds": args.rounds, "batch": args.batch,
              "events_per_s": round(rate), "target_events_per_s": TARGET, "meets_target": rate >= TARGET,
              "rounds_events_per_s": [round(x) for x in rates],
              "translated_events_per_s": round(translated), "translated_sample": args.sample,
              "entries_by_what": by_what}
    emit("Replay into the audit view", ["path", "events/s"],
         [["public events → audit view (median)", f"{rate:,.0f}"],
          ["stored domain events → translator → audit view", f"{translated:,.0f}"]],
         [f"target ≥ {TARGET:,} events/s into the view: {'met' if rate >= TARGET else 'NOT met'}",
          "the stores' translation step (pydantic contract models) is measured on a sample"],
         result)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run replay", description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=1_000_000, help="events generated and replayed")
    p.add_argument("--rounds", type=int, default=3, help="replays of the whole table; the median is reported")
    p.add_argument("--batch", type=int, default=20_000, help="rows fetched per cursor round trip")
    p.add_argument("--sample", type=int, default=20_000, help="events for the translator measurement")
    return p.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
