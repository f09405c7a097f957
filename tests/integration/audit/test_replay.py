"""The auditor toolkit against a running proposals service: replay as of a captured
moment answers what the live service answered then; the stores and Kafka build the same
audit view; reports name who did what; an export bundle verifies, replays the same
view, and a tampered bundle is found.

One service instance serves the module (a start takes seconds).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import pytest_asyncio
from typer.testing import CliRunner

from services.proposals.main import spec
from tests.support.service import eventually, running
from yishi.audit import reports
from yishi.audit.checkpoints import read_checkpoints
from yishi.audit.export import bundle_events, export_bundle, verify_bundle
from yishi.audit.replay import (
    AsOf,
    audit_view_from_events,
    audit_view_from_kafka,
    audit_view_from_stores,
    service_state_from_store,
)
from yishi.audit.sources import to_public, translator
from yishi.audit.verify import check_kafka, verify_store
from yishi.cli import app
from yishi.clock import ManualClock

pytestmark = pytest.mark.asyncio(loop_scope="session")

T0 = datetime(2026, 4, 1, 1, 0, tzinfo=timezone.utc)
WORKER = {"id": "worker-07", "role": "community_worker"}
RESIDENT = {"id": "resident-88", "role": "resident"}


def member(n: int) -> dict:
    return {"id": f"m{n}", "role": "council_member", "seat_id": f"seat-{n}"}


async def command(r, type_: str, body: dict) -> None:
    response = await r.client.post(f"/{r.district}/commands/{type_}", json={"district": r.district, **body})
    assert response.status_code == 200, response.text


async def get(r, path: str) -> dict:
    response = await r.client.get(f"/{r.district}/{path}")
    assert response.status_code == 200, response.text
    return response.json()


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def history(servers):
    """A deliberation, with the live answers and the log head captured half-way."""
    async with running(spec(), servers, clock=ManualClock(T0), checkpoint_interval_s=0.1) as r:
        seats = [{"seat_id": f"seat-{n}", "kind": kind} for n, kind in ((1, "expert"), (2, "local_unit"), (3, "social_organisation"))]
        await command(r, "FormCouncil", {"actor": WORKER, "council_id": "c1", "name": "西康社区议事会",
                                         "level": "community", "area_id": "xikang", "seats": seats,
                                         "rules": {"seconds_required": 2, "notice_period_days": 7}})
        for n in (1, 2, 3):
            await command(r, "SeatMember", {"actor": WORKER, "council_id": "c1", "seat_id": f"seat-{n}",
                                            "member_id": f"m{n}"})
        await command(r, "RaiseProposal", {"actor": RESIDENT, "proposal_id": "p1", "council_id": "c1",
                                           "title": "增设充电棚", "summary": "建设集中充电棚。"})
        await command(r, "PublishProposal", {"actor": WORKER, "proposal_id": "p1", "form": "council",
                                             "notice_ends_at": (T0 + timedelta(days=7)).isoformat()})
        r.captured = {"proposal": await get(r, "proposals/p1"), "council": await get(r, "councils/c1"),
                      "position": await r.ctx.store.head(), "time": r.clock.now()}

        r.clock.advance(timedelta(hours=1))
        await command(r, "MakeStatement", {"actor": RESIDENT, "proposal_id": "p1", "statement_id": "st1",
                                           "step": "motion", "speaker_role": "proposer", "text": "我提议。"})
        for n in (1, 2):
            await command(r, "SecondMotion", {"actor": member(n), "proposal_id": "p1"})
        await command(r, "LodgeObjection", {"actor": member(3), "proposal_id": "p1", "objection_id": "o1",
                                            "grounds": "占用绿地。"})
        r.head = await r.ctx.store.head()
        yield r


async def test_replay_as_of_a_captured_moment_answers_as_the_live_service_did(history):
    r = history
    now = await get(r, "proposals/p1")
    assert now != r.captured["proposal"] and len(now["seconders"]) == 2  # the service moved on

    for as_of in (AsOf(position=r.captured["position"]), AsOf(time=r.captured["time"])):
        then = await service_state_from_store(r.ctx.pool, "proposals", district=r.district, as_of=as_of)
        assert then["proposal"]["p1"] == r.captured["proposal"]
        assert then["council"]["c1"] == r.captured["council"]
    latest = await service_state_from_store(r.ctx.pool, "proposals", district=r.district)
    assert latest["proposal"]["p1"] == now


async def test_stores_and_kafka_build_the_same_audit_view(history, servers):
    r = history
    from_store, stats = await audit_view_from_stores({"proposals": r.ctx.pool}, district=r.district)
    assert stats.events >= stats.applied == len(from_store.entries) > 0

    async def from_kafka():
        view, _ = await audit_view_from_kafka(servers.kafka_bootstrap, ["proposals"], districts=[r.district])
        return view if len(view.entries) == len(from_store.entries) else None

    kafka_view = await eventually(from_kafka, timeout=30, interval=0.5)
    assert kafka_view.snapshot() == from_store.snapshot()

    captured = AsOf(time=r.captured["time"])
    then_store, _ = await audit_view_from_stores({"proposals": r.ctx.pool}, district=r.district, as_of=captured)
    then_kafka, _ = await audit_view_from_kafka(servers.kafka_bootstrap, ["proposals"], districts=[r.district],
                                                as_of=captured)
    assert then_store.snapshot() == then_kafka.snapshot()
    assert [e.what for e in then_store.entries if e.proposal_id == "p1"] == ["raised", "published"]

    verdict = await check_kafka(r.ctx.pool, "proposals", servers.kafka_bootstrap, [r.district])
    assert verdict.ok, verdict.findings
    assert verdict.checked["kafka messages"] >= verdict.checked["published events"] == len(from_store.entries)


async def test_a_proposal_report_names_who_did_what_and_when(history):
    r = history
    view, _ = await audit_view_from_stores({"proposals": r.ctx.pool}, district=r.district)
    entries = reports.select(view, proposal="p1")
    assert [(e.what, e.actor) for e in entries] == [
        ("raised", "resident-88"), ("published", "worker-07"), ("spoke", "resident-88"),
        ("seconded", "m1"), ("seconded", "m2"), ("objected", "m3")]
    assert entries[0].at.startswith("2026-04-01T01:00") and entries[2].at.startswith("2026-04-01T02:00")
    later = reports.select(view, since=T0 + timedelta(minutes=30))
    assert [e.what for e in later] == ["spoke", "seconded", "seconded", "objected"]
    assert {e.what for e in reports.select(view, council="c1")} >= {"formed council", "seated", "raised", "objected"}
    csv_lines = reports.to_csv(entries).splitlines()
    assert csv_lines[0].startswith("at,district,service,what,actor") and len(csv_lines) == 7
    assert [e["what"] for e in json.loads(reports.to_json(entries))][-1] == "objected"


async def test_export_verifies_replays_offline_and_tampering_is_found(history, tmp_path):
    r = history
    await eventually(lambda: _sealed_and_signed(r), timeout=15, interval=0.2)
    key = (await read_checkpoints(r.ctx.pool, "proposals"))[-1].public_key
    assert (await verify_store(r.ctx.pool, "proposals", key)).ok

    bundle = tmp_path / "bundle"
    manifest = await export_bundle({"proposals": r.ctx.pool}, bundle)
    assert manifest["services"]["proposals"]["checkpoints"] >= 1
    assert any(name.startswith("schemas/") for name in manifest["files"])
    verdict = verify_bundle(bundle, {"proposals": key})
    assert verdict.ok, verdict.findings

    translate = translator("proposals")
    offline, _ = audit_view_from_events(to_public("proposals", translate, e) for e in bundle_events(bundle, "proposals"))
    live, _ = await audit_view_from_stores({"proposals": r.ctx.pool})
    assert offline.snapshot() == live.snapshot()
    trusted = ["--public-key", f"proposals={key.hex()}"]
    assert cli(["verify-bundle", str(bundle), *trusted]).exit_code == 0
    replayed = cli(["replay", "--bundle", str(bundle), "--service", "proposals"])
    assert replayed.exit_code == 0 and json.loads(replayed.stdout) == json.loads(json.dumps(live.snapshot()))
    reported = cli(["report", "--bundle", str(bundle), "--proposal", "p1", "--format", "csv"])
    assert reported.exit_code == 0
    assert [line.split(",")[3] for line in reported.stdout.splitlines()[1:]] == [
        "raised", "published", "spoke", "seconded", "seconded", "objected"]

    # Alter one event in the bundle: the manifest's hash no longer matches ...
    events_file = bundle / "events" / "proposals.jsonl"
    lines = events_file.read_text().splitlines()
    victim = json.loads(lines[3])
    victim["metadata"]["actor"] = "someone-else"
    lines[3] = json.dumps(victim)
    events_file.write_text("\n".join(lines) + "\n")
    verdict = verify_bundle(bundle, {"proposals": key})
    assert any("events/proposals.jsonl does not match" in f.reason for f in verdict.findings)
    # ... and the recomputed chain names the altered event's position (so fixing up the
    # manifest would not hide it).
    assert verdict.first.position == victim["position"] and "altered" in verdict.first.reason
    checked = cli(["verify-bundle", str(bundle), *trusted])
    assert checked.exit_code == 1 and f"first broken position: {victim['position']}" in checked.stderr


def cli(args: list[str]):
    return CliRunner().invoke(app, ["audit", *args])


async def _sealed_and_signed(r) -> bool:
    sealed = await r.ctx.pool.fetchval("SELECT max(seq) FROM log_chain")
    signed = await r.ctx.pool.fetchval("SELECT max(seq) FROM checkpoints")
    return sealed is not None and sealed == signed == await r.ctx.pool.fetchval("SELECT count(*) FROM events")
