"""The portal's read model, in its own schema: a copy of the public facts its pages show.

Written only by the consumers (:mod:`services.portal.consumers`), inside the inbox
transaction, one row per event keyed by the event's id; read by the queries below, so
``api.py`` holds no SQL. What a row keeps is the event's body less what no public page
may show (:data:`WITHHELD`), so a page cannot leak it whatever its template does.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import BaseModel

from contracts.envelope import Envelope

# Tables: services/portal/migrations (Alembic branch portal).

#: Fields never copied: the voters' roll (residents' ids, the link from a person to a vote),
#: a closed open vote's ballots (who chose what) and who attended a session (only counted).
#: A secret vote's events carry no choice.
WITHHELD: dict[str, Any] = {
    "VoteOpened": {"terms": {"electorate": {"roll"}}},
    "VoteRequested": {"terms": {"electorate": {"roll"}}},
    "VoteClosed": {"ballots"},
    "AttendanceRecorded": {"person_id", "proxy_for"},
}

_KEYS = ("council_id", "community_id", "proposal_id", "vote_id", "resolution_id", "task_id")


def keys_of(model: BaseModel) -> dict[str, str | None]:
    """The ids a page selects the event by: its own fields of those names; a vote's matter
    when it is a proposal; a council's area (the community it serves)."""
    keys = {k: getattr(model, k, None) for k in _KEYS}
    matter = getattr(model, "matter", None)
    if matter is not None and matter.kind == "proposal":
        keys["proposal_id"] = matter.id
    if type(model).__name__ == "CouncilFormed":
        keys["community_id"] = model.area_id
    return keys


async def record(conn: asyncpg.Connection, model: BaseModel, envelope: Envelope) -> None:
    """Keep ``model``'s public fact (once: a redelivery writes nothing)."""
    body = model.model_dump(mode="json", exclude=WITHHELD.get(envelope.type))
    keys = keys_of(model)
    await conn.execute(
        """
        INSERT INTO facts (district, event_id, type, occurred_at, actor_id, actor_role, council_id, community_id,
            proposal_id, vote_id, resolution_id, task_id, body)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT DO NOTHING
        """, model.district, envelope.id, envelope.type, model.occurred_at, model.actor.id, str(model.actor.role),
        *(keys[k] for k in _KEYS), json.dumps(body))


# -- queries ---------------------------------------------------------------------

Fact = dict[str, Any]


def _facts(rows: list[asyncpg.Record]) -> list[Fact]:
    return [{**dict(r), "body": json.loads(r["body"])} for r in rows]


_COLUMNS = "event_id, type, occurred_at, actor_id, actor_role, council_id, community_id, proposal_id, vote_id, " \
           "resolution_id, task_id, body"
_ORDER = "ORDER BY occurred_at, event_id"


async def community_facts(pool: asyncpg.Pool, district: str, community_id: str) -> list[Fact]:
    """Everything a community's roadmap is drawn from: the councils serving it, its funds,
    its resolutions (registered for it, or by one of its councils when they name no
    community) and every fact of those resolutions."""
    return _facts(await pool.fetch(
        f"""
        WITH councils AS (
            SELECT council_id FROM facts WHERE district = $1 AND type = 'CouncilFormed' AND community_id = $2),
        resolutions AS (
            SELECT resolution_id FROM facts WHERE district = $1 AND type = 'ResolutionRegistered'
              AND (community_id = $2 OR (community_id IS NULL AND council_id IN (SELECT council_id FROM councils))))
        SELECT {_COLUMNS} FROM facts WHERE district = $1 AND (
            (type IN ('CouncilFormed', 'FundEstablished') AND community_id = $2)
            OR resolution_id IN (SELECT resolution_id FROM resolutions))
        {_ORDER}
        """, district, community_id))


async def resolution_facts(pool: asyncpg.Pool, district: str, resolution_id: str) -> list[Fact]:
    """A resolution's facts and those of the proposal it came from (its raising, seconds,
    objections, statements, votes and decision)."""
    return _facts(await pool.fetch(
        f"""
        WITH proposal AS (
            SELECT proposal_id FROM facts WHERE district = $1 AND type = 'ResolutionRegistered'
              AND resolution_id = $2)
        SELECT {_COLUMNS} FROM facts WHERE district = $1
          AND (resolution_id = $2 OR proposal_id IN (SELECT proposal_id FROM proposal))
        {_ORDER}
        """, district, resolution_id))


async def notice_facts(pool: asyncpg.Pool, district: str, now: datetime) -> list[Fact]:
    """The facts of the proposals whose last publication's notice ends after ``now`` (the
    candidates for the notice page; :func:`services.portal.views.notices` decides)."""
    return _facts(await pool.fetch(
        f"""
        WITH published AS (
            SELECT DISTINCT proposal_id FROM facts WHERE district = $1 AND type = 'ProposalPublished'
              AND (body->>'notice_ends_at')::timestamptz > $2)
        SELECT {_COLUMNS} FROM facts WHERE district = $1 AND proposal_id IN (SELECT proposal_id FROM published)
        {_ORDER}
        """, district, now))


async def community_index_facts(pool: asyncpg.Pool, district: str) -> list[Fact]:
    """The facts that name the district's communities: councils, funds and resolutions."""
    return _facts(await pool.fetch(
        f"SELECT {_COLUMNS} FROM facts WHERE district = $1 AND community_id IS NOT NULL "
        f"AND type IN ('CouncilFormed', 'FundEstablished', 'ResolutionRegistered') {_ORDER}", district))


async def vote_facts(pool: asyncpg.Pool, district: str, vote_id: str | None = None) -> list[Fact]:
    """The opening and closing of votes (all of the district's, or one)."""
    return _facts(await pool.fetch(
        f"SELECT {_COLUMNS} FROM facts WHERE district = $1 AND type IN ('VoteOpened', 'VoteClosed') "
        f"AND ($2::text IS NULL OR vote_id = $2) {_ORDER}", district, vote_id))


async def district_facts(pool: asyncpg.Pool, district: str) -> list[Fact]:
    """Every fact of the district: what its statistics are counted from."""
    return _facts(await pool.fetch(f"SELECT {_COLUMNS} FROM facts WHERE district = $1 {_ORDER}", district))


async def all_rows(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    """The whole read model, in a stable order (to compare a rebuilt copy with the live one)."""
    return [dict(r) for r in await pool.fetch("SELECT * FROM facts ORDER BY district, event_id")]
