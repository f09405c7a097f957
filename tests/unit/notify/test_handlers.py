"""Every notify command handler on the in-memory store, without PostgreSQL: the bus on
``Repository(MemoryEventStore())``, the fan-out asking an ``InMemoryAudience`` (which
also keeps the subscriptions and the directory from what the handlers save, as the
tables do). Accepted, refused, resent; through ``CommandBus.dispatch`` as a caller (or the
platform, for its own ``GiveNotice``) would send them."""

from __future__ import annotations

import sys
import uuid
from datetime import datetime, timedelta, timezone

from contracts import registry
from contracts.common import Actor, Command, RejectionReason, Role
from contracts.notify import (
    Channel,
    Recipient,
    RemoveDefaultContact,
    RequestNotification,
    SetDefaultContact,
    Subscribe,
    Unsubscribe,
)
from contracts.oversight import TaskStalled
from services.notify.application import Followed, GiveNotice, Notifier, build_bus
from services.notify.audience import InMemoryAudience, TaskPeople
from services.notify.domain import Delivery, DeliveryStatus, Notification
from services.notify.settings import NotifySettings
from services.notify.templates import default_templates
from tests.support.handlers import T0, Handlers, assert_every_handler_tested, covers
from yishi.auth import Principal

D = "gulou"
WORKER = Actor(id="worker-1", role=Role.COMMUNITY_WORKER)
RESIDENT = Actor(id="resident-7", role=Role.RESIDENT)
BOARD = "https://board.example/notices"
SETTINGS = NotifySettings(webhook_secret="unit", bulletin_board_urls=[BOARD], max_attempts=4)
CHANNELS = (Channel.EMAIL, Channel.WEBHOOK, Channel.NOTICE_BOARD)  # no SMS gateway here
PUBLISHED = {"title": "增设充电棚", "proposal_id": "p-1", "notice_ends_at": "2026-03-08 10:00"}


class Notify(Handlers):
    """The notify bus on the in-memory store, its fan-out asking an in-memory audience that
    is also its read model (the bus's ``project`` hook keeps its subscriptions and directory)."""

    def __init__(self) -> None:
        self.audience = InMemoryAudience()
        notifier = Notifier(self.audience, default_templates(), SETTINGS, CHANNELS)
        super().__init__(lambda repository, clock, project: build_bus(repository, clock, notifier,
                                                                       project=self.audience.project))

    async def send(self, command: Command, **how):
        """As :meth:`Handlers.send`; the platform's own ``GiveNotice`` is sent by the platform."""
        if isinstance(command, GiveNotice):
            how.setdefault("principal", self.bus.platform)
        return await super().send(command, **how)

    async def events(self) -> list[str]:
        """The domain events stored so far (replies left out), as ``Class.Event``."""
        return [t.rsplit(":", 1)[-1] for t in await self.topics() if not t.startswith("contract:")]

    async def notification(self, notification_id: str) -> Notification | None:
        return await self.load(Notification, D, notification_id)

    async def deliveries(self, notification_id: str) -> list[Delivery]:
        """The notification's deliveries, by recipient, channel and address."""
        log = await self.store.read_log(limit=100_000)
        found = [await self.repository.get(Delivery, e.stream_id) for e in log
                 if e.topic.endswith(":Delivery.Created")]
        return sorted((d for d in found if d.notification_id == notification_id),
                      key=lambda d: (d.recipient_id, d.channel, d.address))

    async def subscribe(self, subscriber: str, channel: str = "email", address: str | None = None, *,
                        kind: str = "person", language: str = "zh-CN", **extra) -> None:
        await self.accepted(subscribe(subscriber, channel, address, kind=kind, language=language, **extra))

    async def set_contact(self, party: str, channel: str, address: str, language: str = "zh-CN") -> None:
        await self.accepted(SetDefaultContact(district=D, actor=WORKER, party_id=party, channel=channel,
                                              address=address, language=language))


def subscribe(subscriber: str, channel: str = "email", address: str | None = None, *, kind: str = "person",
              language: str = "zh-CN", actor: Actor = WORKER, **extra) -> Subscribe:
    address = address or (f"{subscriber}@example.cn" if channel == "email" else f"https://hooks.example/{subscriber}")
    return Subscribe(district=D, actor=actor, subscription_id=f"sub-{subscriber}-{channel}",
                     subscriber=Recipient(kind=kind, id=subscriber), channel=channel, address=address,
                     language=language, **extra)


