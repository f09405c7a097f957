"""Who a notice reaches, and how: the one small interface notify's handlers ask.

:class:`Audience` answers from notify's read models: its own (subscriptions and the
district's directory of default contacts) and its copies of other services' facts
(councils' members, tasks' people and their resolutions' inspectors). It only looks
things up; the rules of who is addressed (a council's members, a subscription before the
directory, an implementer's staff reached at the organisation's entry) are the handlers'
(:mod:`services.notify.application`). :class:`PostgresAudience` reads the tables in the
command's transaction; :class:`InMemoryAudience` keeps the same in memory, so handlers run
in unit tests without PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg

from contracts.notify import Channel, Language, RecipientKind
from services.notify import projections
from services.notify.domain import DefaultContact, Subscription
from yishi.commands import Saved


@dataclass(frozen=True)
class Target:
    """One recipient on one channel and address, in one language."""

    kind: RecipientKind
    recipient_id: str
    channel: Channel
    address: str
    language: Language
    quiet_hours: Mapping | None = None


class Audience(Protocol):
    """The lookups of a notice's fan-out, asked on the command's connection ``conn``."""

    async def council_members(self, conn: Any, district: str, council_id: str) -> list[str]:
        """The council's seated members, by id."""

    async def task_audience(self, conn: Any, district: str, task_id: str) -> list[str]:
        """The implementer's people on a task and the inspectors of its resolution, by id."""

    async def contacts_of(self, conn: Any, district: str, party_ids: Iterable[str]) -> list[Target]:
        """Every active subscription of these people (or organisations); for one without
        any, its entry in the district's directory of default contacts (as a person)."""

    async def systems(self, conn: Any, district: str, system_ids: Iterable[str]) -> list[Target]:
        """The active subscriptions of these district systems."""

    async def followers_of(self, conn: Any, district: str, event_type: str, council_id: str | None,
                           proposal_id: str | None) -> list[Target]:
        """Active subscriptions that follow ``event_type`` within their council and proposal filters."""

    async def organisation_contact(self, conn: Any, district: str, task_id: str, person_id: str) -> list[Target]:
        """The directory entry of the organisation ``person_id`` accepted ``task_id`` for,
        addressed to the person."""


def targets_from(rows: Iterable[Mapping[str, Any]]) -> list[Target]:
    """Targets from subscription rows (or directory rows in their shape)."""
    return [Target(RecipientKind(r["subscriber_kind"]), r["subscriber_id"], Channel(r["channel"]), r["address"],
                   Language(r["language"]), json.loads(r["quiet_hours"]) if r["quiet_hours"] else None)
            for r in rows]


class PostgresAudience:
    """:class:`Audience` from notify's tables (:mod:`services.notify.projections`)."""

    async def council_members(self, conn: asyncpg.Connection, district: str, council_id: str) -> list[str]:
        return await projections.council_members(conn, district, council_id)

    async def task_audience(self, conn: asyncpg.Connection, district: str, task_id: str) -> list[str]:
        return await projections.task_audience(conn, district, task_id)

    async def contacts_of(self, conn: asyncpg.Connection, district: str, party_ids: Iterable[str]) -> list[Target]:
        return targets_from(await projections.contacts_of(conn, district, party_ids))

    async def systems(self, conn: asyncpg.Connection, district: str, system_ids: Iterable[str]) -> list[Target]:
        return targets_from(await projections.system_subscriptions(conn, district, system_ids))

    async def followers_of(self, conn: asyncpg.Connection, district: str, event_type: str, council_id: str | None,
                           proposal_id: str | None) -> list[Target]:
        return targets_from(await projections.followers_of(conn, district, event_type, council_id, proposal_id))

    async def organisation_contact(self, conn: asyncpg.Connection, district: str, task_id: str,
                                   person_id: str) -> list[Target]:
        return targets_from(await projections.organisation_contact(conn, district, task_id, person_id))


