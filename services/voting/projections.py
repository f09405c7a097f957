"""Read models of the voting service, written by the command bus's ``project`` hook
(:func:`project`) in the same transaction as the events they follow.

* ``votes`` — one row per vote: terms, closing time, and the result once closed. The
  closing timer derives due work from it, so timers survive restarts.
* ``published_boards``, ``published_participants`` — a closed verifiable vote's board
  and who took part, as published: each in a table of its own, so that no row holds
  voter ids (a roll, the participants) beside the board's choices.

All follow the votes' events alone, so they can be rebuilt from the log.

Who has voted, and how, is not here: it is the ballot box's
(:mod:`services.voting.ballot_box`), write-side state that the log cannot rebuild (a
secret ballot's choice is not in it). The queries here join its register
(``participants``) for turnout.

Every table keys a vote by its stream id (``Vote.id``, see
:func:`services.voting.domain.vote_stream`), which is scoped by district: two districts'
votes with the same public id never share a row. ``votes.public_id`` keeps the id the
district chose.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from yishi.commands import Saved
from services.voting.ballot_box import receipt_hash  # noqa: F401  (importable here as before the ballot box)
from services.voting.domain import Vote, vote_stream

# Tables: services/voting/migrations (Alembic branch voting).


async def project(conn: asyncpg.Connection, saved: Saved) -> None:
    """The ``votes`` rows of the votes ``saved`` opened or closed (ballots change none)."""
    votes = {aggregate.id: aggregate for aggregate in saved.aggregates if isinstance(aggregate, Vote)}
    for event in saved.events:
        if isinstance(event, Vote.Opened):
            await vote_opened(conn, votes[event.originator_id])
        elif isinstance(event, Vote.Closed):
            await vote_closed(conn, votes[event.originator_id])
        elif isinstance(event, Vote.BoardPublished):
            await conn.execute(  # page after page, in the order they are saved
                "INSERT INTO published_boards (vote_id, entries) VALUES ($1, $2::jsonb) ON CONFLICT (vote_id) "
                "DO UPDATE SET entries = published_boards.entries || excluded.entries",
                event.originator_id, json.dumps(event.entries))
        elif isinstance(event, Vote.ParticipantsListed):
            await conn.execute(
                "INSERT INTO published_participants (vote_id, voter_ids) VALUES ($1, $2::jsonb) ON CONFLICT (vote_id) "
                "DO UPDATE SET voter_ids = published_participants.voter_ids || excluded.voter_ids",
                event.originator_id, json.dumps(event.voter_ids))


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


async def due_votes(pool: asyncpg.Pool, now: datetime) -> list[asyncpg.Record]:
    """Open votes due to close: their closing time has come, or every elector voted
    (unless ballots may still be changed: then only the closing time ends the vote)."""
    return await pool.fetch(
        "SELECT public_id AS vote_id, district FROM votes v WHERE closed_at IS NULL AND "
        "(closes_at <= $1 OR "
        "(NOT coalesce((terms->>'ballot_changes_allowed')::boolean, false) AND "
        "(SELECT count(*) FROM participants p WHERE p.vote_id = v.vote_id) >= electorate_size))", now)


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


async def published_board(pool: asyncpg.Pool, vote_id: str) -> tuple[list[dict[str, Any]], list[str]] | None:
    """The board and the participants the vote (its stream id ``vote_id``) published at its
    close; None if it published none (open, or not verifiable)."""
    row = await pool.fetchrow(
        "SELECT b.entries, p.voter_ids FROM published_boards b JOIN published_participants p USING (vote_id) "
        "WHERE vote_id = $1", vote_id)
    return (json.loads(row["entries"]), json.loads(row["voter_ids"])) if row is not None else None


def _decoded(row: asyncpg.Record) -> dict[str, Any]:
    decoded = dict(row)
    for column in ("matter", "terms", "result"):
        if decoded[column] is not None:
            decoded[column] = json.loads(decoded[column])
    return decoded
