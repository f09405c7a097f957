"""Notify end to end over the real PostgreSQL and broker, with a real SMTP server
(aiosmtpd) and a real webhook receiver on loopback. One service for the module."""

from __future__ import annotations

import asyncio
import email
import hashlib
import hmac
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from email import policy

import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller

from contracts import registry
from contracts.common import Actor, Role
from contracts.envelope import Envelope
from contracts.oversight import ReminderDue, TaskAccepted, TaskAssigned
from contracts.proposals import MemberSeated, ProposalPublished, ProposalRaised
from contracts.voting import BallotAccepted, VoteClosed, VoteOpened
from services.notify.main import spec
from services.notify.settings import NotifySettings
from tests.support.kafka import read_whole_topic
from tests.support.service import eventually, new_district, running
from yishi.clock import ManualClock
from yishi.embedded import free_port
from yishi.kafka import ensure_topics, new_producer
from yishi.names import events_topic, source

SECRET = b"test-webhook-secret"
MAX_ATTEMPTS = 3
BACKOFF_BASE_S = 60
BACKOFF_MAX_S = 600
WORKER = Actor(id="worker-1", role=Role.COMMUNITY_WORKER)
SYSTEM = Actor(id="yishi-system", role=Role.SYSTEM)


class Mailbox:
    """aiosmtpd handler keeping every message received."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((list(envelope.rcpt_tos), email.message_from_bytes(envelope.content,
                                                                                  policy=policy.default)))
        return "250 OK"

    def to(self, address: str) -> list[email.message.EmailMessage]:
        return [m for rcpt, m in self.messages if address in rcpt]


@dataclass
class Receiver:
    """A tiny HTTP/1.1 webhook receiver: ``/ok`` and ``/board`` accept, ``/flaky`` fails
    twice then accepts, ``/down`` always fails. Records every request and whether its
    signature verified against the service clock."""

    clock: ManualClock
    requests: list[dict] = field(default_factory=list)
    server: asyncio.AbstractServer | None = None
    port: int = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["path"] == path]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        request_line, *lines = head.split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines if ":" in ln)}
        body = await reader.readexactly(int(headers.get("content-length", 0)))
        path = request_line.split()[1]
        ts = headers.get("x-yishi-timestamp", "")
        expected = "sha256=" + hmac.new(SECRET, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        fresh = ts.isdigit() and abs(self.clock.now().timestamp() - int(ts)) <= 300
        verified = fresh and hmac.compare_digest(expected, headers.get("x-yishi-signature", ""))
        seen = len(self.at(path))
        status = 200 if path in ("/ok", "/board") or (path == "/flaky" and seen >= 2) else 503
        if not verified:
            status = 401
        self.requests.append({"path": path, "headers": headers, "body": body, "verified": verified,
                              "status": status})
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        writer.close()


@dataclass
class World:
    r: object
    mailbox: Mailbox
    receiver: Receiver
    servers: object

    @property
    def district(self) -> str:
        return self.r.district

    async def command(self, name: str, body: dict) -> dict:
        response = await self.r.client.post(f"/{self.district}/commands/{name}",
                                            json={"district": self.district, "actor": WORKER.model_dump(), **body})
        assert response.status_code == 200, response.text
        return response.json()

    async def subscribe(self, subscriber: str, channel: str, address: str, *, kind: str = "person",
                        language: str = "zh-CN", **extra) -> None:
        await self.command("Subscribe", {"subscription_id": f"sub-{subscriber}-{channel}",
                                         "subscriber": {"kind": kind, "id": subscriber}, "channel": channel,
                                         "address": address, "language": language, **extra})

    async def publish(self, service: str, model, subject: str, *, envelope=None):
        """Publish ``model`` as the owning service would (or re-publish ``envelope`` as it is)."""
        envelope = envelope or registry.to_envelope(
            model, id=str(uuid.uuid4()), source=source(self.district, service), subject=subject,
            time=self.r.clock.now(), correlation_id=str(uuid.uuid4()))
        producer = new_producer(self.servers.kafka_bootstrap)
        await producer.start()
        try:
            key, headers, value = envelope.to_kafka()
            await (await producer.send(events_topic(self.district, service), key=key, headers=headers, value=value))
        finally:
            await producer.stop()
        return envelope

    async def deliveries(self, **query) -> list[dict]:
        response = await self.r.client.get(f"/{self.district}/deliveries", params=query)
        assert response.status_code == 200
        return response.json()["items"]

    async def deliveries_settled(self, **query) -> list[dict]:
        """The deliveries once none is still pending or sending (the SMTP reply lands before the record)."""
        async def settled():
            rows = await self.deliveries(**query)
            return rows if rows and all(d["status"] not in ("pending", "sending") for d in rows) else None
        return await eventually(settled, timeout=30)

    def event(self, model, **body):
        return model.model_validate({"district": self.district, "actor": SYSTEM.model_dump(),
                                     "occurred_at": self.r.clock.now().isoformat(), **body})


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def world(servers):
    clock = ManualClock()
    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    receiver = Receiver(clock)
    await receiver.start()
    district = new_district()
    await ensure_topics(servers.kafka_bootstrap, [events_topic(district, s) for s in ("proposals", "voting",
                                                                                       "oversight")])
    settings = NotifySettings(
        smtp_host="127.0.0.1", smtp_port=smtp.port, mail_from="notify@yishi.test", webhook_secret=SECRET.decode(),
        bulletin_board_urls=[receiver.url("/board")], max_attempts=MAX_ATTEMPTS, backoff_base_s=BACKOFF_BASE_S,
        backoff_max_s=BACKOFF_MAX_S, worker_interval_s=0.05, vote_reminder_lead_s=3600)
    try:
        async with running(spec(settings), servers, clock=clock, district=district) as r:
            yield World(r, mailbox, receiver, servers)
    finally:
        receiver.server.close()
        smtp.stop()


async def seat(world: World, council: str, *members: str) -> None:
    for n, member in enumerate(members):
        await world.publish("proposals", world.event(MemberSeated, council_id=council, seat_id=f"seat-{n}",
                                                     member_id=member), council)

    async def seated():
        # Seats travel under the council's key, notices under the proposal's: another
        # partition, so wait until the audience is known before the notice.
        return await world.r.ctx.pool.fetchval(
            "SELECT count(*) FROM council_members WHERE council_id = $1", council) == len(members)

    await eventually(seated, timeout=60)


async def test_email_reaches_each_member_in_their_language_and_the_board_gets_the_notice(world):
    await world.subscribe("m-en", "email", "m-en@example.cn", language="en")
    await world.subscribe("m-zh", "email", "m-zh@example.cn", language="zh-CN")
    await seat(world, "council-1", "m-en", "m-zh")
    await world.publish("proposals", world.event(ProposalRaised, proposal_id="p-1", council_id="council-1",
                                                 title="在3号院增设充电棚", summary="充电棚"), "p-1")
    ends = world.r.clock.now() + timedelta(days=7)
    await world.publish("proposals", world.event(ProposalPublished, proposal_id="p-1", council_id="council-1",
                                                 form="council_of_directors", notice_ends_at=ends.isoformat()), "p-1")

    async def both_mailed():
        return world.mailbox.to("m-en@example.cn") and world.mailbox.to("m-zh@example.cn")

    await eventually(both_mailed, timeout=60)
    [english] = world.mailbox.to("m-en@example.cn")
    [chinese] = world.mailbox.to("m-zh@example.cn")
    assert english["Subject"] == "Proposal published: 在3号院增设充电棚"
    assert english["Content-Language"] == "en" and english["From"] == "notify@yishi.test"
    assert "is on public notice until 2026-01-08 08:00" in english.get_content()
    assert chinese["Subject"] == "议题公示:在3号院增设充电棚"
    assert "公示期至 2026-01-08 08:00" in chinese.get_content()

    await eventually(lambda: _async(world.receiver.at("/board")))
    [board] = world.receiver.at("/board")
    assert board["verified"] and b"\\u" not in board["body"] and "议题公示".encode() in board["body"]

    # The mail server has the message before the worker records it as delivered: wait for the record.
    history = await world.deliveries_settled(recipient_id="m-en")
    assert [(d["template"], d["channel"], d["status"], d["attempts"]) for d in history] == [
        ("proposal.published", "email", "delivered", 1)]
    missing = await world.r.client.get(f"/{world.district}/deliveries/{uuid.uuid4()}")
    assert missing.status_code == 404
    other_district = await world.r.client.get(f"/zz-other/deliveries/{history[0]['delivery_id']}")
    assert other_district.status_code == 404


async def test_redelivered_source_event_sends_one_message(world):
    await world.subscribe("m-dup", "email", "m-dup@example.cn", language="en")
    await seat(world, "council-2", "m-dup")
    published = world.event(ProposalPublished, proposal_id="p-2", council_id="council-2",
                            form="council_of_directors", notice_ends_at=world.r.clock.now().isoformat())
    first = await world.publish("proposals", published, "p-2")
    await world.publish("proposals", None, "p-2", envelope=first)  # the same event, delivered again
    # Same key, same partition: once this later event is handled, so was the repeat.
    await world.publish("proposals", world.event(ProposalRaised, proposal_id="p-2-sentinel",
                                                 council_id="council-2", title="t", summary="s"), "p-2")

    async def sentinel_seen():
        return await world.r.ctx.pool.fetchval("SELECT true FROM proposals WHERE proposal_id = 'p-2-sentinel'")

    await eventually(sentinel_seen, timeout=60)
    await eventually(lambda: _async(world.mailbox.to("m-dup@example.cn")))
    history = await world.deliveries_settled(recipient_id="m-dup")
    assert [(d["status"], d["attempts"]) for d in history] == [("delivered", 1)]
    assert len(world.mailbox.to("m-dup@example.cn")) == 1


async def test_webhooks_are_signed_retried_with_backoff_and_dead_lettered(world):
    for name in ("ok", "flaky", "down"):
        await world.subscribe(f"sys-{name}", "webhook", world.receiver.url(f"/{name}"), kind="system",
                              language="en", event_types=["VoteClosed"])
    await world.publish("voting", world.event(
        VoteClosed, vote_id="vote-w", council_id="council-w", matter={"kind": "proposal", "id": "p-w"},
        tally={"in_favour": 5, "against": 1, "abstain": 0}, electorate_size=7, turnout_percent=85.7,
        quorum_met=True, outcome="adopted"), "vote-w")

    async def attempts(ok: int, flaky: int, down: int):
        got = tuple(len(world.receiver.at(p)) for p in ("/ok", "/flaky", "/down"))
        assert got == (ok, flaky, down), got
        return True

    async def recorded(n: int):
        """The failed attempts are recorded, not only received: a failure is timed (and its
        backoff counted from) when the worker records it, after the receiver saw it."""
        got = [max((d["attempts"] for d in await world.deliveries(recipient_id=who)), default=0)
               for who in ("sys-flaky", "sys-down")]
        assert got == [n, n], got
        return True

    await eventually(lambda: attempts(1, 1, 1), timeout=60)
    await eventually(lambda: recorded(1), timeout=30)
    for n in (2, 3):
        ceiling = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (n - 2))  # after failed attempt n - 1
        world.r.clock.advance(timedelta(seconds=ceiling / 2 - 1))
        await asyncio.sleep(0.3)  # several worker passes: the jittered backoff is at least half the ceiling
        await attempts(1, n - 1, n - 1)
        world.r.clock.advance(timedelta(seconds=ceiling / 2 + 1))
        await eventually(lambda: attempts(1, n, n), timeout=30)
        await eventually(lambda: recorded(n), timeout=30)

    async def settled():
        rows = {d["recipient_id"]: d for d in await world.deliveries(notification_id=notification)}
        assert {k: (v["status"], v["attempts"]) for k, v in rows.items()} == {
            "sys-ok": ("delivered", 1), "sys-flaky": ("delivered", 3), "sys-down": ("dead_lettered", 3),
            "board-1": ("delivered", 1)}  # a vote result is also a public notice
        return rows

    notification = (await world.deliveries(recipient_id="sys-down"))[0]["notification_id"]
    rows = await eventually(settled, timeout=30)
    assert [h["outcome"] for h in rows["sys-down"]["history"]] == ["failed", "failed", "dead_lettered"]
    assert rows["sys-down"]["history"][-1]["reason"] == "rejected_by_channel"

    requests = world.receiver.requests
    assert all(r["verified"] for r in requests)
    flaky = world.receiver.at("/flaky")
    assert [r["status"] for r in flaky] == [503, 503, 200]  # exactly one successful delivery
    assert {r["headers"]["idempotency-key"] for r in flaky} == {rows["sys-flaky"]["delivery_id"]}
    world.r.clock.advance(timedelta(days=1))
    await asyncio.sleep(0.3)
    await attempts(1, 3, 3)  # nothing is ever sent again


async def test_reminder_before_closing_goes_only_to_electors_who_have_not_voted(world):
    electors = ["e-a", "e-b", "e-c"]
    for e in electors:
        await world.subscribe(e, "email", f"{e}@example.cn", language="en")
    closes_at = world.r.clock.now() + timedelta(days=2)
    await world.publish("voting", world.event(
        VoteOpened, vote_id="vote-r", council_id="council-r", matter={"kind": "proposal", "id": "p-r"},
        terms={"question": "Build the shed?", "electorate": {"kind": "council_members", "scope_id": "council-r",
                                                             "size": 3, "roll": electors},
               "method": "online", "majority": "simple", "quorum_percent": 50, "secrecy": "secret",
               "closes_at": closes_at.isoformat()}), "vote-r")
    await world.publish("voting", world.event(BallotAccepted, vote_id="vote-r", ballot_id="b-1",
                                              actor={"id": "e-b", "role": "council_member"}), "vote-r")

    def subjects(e):
        return [m["Subject"] for m in world.mailbox.to(f"{e}@example.cn")]

    async def opened_and_voted():
        assert all(subjects(e) == ["Vote open: Build the shed?"] for e in electors)
        return await world.r.ctx.pool.fetchval("SELECT true FROM ballots WHERE vote_id = 'vote-r'")

    await eventually(opened_and_voted, timeout=60)
    world.r.clock.set(closes_at - timedelta(minutes=30))  # inside the one-hour reminder window

    async def reminded():
        assert subjects("e-a")[1:] == subjects("e-c")[1:] == ["Vote closing soon: Build the shed?"]
        return True

    await eventually(reminded, timeout=30)
    assert await world.r.ctx.pool.fetchval("SELECT reminded FROM votes WHERE vote_id = 'vote-r'")
    assert subjects("e-b") == ["Vote open: Build the shed?"]
    templates = [d["template"] for d in await world.deliveries(recipient_id="e-b")]
    assert templates == ["vote.opened"]


async def _async(value):
    return value


async def test_a_reminder_reaches_its_people_by_the_directory_or_is_recorded_as_reaching_no_one(world):

    tag = uuid.uuid4().hex[:6]
    task, org, staff, supervisor = f"task-{tag}", f"org-{tag}", f"staff-{tag}", f"supervisor-{tag}"
    refused = await world.r.client.post(
        f"/{world.district}/commands/SetDefaultContact",
        json={"district": world.district, "actor": {"id": staff, "role": "implementer"}, "party_id": staff,
              "channel": "webhook", "address": world.receiver.url("/ok")})
    assert (refused.status_code, refused.json()["reason"]) == (403, "not_authorised")
    # Only the implementer organisation is in the district's directory; nobody subscribed.
    await world.command("SetDefaultContact", {"party_id": org, "channel": "webhook",
                                              "address": world.receiver.url("/ok")})
    contact = (await world.r.client.get(f"/{world.district}/default-contacts/{org}")).json()
    assert (contact["channel"], contact["address"]) == ("webhook", world.receiver.url("/ok"))
    await world.publish("oversight", world.event(
        TaskAssigned, task_id=task, resolution_id=f"res-{tag}", description="建设", acceptance_standards=["可用"],
        implementer={"kind": "social_organisation", "id": org, "name": "绿色家园"},
        due_at=(world.r.clock.now() + timedelta(days=30)).isoformat()), task)
    await world.publish("oversight", world.event(TaskAccepted, task_id=task, resolution_id=f"res-{tag}",
                                                 actor={"id": staff, "role": "implementer"}), task)
    for step, recipient in ((1, staff), (2, supervisor)):
        await world.publish("oversight", world.event(
            ReminderDue, reminder_id=f"rem-{tag}-{step}", task_id=task, resolution_id=f"res-{tag}", kind="stalled",
            due_at=world.r.clock.now().isoformat(), recipient_id=recipient, escalation_step=step), task)

    # The staff member is reached at the organisation's address, as the recipient.
    (delivered,) = await world.deliveries_settled(recipient_id=staff)
    assert (delivered["status"], delivered["channel"], delivered["address"], delivered["regarding_type"]) == (
        "delivered", "webhook", world.receiver.url("/ok"), "ReminderDue")
    assert await world.deliveries(recipient_id=supervisor) == []

    async def failures() -> list[dict]:
        records = await read_whole_topic(world.servers.kafka_bootstrap, events_topic(world.district, "notify"))
        envelopes = [Envelope.from_kafka(r.headers, r.value, r.key) for r in records]
        return [e.payload() for e in envelopes if e.type == "NotificationFailed"
                and e.payload()["recipient_id"] == supervisor]
    (failed,) = await eventually(failures, timeout=60)
    assert (failed["reason"], failed.get("channel"), failed["will_retry"]) == ("no_recipient", None, False)
