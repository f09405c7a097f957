"""Read models of oversight, written in the same transaction as the events they reflect.

Own events go through :func:`project`, the command bus's hook (so every command's,
including the ``ProposalDecided`` reaction's) and the reminder scheduler's. Other
services' events reach the audit trail through :func:`insert_audit` and the councils
through :func:`record_council`, inside the consumer's inbox transaction. Every question
the HTTP API asks of them is a function here too (``-- queries``), so ``api.py`` holds
no SQL; what the command handlers read of them is :class:`ReadModelFacts`.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import asyncpg

from contracts import registry
from contracts.common import Actor
from contracts.oversight import PolicyScope, ReminderPolicySet
from contracts.proposals import CouncilFormed
from contracts.sessions import AttendanceRecorded, SessionMinutesPublished
from yishi.commands import Saved
from yishi.store import Metadata

from services.oversight.domain import Fund, ReminderPolicy, Resolution, Task
from services.oversight.translator import to_contract

# Tables: services/oversight/migrations (Alembic branch oversight).


async def project(conn: asyncpg.Connection, saved: Saved) -> None:
    """Update the read models for the events just saved, on ``conn``."""
    meta = saved.meta
    d = meta.district
    for e in saved.events:
        match e:
            case Resolution.Registered():
                await conn.execute(
                    "INSERT INTO ov_resolutions (district, resolution_id, proposal_id, council_id, community_id,"
                    " vote_id, title, budget_fen, registered_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)",
                    d, e.resolution_id, e.proposal_id, e.council_id, e.community_id, e.vote_id, e.title,
                    e.budget_fen, meta.occurred_at)
            case Resolution.Closed():
                await conn.execute("UPDATE ov_resolutions SET status='closed', closed_reason=$3, closed_at=$4"
                                   " WHERE district=$1 AND resolution_id=$2", d, e.resolution_id, e.reason,
                                   meta.occurred_at)
            case Resolution.SatisfactionRated():
                await conn.execute("INSERT INTO ov_ratings VALUES ($1,$2,$3,$4,$5,$6,$7)", d, e.rating_id,
                                   e.resolution_id, e.year, e.satisfied, e.basically_satisfied, e.dissatisfied)
            case Task.Assigned():
                i = e.implementer
                await conn.execute(
                    "INSERT INTO ov_tasks (district, task_id, resolution_id, implementer_kind, implementer_id,"
                    " implementer_name, status, due_at, budget_fen) VALUES ($1,$2,$3,$4,$5,$6,'assigned',$7,$8)",
                    d, e.task_id, e.resolution_id, i["kind"], i["id"], i["name"], e.due_at, e.budget_fen)
            case Task.Accepted():
                await _task(conn, d, e.task_id, f"status='accepted', {_ON_TRACK}")
            case Task.ProgressReported():
                # Progress is the sign of life that ends a stall (only an accepted task reports).
                await _task(conn, d, e.task_id, f"percent=$3, status='accepted', {_ON_TRACK}", e.percent)
            case Task.Completed():
                await _task(conn, d, e.task_id, f"status='completed', percent=100, completed_at=$3, {_ON_TRACK}",
                            e.at)
            case Task.Inspected(outcome="passed"):
                await _task(conn, d, e.task_id, f"status='passed', passed_at=$3, {_ON_TRACK}", e.at)
            case Task.Inspected(outcome="sent_back"):
                await _task(conn, d, e.task_id, f"status='accepted', completed_at=NULL, passed_at=NULL, {_ON_TRACK}")
            case Task.Stalled():
                await _task(conn, d, e.task_id, "status='stalled', stalled_at=$3", e.at)
            case Task.Escalated():
                await _task(conn, d, e.task_id, "status='escalated', escalation_level=$3, escalated_to=$4",
                            e.to_level, e.to_authority_id)
            case Task.ReminderFired():
                await _task(conn, d, e.task_id, "last_reminder_at=$3", e.at)
                await conn.execute(
                    "INSERT INTO ov_reminders (district, reminder_id, task_id, resolution_id, kind, step,"
                    " recipient_id, due_at, fired_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)"
                    " ON CONFLICT (district, reminder_id) DO NOTHING",
                    d, e.reminder_id, e.task_id, e.resolution_id, e.kind, e.step, e.recipient_id, e.due_at, e.at)
            case Fund.Established():
                await conn.execute("INSERT INTO ov_funds (district, fund_id, community_id, year, amount_fen)"
                                   " VALUES ($1,$2,$3,$4,$5)", d, e.fund_id, e.community_id, e.year, e.amount_fen)
            case Fund.Allocated():
                await conn.execute("INSERT INTO ov_allocations (district, allocation_id, fund_id, resolution_id,"
                                   " task_id, amount_fen) VALUES ($1,$2,$3,$4,$5,$6)", d, e.allocation_id,
                                   e.fund_id, e.resolution_id, e.task_id, e.amount_fen)
                await conn.execute("UPDATE ov_funds SET allocated_fen = allocated_fen + $3"
                                   " WHERE district=$1 AND fund_id=$2", d, e.fund_id, e.amount_fen)
            case Fund.Spent():
                fund_id = await conn.fetchval(
                    "UPDATE ov_allocations SET spent_fen = spent_fen + $3 WHERE district=$1 AND allocation_id=$2"
                    " RETURNING fund_id", d, e.allocation_id, e.amount_fen)
                await conn.execute("UPDATE ov_funds SET spent_fen = spent_fen + $3 WHERE district=$1 AND fund_id=$2",
                                   d, fund_id, e.amount_fen)
            case ReminderPolicy.Set() | ReminderPolicy.Changed():
                settings = {k: getattr(e, k) for k in ("not_accepted_days", "stall_days", "deadline_warning_days",
                                                       "escalate_after_days", "supervisor_id")}
                await conn.execute(
                    "INSERT INTO ov_policies VALUES ($1,$2,$3,$4) ON CONFLICT (district, scope, scope_id)"
                    " DO UPDATE SET settings = EXCLUDED.settings", d, e.scope, e.scope_id, json.dumps(settings))
        await _audit_own(conn, meta, e)


# A task that moves on (accepted, progress, completed, inspected) is no longer stalled or
# escalated: its status is its lifecycle's again.
_ON_TRACK = "stalled_at=NULL, escalation_level=NULL, escalated_to=NULL"


async def _task(conn: asyncpg.Connection, district: str, task_id: str, assignments: str, *args: Any) -> None:
    await conn.execute(f"UPDATE ov_tasks SET {assignments} WHERE district=$1 AND task_id=$2",
                       district, task_id, *args)


async def _audit_own(conn: asyncpg.Connection, meta: Metadata, event: Any) -> None:
    actor = Actor(id=meta.actor, role=meta.actor_role or "system", seat_id=meta.actor_seat)
    model = to_contract(event, meta.district, actor, meta.occurred_at)
    if model is None:
        return
    # A fund and a council's reminder policy belong to no one resolution: kept without
    # one, the trail finds them through the resolution's allocations and council.
    resolution_id = getattr(model, "resolution_id", None)
    if isinstance(model, ReminderPolicySet) and model.scope == PolicyScope.RESOLUTION:
        resolution_id = model.scope_id
    await insert_audit(conn, meta.district, "oversight", f"{event.originator_id}:{event.originator_version}",
                       registry.type_name(type(model)), model, resolution_id=resolution_id,
                       task_id=getattr(model, "task_id", None))


async def insert_audit(conn: asyncpg.Connection, district: str, source: str, message_id: str, type_name: str,
                       model: Any, *, proposal_id: str | None = None, vote_id: str | None = None,
                       resolution_id: str | None = None, task_id: str | None = None) -> None:
    """One step of the record; a message seen before is kept once."""
    await conn.execute(
        "INSERT INTO ov_audit (district, source, message_id, type, occurred_at, actor_id, actor_role, seat_id,"
        " proposal_id, vote_id, resolution_id, task_id, body) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)"
        " ON CONFLICT (district, source, message_id) DO NOTHING",
        district, source, message_id, type_name, model.occurred_at, model.actor.id, str(model.actor.role),
        model.actor.seat_id, proposal_id, vote_id, resolution_id, task_id, model.model_dump_json())


async def record_reminder_notice(conn: asyncpg.Connection, district: str, notification_id: str,
                                 reminder_id: str) -> None:
    """Notify's notice of a reminder (``NotificationRequested``): which notification to follow."""
    await conn.execute("UPDATE ov_reminders SET notification_id=$3 WHERE district=$1 AND reminder_id=$2",
                       district, reminder_id, notification_id)


