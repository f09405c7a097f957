"""Read models of the notify service, in its own schema.

``subscriptions``, ``default_contacts`` and ``deliveries`` are written from the
aggregates in the same transaction as their events (:func:`project`, the command bus's
hook, and the delivery worker's ``save_delivery``). The audience
tables (council members, proposals, votes and ballots, tasks and their people) are
written by the consumers of other services' events, inside the inbox transaction.
The HTTP API's queries are functions here too (``-- queries``), so ``api.py`` holds no SQL.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import datetime

import asyncpg

from services.notify.domain import DefaultContact, Delivery, Subscription
from yishi.commands import Saved

# Tables: services/notify/migrations (Alembic branch notify).


async def project(conn: asyncpg.Connection, saved: Saved) -> None:
    """The rows of what a command saved: its subscriptions, directory entries and deliveries."""
    for aggregate in saved.aggregates:
        if isinstance(aggregate, Subscription):
            await save_subscription(conn, aggregate)
        elif isinstance(aggregate, DefaultContact):
            await save_default_contact(conn, aggregate)
        elif isinstance(aggregate, Delivery):
            await save_delivery(conn, aggregate)


async def save_subscription(conn: asyncpg.Connection, sub: Subscription) -> None:
    """Write the subscription's current state."""
    t = sub.terms
    await conn.execute(
        """
        INSERT INTO subscriptions (district, subscription_id, subscriber_kind, subscriber_id, channel, address,
            language, event_types, council_ids, proposal_ids, quiet_hours, active)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
        ON CONFLICT (district, subscription_id) DO UPDATE SET active = EXCLUDED.active
        """,
        sub.district, sub.subscription_id, t["subscriber"]["kind"], t["subscriber"]["id"], t["channel"],
        t["address"], t["language"], t["event_types"], t["council_ids"], t["proposal_ids"],
        json.dumps(t["quiet_hours"]) if t.get("quiet_hours") else None, sub.active,
    )


async def save_default_contact(conn: asyncpg.Connection, contact: DefaultContact) -> None:
    """Write the party's directory entry (or take a removed one out)."""
    if not contact.active:
        await conn.execute("DELETE FROM default_contacts WHERE district = $1 AND party_id = $2",
                           contact.district, contact.party_id)
        return
    t = contact.terms
    await conn.execute(
        "INSERT INTO default_contacts VALUES ($1, $2, $3, $4, $5) ON CONFLICT (district, party_id) DO UPDATE"
        " SET channel = EXCLUDED.channel, address = EXCLUDED.address, language = EXCLUDED.language",
        contact.district, contact.party_id, t["channel"], t["address"], t["language"])


async def save_delivery(conn: asyncpg.Connection, d: Delivery) -> None:
    """Write the delivery's current state (the worker picks due rows from here)."""
    await conn.execute(
        """
        INSERT INTO deliveries (delivery_id, district, notification_id, recipient_kind, recipient_id, channel,
            address, language, template, regarding_type, regarding_subject, status, attempts, requested_at,
            next_attempt_at, claimed_until, expires_at, history)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
        ON CONFLICT (delivery_id) DO UPDATE SET status = EXCLUDED.status, attempts = EXCLUDED.attempts,
            next_attempt_at = EXCLUDED.next_attempt_at, claimed_until = EXCLUDED.claimed_until,
            history = EXCLUDED.history
        """,
        d.id, d.district, d.notification_id, d.recipient_kind, d.recipient_id, d.channel, d.address, d.language,
        d.template, d.regarding[0] if d.regarding else None, d.regarding[1] if d.regarding else None,
        str(d.status), d.attempts, d.requested_at, d.next_attempt_at, d.claimed_until, d.expires_at,
        json.dumps(d.history),
    )


async def due_deliveries(pool: asyncpg.Pool, now: datetime, limit: int) -> list[asyncpg.Record]:
    """Deliveries a worker may claim now: pending and due, or claimed with a lapsed lease."""
    return await pool.fetch(
        """
        SELECT delivery_id, channel FROM deliveries
        WHERE (status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= $1))
           OR (status = 'sending' AND claimed_until <= $1)
        ORDER BY next_attempt_at NULLS FIRST LIMIT $2
        """, now, limit)


# -- queries ---------------------------------------------------------------------


