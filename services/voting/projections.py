"""Read models and vote-level tables of the voting service, written in the same
transaction as the events they follow.

* ``votes`` — one row per vote: terms, closing time, and the result once closed. The
  closing timer derives due work from it, so timers survive restarts.
* ``participants`` — who has voted (public, like a paper register): turnout, and
  "everyone has voted".
* ``open_ballots`` — open votes only: who voted how, the live tally.
* ``pending_choices`` / ``secret_choices`` — secret votes only: the anonymous choice
  beside the hash of the voter's receipt, never a voter id nor a time. A ballot's
  transaction writes its choice to ``pending_choices``; :func:`mix` moves pending choices
  in shuffled batches to ``secret_choices`` in a transaction of its own, so the row that
  survives carries neither the ballot's transaction id (``xmin``) nor its order.

Every table keys a vote by its stream id (``Vote.id``, see
:func:`services.voting.domain.vote_stream`), which is scoped by district: two districts'
votes with the same public id never share a row. ``votes.public_id`` keeps the id the
district chose.

Concurrency between ballots and the close is serialised per vote, without a global
lock: a ballot holds the vote's advisory lock shared, the close holds it exclusively
while it counts (:func:`lock_for_ballot`, :func:`lock_for_close`).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

import asyncpg

from services.voting.domain import Ballot, Tally, Vote, vote_stream

# Tables: services/voting/migrations (Alembic branch voting).

#: Secret choices are mixed during a vote once this many are pending; the close mixes the rest.
MIX_BATCH = 25


def receipt_hash(district: str, vote_id: str, voter_id: str, ballot_id: str) -> bytes:
    """What is stored of a secret ballot's receipt (its ``ballot_id``): a hash only, of
    the receipt with its voter. Only the voter finds their choice by it: anyone else
    asking with the same ballot id (staff, an auditor) hashes another voter id and finds
    nothing, and no stored row names the voter."""
    return hashlib.sha256(f"yishi-receipt/v2/{district}/{vote_id}/{voter_id}/{ballot_id}".encode()).digest()


async def lock_for_ballot(conn: asyncpg.Connection, vote_id: str) -> None:
    """Hold the vote's lock shared until the transaction ends: ballots run side by side,
    and a close waits for those in flight."""
    await conn.execute("SELECT pg_advisory_xact_lock_shared(hashtextextended('yishi.vote/' || $1, 0))", vote_id)


async def lock_for_close(conn: asyncpg.Connection, vote_id: str) -> None:
    """Hold the vote's lock exclusively until the transaction ends: every ballot
    committed before is counted, every later one sees the vote closed."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('yishi.vote/' || $1, 0))", vote_id)


async def vote_opened(conn: asyncpg.Connection, vote: Vote) -> None:
    """Record a newly opened vote."""
    terms = vote.terms
    await conn.execute(
        "INSERT INTO votes (vote_id, district, council_id, matter, terms, secret, electorate_size, opened_at, "
        "closes_at, public_id) VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6, $7, $8, $9, $10)",
        vote.id, vote.district, vote.council_id, json.dumps(vote.matter), json.dumps(vote.terms_json),
        vote.secret, vote.electorate_size, vote.opened_at, terms.closes_at, vote.vote_id,
    )


async def vote_closed(conn: asyncpg.Connection, vote: Vote) -> None:
    """Record the result of a closed vote."""
    await conn.execute("UPDATE votes SET closed_at = $2, result = $3::jsonb WHERE vote_id = $1",
                       vote.id, datetime.fromisoformat(vote.result["closed_at"]), json.dumps(vote.result))


_REGISTER_VOTER = "WITH registered AS (INSERT INTO participants (vote_id, voter_id) VALUES ($1, $2)) "