async def record_reminder_outcome(conn: asyncpg.Connection, district: str, notification_id: str, *,
                                  delivered: bool, channel: str | None, reason: str | None = None,
                                  final: bool = True) -> tuple[str, str] | None:
    """A delivery outcome of a reminder's notice: delivered on any channel wins; a final
    failure (dead-lettered, or nobody to send it to) shows as failed with its reason; a
    failure that will be retried keeps it pending with the reason. Returns the reminder's
    (resolution, task), or None when the notification is not a reminder's."""
    if delivered:
        assignments, args = "delivery='delivered', channel=$3, failure_reason=NULL", [channel]
    else:
        assignments = ("delivery=CASE WHEN delivery='delivered' THEN delivery ELSE $4 END,"
                       " channel=CASE WHEN delivery='delivered' THEN channel ELSE $3 END,"
                       " failure_reason=CASE WHEN delivery='delivered' THEN NULL ELSE $5 END")
        args = [channel, "failed" if final else "pending", reason]
    row = await conn.fetchrow(f"UPDATE ov_reminders SET {assignments} WHERE district=$1 AND notification_id=$2"
                              " RETURNING resolution_id, task_id", district, notification_id, *args)
    return (row["resolution_id"], row["task_id"]) if row else None


# -- queries -------------------------------------------------------------------------------