def request(*recipients: tuple[str, str], channels=("email", "webhook"), notification_id: str = "n-1",
            template: str = "proposal.published", params=PUBLISHED) -> RequestNotification:
    return RequestNotification(district=D, actor=WORKER, notification_id=notification_id,
                               recipients=[Recipient(kind=k, id=i) for k, i in recipients], channels=channels,
                               template=template, params=params)


def notice(notification_id: str = "n-ev", template: str = "proposal.published", params=PUBLISHED,
           regarding=("ProposalPublished", "p-1"), **audience) -> GiveNotice:
    return GiveNotice(district=D, actor=Actor(id="yishi-notify", role=Role.SYSTEM), notification_id=notification_id,
                      template=template, params=params, regarding=regarding, **audience)


def reached(deliveries: list[Delivery]) -> list[tuple[str, str, str]]:
    return [(d.recipient_id, d.channel, d.address) for d in deliveries]


# -- Subscribe ---------------------------------------------------------------------


@covers(Subscribe, "accepted", "resent")
async def test_subscribe_records_the_subscription_and_a_resend_changes_nothing():
    n = Notify()
    command = subscribe("m-1", language="en", event_types=["VoteClosed"], council_ids=["c-1"])
    reply = await n.accepted(command, key="k-sub")
    assert reply.subject == "sub-m-1-email"
    await n.resent(command, reply, key="k-sub")
    # The same subscription under another key is the one already made.
    assert (await n.accepted(command)).subject == "sub-m-1-email"
    assert await n.events() == ["Subscription.Created"]
    assert [(t.recipient_id, t.address, t.language) for t in await n.audience.contacts_of(None, D, ["m-1"])] == [
        ("m-1", "m-1@example.cn", "en")]
    assert [t.recipient_id for t in await n.audience.followers_of(None, D, "VoteClosed", "c-1", None)] == ["m-1"]
    assert await n.audience.followers_of(None, D, "VoteClosed", "c-2", None) == []


@covers(Subscribe, "refused")
async def test_subscribe_refusals():
    n = Notify()
    await n.subscribe("m-1")
    await n.rejected(subscribe("m-1", address="other@example.cn"), RejectionReason.ALREADY_EXISTS, "sub-m-1-email")
    await n.rejected(subscribe("m-2", actor=RESIDENT), RejectionReason.NOT_AUTHORISED, None)
    await n.rejected(subscribe("m-3", address="not-an-address"), RejectionReason.INVALID_COMMAND, "sub-m-3-email")
    await n.rejected(subscribe("m-4", "sms", "+8613800000000"),  # no gateway here
                     RejectionReason.INVALID_COMMAND, "sub-m-4-sms")
    await n.rejected(subscribe("m-5", "notice_board", BOARD), RejectionReason.INVALID_COMMAND,
                     "sub-m-5-notice_board")
    await n.rejected(subscribe("c-1", kind="council"), RejectionReason.INVALID_COMMAND, "sub-c-1-email")
    await n.rejected(subscribe("m-6", event_types=["BallotAccepted"]), RejectionReason.INVALID_COMMAND,
                     "sub-m-6-email")
    assert await n.events() == ["Subscription.Created"]


@covers(Subscribe, "accepted")
async def test_a_resident_subscribes_themself():
    n = Notify()
    assert (await n.accepted(subscribe(RESIDENT.id, actor=RESIDENT))).subject == f"sub-{RESIDENT.id}-email"


# -- Unsubscribe -------------------------------------------------------------------


@covers(Unsubscribe, "accepted", "resent")
async def test_unsubscribe_cancels_once_and_the_subscriber_is_no_longer_reached():
    n = Notify()
    await n.accepted(subscribe(RESIDENT.id, actor=RESIDENT))
    command = Unsubscribe(district=D, actor=RESIDENT, subscription_id=f"sub-{RESIDENT.id}-email")
    reply = await n.accepted(command, key="k-unsub")
    await n.resent(command, reply, key="k-unsub")
    await n.accepted(command)  # cancelled already: nothing more happens
    assert await n.events() == ["Subscription.Created", "Subscription.Cancelled"]
    assert await n.audience.contacts_of(None, D, [RESIDENT.id]) == []