async def ballot_cast(conn: asyncpg.Connection, vote: Vote, ballot: Ballot, *, choice: str,
                      approvals: list[str] | None, receipt: bytes | None, replaced: bool) -> bool:
    """Record a ballot (or its replacement). For secret votes the choice goes, without
    the voter, to ``pending_choices`` under ``receipt``. Returns ``False`` when a secret
    ballot's receipt is unusable: taken by another ballot, or (for a replacement) unknown."""
    # A first ballot adds its voter to the register in the statement that records it (one
    # round trip): a data-modifying WITH runs whether or not the statement reads it.
    register = "" if replaced else _REGISTER_VOTER
    if not vote.secret:
        await conn.execute(
            register + "INSERT INTO open_ballots (vote_id, voter_id, ballot_id, choice, approvals) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (vote_id, voter_id) DO UPDATE SET ballot_id = EXCLUDED.ballot_id, "
            "choice = EXCLUDED.choice, approvals = EXCLUDED.approvals",
            vote.id, ballot.voter_id, ballot.ballot_id, choice, approvals,
        )
        return True
    if replaced:
        # The old choice leaves wherever it is; the new one waits to be mixed like any other.
        removed = await conn.fetchval(
            "WITH p AS (DELETE FROM pending_choices WHERE receipt = $1 AND vote_id = $2 RETURNING 1), "
            "s AS (DELETE FROM secret_choices WHERE receipt = $1 AND vote_id = $2 RETURNING 1) "
            "SELECT (SELECT count(*) FROM p) + (SELECT count(*) FROM s)", receipt, vote.id)
        if not removed:
            return False
        inserted = await conn.fetchval(
            "INSERT INTO pending_choices (receipt, vote_id, choice, approvals) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT DO NOTHING RETURNING true", receipt, vote.id, choice, approvals)
    else:
        inserted = await conn.fetchval(
            register + "INSERT INTO pending_choices (receipt, vote_id, choice, approvals) VALUES ($3, $1, $4, $5) "
            "ON CONFLICT DO NOTHING RETURNING true", vote.id, ballot.voter_id, receipt, choice, approvals)
    return bool(inserted)


async def recorded_choice(conn: asyncpg.Connection | asyncpg.Pool, vote_id: str,
                          receipt: bytes) -> asyncpg.Record | None:
    """The secret choice stored under ``receipt``, mixed or still pending."""
    return await conn.fetchrow(
        "SELECT choice, approvals FROM secret_choices WHERE vote_id = $1 AND receipt = $2 UNION ALL "
        "SELECT choice, approvals FROM pending_choices WHERE vote_id = $1 AND receipt = $2", vote_id, receipt)


async def mix(conn: asyncpg.Connection, vote_id: str, at_least: int = 1) -> int:
    """Move the vote's pending secret choices, if at least ``at_least``, to
    ``secret_choices`` in random order, in the caller's transaction. Returns how many."""
    pending = await conn.fetchval("SELECT count(*) FROM pending_choices WHERE vote_id = $1", vote_id)
    if pending < at_least:
        return 0
    return int((await conn.execute(
        "WITH moved AS (DELETE FROM pending_choices WHERE vote_id = $1 RETURNING receipt, choice, approvals) "
        "INSERT INTO secret_choices (receipt, vote_id, choice, approvals) "
        "SELECT receipt, $1, choice, approvals FROM moved ORDER BY random()", vote_id)).split()[-1])


async def turnout(conn: asyncpg.Connection | asyncpg.Pool, vote_id: str) -> int:
    """How many electors have voted."""
    return await conn.fetchval("SELECT count(*) FROM participants WHERE vote_id = $1", vote_id)


async def tally(conn: asyncpg.Connection | asyncpg.Pool, vote_id: str, secret: bool) -> Tally:
    """Count the ballots recorded so far (secret ones once mixed: mix before counting)."""
    table = "secret_choices" if secret else "open_ballots"
    rows = await conn.fetch(f"SELECT choice, approvals FROM {table} WHERE vote_id = $1", vote_id)
    counts = {"in_favour": 0, "against": 0, "abstain": 0}
    approvals: dict[str, int] = {}
    for row in rows:
        counts[row["choice"]] += 1
        for option in row["approvals"] or ():
            approvals[option] = approvals.get(option, 0) + 1
    return Tally(**counts, approvals=approvals)


