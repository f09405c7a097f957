"""The in-memory audience the handler unit tests use answers as the PostgreSQL one does:
the same commands through notify's bus on each (the tables kept by the bus's project
hook, the in-memory one by its own), the same copies of other services' facts, then every
question of :class:`services.notify.audience.Audience` asked of both."""

from __future__ import annotations

import pytest

from contracts.common import Actor, CommandAccepted, Role
from contracts.notify import Recipient, SetDefaultContact, Subscribe, Unsubscribe
from services.notify.application import Notifier, build_bus
from services.notify.audience import InMemoryAudience, PostgresAudience, TaskPeople
from services.notify.settings import NotifySettings
from services.notify.templates import default_templates
from yishi import migrations
from yishi.auth import Principal
from yishi.clock import ManualClock
from yishi.memory import MemoryEventStore
from yishi.repository import Repository
from yishi.store import EventStore

D = "gulou"
WORKER = Actor(id="worker-1", role=Role.COMMUNITY_WORKER)
QUIET = {"start": "22:00", "end": "07:00", "timezone": "Asia/Shanghai"}


def subscribe(subscriber: str, channel: str = "email", *, kind: str = "person", **extra) -> Subscribe:
    address = f"{subscriber}@example.cn" if channel == "email" else f"https://hooks.example/{subscriber}"
    return Subscribe(district=D, actor=WORKER, subscription_id=f"s-{subscriber}-{channel}",
                     subscriber=Recipient(kind=kind, id=subscriber), channel=channel, address=address, **extra)


def contact(party: str, channel: str, address: str, language: str = "zh-CN") -> SetDefaultContact:
    return SetDefaultContact(district=D, actor=WORKER, party_id=party, channel=channel, address=address,
                             language=language)


COMMANDS = [
    subscribe("m-1", language="en", quiet_hours=QUIET),
    subscribe("m-1", "webhook"),
    subscribe("m-2", event_types=["ProposalPublished"], council_ids=["c-1"]),
    subscribe("m-3", event_types=["ProposalPublished", "VoteClosed"], proposal_ids=["p-1"]),
    subscribe("m-gone", event_types=["VoteClosed"]),
    Unsubscribe(district=D, actor=WORKER, subscription_id="s-m-gone-email"),
    subscribe("sys-1", "webhook", kind="system", event_types=["VoteClosed"]),
    contact("m-gone", "webhook", "https://hooks.example/m-gone-desk"),
    contact("m-1", "email", "m-1-desk@example.cn"),  # subscribed: the entry is not used
    contact("org-1", "email", "office@org-1.cn", "en"),
    contact("m-dir", "webhook", "https://hooks.example/m-dir"),
]
QUESTIONS = {
    "members": lambda a, c: a.council_members(c, D, "c-1"),
    "members of no council": lambda a, c: a.council_members(c, D, "c-none"),
    "task audience": lambda a, c: a.task_audience(c, D, "task-1"),
    "contacts": lambda a, c: a.contacts_of(c, D, ["m-dir", "m-1", "m-gone", "m-none", "org-1", "sys-1"]),
    "contacts elsewhere": lambda a, c: a.contacts_of(c, "other", ["m-1", "m-dir"]),
    "systems": lambda a, c: a.systems(c, D, ["sys-1", "m-1"]),
    "followers in c-1 of p-1": lambda a, c: a.followers_of(c, D, "ProposalPublished", "c-1", "p-1"),
    "followers in c-2": lambda a, c: a.followers_of(c, D, "ProposalPublished", "c-2", None),
    "followers without filters": lambda a, c: a.followers_of(c, D, "VoteClosed", None, None),
    "organisation for its staff": lambda a, c: a.organisation_contact(c, D, "task-1", "staff-1"),
    "organisation for an inspector": lambda a, c: a.organisation_contact(c, D, "task-1", "sup-1"),
}


@pytest.fixture
async def audiences(servers, schema_name, pool):
    await migrations.upgrade(servers.database_url, schema_name, migrations.locations("notify"))  # notify's tables
    memory = InMemoryAudience()
    settings = NotifySettings(webhook_secret="audience")
    channels = ("email", "webhook", "notice_board")
    clock = ManualClock()
    buses = [build_bus(Repository(EventStore(pool)), clock,
                       Notifier(PostgresAudience(), default_templates(), settings, channels)),
             build_bus(Repository(MemoryEventStore()), clock,
                       Notifier(memory, default_templates(), settings, channels), project=memory.project)]
    for n, command in enumerate(COMMANDS):
        for bus in buses:
            reply = await bus.dispatch(command, command_id=f"cmd-{n}", correlation_id=f"cmd-{n}",
                                       principal=Principal.of_actor(WORKER, D, acts_for=["*"]))
            assert isinstance(reply, CommandAccepted), reply
    # The copies of other services' facts, as notify's consumers keep them.
    await pool.executemany("INSERT INTO council_members VALUES ($1, $2, $3)",
                           [(D, "c-1", m) for m in ("m-dir", "m-1", "m-none")])
    await pool.executemany("INSERT INTO task_people VALUES ($1, $2, $3, $4, $5)",
                           [(D, "task-1", "res-1", "org-1", "implementer"),
                            (D, "task-1", "res-1", "staff-1", "implementer_staff")])
    await pool.execute("INSERT INTO supervisors VALUES ($1, $2, $3)", D, "res-1", "sup-1")
    memory.councils[D, "c-1"] = ["m-dir", "m-1", "m-none"]
    memory.tasks[D, "task-1"] = TaskPeople(implementer="org-1", staff={"staff-1"}, inspectors={"sup-1"})
    async with pool.acquire() as conn:
        yield conn, memory


async def test_the_in_memory_audience_answers_every_question_as_the_tables_do(audiences):
    conn, memory = audiences
    answers = {name: (await ask(PostgresAudience(), conn), await ask(memory, None))
               for name, ask in QUESTIONS.items()}
    assert {name: tables for name, (tables, _) in answers.items()} == {
        name: in_memory for name, (_, in_memory) in answers.items()}
    # And the answers are worth comparing: each kind of entry is in them.
    contacts = answers["contacts"][0]
    assert [(t.recipient_id, t.address) for t in contacts] == [
        ("m-1", "m-1@example.cn"), ("m-1", "https://hooks.example/m-1"), ("m-dir", "https://hooks.example/m-dir"),
        ("m-gone", "https://hooks.example/m-gone-desk"), ("org-1", "office@org-1.cn"),
        ("sys-1", "https://hooks.example/sys-1")]
    assert contacts[0].quiet_hours == {"start": "22:00:00", "end": "07:00:00", "timezone": "Asia/Shanghai"}
    assert answers["task audience"][0] == ["org-1", "staff-1", "sup-1"]
    assert [t.recipient_id for t in answers["followers in c-1 of p-1"][0]] == ["m-2", "m-3"]
    assert [(t.recipient_id, t.address) for t in answers["organisation for its staff"][0]] == [
        ("staff-1", "office@org-1.cn")]