@covers(Unsubscribe, "refused")
async def test_unsubscribe_refusals():
    n = Notify()
    await n.subscribe("m-1")
    await n.rejected(Unsubscribe(district=D, actor=WORKER, subscription_id="sub-nobody"), RejectionReason.NOT_FOUND,
                     "sub-nobody")
    await n.rejected(Unsubscribe(district=D, actor=RESIDENT, subscription_id="sub-m-1-email"),
                     RejectionReason.NOT_AUTHORISED, None)
    assert await n.events() == ["Subscription.Created"]


# -- SetDefaultContact and RemoveDefaultContact ---------------------------------------


@covers(SetDefaultContact, "accepted", "resent")
async def test_set_default_contact_records_changes_only():
    n = Notify()
    command = SetDefaultContact(district=D, actor=WORKER, party_id="org-1", channel="webhook",
                                address="https://hooks.example/org-1")
    reply = await n.accepted(command, key="k-set")
    assert reply.subject == "org-1"
    await n.resent(command, reply, key="k-set")
    await n.accepted(command)  # the same entry again: nothing changes
    await n.set_contact("org-1", "email", "office@org-1.cn", "en")
    assert await n.events() == ["DefaultContact.Created", "DefaultContact.Changed"]
    assert [(t.recipient_id, t.channel, t.address) for t in await n.audience.contacts_of(None, D, ["org-1"])] == [
        ("org-1", "email", "office@org-1.cn")]


@covers(SetDefaultContact, "refused")
async def test_set_default_contact_refuses_an_address_of_another_form():
    n = Notify()
    command = SetDefaultContact(district=D, actor=WORKER, party_id="org-1", channel="email", address="org-1")
    await n.rejected(command, RejectionReason.INVALID_COMMAND, "org-1")
    assert await n.events() == []


@covers(RemoveDefaultContact, "accepted", "resent", "refused")
async def test_remove_default_contact_takes_the_party_out_once():
    n = Notify()
    await n.set_contact("org-1", "webhook", "https://hooks.example/org-1")
    command = RemoveDefaultContact(district=D, actor=WORKER, party_id="org-1")
    reply = await n.accepted(command, key="k-rm")
    await n.resent(command, reply, key="k-rm")
    assert await n.audience.contacts_of(None, D, ["org-1"]) == []
    await n.rejected(command, RejectionReason.NOT_FOUND, "org-1")  # removed already
    await n.rejected(RemoveDefaultContact(district=D, actor=WORKER, party_id="org-2"), RejectionReason.NOT_FOUND,
                     "org-2")  # never set
    assert await n.events() == ["DefaultContact.Created", "DefaultContact.Removed"]


# -- RequestNotification -------------------------------------------------------------


@covers(RequestNotification, "accepted", "resent")
async def test_request_notification_reaches_people_councils_systems_and_the_boards():
    n = Notify()
    await n.subscribe("m-en", language="en")
    await n.subscribe("m-en", "webhook")
    await n.subscribe("sys-1", "webhook", kind="system")
    await n.set_contact("m-dir", "email", "m-dir@example.cn")  # subscribed to nothing: the directory
    n.audience.councils[D, "c-1"] = ["m-en", "m-dir", "m-none"]  # m-none: no contact, simply not addressed
    reply = await n.accepted(request(("council", "c-1"), ("system", "sys-1"), ("community", "xikang"),
                                     channels=("email", "webhook", "notice_board")), key="k-req")
    assert reply.subject == "n-1"
    deliveries = await n.deliveries("n-1")
    assert reached(deliveries) == [
        ("board-1", "notice_board", BOARD), ("m-dir", "email", "m-dir@example.cn"),
        ("m-en", "email", "m-en@example.cn"), ("m-en", "webhook", "https://hooks.example/m-en"),
        ("sys-1", "webhook", "https://hooks.example/sys-1")]
    by = {(d.recipient_id, d.channel): d for d in deliveries}
    assert by["m-en", "email"].subject == "Proposal published: 增设充电棚"
    assert by["m-dir", "email"].subject == "议题公示:增设充电棚"
    assert all(d.status is DeliveryStatus.PENDING and d.next_attempt_at == T0 and d.max_attempts == 4
               for d in deliveries)
    notification = await n.notification("n-1")
    assert notification.recipients == [["person", "m-dir"], ["person", "m-en"], ["system", "board-1"],
                                       ["system", "sys-1"]]
    assert notification.unreached == []
    await n.resent(request(("council", "c-1"), ("system", "sys-1"), ("community", "xikang"),
                           channels=("email", "webhook", "notice_board")), reply, key="k-req")
    assert len(await n.deliveries("n-1")) == 5