async def find_resolutions(pool: asyncpg.Pool, district: str, *, status: str | None, community_id: str | None,
                           council_id: str | None, proposal_id: str | None, after: str | None,
                           limit: int) -> list[asyncpg.Record]:
    """``district``'s resolutions by id, at most ``limit`` after ``after``, optionally in one
    status, of one community, council or proposal."""
    return await pool.fetch(
        """
        SELECT * FROM ov_resolutions WHERE district = $1
          AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR community_id = $3)
          AND ($4::text IS NULL OR council_id = $4) AND ($5::text IS NULL OR proposal_id = $5)
          AND ($6::text IS NULL OR resolution_id > $6)
        ORDER BY resolution_id LIMIT $7
        """, district, status, community_id, council_id, proposal_id, after, limit)


async def find_tasks(pool: asyncpg.Pool, district: str, *, implementer_id: str | None,
                     implementer_kind: str | None, status: str | None, resolution_id: str | None,
                     community_id: str | None, after: str | None, limit: int) -> list[asyncpg.Record]:
    """``district``'s tasks by id, at most ``limit`` after ``after``, optionally of one
    implementer (or kind of implementer), in one status, of one resolution or of the
    resolutions of one community."""
    return await pool.fetch(
        """
        SELECT t.* FROM ov_tasks t JOIN ov_resolutions r USING (district, resolution_id) WHERE t.district = $1
          AND ($2::text IS NULL OR t.implementer_id = $2) AND ($3::text IS NULL OR t.implementer_kind = $3)
          AND ($4::text IS NULL OR t.status = $4) AND ($5::text IS NULL OR t.resolution_id = $5)
          AND ($6::text IS NULL OR r.community_id = $6) AND ($7::text IS NULL OR t.task_id > $7)
        ORDER BY t.task_id LIMIT $8
        """, district, implementer_id, implementer_kind, status, resolution_id, community_id, after, limit)


async def resolution(pool: asyncpg.Pool, district: str, resolution_id: str) -> asyncpg.Record | None:
    """One resolution of ``district``, or ``None``."""
    return await pool.fetchrow("SELECT * FROM ov_resolutions WHERE district=$1 AND resolution_id=$2",
                               district, resolution_id)


async def tasks_of(pool: asyncpg.Pool, district: str, resolution_id: str) -> list[asyncpg.Record]:
    """A resolution's tasks, by id."""
    return await pool.fetch("SELECT * FROM ov_tasks WHERE district=$1 AND resolution_id=$2 ORDER BY task_id",
                            district, resolution_id)


async def task(pool: asyncpg.Pool, district: str, task_id: str) -> asyncpg.Record | None:
    """One task of ``district``, or ``None``."""
    return await pool.fetchrow("SELECT * FROM ov_tasks WHERE district=$1 AND task_id=$2", district, task_id)


async def reminders(pool: asyncpg.Pool, district: str, of: Literal["task_id", "resolution_id"],
                    id_: str) -> list[asyncpg.Record]:
    """The reminders of a task (``of="task_id"``) or of a resolution's tasks, oldest first."""
    return await pool.fetch(f"SELECT * FROM ov_reminders WHERE district=$1 AND {of}=$2"
                            " ORDER BY fired_at, step, reminder_id", district, id_)