async def open_ballots(conn: asyncpg.Connection, vote_id: str) -> list[dict[str, Any]]:
    """Who voted how on an open vote, by voter id."""
    rows = await conn.fetch(
        "SELECT voter_id, choice, approvals FROM open_ballots WHERE vote_id = $1 ORDER BY voter_id", vote_id)
    return [{"voter_id": r["voter_id"], "choice": r["choice"],
             "approvals": list(r["approvals"]) if r["approvals"] is not None else None} for r in rows]


async def due_votes(pool: asyncpg.Pool, now: datetime) -> list[asyncpg.Record]:
    """Open votes due to close: their closing time has come, or every elector voted
    (unless ballots may still be changed: then only the closing time ends the vote)."""
    return await pool.fetch(
        "SELECT public_id AS vote_id, district FROM votes v WHERE closed_at IS NULL AND "
        "(closes_at <= $1 OR "
        "(NOT coalesce((terms->>'ballot_changes_allowed')::boolean, false) AND "
        "(SELECT count(*) FROM participants p WHERE p.vote_id = v.vote_id) >= electorate_size))", now)


async def secret_votes_to_mix(pool: asyncpg.Pool) -> list[str]:
    """Open secret votes with a full batch of choices waiting to be mixed."""
    rows = await pool.fetch(
        "SELECT vote_id FROM pending_choices GROUP BY vote_id HAVING count(*) >= $1", MIX_BATCH)
    return [r["vote_id"] for r in rows]


async def vote_row(pool: asyncpg.Pool, district: str, vote_id: str) -> dict[str, Any] | None:
    """The row of ``district``'s vote ``vote_id`` (JSON columns decoded; ``vote_id`` is
    the stream id that keys the other tables)."""
    row = await pool.fetchrow(
        "SELECT * FROM votes WHERE vote_id = $1 AND district = $2", vote_stream(district, vote_id), district)
    return _decoded(row) if row is not None else None


async def find_votes(pool: asyncpg.Pool, district: str, *, council_id: str | None, closed: bool | None,
                     matter_kind: str | None, matter_id: str | None, after: str | None,
                     limit: int) -> list[dict[str, Any]]:
    """``district``'s votes by public id, at most ``limit`` after ``after``, optionally of
    one council, open or closed, on one kind of matter or one matter; each row decoded as
    :func:`vote_row`'s, with its ``turnout``."""
    rows = await pool.fetch(
        """
        SELECT v.*, (SELECT count(*) FROM participants p WHERE p.vote_id = v.vote_id) AS turnout
        FROM votes v WHERE district = $1
          AND ($2::text IS NULL OR council_id = $2)
          AND ($3::boolean IS NULL OR (closed_at IS NOT NULL) = $3)
          AND ($4::text IS NULL OR matter->>'kind' = $4) AND ($5::text IS NULL OR matter->>'id' = $5)
          AND ($6::text IS NULL OR public_id > $6)
        ORDER BY public_id LIMIT $7
        """, district, council_id, closed, matter_kind, matter_id, after, limit)
    return [_decoded(r) for r in rows]


def _decoded(row: asyncpg.Record) -> dict[str, Any]:
    decoded = dict(row)
    for column in ("matter", "terms", "result"):
        if decoded[column] is not None:
            decoded[column] = json.loads(decoded[column])
    return decoded


async def open_choice(pool: asyncpg.Pool, vote_id: str, ballot_id: str) -> asyncpg.Record | None:
    """The choice of an open vote's ballot, by its ballot id."""
    return await pool.fetchrow(
        "SELECT choice, approvals FROM open_ballots WHERE vote_id = $1 AND ballot_id = $2", vote_id, ballot_id)