async def test_request_notification_keeps_to_the_channels_asked_for_and_waits_out_quiet_hours():
    n = Notify()
    await n.subscribe("m-1", language="en", quiet_hours={"start": "22:00", "end": "07:00",
                                                         "timezone": "Asia/Shanghai"})
    await n.subscribe("m-1", "webhook")
    n.clock.set(datetime(2026, 4, 1, 15, 0, tzinfo=timezone.utc))  # 23:00 in Beijing
    await n.accepted(request(("person", "m-1"), channels=("email",)))
    (delivery,) = await n.deliveries("n-1")
    assert (delivery.channel, delivery.next_attempt_at) == ("email", datetime(2026, 4, 1, 23, 0, tzinfo=timezone.utc))


async def test_request_notification_with_a_notification_id_already_used_fans_out_no_more():
    n = Notify()
    await n.subscribe("m-1")
    await n.subscribe("m-2")
    await n.accepted(request(("person", "m-1")))
    assert (await n.accepted(request(("person", "m-2")))).subject == "n-1"
    assert reached(await n.deliveries("n-1")) == [("m-1", "email", "m-1@example.cn")]


@covers(RequestNotification, "refused")
async def test_request_notification_refuses_a_template_that_does_not_fit_and_records_nothing():
    n = Notify()
    await n.subscribe("m-1")
    events = await n.events()
    await n.rejected(request(("person", "m-1"), template="no.such_template"), RejectionReason.INVALID_COMMAND,
                     "n-1")
    await n.rejected(request(("person", "m-1"), params={"title": "t"}),  # values missing
                     RejectionReason.INVALID_COMMAND, "n-1")
    await n.rejected(request(("person", "m-1")), RejectionReason.NOT_AUTHORISED, None,
                     principal=Principal.of_actor(RESIDENT, D))
    assert await n.events() == events
    assert await n.notification("n-1") is None


async def test_request_notification_to_nobody_reachable_records_nothing():
    n = Notify()
    await n.accepted(request(("person", "m-unknown")))
    assert await n.events() == []


# -- GiveNotice: the notices other services' events and the vote reminder ask for ------


@covers(GiveNotice, "accepted")
async def test_a_notice_reaches_the_council_s_members_its_followers_and_the_boards():
    n = Notify()
    n.audience.councils[D, "c-1"] = ["m-1", "m-2"]
    await n.subscribe("m-1")
    await n.set_contact("m-2", "webhook", "https://hooks.example/m-2")
    await n.subscribe("sys-all", "webhook", kind="system", event_types=["ProposalPublished"])
    await n.subscribe("sys-c1", "webhook", kind="system", event_types=["ProposalPublished"], council_ids=["c-1"])
    await n.subscribe("sys-c2", "webhook", kind="system", event_types=["ProposalPublished"], council_ids=["c-2"])
    await n.subscribe("sys-p9", "webhook", kind="system", event_types=["ProposalPublished"], proposal_ids=["p-9"])
    await n.subscribe("sys-votes", "webhook", kind="system", event_types=["VoteClosed"])
    reply = await n.accepted(notice(members_of="c-1", followers=Followed(council_id="c-1", proposal_id="p-1"),
                                    public=True))
    assert (reply.command_type, reply.subject, reply.actor.id) == ("GiveNotice", "n-ev", "yishi-notify")
    deliveries = await n.deliveries("n-ev")
    assert [d.recipient_id for d in deliveries] == ["board-1", "m-1", "m-2", "sys-all", "sys-c1"]
    assert all(d.regarding == ["ProposalPublished", "p-1"] for d in deliveries)


async def test_a_notice_to_a_roll_expires_with_the_vote():
    n = Notify()
    n.audience.councils[D, "c-1"] = ["m-1"]
    await n.subscribe("m-1")
    await n.subscribe("e-1")
    closes = T0 + timedelta(days=2)
    await n.accepted(notice(template="vote.opened", params={"question": "建吗?", "vote_id": "v-1",
                                                            "closes_at": "2026-03-03 10:00"},
                            regarding=("VoteOpened", "v-1"), people=("e-1",), followers=Followed(council_id="c-1"),
                            expires_at=closes))
    (delivery,) = await n.deliveries("n-ev")
    assert (delivery.recipient_id, delivery.expires_at) == ("e-1", closes)


