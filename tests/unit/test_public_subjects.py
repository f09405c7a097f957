"""Public events are keyed by public ids: the Kafka key and ``ce_subject`` of every
published event is the public id of the aggregate whose stream records it, the one
district systems know, and it is the same for every event of one stream, so one
aggregate's events keep their order (one key, one partition).

Each service's aggregates are driven through their domain to produce every public event
type, the stored rows go through the service's relay translator, and the subject is
checked against the id the decoded payload names.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from pydantic import TypeAdapter

from contracts.common import Id
from services.notify.domain import Backoff, Delivery, Notification
from services.notify.translator import make_translator
from services.oversight import translator as oversight_translator
from services.oversight.domain import Authority, Fund, Policy, ReminderPolicy, Resolution, Task
from services.proposals import translator as proposals_translator
from services.proposals.domain import (
    Calendar,
    CatalogueCategory,
    CatalogueItem,
    Council,
    Nomination,
    Proposal,
    Session,
    Slate,
)
from tests.unit.notify.test_domain import T0 as NOTIFY_T0
from tests.unit.proposals.support import DAY, T0, council, terms_for
from yishi.relay import Publication, Translator, kafka_message, to_envelope
from yishi.repository import Repository, default_mapper
from yishi.store import EventStore, Metadata, RecordedEvent

MAPPER = default_mapper()
ID = TypeAdapter(Id)

# How to read the expected subject from a published payload, by the aggregate (class
# name) whose stream recorded the event; None: the stream id.
PublicId = Callable[[dict[str, Any]], str | None]


def recorded(*aggregates: Any) -> list[RecordedEvent]:
    """The pending events of ``aggregates`` as the store would hand them to the relay."""
    meta = Metadata(actor="yishi-test", actor_role="system", district="gulou", correlation_id="c", occurred_at=T0)
    out = []
    for aggregate in aggregates:
        for e in aggregate.collect_events():
            s = MAPPER.to_stored_event(e)
            n = len(out) + 1
            out.append(RecordedEvent(n, n, str(s.originator_id), s.originator_version, uuid.uuid4(), "gulou", s.topic,
                                     s.state, meta.to_dict(T0), b""))
    return out


def aggregate_of(event: RecordedEvent) -> str:
    """``Proposal`` for ``services.proposals.domain.proposal:Proposal.Decided``."""
    return event.topic.rsplit(":", 1)[-1].split(".", 1)[0]


def check_subjects(service: str, translate: Translator, events: Iterable[RecordedEvent],
                   public_ids: dict[str, PublicId]) -> dict[str, set[str]]:
    """Assert every published event's subject, envelope subject and Kafka key is the
    public id its payload names, and that each stream has one subject. Returns the
    published types by aggregate."""
    subjects: dict[str, set[str]] = defaultdict(set)
    types: dict[str, set[str]] = defaultdict(set)
    for event in events:
        publication: Publication | None = translate(event)
        if publication is None:
            continue
        aggregate = aggregate_of(event)
        data = json.loads(publication.data)
        expected = public_ids[aggregate](data)
        where = f"{event.topic} -> {publication.type}"
        assert publication.subject == expected, where
        key = expected or event.stream_id
        assert to_envelope(event, service, publication).subject == key, where
        assert kafka_message(event, service, publication)[0] == key.encode(), where
        assert ID.validate_python(key) == key, where
        subjects[event.stream_id].add(key)
        types[aggregate].add(publication.type)
    assert subjects, "nothing was published"
    split = {stream: keys for stream, keys in subjects.items() if len(keys) != 1}
    assert not split, f"streams published under more than one subject: {split}"
    return types


def topics(events: Iterable[RecordedEvent]) -> set[str]:
    return {e.topic.rsplit(":", 1)[-1] for e in events}


# --- proposals -----------------------------------------------------------------------


def _matter(kind: str) -> PublicId:
    """A stream's id, also on its VoteRequested, which names it as the vote's matter."""
    def public_id(data: dict[str, Any]) -> str:
        if "matter" in data:
            assert data["matter"]["kind"] == kind
            return data["matter"]["id"]
        return data[f"{kind}_id"]
    return public_id


PROPOSALS_IDS: dict[str, PublicId] = {
    "Council": lambda d: d["council_id"],
    "Nomination": _matter("nomination"),
    "CatalogueCategory": lambda d: d["category_id"],
    "CatalogueItem": lambda d: d["item_id"],
    "Proposal": _matter("proposal"),
    "Slate": _matter("slate"),
    "Calendar": lambda d: d["council_id"],
    "Session": lambda d: d["session_id"],
}


def raised(c: Council, proposal_id: str) -> Proposal:
    """A proposal raised by a resident before ``c``."""
    return Proposal.raise_proposal(district="gulou", proposal_id=proposal_id, council=c, proposer_id="resident-1",
                                   proposer_role="resident", proposer_seat_id=None, item=None, title="充电棚",
                                   summary="在3号院建设集中充电棚。", attachments=[], now=T0)


def publish(c: Council, p: Proposal) -> Proposal:
    p.publish(council=c, form="council", notice_ends_at=T0 + c.rules["notice_period_days"] * DAY, session_at=None,
              now=T0)
    return p


def proposals_events() -> list[RecordedEvent]:
    """Every public proposals event type, on several aggregates of each kind."""
    street = council(council_id="c-street", level="street", members={"s-expert": "m7"})
    c = council(parent=street)
    c.unseat(seat_id="s-org", member_id="m3", reason="任期届满", now=T0)
    category = CatalogueCategory(district="gulou", category_id="cat-1", code="01", title="民生", description="d",
                                 at=T0)
    item = CatalogueItem(district="gulou", item_id="item-1", category_id="cat-1", community_id="xikang",
                         title="充电", description="电动车充电", at=T0)
    item.retire(reason="已完成", now=T0)

    # Deliberated, decided by a vote, then sent back for reconsultation.
    decided = publish(c, raised(c, "p-1"))
    decided.make_statement(statement_id="st-1", step="motion", speaker_role="proposer", speaker_id="resident-1",
                           text="动议", now=T0)
    decided.second(council=c, member_id="m1", now=T0)
    decided.lodge_objection(objection_id="obj-1", objector_id="resident-9", grounds="噪声", now=T0)
    terms = decided.request_vote(council=c, vote_id="v-1", terms=terms_for(c, T0 + 10 * DAY), now=T0 + 7 * DAY)
    decided.close_vote(vote_id="v-1", outcome="adopted", tally={"in_favour": 2, "against": 0, "abstain": 0},
                       now=T0 + 9 * DAY)
    decided.return_for_reconsultation(reason="施工扰民", resolution_id="res-p-1", now=T0 + 30 * DAY)

    escalated = publish(c, raised(c, "p-2"))
    escalated.escalate(council=c, parent=street, reason="超出社区范围", now=T0)
    withdrawn = raised(c, "p-3")
    withdrawn.withdraw(actor_id="resident-1", reason="已协调解决", now=T0)

    nominations = []
    for nomination_id, outcome in (("n-1", "adopted"), ("n-2", "rejected")):
        n = Nomination.nominate(district="gulou", nomination_id=nomination_id, council=c, seat_id="s-rr",
                                nominee_id="r1", route="self_nomination", now=T0)
        n.publicise(notice_ends_at=T0 + 5 * DAY, now=T0)
        n.request_vote(vote_id=f"v-{nomination_id}", terms=terms, closes_at=T0 + 9 * DAY, now=T0 + 5 * DAY)
        n.close_vote(vote_id=f"v-{nomination_id}", outcome=outcome, now=T0 + 9 * DAY)
        nominations.append(n)
    slates = []
    for slate_id, outcome in (("sl-1", "adopted"), ("sl-2", "rejected")):
        sl = Slate.nominate(district="gulou", slate_id=slate_id, council=c, now=T0, notice_ends_at=T0 + 5 * DAY,
                            nominees=[{"seat_id": "s-rr", "nominee_id": "r2", "route": "recommendation"}])
        sl.request_vote(vote_id=f"v-{slate_id}", terms=terms, closes_at=T0 + 9 * DAY, now=T0 + 5 * DAY)
        sl.close_vote(vote_id=f"v-{slate_id}", outcome=outcome, now=T0 + 9 * DAY)
        slates.append(sl)
    # A session of c's calendar, from scheduling to its minutes.
    calendar = Calendar.open_for(c, T0)
    calendar.set_rota(chairs=["chair-a", "chair-b"], now=T0)
    calendar.set_schedule(council=c, schedule={"form": "council", "day_of_month": 15, "local_time": "19:00",
                                               "timezone": "Asia/Shanghai", "place": None, "online_link": None},
                          now=T0)
    session = Session.schedule(session_id="s-1", council=c, calendar=calendar, form="council",
                               starts_at=calendar.due(), place="社区中心", online_link=None, chair=None,
                               code="7Q4KD2", now=T0)
    calendar.took(session, from_schedule=True, now=T0)
    session.change_chair(chair="chair-b", reason="请假", now=T0)
    session.add_item(proposal=raised(c, "p-4"), offered=True, now=T0)
    session.invite(proposal_id=session.agenda[0], person_id="expert-9", kind="expert", name=None, now=T0)
    session.open(session.starts_at)
    session.record_attendance(person_id="r-1", proxy_for=None, council=c, now=session.starts_at)
    session.close(session.starts_at + DAY)
    session.publish_minutes(text=None, now=session.starts_at + DAY)
    # A council with a proposal's id: the two share a key (harmless: only more ordering).
    twin = council(council_id="p-1", members={})
    return recorded(street, c, category, item, decided, escalated, withdrawn, *nominations, *slates, calendar,
                    session, twin)


def test_proposals_events_are_keyed_by_the_public_id_of_their_aggregate():
    events = proposals_events()
    assert topics(events) >= {t.__qualname__ for t in proposals_translator._CONTRACTS}, "a public type is missing"
    types = check_subjects("proposals", proposals_translator.translate, events, PROPOSALS_IDS)
    # VoteRequested names the vote, but is keyed by the nomination, proposal or slate that asked for it.
    assert "VoteRequested" in types["Nomination"] and "VoteRequested" in types["Proposal"]
    assert "VoteRequested" in types["Slate"]
    streams_of_p1 = {e.stream_id for e in events if (p := proposals_translator.translate(e)) and p.subject == "p-1"}
    assert streams_of_p1 == {str(Council.create_id("gulou", "p-1")), str(Proposal.create_id("gulou", "p-1"))}


def test_proposals_subject_is_the_id_not_the_stream():
    """The stream is a UUID derived from (district, kind, id); the subject is the id itself."""
    event = recorded(council())[0]
    assert event.stream_id == str(Council.create_id("gulou", "c-1"))
    assert proposals_translator.translate(event).subject == "c-1"


# --- oversight -----------------------------------------------------------------------


OVERSIGHT_IDS: dict[str, PublicId] = {
    "Resolution": lambda d: d["resolution_id"],
    "Task": lambda d: d["task_id"],
    "ReminderPolicy": lambda d: d["scope_id"],
    "Fund": lambda d: d["fund_id"],
}
EVIDENCE = [{"uri": "https://files.example/1.jpg", "media_type": "image/jpeg", "sha256": "0" * 64}]


def oversight_events() -> list[RecordedEvent]:
    """Every public oversight event type."""
    day = timedelta(days=1)
    resolution = Resolution(district="gulou", resolution_id="res-1", proposal_id="p-1", council_id="council-1",
                            vote_id="v-1", catalogue_item_id=None, community_id="xikang", title="充电棚",
                            text="建设充电棚", budget_fen=100)
    resolution.record_inspection("insp-r-1", ["sup-1"], ["quality"], "satisfactory", "ok", EVIDENCE)
    resolution.request_reconsultation("task-1", "施工扰民")

    task = Task(district="gulou", task_id="task-1", resolution_id="res-1", council_id="council-1",
                implementer={"kind": "social_organisation", "id": "org-1", "name": "Green Home"},
                description="Build the shed", acceptance_standards=["40 charging points"], due_at=T0 + 60 * day,
                budget_fen=None, assigned_at=T0)
    policy = Policy(stall_days=10, escalate_after_days=2, supervisor_id="sup-1")
    task.accept("staff-7", T0 + day)
    task.report_progress(30, "foundations", EVIDENCE, T0 + 2 * day)
    for step in task.due_reminders(T0 + 16 * day, policy, Authority("street", "council-street")):
        task.fire(step, policy.stall_days, T0 + 16 * day)  # Stalled, Escalated, ReminderFired
    task.complete("done", EVIDENCE, T0 + 17 * day)
    task.inspect("insp-t-1", ["sup-1"], ["quality"], "satisfactory", "ok", [], T0 + 18 * day)
    task.schedule_follow_up("insp-t-2", T0 + 200 * day, "does it hold", T0 + 18 * day)
    resolution.rate_satisfaction("rating-1", "review-1", 2026, 5, 1, 0, None, tasks=[task])

    fund = Fund(district="gulou", fund_id="fund-1", community_id="xikang", year=2026, amount_fen=1000)
    fund.allocate("alloc-1", 500, "shed", resolution=resolution, task=task, resolution_community="xikang")
    resolution.close("delivered", "done", tasks=[task])
    fund.spend("exp-1", "alloc-1", 200, "builder", "roof", None)

    policies = [ReminderPolicy(district="gulou", scope=scope, scope_id=scope_id, not_accepted_days=3, stall_days=10,
                               deadline_warning_days=5, escalate_after_days=2, supervisor_id=None)
                for scope, scope_id in (("resolution", "res-1"), ("council", "council-1"))]
    policies[0].change(4, 11, 6, 3, "sup-1")
    return recorded(resolution, task, fund, *policies)


def test_oversight_events_are_keyed_by_the_public_id_of_their_aggregate():
    events = oversight_events()
    assert topics(events) >= {t.__qualname__ for t in oversight_translator._MAPPINGS}, "a public type is missing"
    types = check_subjects("oversight", oversight_translator.translator(), events, OVERSIGHT_IDS)
    # Inspections are keyed by the stream that records them: the task's or the resolution's.
    assert "InspectionRecorded" in types["Task"] and "InspectionRecorded" in types["Resolution"]
    assert {"TaskStalled", "TaskEscalated", "ReminderDue", "FollowUpInspectionScheduled"} <= types["Task"]


def test_oversight_task_events_naming_the_resolution_are_keyed_by_the_task():
    translate = oversight_translator.translator()
    published = [(e, p) for e in oversight_events() if aggregate_of(e) == "Task" and (p := translate(e))]
    assert published and all(json.loads(p.data)["resolution_id"] == "res-1" for _, p in published)
    assert {p.subject for _, p in published} == {"task-1"}
    # A resolution-scoped policy shares its resolution's key: harmless, only more ordering.
    kinds_by_subject: dict[str, set[str]] = defaultdict(set)
    for e in oversight_events():
        if (p := translate(e)) is not None:
            kinds_by_subject[p.subject].add(aggregate_of(e))
    assert kinds_by_subject["res-1"] == {"Resolution", "ReminderPolicy"}


def test_fund_events_keyed_by_fund_id():
    translate = oversight_translator.translator()
    assert {translate(e).subject for e in oversight_events() if aggregate_of(e) == "Fund"} == {"fund-1"}


# --- notify --------------------------------------------------------------------------


NOTIFY_IDS: dict[str, PublicId] = {
    "Notification": lambda d: d["notification_id"],
    # A delivery has no public id: its notification's, the same on all its events.
    "Delivery": lambda d: d["notification_id"],
}


def notify_events() -> list[RecordedEvent]:
    """NotificationRequested, and every outcome of deliveries (claims stay private): two
    deliveries of one notification, and another notification's."""
    backoff = Backoff(timedelta(seconds=1), timedelta(seconds=1), lambda: 0)
    aggregates: list[Any] = []
    for notification_id in ("n-1", "n-2"):
        aggregates.append(Notification(district="gulou", notification_id=notification_id, template="vote.closed",
                                       params={"a": "b"}, recipients=[["system", "member-7"], ["person", "m8"]],
                                       channels=["webhook", "email"], regarding=["VoteClosed", "vote-1"]))
        retried = Delivery(district="gulou", notification_id=notification_id, recipient_id="member-7",
                           channel="webhook", address="https://example.cn/hook", recipient_kind="system",
                           language="en", template="vote.closed", subject="s", body="b",
                           regarding=["VoteClosed", "vote-1"], requested_at=NOTIFY_T0, not_before=NOTIFY_T0,
                           expires_at=None, max_attempts=2)
        retried.claim(NOTIFY_T0, timedelta(minutes=1))
        retried.fail(1, NOTIFY_T0, "unreachable", "down", permanent=False, backoff=backoff)
        retried.claim(NOTIFY_T0 + timedelta(days=1), timedelta(minutes=1))
        retried.succeed(2, NOTIFY_T0 + timedelta(days=1))
        dead = Delivery(district="gulou", notification_id=notification_id, recipient_id="m8", channel="email",
                        address="m8@example.cn", recipient_kind="person", language="zh-CN", template="vote.closed",
                        subject="s", body="b", regarding=None, requested_at=NOTIFY_T0, not_before=NOTIFY_T0,
                        expires_at=None, max_attempts=1)
        dead.claim(NOTIFY_T0, timedelta(minutes=1))
        dead.fail(1, NOTIFY_T0, "unreachable", "down", permanent=False, backoff=backoff)
        aggregates += [retried, dead]
    return recorded(*aggregates)


def test_notify_events_are_keyed_by_their_notification():
    events = notify_events()
    assert {"Notification.Created", "Delivery.Failed", "Delivery.DeadLettered", "Delivery.Delivered"} <= topics(events)
    translate = make_translator(Repository(EventStore(None)).to_domain_event)  # as services.notify.main wires it
    types = check_subjects("notify", translate, events, NOTIFY_IDS)
    assert types == {"Notification": {"NotificationRequested"},
                     "Delivery": {"NotificationFailed", "NotificationDelivered"}}
    streams_by_subject: dict[str, set[str]] = defaultdict(set)
    for e in events:
        if (p := translate(e)) is not None:
            streams_by_subject[p.subject].add(e.stream_id)
    # One notification's requested event and its deliveries' outcomes: one key, three streams.
    assert {k: len(v) for k, v in streams_by_subject.items()} == {"n-1": 3, "n-2": 3}