async def subscription(pool: asyncpg.Pool, district: str, subscription_id: str) -> asyncpg.Record | None:
    """One subscription of ``district``, or ``None``."""
    return await pool.fetchrow("SELECT * FROM subscriptions WHERE district = $1 AND subscription_id = $2",
                               district, subscription_id)


async def default_contact(pool: asyncpg.Pool, district: str, party_id: str) -> asyncpg.Record | None:
    """A party's default contact in ``district``, or ``None``."""
    return await pool.fetchrow("SELECT * FROM default_contacts WHERE district = $1 AND party_id = $2",
                               district, party_id)


async def delivery(pool: asyncpg.Pool, district: str, delivery_id: uuid.UUID) -> asyncpg.Record | None:
    """One delivery of ``district``, or ``None``."""
    return await pool.fetchrow("SELECT * FROM deliveries WHERE district = $1 AND delivery_id = $2",
                               district, delivery_id)


async def find_subscriptions(pool: asyncpg.Pool, district: str, subscriber_id: str, *, after: str | None,
                             limit: int) -> list[asyncpg.Record]:
    """A subscriber's subscriptions, active and cancelled, by id: at most ``limit`` after ``after``."""
    return await pool.fetch(
        "SELECT * FROM subscriptions WHERE district = $1 AND subscriber_id = $2 "
        "AND ($3::text IS NULL OR subscription_id > $3) ORDER BY subscription_id LIMIT $4",
        district, subscriber_id, after, limit)


async def find_deliveries(pool: asyncpg.Pool, district: str, *, recipient_id: str | None,
                          notification_id: str | None, status: str | None,
                          after: tuple[datetime, uuid.UUID] | None, limit: int) -> list[asyncpg.Record]:
    """Deliveries newest first (then by id), optionally to one recipient, of one
    notification or in one status: at most ``limit`` after the (requested_at, delivery_id)
    ``after``."""
    return await pool.fetch(
        """
        SELECT * FROM deliveries WHERE district = $1
          AND ($2::text IS NULL OR recipient_id = $2) AND ($3::text IS NULL OR notification_id = $3)
          AND ($4::text IS NULL OR status = $4)
          AND ($5::timestamptz IS NULL OR requested_at < $5 OR (requested_at = $5 AND delivery_id > $6))
        ORDER BY requested_at DESC, delivery_id LIMIT $7
        """, district, recipient_id, notification_id, status, after[0] if after else None,
        after[1] if after else None, limit)


# -- audiences -------------------------------------------------------------------


# Directory entries read in the shape of subscription rows (``targets_from``), reached as
# a person: no quiet hours, no filters.
_DIRECTORY_ROW = ("'person' AS subscriber_kind, {who} AS subscriber_id, channel, address, language, "
                  "NULL::jsonb AS quiet_hours")


async def contacts_of(conn: asyncpg.Connection, district: str, person_ids: Iterable[str]) -> list[asyncpg.Record]:
    """Every active channel subscription of these people (or organisations); for one
    without any, its entry in the district's directory of default contacts."""
    return await conn.fetch(
        f"""
        SELECT subscriber_kind, subscriber_id, channel, address, language, quiet_hours FROM (
            SELECT s.subscriber_kind, s.subscriber_id, s.channel, s.address, s.language, s.quiet_hours,
                   s.subscription_id AS k FROM subscriptions s
            WHERE s.district = $1 AND s.active AND s.subscriber_id = ANY($2::text[])
            UNION ALL
            SELECT {_DIRECTORY_ROW.format(who="c.party_id")}, '' AS k FROM default_contacts c
            WHERE c.district = $1 AND c.party_id = ANY($2::text[]) AND NOT EXISTS (
                SELECT 1 FROM subscriptions s WHERE s.district = $1 AND s.active AND s.subscriber_id = c.party_id)
        ) found ORDER BY subscriber_id, k
        """, district, list(person_ids))


