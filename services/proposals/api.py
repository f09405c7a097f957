"""HTTP queries of the proposals service (commands are served by the command bus), and
the rebuild of its read models from the event log.

Ids are looked up in the district of the path only: another district's ids are not
found, like ids that do not exist.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Query

from contracts.common import Id, Role
from contracts.permissions import Party, acts_for
from services.proposals import projections
from services.proposals.domain import ProposalStatus
from services.proposals.projections import (
    CalendarView,
    CatalogueCategoryView,
    CatalogueItemView,
    CouncilView,
    MemberView,
    NominationView,
    ProposalSummary,
    ProposalView,
    SessionView,
    SlateView,
)
from yishi.auth import Principal, authenticate
from yishi.pagination import Page, PageQuery, page_query
from yishi.repository import Repository
from yishi.runtime import ServiceContext


async def rebuild(ctx: ServiceContext, repository: Repository, district: str) -> int:
    """Rebuild ``district``'s read models from its event log; returns the documents written."""
    return await projections.rebuild(ctx.pool, repository, district)


def router(ctx: ServiceContext, repository: Repository) -> APIRouter:
    """The query routes, reading the service's read models."""
    api = APIRouter(tags=["queries"], responses={404: {"description": "No such district or record here."}})

    def served(district: str) -> str:
        if district not in ctx.settings.districts:
            raise HTTPException(404, f"district {district} is not served here")
        return district

    async def one(kind: str, district: str, public_id: str) -> dict:
        doc = await projections.get(ctx.pool, kind, served(district), public_id)
        if doc is None:
            raise HTTPException(404, f"no {kind} {public_id} in {district}")
        return doc

    by_id = page_query(str)

    async def page_of(kind: str, district: str, query: PageQuery, **filters: str | None) -> dict:
        """A page of ``kind``'s documents, by id."""
        docs = await projections.find(ctx.pool, kind, served(district), after=query.after_value,
                                      limit=query.fetch, **filters)
        return query.page(docs, lambda d: (d[f"{kind}_id"],))

    @api.get("/{district}/councils", response_model=Page[CouncilView], summary="Councils of the district")
    async def list_councils(district: str, query: PageQuery = Depends(by_id)) -> dict:
        """The district's councils with their rules and seats, by id, a page at a time."""
        return await page_of("council", district, query)

    @api.get(
        "/{district}/councils/{council_id}",
        response_model=CouncilView,
        summary="One council",
        responses={404: {"description": "No such council in this district"}},
    )
    async def get_council(district: str, council_id: Id) -> dict:
        """A council with its level, parent, rules and seats (and who holds them)."""
        return await one("council", district, council_id)

    @api.get(
        "/{district}/councils/{council_id}/members",
        response_model=list[MemberView],
        summary="Seated members of a council",
        responses={404: {"description": "No such council"}},
    )
    async def list_members(district: str, council_id: Id) -> list[MemberView]:
        """The members holding a seat of the council, with their seat category."""
        council = CouncilView.model_validate(await one("council", district, council_id))
        return [
            MemberView(
                council_id=council.council_id,
                seat_id=s.seat_id,
                seat_kind=s.kind,
                member_id=s.member_id,
                term_ends_at=s.term_ends_at,
                since=s.since,
            )
            for s in council.seats
            if s.member_id is not None
        ]

    @api.get("/{district}/catalogue", response_model=list[CatalogueCategoryView], summary="The consultation catalogue")
    async def get_catalogue(
        district: str, community_id: str | None = None, include_retired: bool = False
    ) -> list[CatalogueCategoryView]:
        """First-level categories with their second-level items, optionally of one
        community; retired items only when asked for."""
        items = [
            CatalogueItemView.model_validate(d) for d in await projections.find(ctx.pool, "item", served(district))
        ]
        items = [
            i
            for i in items
            if (include_retired or not i.retired) and (community_id is None or i.community_id == community_id)
        ]
        return [
            CatalogueCategoryView.model_validate(c).model_copy(
                update={"items": [i for i in items if i.category_id == c["category_id"]]}
            )
            for c in await projections.find(ctx.pool, "category", district)
        ]

    @api.get(
        "/{district}/nominations/{nomination_id}",
        response_model=NominationView,
        summary="One representative nomination",
        responses={404: {"description": "No such nomination"}},
    )
    async def get_nomination(district: str, nomination_id: Id) -> dict:
        """A nomination and where it stands (nominated, publicised, voting, confirmed, rejected)."""
        return await one("nomination", district, nomination_id)

    @api.get(
        "/{district}/slates/{slate_id}",
        response_model=SlateView,
        summary="One slate of representatives",
        responses={404: {"description": "No such slate"}},
    )
    async def get_slate(district: str, slate_id: Id) -> dict:
        """A slate, its nominees and where it stands (publicised, voting, confirmed, rejected)."""
        return await one("slate", district, slate_id)

    @api.get("/{district}/proposals", response_model=Page[ProposalSummary], summary="Proposals")
    async def list_proposals(
        district: str,
        status: ProposalStatus | None = Query(default=None),
        council_id: Id | None = Query(default=None),
        query: PageQuery = Depends(by_id),
    ) -> dict:
        """Proposals of the district, optionally of one council and in one status, by id,
        a page at a time."""
        return await page_of("proposal", district, query, council_id=council_id,
                             status=status.value if status else None)

    @api.get(
        "/{district}/proposals/{proposal_id}",
        response_model=ProposalView,
        summary="One proposal with its deliberation record",
        responses={404: {"description": "No such proposal in this district"}},
    )
    async def get_proposal(district: str, proposal_id: Id) -> dict:
        """A proposal with seconds, objections, the five-step statements, votes, decision and history."""
        return await one("proposal", district, proposal_id)

    @api.get("/{district}/councils/{council_id}/calendar", response_model=CalendarView,
             summary="A council's rota of chairs and monthly schedule",
             responses={404: {"description": "The council has set neither"}})
    async def get_calendar(district: str, council_id: Id) -> dict:
        """The rota (and its next chair), the schedule, the next start the timer will
        schedule, and the council's sessions."""
        return await one("calendar", district, council_id)

    @api.get("/{district}/sessions", response_model=Page[SessionView], summary="Consultation sessions")
    async def list_sessions(district: str, council_id: Id | None = Query(default=None),
                            status: str | None = Query(default=None, pattern="^(scheduled|open|closed|minuted)$"),
                            query: PageQuery = Depends(by_id)) -> dict:
        """Sessions of the district, optionally of one council and in one status
        (scheduled, open, closed, minuted), by id, a page at a time."""
        return await page_of("session", district, query, council_id=council_id, status=status)

    @api.get("/{district}/sessions/{session_id}", response_model=SessionView, summary="One consultation session",
             responses={404: {"description": "No such session in this district"}})
    async def get_session(district: str, session_id: Id) -> dict:
        """A session: chair, agenda, invitations, attendance, statements, votes and decisions."""
        return await one("session", district, session_id)

    @api.get("/{district}/sessions/{session_id}/check-in-code", summary="A session's check-in code",
             responses={403: {"description": "Only the council's community workers and chairs see it."},
                        404: {"description": "No such session in this district"}})
    async def get_check_in_code(district: str, session_id: Id,
                                principal: Principal = Depends(authenticate)) -> dict[str, str]:
        """The code people check in with (``CheckIn``), shown in the room: for a community
        worker or a chair acting for the session's council only (``acts_for``), as
        ``RecordAttendance``'s callers."""
        doc = await one("session", district, session_id)
        staff = [r for r in (Role.COMMUNITY_WORKER, Role.CHAIR) if r in principal.roles]
        if principal.district != district or not any(
                acts_for("RecordAttendance", r, principal.acts_for, {Party.COUNCIL: doc["council_id"]}) for r in staff):
            raise HTTPException(403, "only a community worker or a chair of the session's council sees its code")
        return {"session_id": session_id, "code": doc["code"]}

    @api.post("/admin/read-models/rebuild", tags=["admin"], summary="Rebuild the read models from the log",
              responses={403: {"description": "Only a district administrator may rebuild."}})
    async def rebuild_read_models(principal: Principal = Depends(authenticate)) -> dict[str, int]:
        """Replay the administrator's district's event log into fresh read models, for a
        district administrator of a district served here. Only that district's documents
        are rebuilt and counted: other districts served here are neither touched nor
        sized."""
        if Role.DISTRICT_ADMIN not in principal.roles or principal.district not in ctx.settings.districts:
            raise HTTPException(403, "only a district administrator of a district served here may rebuild")
        return {"documents": await rebuild(ctx, repository, principal.district)}

    return api
