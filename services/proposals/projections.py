"""Read models of the proposals service: one JSON document per council, nomination,
slate, catalogue category and item, proposal (with its whole deliberation record), and
council calendar and consultation session (what the sessions' timer reads).

Each document is a view of its aggregate's state (:func:`view`). Command handlers and
consumers write it in the same transaction as the aggregate's new events
(:func:`update`); :func:`rebuild` replays the event log into fresh documents with the
same function, so a rebuild answers exactly as the live read model does.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg
from eventsourcing.domain import Aggregate
from pydantic import BaseModel, ConfigDict, Field

from contracts.common import Attachment, CouncilLevel, VoteTerms
from contracts.proposals import (
    ConsultationForm,
    CouncilRules,
    DeliberationStep,
    NominationRoute,
    SeatKind,
    SpeakerRole,
)
from services.proposals import domain
from services.proposals.domain import (
    Calendar,
    CatalogueCategory,
    CatalogueItem,
    Council,
    Nomination,
    NominationStatus,
    Proposal,
    ProposalStatus,
    Session,
    Slate,
)
from yishi.commands import Saved
from yishi.repository import Repository
from yishi.store import RecordedEvent

# Tables: services/proposals/migrations (Alembic branch proposals).


class View(BaseModel):
    """Base of read-model documents."""

    model_config = ConfigDict(frozen=True)


class SeatView(View):
    """A council seat and who holds it."""

    seat_id: str
    kind: SeatKind
    member_id: str | None = None
    term_ends_at: datetime | None = None
    since: datetime | None = None


class CouncilView(View):
    """A council with its rules and seats."""

    council_id: str
    name: str
    level: CouncilLevel
    area_id: str
    parent_council_id: str | None
    rules: CouncilRules
    seats: list[SeatView]
    formed_at: datetime


class MemberView(View):
    """A seated member of a council."""

    council_id: str
    seat_id: str
    seat_kind: SeatKind
    member_id: str
    term_ends_at: datetime | None
    since: datetime


class NominationView(View):
    """A representative nomination and where it stands."""

    nomination_id: str
    council_id: str
    seat_id: str
    nominee_id: str
    route: NominationRoute
    status: NominationStatus
    nominated_at: datetime
    notice_ends_at: datetime | None
    vote_id: str | None
    outcome: str | None


class SlateNomineeView(View):
    """A nominee of a slate and the seat they stand for."""

    seat_id: str
    nominee_id: str
    route: NominationRoute


class SlateView(View):
    """A slate of representatives and where it stands (publicised, voting, confirmed,
    rejected); once confirmed, its nominees hold their seats."""

    slate_id: str
    council_id: str
    nominees: list[SlateNomineeView]
    status: NominationStatus
    nominated_at: datetime
    notice_ends_at: datetime
    vote_id: str | None
    outcome: str | None


class CatalogueItemView(View):
    """A second-level catalogue item of a community."""

    item_id: str
    category_id: str
    community_id: str
    title: str
    description: str
    added_at: datetime
    retired: bool
    retired_reason: str | None


class CatalogueCategoryView(View):
    """A first-level catalogue category; ``items`` is filled in by the catalogue query."""

    category_id: str
    code: str
    title: str
    description: str
    defined_at: datetime
    items: list[CatalogueItemView] = []


class SecondingView(View):
    """A member's seconding of the motion."""

    member_id: str
    seat_id: str
    at: datetime


class ObjectionView(View):
    """An objection on record."""

    objection_id: str
    objector_id: str
    grounds: str
    at: datetime


class StatementView(View):
    """A statement of the deliberation record, in its round and step."""

    statement_id: str
    round: int
    step: DeliberationStep
    speaker_role: SpeakerRole
    speaker_id: str
    text: str
    at: datetime
    session_id: str | None = None
    invited: bool = False


class VoteView(View):
    """A vote requested on the proposal, with its result once known."""

    vote_id: str
    requested_at: datetime
    terms: VoteTerms
    outcome: str | None
    tally: dict[str, int] | None
    session_id: str | None = None


class DecisionView(View):
    """The council's decision."""

    decision: str
    vote_id: str
    resolution: str | None
    at: datetime


class HistoryEntry(View):
    """One step of the proposal's course, in order: raised, published, seconded,
    objection_lodged, statement_made, vote_requested, the decision, escalated,
    returned_for_reconsultation, withdrawn. Seconds stay here when an escalation clears
    ``seconders`` for the new council."""

    what: str
    at: datetime
    details: dict[str, Any]


class ProposalSummary(View):
    """A proposal in a list."""

    proposal_id: str
    council_id: str
    title: str
    status: ProposalStatus
    catalogue_item_id: str | None
    proposer_id: str
    raised_at: datetime
    round: int