async def organisation_contact(conn: asyncpg.Connection, district: str, task_id: str,
                               person_id: str) -> list[asyncpg.Record]:
    """The directory entry of the organisation ``person_id`` accepted ``task_id`` for,
    addressed to the person: how a reminder reaches an implementer's staff who neither
    subscribed nor has an entry of their own."""
    return await conn.fetch(
        f"""
        SELECT {_DIRECTORY_ROW.format(who="$3::text")} FROM default_contacts c
        JOIN task_people i ON i.district = c.district AND i.person_id = c.party_id AND i.role = 'implementer'
        WHERE c.district = $1 AND i.task_id = $2 AND EXISTS (
            SELECT 1 FROM task_people s WHERE s.district = $1 AND s.task_id = $2 AND s.person_id = $3
              AND s.role = 'implementer_staff')
        """, district, task_id, person_id)


async def followers_of(conn: asyncpg.Connection, district: str, event_type: str, council_id: str | None,
                       proposal_id: str | None) -> list[asyncpg.Record]:
    """Active subscriptions that follow ``event_type`` within their council and proposal filters."""
    return await conn.fetch(
        """
        SELECT * FROM subscriptions WHERE district = $1 AND active AND $2 = ANY(event_types)
          AND (cardinality(council_ids) = 0 OR $3 = ANY(council_ids))
          AND (cardinality(proposal_ids) = 0 OR $4 = ANY(proposal_ids))
        ORDER BY subscription_id
        """, district, event_type, council_id, proposal_id)


async def system_subscriptions(conn: asyncpg.Connection, district: str,
                               system_ids: Iterable[str]) -> list[asyncpg.Record]:
    """The active subscriptions of these district systems."""
    return await conn.fetch(
        "SELECT * FROM subscriptions WHERE district = $1 AND active AND subscriber_kind = 'system' "
        "AND subscriber_id = ANY($2::text[]) ORDER BY subscription_id", district, list(system_ids))


async def council_members(conn: asyncpg.Connection, district: str, council_id: str) -> list[str]:
    rows = await conn.fetch("SELECT member_id FROM council_members WHERE district = $1 AND council_id = $2 "
                            "ORDER BY member_id", district, council_id)
    return [r["member_id"] for r in rows]


async def electors_who_have_not_voted(conn: asyncpg.Connection, district: str, vote_id: str) -> list[str]:
    """The vote's roll (or its council's members when it has none) minus those who voted."""
    vote = await conn.fetchrow("SELECT council_id, roll FROM votes WHERE district = $1 AND vote_id = $2",
                               district, vote_id)
    electors = list(vote["roll"]) if vote["roll"] is not None else await council_members(
        conn, district, vote["council_id"])
    voted = {r["voter_id"] for r in await conn.fetch(
        "SELECT voter_id FROM ballots WHERE district = $1 AND vote_id = $2", district, vote_id)}
    return [e for e in electors if e not in voted]


async def votes_due_for_reminder(pool: asyncpg.Pool, due_before: datetime) -> list[asyncpg.Record]:
    """Open votes closing before ``due_before`` whose non-voters were not reminded yet, soonest first."""
    return await pool.fetch("SELECT district, vote_id FROM votes WHERE NOT closed AND NOT reminded AND closes_at <= $1"
                            " ORDER BY closes_at, district, vote_id", due_before)


async def sessions_due_for_reminder(pool: asyncpg.Pool, due_before: datetime) -> list[asyncpg.Record]:
    """Sessions not yet under way, starting before ``due_before``, whose people were not reminded yet, soonest
    first."""
    return await pool.fetch("SELECT district, session_id FROM sessions WHERE NOT closed AND NOT reminded"
                            " AND starts_at <= $1 ORDER BY starts_at, district, session_id", due_before)


async def session_invitees(conn: asyncpg.Connection, district: str, session_id: str) -> list[str]:
    """Who was invited to speak at a session, by id."""
    rows = await conn.fetch("SELECT person_id FROM session_invitees WHERE district = $1 AND session_id = $2"
                            " ORDER BY person_id", district, session_id)
    return [r["person_id"] for r in rows]


async def task_audience(conn: asyncpg.Connection, district: str, task_id: str) -> list[str]:
    """The implementer's people on a task and the supervisors of its resolution."""
    rows = await conn.fetch(
        """
        SELECT person_id FROM task_people WHERE district = $1 AND task_id = $2
        UNION
        SELECT s.person_id FROM supervisors s JOIN task_people t
          ON t.district = s.district AND t.resolution_id = s.resolution_id
        WHERE t.district = $1 AND t.task_id = $2
        ORDER BY 1
        """, district, task_id)
    return [r["person_id"] for r in rows]