async def fund(pool: asyncpg.Pool, district: str, fund_id: str) -> asyncpg.Record | None:
    """One fund of ``district``, or ``None``."""
    return await pool.fetchrow("SELECT * FROM ov_funds WHERE district=$1 AND fund_id=$2", district, fund_id)


async def allocations(pool: asyncpg.Pool, district: str, fund_id: str) -> list[asyncpg.Record]:
    """A fund's allocations, by id."""
    return await pool.fetch("SELECT * FROM ov_allocations WHERE district=$1 AND fund_id=$2 ORDER BY allocation_id",
                            district, fund_id)


async def audit_steps(pool: asyncpg.Pool, district: str, resolution_id: str, proposal_id: str,
                      council_id: str) -> list[asyncpg.Record]:
    """The audit trail of a resolution, in time order: the steps of its proposal, of its
    votes and of itself; the reminder policies of its council; the creation of every fund
    it was allocated money from."""
    return await pool.fetch(
        """
        SELECT * FROM ov_audit WHERE district = $1 AND (
            proposal_id = $2 OR resolution_id = $3 OR vote_id IN (
                SELECT vote_id FROM ov_audit WHERE district = $1 AND proposal_id = $2 AND vote_id IS NOT NULL)
            OR (type = 'ReminderPolicySet' AND body->>'scope' = 'council' AND body->>'scope_id' = $4)
            OR (type = 'FundEstablished' AND body->>'fund_id' IN (
                SELECT body->>'fund_id' FROM ov_audit
                WHERE district = $1 AND resolution_id = $3 AND type = 'FundsAllocated')))
        ORDER BY occurred_at, seq
        """, district, proposal_id, resolution_id, council_id)


async def roadmap(pool: asyncpg.Pool, district: str, community_id: str) -> list[asyncpg.Record]:
    """Every resolution of a community in registration order, with its progress and its
    stalled or escalated tasks (``stalled_tasks``, a JSON array)."""
    return await pool.fetch(
        """
        SELECT r.resolution_id, r.title, r.status, r.registered_at, r.closed_at,
               COALESCE(avg(t.percent), 0)::int AS progress_percent, count(t.task_id) AS tasks,
               count(t.task_id) FILTER (WHERE t.status = 'passed') AS tasks_passed,
               count(t.task_id) FILTER (WHERE t.status = 'stalled') AS tasks_stalled,
               count(t.task_id) FILTER (WHERE t.status = 'escalated') AS tasks_escalated,
               COALESCE(jsonb_agg(jsonb_build_object('task_id', t.task_id, 'status', t.status,
                                                     'escalation_level', t.escalation_level,
                                                     'escalated_to', t.escalated_to) ORDER BY t.task_id)
                        FILTER (WHERE t.status IN ('stalled', 'escalated')), '[]') AS stalled_tasks
        FROM ov_resolutions r LEFT JOIN ov_tasks t USING (district, resolution_id)
        WHERE r.district = $1 AND r.community_id = $2
        GROUP BY r.resolution_id, r.title, r.status, r.registered_at, r.closed_at
        ORDER BY r.registered_at, r.resolution_id
        """, district, community_id)


async def year_counts(pool: asyncpg.Pool, district: str, community_id: str, year: int) -> asyncpg.Record:
    """Of a community's resolutions registered in ``year``: how many, how many completed,
    their tasks passed, and passed on time."""
    return await pool.fetchrow(
        """
        SELECT count(DISTINCT r.resolution_id) AS resolutions,
               count(DISTINCT r.resolution_id) FILTER (WHERE r.closed_reason = 'delivered')
                   AS resolutions_completed,
               count(t.task_id) FILTER (WHERE t.status = 'passed') AS tasks_passed,
               count(t.task_id) FILTER (WHERE t.status = 'passed' AND t.completed_at <= t.due_at)
                   AS tasks_passed_on_time
        FROM ov_resolutions r LEFT JOIN ov_tasks t USING (district, resolution_id)
        WHERE r.district = $1 AND r.community_id = $2 AND extract(year FROM r.registered_at) = $3
        """, district, community_id, year)


async def year_ratings(pool: asyncpg.Pool, district: str, community_id: str, year: int) -> asyncpg.Record:
    """A community's satisfaction ratings of ``year``: how many, the votes pleased
    (satisfied or basically) and all votes (``None`` sums when there are none)."""
    return await pool.fetchrow(
        """
        SELECT count(*) AS ratings, sum(g.satisfied + g.basically_satisfied) AS pleased,
               sum(g.satisfied + g.basically_satisfied + g.dissatisfied) AS votes
        FROM ov_ratings g JOIN ov_resolutions r USING (district, resolution_id)
        WHERE g.district = $1 AND r.community_id = $2 AND g.year = $3
        """, district, community_id, year)


