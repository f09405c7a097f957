"""The audit view and its reports, without I/O: every public event type is recorded,
and the contracts' worked example (one proposal across three services) reports who
raised, seconded, objected, spoke, voted, decided, delivered, inspected and rated it."""

from __future__ import annotations

import csv
import io
import json

import pytest

from contracts.examples import sample, worked_example
from contracts.registry import REGISTRY, Kind, encode
from yishi.audit import reports
from yishi.audit.replay import AsOf, audit_view_from_events
from yishi.audit.sources import PublicEvent
from yishi.audit.views import VERBS, AuditView

EVENTS = [s for s in REGISTRY.values() if s.kind is Kind.EVENT]


def public(envelope, service: str) -> PublicEvent:
    return PublicEvent(service, envelope.type, envelope.schema_version, envelope.data, envelope.id,
                       envelope.subject, envelope.district, envelope.time)


@pytest.mark.parametrize("spec", EVENTS, ids=[s.name for s in EVENTS])
def test_every_public_event_type_is_recorded_with_its_actor(spec):
    model = sample(spec.model)
    view = AuditView()
    view.apply(spec.service, spec.name, json.loads(encode(model).data), "e1")
    (entry,) = view.entries
    assert (entry.actor, entry.event, entry.what) == (model.actor.id, spec.name, VERBS.get(spec.name, (spec.name,))[0])


def test_old_schema_versions_are_upcast_before_the_view_reads_them():
    old = REGISTRY["FundsAllocated"].versions[1]
    body = sample(old).model_dump_json().encode()
    event = PublicEvent("oversight", "FundsAllocated", 1, body, "e1", "s", "gulou", sample(old).occurred_at)
    view, stats = audit_view_from_events([event])
    assert stats.applied == 1 and view.entries[0].what == "allocated funds"


def journey():
    return [public(s.envelope, REGISTRY[s.envelope.type].service) for s in worked_example()
            if REGISTRY[s.envelope.type].kind is Kind.EVENT]


def test_a_resolution_report_tells_the_whole_story_across_services():
    events = journey()
    view, stats = audit_view_from_events(events)
    assert stats.events == stats.applied == len(events)
    resolution = next(e.resolution_id for e in view.entries if e.event == "ResolutionRegistered")
    entries = reports.select(view, resolution=resolution)
    whats = [e.what for e in entries]
    for verb in ("raised", "seconded", "objected", "spoke", "voted", "closed vote", "decided", "assigned task",
                 "delivered", "inspected", "rated"):
        assert verb in whats, verb
    assert whats.index("raised") < whats.index("decided") < whats.index("delivered") < whats.index("rated")
    assert [e.at for e in entries] == sorted(e.at for e in entries)
    rows = list(csv.DictReader(io.StringIO(reports.to_csv(entries))))
    assert [r["what"] for r in rows] == whats and rows[0]["actor"] == entries[0].actor


def test_replay_as_of_a_time_stops_there_and_order_of_arrival_does_not_matter():
    events = journey()
    whole, _ = audit_view_from_events(events)
    shuffled, _ = audit_view_from_events(list(reversed(events)))
    assert shuffled.snapshot() == whole.snapshot()
    decided = next(e for e in events if e.type == "ProposalDecided")
    then, stats = audit_view_from_events(events, as_of=AsOf(time=decided.time))
    assert stats.events == len(events) > stats.applied
    assert "decided" in {e.what for e in then.entries} and "delivered" not in {e.what for e in then.entries}


def test_a_reminder_says_who_was_reminded_and_a_notice_nobody_could_receive_says_why():
    from contracts.notify import FailureReason, NotificationFailed
    from contracts.oversight import ReminderDue

    reminder = sample(ReminderDue).model_copy(update={"recipient_id": "staff-2201", "escalation_step": 1})
    unreached = sample(NotificationFailed).model_copy(update={"recipient_id": "supervisor-01", "channel": None,
                                                               "reason": FailureReason.NO_RECIPIENT})
    view = AuditView()
    view.apply("oversight", "ReminderDue", json.loads(encode(reminder).data), "e1")
    view.apply("notify", "NotificationFailed", json.loads(encode(unreached).data), "e2")
    assert [(e.what, e.detail) for e in view.entries] == [
        ("reminded", f"staff-2201 ({reminder.kind}, step 1)"), ("notification failed", "supervisor-01: no_recipient")]
