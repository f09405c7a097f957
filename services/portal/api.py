"""The portal's public pages: server-rendered HTML (Jinja2), Atom feeds and the roadmap
widget, served without a token (``ServiceContext.public``). Each route reads the read
model through :mod:`services.portal.projections`, folds it with
:mod:`services.portal.views` and renders a template; the words come from
:mod:`services.portal.messages`. Only the districts this deployment serves are shown;
anything unknown is the 404 page."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from services.portal import charts, feeds, messages, projections, signin, statistics, views
from services.portal.settings import PortalSettings
from yishi.clock import Clock

HERE = Path(__file__).parent
CSS = (HERE / "static" / "portal.css").read_bytes()

#: Pages may not be framed; the widget may, by the sites the district names.
_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors {ancestors}")


def environment() -> Environment:
    """The templates, autoescaped, failing on an undefined name (a typo is an error, not a blank)."""
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(date=messages.local_date, yuan=messages.yuan, urlpart=lambda s: quote(str(s), safe=""))
    return env


def language_of(request: Request) -> str:
    """The reader's language: the switch's cookie, else ``Accept-Language`` (:func:`messages.choose`)."""
    return messages.choose(request.cookies.get(messages.COOKIE), request.headers.get("accept-language"))


def build_router(pool: Callable[[], asyncpg.Pool], districts: list[str], clock: Clock,
                 settings: PortalSettings) -> APIRouter:
    """The public routes of the portal."""
    router = APIRouter(include_in_schema=False)
    env = environment()

    def render(request: Request, template: str, status: int = 200, *, embed: bool = False, **values: Any) -> Response:
        lang = language_of(request)

        def t(key: str, **params: Any) -> str:
            return messages.translate(lang, key, **params)

        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")

        def describe(step: views.Step) -> str:
            return messages.describe(lang, step.kind, step.figures)

        html = env.get_template(template).render(t=t, describe=describe, lang=lang, languages=messages.LANGUAGES,
                                                 here=quote(here), here_path=here,
                                                 refusal=lambda reason: messages.refusal(lang, reason),
                                                 **signin.page_context(request), **values)
        ancestors = settings.embed_ancestors if embed else "'none'"
        headers = {"Content-Security-Policy": _CSP.format(ancestors=ancestors), "Content-Language": lang,
                   "Vary": "Accept-Language, Cookie", "X-Content-Type-Options": "nosniff",
                   "Referrer-Policy": "same-origin"}
        if not embed:
            headers["X-Frame-Options"] = "DENY"
        return Response(html, status, headers=headers, media_type="text/html; charset=utf-8")

    def not_found(request: Request, district: str | None = None) -> Response:
        return render(request, "not_found.html", 404, district=district if district in districts else None)

    @router.get("/static/portal.css")
    async def css() -> Response:
        return Response(CSS, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})

    @router.get("/lang/{language}")
    async def switch_language(language: str, next: str | None = None) -> Response:
        """The language switch: a link (no script) that keeps the choice in the ``lang``
        cookie and goes back to the page it came from (a path of this site only, else the
        first district's index)."""
        local = next and next.startswith("/") and not next.startswith("//") and "\\" not in next
        target = next if local else f"/{districts[0]}"
        response = RedirectResponse(target, 303)
        if language in messages.LANGUAGES:
            response.set_cookie(messages.COOKIE, language, max_age=365 * 86400, samesite="lax", httponly=True)
        return response

    @router.get("/{district}")
    async def district_index(request: Request, district: str) -> Response:
        if district not in districts:
            return not_found(request)
        now = clock.now()
        return render(request, "district.html", district=district,
                      communities=statistics.communities(await projections.community_index_facts(pool(), district)),
                      notices=views.notices(await projections.notice_facts(pool(), district, now), now,
                                            settings.show_names),
                      votes=views.votes(await projections.vote_facts(pool(), district))[:10])

    async def roadmap_of(district: str, community_id: str) -> views.Roadmap | None:
        if district not in districts:
            return None
        return views.roadmap(await projections.community_facts(pool(), district, community_id), community_id)

    @router.get("/{district}/communities/{community_id}")
    async def roadmap(request: Request, district: str, community_id: str) -> Response:
        facts = await projections.community_facts(pool(), district, community_id) if district in districts else []
        found = views.roadmap(facts, community_id)
        if found is None:
            return not_found(request, district)
        # The community's council, where a signed-in resident raises a proposal.
        council = next((f["council_id"] for f in facts if f["type"] == "CouncilFormed"
                        and f["community_id"] == community_id and f["body"].get("level") == "community"), None)
        return render(request, "roadmap.html", district=district, roadmap=found, council_id=council)

    @router.get("/embed/{district}/communities/{community_id}")
    async def roadmap_widget(request: Request, district: str, community_id: str) -> Response:
        """The roadmap as a small page another site may frame (its headers allow it)."""
        found = await roadmap_of(district, community_id)
        if found is None:
            return not_found(request, district)
        return render(request, "embed.html", embed=True, district=district, roadmap=found)

    @router.get("/{district}/communities/{community_id}/feed.atom")
    async def roadmap_feed(request: Request, district: str, community_id: str) -> Response:
        if district not in districts:
            return not_found(request)
        facts = await projections.community_facts(pool(), district, community_id)
        found = views.roadmap(facts, community_id)
        if found is None:
            return not_found(request, district)
        lang = language_of(request)
        title = messages.translate(lang, "feed.community", community=found.name or community_id)
        return feeds.atom(str(request.url), title, lang, views.timeline(facts, settings.show_names),
                          str(request.base_url).rstrip("/"), district)

    async def resolution_of(district: str, resolution_id: str):
        if district not in districts:
            return None, []
        facts = await projections.resolution_facts(pool(), district, resolution_id)
        return views.resolutions(facts).get(resolution_id), facts

    @router.get("/{district}/resolutions/{resolution_id}")
    async def resolution(request: Request, district: str, resolution_id: str) -> Response:
        found, facts = await resolution_of(district, resolution_id)
        if found is None:
            return not_found(request, district)
        return render(request, "resolution.html", district=district, resolution=found,
                      steps=views.timeline(facts, settings.show_names))

    @router.get("/{district}/resolutions/{resolution_id}/feed.atom")
    async def resolution_feed(request: Request, district: str, resolution_id: str) -> Response:
        found, facts = await resolution_of(district, resolution_id)
        if found is None:
            return not_found(request, district)
        lang = language_of(request)
        return feeds.atom(str(request.url), messages.translate(lang, "feed.resolution", title=found.title), lang,
                          views.timeline(facts, settings.show_names), str(request.base_url).rstrip("/"),
                          district)

    @router.get("/{district}/notices")
    async def notices(request: Request, district: str) -> Response:
        if district not in districts:
            return not_found(request)
        now = clock.now()
        return render(request, "notices.html", district=district,
                      notices=views.notices(await projections.notice_facts(pool(), district, now), now,
                                            settings.show_names))

    @router.get("/{district}/votes")
    async def votes(request: Request, district: str) -> Response:
        if district not in districts:
            return not_found(request)
        return render(request, "votes.html", district=district,
                      votes=views.votes(await projections.vote_facts(pool(), district)))

    @router.get("/{district}/votes/{vote_id}")
    async def vote(request: Request, district: str, vote_id: str) -> Response:
        found = views.votes(await projections.vote_facts(pool(), district, vote_id)) \
            if district in districts else []
        if not found:
            return not_found(request, district)
        return render(request, "vote.html", district=district, vote=found[0])

    @router.get("/{district}/statistics")
    async def district_statistics(request: Request, district: str) -> Response:
        if district not in districts:
            return not_found(request)
        lang = language_of(request)
        figures = statistics.statistics(await projections.district_facts(pool(), district))
        return render(request, "statistics.html", district=district, stats=figures,
                      charts=charts.district_charts(figures, lambda key: messages.translate(lang, key)))

    return router