async def community_fund(pool: asyncpg.Pool, district: str, community_id: str, year: int) -> asyncpg.Record | None:
    """A community's fund of ``year`` (amount, allocated, spent), or ``None``."""
    return await pool.fetchrow(
        "SELECT amount_fen, allocated_fen, spent_fen FROM ov_funds WHERE district=$1 AND community_id=$2"
        " AND year=$3", district, community_id, year)


async def district_statistics(pool: asyncpg.Pool, district: str) -> asyncpg.Record:
    """District-wide figures: proposals, activities (consultation sessions held, by form in
    ``sessions_by_form``, a JSON object), participant-times (attendance person-times),
    resolutions (completed) and spending; and what the platform's own record shows
    besides: votes closed, proposals deliberated (with a statement) and contributions
    (raising, seconding, objecting, statements and ballots, one each)."""
    return await pool.fetchrow(
        """
        SELECT
          (SELECT count(*) FROM ov_audit WHERE district = $1 AND type = 'ProposalRaised') AS proposals,
          (SELECT count(*) FROM ov_sessions WHERE district = $1) AS activities,
          (SELECT COALESCE(jsonb_object_agg(form, n), '{}') FROM (
              SELECT form, count(*) AS n FROM ov_sessions WHERE district = $1 GROUP BY form) f) AS sessions_by_form,
          (SELECT count(*) FROM ov_attendance WHERE district = $1) AS participant_times,
          (SELECT count(*) FROM ov_audit WHERE district = $1 AND type = 'VoteClosed') AS votes_closed,
          (SELECT count(DISTINCT proposal_id) FROM ov_audit WHERE district = $1 AND type = 'StatementMade')
              AS proposals_deliberated,
          (SELECT count(*) FROM ov_audit WHERE district = $1 AND type IN
              ('ProposalRaised', 'MotionSeconded', 'ObjectionLodged', 'StatementMade', 'BallotAccepted'))
              AS contributions,
          (SELECT count(*) FROM ov_resolutions WHERE district = $1) AS resolutions,
          (SELECT count(*) FROM ov_resolutions WHERE district = $1 AND closed_reason = 'delivered')
              AS resolutions_completed,
          (SELECT COALESCE(sum(spent_fen), 0) FROM ov_funds WHERE district = $1) AS spent_fen
        """, district)


async def year_sessions(pool: asyncpg.Pool, district: str, community_id: str, year: int) -> asyncpg.Record:
    """Of a community's councils (community level and below) in ``year``: the consultation
    sessions held (``sessions_by_form``, a JSON object) and the attendance person-times."""
    return await pool.fetchrow(
        f"""
        WITH RECURSIVE councils AS ({_COUNCILS_OF_COMMUNITY})
        SELECT
          (SELECT count(*) FROM ov_sessions WHERE district = $1 AND council_id IN (SELECT council_id FROM councils)
             AND extract(year FROM held_at) = $3) AS sessions_held,
          (SELECT COALESCE(jsonb_object_agg(form, n), '{{}}') FROM (
              SELECT form, count(*) AS n FROM ov_sessions WHERE district = $1
                AND council_id IN (SELECT council_id FROM councils) AND extract(year FROM held_at) = $3
              GROUP BY form) f) AS sessions_by_form,
          (SELECT count(*) FROM ov_attendance WHERE district = $1 AND council_id IN (SELECT council_id FROM councils)
             AND extract(year FROM recorded_at) = $3) AS participant_times
        """, district, community_id, year)


# The councils of a community: its community-level councils and every council below them
# (what community_of answers the other way round).
_COUNCILS_OF_COMMUNITY = """
    SELECT council_id FROM ov_councils WHERE district = $1 AND level = 'community' AND area_id = $2
    UNION
    SELECT c.council_id FROM ov_councils c JOIN councils ON c.parent_council_id = councils.council_id
    WHERE c.district = $1 AND c.level <> 'community'
"""


async def record_session(conn: asyncpg.Connection, minutes: SessionMinutesPublished) -> None:
    """A session held, from its published minutes (published again: the newest minutes)."""
    await conn.execute(
        "INSERT INTO ov_sessions VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT (district, session_id) DO UPDATE SET"
        " form=EXCLUDED.form, held_at=EXCLUDED.held_at, chair=EXCLUDED.chair, attendance=EXCLUDED.attendance,"
        " proxies=EXCLUDED.proxies", minutes.district, minutes.session_id, minutes.council_id, str(minutes.form),
        minutes.held_at, minutes.chair, minutes.attendance, minutes.proxies)