class ProposalView(ProposalSummary):
    """A proposal with its whole deliberation record."""

    proposer_seat_id: str | None
    summary: str
    attachments: list[Attachment]
    form: ConsultationForm | None
    notice_ends_at: datetime | None
    session_at: datetime | None
    seconders: list[SecondingView]
    objections: list[ObjectionView]
    statements: list[StatementView]
    votes: list[VoteView]
    decision: DecisionView | None
    resolution_id: str | None = None
    """The resolution registered for the proposal once adopted (``res-`` + its id)."""
    history: list[HistoryEntry]


class CalendarView(View):
    """A council's rota of chairs and monthly schedule, and what its timer does next."""

    council_id: str
    chairs: list[str]
    next_chair: str | None
    schedule: dict[str, Any] | None
    next_at: datetime | None = Field(description="The start of the next session to schedule; none while the "
                                     "schedule's session is pending (scheduled, not yet opened).")
    pending: str | None
    sessions: list[str]


class AttendanceView(View):
    """One person-time of a session's attendance."""

    person_id: str
    by: str
    proxy_for: str | None


class SessionView(View):
    """A consultation session: chair, agenda, invitations, attendance, and what was said
    and decided in it. The check-in code is not part of it (see ``…/check-in-code``)."""

    session_id: str
    council_id: str
    form: ConsultationForm
    starts_at: datetime
    place: str | None
    online_link: str | None
    chair: str
    from_rota: bool
    status: str
    opened_at: datetime | None
    closed_at: datetime | None
    agenda: list[str]
    invited: dict[str, list[str]] = Field(description="Agenda item (proposal id) → who is invited to speak on it.")
    attendance: list[AttendanceView]
    statements: list[str]
    votes: list[dict[str, str]]
    decisions: list[str]


class _StoredSession(SessionView):
    code: str  # kept in the read model for the staff's query, never in SessionView answers


KINDS: dict[type[Aggregate], str] = {
    Council: "council",
    Nomination: "nomination",
    Slate: "slate",
    CatalogueCategory: "category",
    CatalogueItem: "item",
    Proposal: "proposal",
    Calendar: "calendar",
    Session: "session",
}


def view(aggregate: Aggregate) -> tuple[str, str | None, str | None, View]:
    """``(public id, council id, status, document)`` of an aggregate."""
    state = aggregate.__dict__
    if isinstance(aggregate, Council):
        seats = [SeatView(seat_id=s, kind=k, **aggregate.holders.get(s, {})) for s, k in aggregate.seats.items()]
        return (
            aggregate.council_id,
            aggregate.council_id,
            None,
            CouncilView(seats=seats, rules=CouncilRules.model_validate(aggregate.rules), **_fields(CouncilView, state)),
        )
    if isinstance(aggregate, Nomination):
        return (
            aggregate.nomination_id,
            aggregate.council_id,
            aggregate.status,
            NominationView(**_fields(NominationView, state)),
        )
    if isinstance(aggregate, Slate):
        return aggregate.slate_id, aggregate.council_id, aggregate.status, SlateView(**_fields(SlateView, state))
    if isinstance(aggregate, CatalogueCategory):
        return aggregate.category_id, None, None, CatalogueCategoryView(**_fields(CatalogueCategoryView, state))
    if isinstance(aggregate, CatalogueItem):
        return (
            aggregate.item_id,
            None,
            "retired" if aggregate.retired else "open",
            CatalogueItemView(**_fields(CatalogueItemView, state)),
        )
    if isinstance(aggregate, Proposal):
        history = [
            HistoryEntry(what=h["what"], at=h["at"], details={k: v for k, v in h.items() if k not in ("what", "at")})
            for h in aggregate.history
        ]
        return (
            aggregate.proposal_id,
            aggregate.council_id,
            aggregate.status,
            ProposalView(history=history, **_fields(ProposalView, state, exclude={"history"})),
        )
    if isinstance(aggregate, Calendar):
        # status "due": the timer has a session to schedule (its start in next_at)
        return (aggregate.council_id, aggregate.council_id, "due" if aggregate.due() else None,
                CalendarView(next_chair=aggregate.next_chair(), **_fields(CalendarView, state)))
    if isinstance(aggregate, Session):
        return aggregate.session_id, aggregate.council_id, aggregate.status, _StoredSession(**_fields(_StoredSession,
                                                                                                     state))
    raise TypeError(f"no read model for {type(aggregate).__name__}")


def _fields(model: type[View], state: dict[str, Any], exclude: frozenset[str] | set[str] = frozenset()) -> dict:
    """The aggregate attributes the view declares, except those it builds itself."""
    built = {"seats", "rules", "items"} | set(exclude)
    return {name: state[name] for name in model.model_fields if name in state and name not in built}