async def test_a_notice_about_a_task_reaches_its_people_and_inspectors():
    n = Notify()
    n.audience.tasks[D, "task-1"] = TaskPeople(implementer="org-1", staff={"staff-1"}, inspectors={"sup-1"})
    for who in ("org-1", "staff-1", "sup-1", "outsider"):
        await n.subscribe(who)
    await n.accepted(notice(template="task.stalled", params={"task_id": "task-1", "stalled_after_days": "5"},
                            regarding=("TaskStalled", "task-1"), people_of_task="task-1", followers=Followed()))
    assert [d.recipient_id for d in await n.deliveries("n-ev")] == ["org-1", "staff-1", "sup-1"]


async def test_a_reminder_reaches_staff_at_the_implementer_s_entry_and_records_who_it_reaches_not():
    n = Notify()
    n.audience.tasks[D, "task-1"] = TaskPeople(implementer="org-1", staff={"staff-1"})
    await n.set_contact("org-1", "webhook", "https://hooks.example/org-1")
    params = {"task_id": "task-1", "kind": "stalled", "due_at": "2026-03-01 10:00", "reminder_id": "rem-1"}

    def reminder(notification_id: str, recipient: str, kind: str = "person") -> GiveNotice:
        return notice(notification_id, "task.reminder_due", params, ("ReminderDue", "task-1"), people=(recipient,),
                      via_implementer_of="task-1", followers=Followed(),
                      required=(Recipient(kind=kind, id=recipient),))

    await n.accepted(reminder("n-staff", "staff-1"))
    assert reached(await n.deliveries("n-staff")) == [("staff-1", "webhook", "https://hooks.example/org-1")]
    await n.accepted(reminder("n-sup", "sup-1"))
    assert await n.deliveries("n-sup") == []
    unreached = await n.notification("n-sup")
    assert (unreached.recipients, unreached.channels, unreached.unreached) == ([["person", "sup-1"]], [], ["sup-1"])
    await n.accepted(reminder("n-council", "c-up", "council"))
    assert (await n.notification("n-council")).recipients == [["council", "c-up"]]
    assert (await n.events())[-2:] == ["Notification.Created", "Notification.NoRecipient"]


@covers(GiveNotice, "resent")
async def test_a_notice_redelivered_under_its_event_is_answered_from_its_reply():
    n = Notify()
    n.audience.tasks[D, "task-1"] = TaskPeople(implementer="org-1")
    await n.subscribe("org-1")
    stalled = TaskStalled(district=D, actor=WORKER, occurred_at=T0, task_id="task-1", resolution_id="res-1",
                          stalled_after_days=5)
    envelope = registry.to_envelope(stalled, id=str(uuid.uuid4()), source=f"/{D}/oversight", subject="task-1",
                                    time=T0, correlation_id="c-stalled")
    command = notice(template="task.stalled", params={"task_id": "task-1", "stalled_after_days": "5"},
                     regarding=("TaskStalled", "task-1"), people_of_task="task-1", followers=Followed())
    first = await n.react(command, envelope)
    n.audience.tasks[D, "task-1"].staff.add("staff-1")
    await n.subscribe("staff-1")
    await n.resent(command, first, envelope=envelope)
    assert (first.correlation_id, first.subject) == ("c-stalled", "n-ev")
    assert [d.recipient_id for d in await n.deliveries("n-ev")] == ["org-1"]


@covers(GiveNotice, "refused")
async def test_a_notice_that_cannot_be_rendered_is_refused_and_records_nothing():
    n = Notify()
    await n.subscribe("m-1")
    events = await n.events()
    await n.rejected(notice(people=("m-1",), params={"title": "t"}), RejectionReason.INVALID_COMMAND, "n-ev")
    assert await n.events() == events


@covers(GiveNotice, "refused")
async def test_a_notice_is_the_platform_s_own_and_refused_to_a_caller():
    n = Notify()
    await n.subscribe("m-1")
    await n.rejected(notice(people=("m-1",)), RejectionReason.NOT_AUTHORISED, None,
                     principal=Principal.of_actor(WORKER, D, acts_for=["*"]))
    assert await n.notification("n-ev") is None


# -- every handler has its tests ------------------------------------------------------

def test_every_handler_of_the_bus_is_tested_here():
    assert_every_handler_tested(Notify().bus, sys.modules[__name__])