async def record_attendance(conn: asyncpg.Connection, attendance: AttendanceRecorded) -> None:
    """One person-time: a person at a session, once however often it is recorded."""
    await conn.execute("INSERT INTO ov_attendance VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT DO NOTHING",
                       attendance.district, attendance.session_id, attendance.council_id, attendance.person_id,
                       attendance.proxy_for, attendance.occurred_at)


# -- councils ------------------------------------------------------------------------------


async def lock_council(conn: asyncpg.Connection, district: str, council_id: str) -> None:
    """Serialise, until the transaction ends, recording a council with registering its
    resolutions: otherwise a resolution registered while its council is being recorded
    reads no community, and the council's backfill below does not see it yet."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('ov.council/' || $1 || '/' || $2, 0))",
                       district, council_id)


async def record_council(conn: asyncpg.Connection, council: CouncilFormed) -> None:
    """Councils are needed to find a resolution's community and the council above."""
    await lock_council(conn, council.district, council.council_id)
    await conn.execute(
        "INSERT INTO ov_councils VALUES ($1,$2,$3,$4,$5) ON CONFLICT (district, council_id) DO UPDATE SET"
        " level=EXCLUDED.level, area_id=EXCLUDED.area_id, parent_council_id=EXCLUDED.parent_council_id",
        council.district, council.council_id, str(council.level), council.area_id, council.parent_council_id)
    # Councils and decisions travel on different partitions: a resolution registered
    # before its council was known gets its community now.
    community = await community_of(conn, council.district, council.council_id)
    if community is not None:
        await conn.execute("UPDATE ov_resolutions SET community_id=$3 WHERE district=$1 AND council_id=$2"
                           " AND community_id IS NULL", council.district, council.council_id, community)


async def community_of(conn: asyncpg.Connection, district: str, council_id: str) -> str | None:
    """The community a council belongs to: its own area at community level, else the
    nearest community-level council above it; ``None`` when the councils are unknown."""
    row = await conn.fetchrow(
        """
        WITH RECURSIVE up AS (
            SELECT council_id, level, area_id, parent_council_id, 0 AS depth FROM ov_councils
            WHERE district = $1 AND council_id = $2
            UNION ALL
            SELECT c.council_id, c.level, c.area_id, c.parent_council_id, up.depth + 1 FROM ov_councils c
            JOIN up ON c.council_id = up.parent_council_id AND c.district = $1 WHERE up.depth < 10
        )
        SELECT area_id FROM up WHERE level = 'community' ORDER BY depth LIMIT 1
        """, district, council_id)
    return row["area_id"] if row else None


# -- what the command handlers read ----------------------------------------------------


class ReadModelFacts:
    """What the command handlers read from these read models (:class:`services.oversight.
    application.Facts`): the councils, which oversight knows only from the proposals
    service's ``CouncilFormed``, and the records stored before the write side kept them
    itself (a fund's year and an allocation's fund before their claims, a resolution's
    tasks before it recorded them). Written in the same transaction as their events, so
    they do not lag behind the write side."""

    async def lock_council(self, conn: asyncpg.Connection, district: str, council_id: str) -> None:
        await lock_council(conn, district, council_id)

    async def community_of(self, conn: asyncpg.Connection, district: str, council_id: str) -> str | None:
        return await community_of(conn, district, council_id)

    async def fund_of_year(self, conn: asyncpg.Connection, district: str, community_id: str,
                           year: int) -> str | None:
        return await conn.fetchval("SELECT fund_id FROM ov_funds WHERE district=$1 AND community_id=$2 AND year=$3",
                                   district, community_id, year)

    async def fund_of_allocation(self, conn: asyncpg.Connection, district: str, allocation_id: str) -> str | None:
        return await conn.fetchval("SELECT fund_id FROM ov_allocations WHERE district=$1 AND allocation_id=$2",
                                   district, allocation_id)

    async def task_ids_of(self, conn: asyncpg.Connection, district: str, resolution_id: str) -> list[str]:
        rows = await conn.fetch("SELECT task_id FROM ov_tasks WHERE district=$1 AND resolution_id=$2"
                                " ORDER BY task_id", district, resolution_id)
        return [row["task_id"] for row in rows]