@dataclass
class TaskPeople:
    """What :class:`InMemoryAudience` knows of one task: who implements it, who accepted it
    for the implementer, and who inspects its resolution."""

    implementer: str | None = None
    staff: set[str] = field(default_factory=set)
    inspectors: set[str] = field(default_factory=set)


@dataclass
class InMemoryAudience:
    """:class:`Audience` in memory, answering as :class:`PostgresAudience` does.

    Subscriptions and directory entries come from what the handlers save (:meth:`project`,
    the bus's hook); the copies of other services' facts are set directly
    (``councils[district, council_id]``, ``tasks[district, task_id]``)."""

    councils: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    tasks: dict[tuple[str, str], TaskPeople] = field(default_factory=dict)
    subscriptions: dict[tuple[str, str], Subscription] = field(default_factory=dict)
    directory: dict[tuple[str, str], dict] = field(default_factory=dict)

    async def project(self, conn: Any, saved: Saved) -> None:
        """Keep the subscriptions and the directory of what a command saved."""
        for aggregate in saved.aggregates:
            if isinstance(aggregate, Subscription):
                self.subscriptions[aggregate.district, aggregate.subscription_id] = aggregate
            elif isinstance(aggregate, DefaultContact):
                key = (aggregate.district, aggregate.party_id)
                if aggregate.active:
                    self.directory[key] = dict(aggregate.terms)
                else:
                    self.directory.pop(key, None)

    def _active(self, district: str) -> list[dict]:
        """The district's active subscriptions' terms, by subscription id."""
        return [s.terms for (d, _), s in sorted(self.subscriptions.items()) if d == district and s.active]

    async def council_members(self, conn: Any, district: str, council_id: str) -> list[str]:
        return sorted(set(self.councils.get((district, council_id), ())))

    async def task_audience(self, conn: Any, district: str, task_id: str) -> list[str]:
        task = self.tasks.get((district, task_id))
        if task is None:
            return []
        people = {task.implementer} if task.implementer else set()
        return sorted(people | task.staff | task.inspectors)

    async def contacts_of(self, conn: Any, district: str, party_ids: Iterable[str]) -> list[Target]:
        found: list[Target] = []
        for party in sorted(set(party_ids)):
            own = [_target(t) for t in self._active(district) if t["subscriber"]["id"] == party]
            entry = self.directory.get((district, party))
            found += own or ([_directory_target(party, entry)] if entry else [])
        return found

    async def systems(self, conn: Any, district: str, system_ids: Iterable[str]) -> list[Target]:
        wanted = set(system_ids)
        return [_target(t) for t in self._active(district)
                if t["subscriber"]["kind"] == RecipientKind.SYSTEM and t["subscriber"]["id"] in wanted]

    async def followers_of(self, conn: Any, district: str, event_type: str, council_id: str | None,
                           proposal_id: str | None) -> list[Target]:
        return [_target(t) for t in self._active(district) if event_type in t["event_types"]
                and (not t["council_ids"] or council_id in t["council_ids"])
                and (not t["proposal_ids"] or proposal_id in t["proposal_ids"])]

    async def organisation_contact(self, conn: Any, district: str, task_id: str, person_id: str) -> list[Target]:
        task = self.tasks.get((district, task_id))
        if task is None or task.implementer is None or person_id not in task.staff:
            return []
        entry = self.directory.get((district, task.implementer))
        return [_directory_target(person_id, entry)] if entry else []


def _target(terms: Mapping[str, Any]) -> Target:
    return Target(RecipientKind(terms["subscriber"]["kind"]), terms["subscriber"]["id"], Channel(terms["channel"]),
                  terms["address"], Language(terms["language"]), terms.get("quiet_hours") or None)


def _directory_target(recipient_id: str, entry: Mapping[str, Any]) -> Target:
    """A directory entry reached as a person: no quiet hours, no filters."""
    return Target(RecipientKind.PERSON, recipient_id, Channel(entry["channel"]), entry["address"],
                  Language(entry["language"]))