async def project(conn: asyncpg.Connection, saved: Saved) -> None:
    """The bus's hook (:class:`yishi.commands.Projection`): the read models of what a
    command saved, in its transaction."""
    await update(conn, *saved.aggregates)


async def update(conn: asyncpg.Connection, *aggregates: Aggregate) -> None:
    """Write the documents of ``aggregates`` (on the caller's transaction)."""
    rows = []
    for aggregate in aggregates:
        public_id, council_id, status, doc = view(aggregate)
        rows.append((KINDS[type(aggregate)], aggregate.district, public_id, council_id, status, doc.model_dump_json()))
    await conn.executemany(
        """
        INSERT INTO read_models (kind, district, id, council_id, status, doc) VALUES ($1, $2, $3, $4, $5, $6::jsonb)
        ON CONFLICT (kind, district, id) DO UPDATE
            SET council_id = EXCLUDED.council_id, status = EXCLUDED.status, doc = EXCLUDED.doc
        """,
        rows,
    )


async def rebuild(pool: asyncpg.Pool, repository: Repository, district: str) -> int:
    """Replace ``district``'s documents by replaying its event log; returns how many were
    written. Other districts' documents are neither read nor rewritten.

    The table is locked for the rebuild: a command committing meanwhile waits and then
    writes its newer document over the rebuilt one, so nothing newer is lost.
    """
    written = 0
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("LOCK TABLE read_models IN EXCLUSIVE MODE")
        await conn.execute("DELETE FROM read_models WHERE district = $1", district)
        current: Aggregate | None = None
        stream = None
        # Every stream is one district's (its id is derived from it), so the district's
        # events are whole streams. Domain events are named by the domain package
        # (``…domain.proposal:Proposal.Raised``) or, stored before it was split, by the
        # one module it was (``…domain:Proposal.Raised``, see yishi.topics).
        async for row in conn.cursor(
            "SELECT position, tx_id, stream_id, version, event_id, district, topic, state, metadata, hash "
            "FROM events WHERE (topic LIKE $1 OR topic LIKE $2) AND district = $3 ORDER BY stream_id, version",
            f"{domain.__name__}.%:%", f"{domain.__name__}:%", district,
        ):
            if row["stream_id"] != stream and current is not None:
                await update(conn, current)
                written += 1
                current = None
            stream = row["stream_id"]
            current = repository.to_domain_event(RecordedEvent.from_row(row)).mutate(current)
        if current is not None:
            await update(conn, current)
            written += 1
    return written


# -- queries -------------------------------------------------------------------------------


async def get(pool: asyncpg.Pool, kind: str, district: str, public_id: str) -> dict[str, Any] | None:
    """One document, or None."""
    doc = await pool.fetchval(
        "SELECT doc FROM read_models WHERE kind = $1 AND district = $2 AND id = $3", kind, district, public_id
    )
    return json.loads(doc) if doc is not None else None


async def due_calendars(conn: asyncpg.Connection | asyncpg.Pool) -> list[tuple[str, str, datetime]]:
    """``(district, council id, start)`` of every calendar with a session to schedule."""
    rows = await conn.fetch("SELECT district, id, doc->>'next_at' AS next_at FROM read_models "
                            "WHERE kind = 'calendar' AND status = 'due' ORDER BY district, id")
    return [(r["district"], r["id"], datetime.fromisoformat(r["next_at"])) for r in rows]


async def due_sessions(conn: asyncpg.Connection | asyncpg.Pool, now: datetime) -> list[tuple[str, str]]:
    """``(district, session id)`` of every scheduled session whose start has come."""
    rows = await conn.fetch("SELECT district, id FROM read_models WHERE kind = 'session' AND status = 'scheduled' "
                            "AND (doc->>'starts_at')::timestamptz <= $1 ORDER BY district, id", now)
    return [(r["district"], r["id"]) for r in rows]


async def find(
    pool: asyncpg.Pool, kind: str, district: str, *, council_id: str | None = None, status: str | None = None,
    after: str | None = None, limit: int | None = None,
) -> list[dict[str, Any]]:
    """Documents of a kind in a district, optionally of one council and status, by id:
    at most ``limit`` (all when ``None``) with an id after ``after``."""
    rows = await pool.fetch(
        "SELECT doc FROM read_models WHERE kind = $1 AND district = $2 "
        "AND ($3::text IS NULL OR council_id = $3) AND ($4::text IS NULL OR status = $4) "
        "AND ($5::text IS NULL OR id > $5) ORDER BY id LIMIT $6",
        kind,
        district,
        council_id,
        status,
        after,
        limit,
    )
    return [json.loads(r["doc"]) for r in rows]
