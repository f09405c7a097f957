"""Private delivery events become the public notify contracts; claims stay private."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

from contracts.notify import FailureReason, NotificationDelivered, NotificationFailed, NotificationRequested
from services.notify.domain import Backoff, Notification
from services.notify.translator import make_translator
from tests.unit.notify.test_domain import T0, delivery
from yishi.repository import Repository
from yishi.store import EventStore, RecordedEvent


def recorded(repository: Repository, events) -> list[RecordedEvent]:
    out = []
    for n, e in enumerate(events, 1):
        stored = repository.mapper.to_stored_event(e)
        out.append(RecordedEvent(n, n, str(e.originator_id), e.originator_version, uuid.uuid4(), "gulou", stored.topic,
                                 stored.state, {"actor": "yishi-notify", "actor_role": "system",
                                                "occurred_at": T0.isoformat(), "correlation_id": "c"}, b""))
    return out


def test_lifecycle_is_published_as_contracts():
    repository = Repository(EventStore(None))
    translate = make_translator(repository.to_domain_event)
    notification = Notification(district="gulou", notification_id="n-1", template="vote.closed", params={"a": "b"},
                                recipients=[["system", "member-7"]], channels=["webhook"],
                                regarding=["VoteClosed", "vote-1"])
    d = delivery(max_attempts=2)
    d.claim(T0, timedelta(minutes=1))
    d.fail(1, T0, "unreachable", "down", permanent=False, backoff=Backoff(timedelta(1), timedelta(1), lambda: 0))
    d.claim(T0 + timedelta(days=2), timedelta(minutes=1))
    d.succeed(2, T0 + timedelta(days=2))
    published = [translate(e) for e in recorded(repository, notification.collect_events() + d.collect_events())]
    kinds = [p.type if p else None for p in published]
    assert kinds == ["NotificationRequested", None, None, "NotificationFailed", None, "NotificationDelivered"]
    requested = NotificationRequested.model_validate_json(published[0].data)
    assert requested.notification_id == "n-1" and requested.recipients[0].id == "member-7"
    failed = NotificationFailed.model_validate_json(published[3].data)
    assert (failed.attempt, failed.reason, failed.will_retry) == (1, FailureReason.UNREACHABLE, True)
    delivered = NotificationDelivered.model_validate_json(published[5].data)
    assert (delivered.recipient_id, delivered.channel, delivered.attempt) == ("member-7", "webhook", 2)
    assert json.loads(published[5].data)["district"] == "gulou"


def test_a_recipient_nobody_could_reach_is_published_as_a_failure_with_no_channel():
    repository = Repository(EventStore(None))
    translate = make_translator(repository.to_domain_event)
    notification = Notification(district="gulou", notification_id="n-2", template="task.reminder_due",
                                params={"task_id": "task-1"}, recipients=[["person", "supervisor-01"]], channels=[],
                                regarding=["ReminderDue", "task-1"])
    notification.no_recipient("supervisor-01")
    notification.no_recipient("supervisor-01")  # recorded once
    published = [translate(e) for e in recorded(repository, notification.collect_events())]
    assert [p.type for p in published] == ["NotificationRequested", "NotificationFailed"]
    assert NotificationRequested.model_validate_json(published[0].data).channels == ()
    failed = NotificationFailed.model_validate_json(published[1].data)
    assert (failed.recipient_id, failed.channel, failed.attempt, failed.reason, failed.will_retry) == (
        "supervisor-01", None, 1, FailureReason.NO_RECIPIENT, False)
    assert published[1].subject == "n-2"  # with its notification's other events, in order
