"""The portal's public pages, from the public events on the topics to the HTML: the
contracts' worked example (a charging shed, from the raise to the rating) is published on
proposals', voting's and oversight's topics of a fresh district, with the council it
came from, the community's fund and a second, stalled and escalated resolution; the pages
are read without a token."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser

import httpx
import pytest
import pytest_asyncio

from contracts import oversight, proposals, sessions
from contracts.common import Actor, Role
from contracts.examples import worked_example
from contracts.registry import Kind, decode, spec, to_envelope
from services.portal import projections
from services.portal.consumers import CONSUMED
from services.portal.main import spec as portal
from services.portal.settings import PortalSettings
from tests.support.service import eventually, new_district, running
from yishi.clock import ManualClock
from yishi.kafka import ensure_topics, new_producer
from yishi.names import events_topic

pytestmark = pytest.mark.asyncio(loop_scope="session")

NOW = datetime(2026, 3, 5, 2, 0, tzinfo=timezone.utc)  # the worked example's proposal is in its notice
WORKER = Actor(id="worker-0102", role=Role.COMMUNITY_WORKER)
SYSTEM = Actor(id="yishi-oversight", role=Role.SYSTEM)
ATOM = "{http://www.w3.org/2005/Atom}"


def story(district: str) -> list[tuple[str, object, str]]:
    """(service, event, subject) of the worked example and its surroundings, in ``district``."""
    events = []
    for step in worked_example():
        if step.envelope.type in ("CommandAccepted", "CommandRejected"):
            continue
        found = spec(step.envelope.type)
        if found.kind is not Kind.EVENT:
            continue
        model = decode(step.envelope).model_copy(update={"district": district})
        events.append((str(found.service), model, step.envelope.subject))
    at = datetime(2026, 3, 1, tzinfo=timezone.utc)
    base = {"district": district, "actor": WORKER, "occurred_at": at}
    events.insert(0, ("proposals", proposals.CouncilFormed.model_validate({
        **base, "council_id": "council-xikang", "name": "西康路社区议事会", "level": "community",
        "area_id": "xikang", "seats": [{"seat_id": "seat-rr-03", "kind": "resident_representative"}]}),
        "council-xikang"))
    events.insert(1, ("oversight", oversight.FundEstablished(
        **base, fund_id="fund-xikang-micro-2026", community_id="xikang", year=2026, amount_fen=20_000_000),
        "fund-xikang-micro-2026"))
    # A proposal in its notice period at NOW, seconded and objected to.
    resident = Actor(id="resident-zhao", role=Role.RESIDENT)
    member = Actor(id="member-qian", role=Role.COUNCIL_MEMBER, seat_id="seat-rr-03")
    soon = {"district": district, "council_id": "council-xikang", "proposal_id": "prop-lift"}
    events += [
        ("proposals", proposals.ProposalRaised(**soon, actor=resident, occurred_at=NOW - timedelta(days=2),
                                               title="老楼加装电梯", summary="7号楼加装电梯，方便老人出行。"),
         "prop-lift"),
        ("proposals", proposals.ProposalPublished(**soon, actor=WORKER, occurred_at=NOW - timedelta(days=1),
                                                  form="council", notice_ends_at=NOW + timedelta(days=6),
                                                  session_at=NOW + timedelta(days=7)), "prop-lift"),
        ("proposals", proposals.MotionSeconded(**soon, actor=member, occurred_at=NOW - timedelta(hours=20)),
         "prop-lift"),
        ("proposals", proposals.ObjectionLodged(**soon, actor=Actor(id="resident-sun", role=Role.RESIDENT),
                                                occurred_at=NOW - timedelta(hours=10), objection_id="obj-lift-1",
                                                grounds="一楼住户担心采光。"), "prop-lift"),
    ]
    # A session of the council's calendar, attended by two residents.
    held = {"district": district, "council_id": "council-xikang", "session_id": "session-xikang-03"}
    events += [("proposals", sessions.AttendanceRecorded(**held, actor=WORKER, occurred_at=NOW - timedelta(days=3),
                                                         person_id=p, by="worker"), "session-xikang-03")
               for p in ("resident-attends-1", "resident-attends-2")]
    events.append(("proposals", sessions.SessionClosed(**held, actor=WORKER, occurred_at=NOW - timedelta(days=3),
                                                       closed_at=NOW - timedelta(days=3)), "session-xikang-03"))
    events.append(("proposals", sessions.SessionMinutesPublished(
        **held, actor=WORKER, occurred_at=NOW - timedelta(days=3), form="consultation_day",
        held_at=NOW - timedelta(days=3), chair="member-chair", agenda=(), attendance=2, proxies=0, statements=(),
        votes=(), decisions=()), "session-xikang-03"))
    # A second resolution, its task stalled then escalated, no news since.
    later = {"district": district, "occurred_at": at + timedelta(days=40)}
    events += [
        ("oversight", oversight.ResolutionRegistered(
            **later, actor=SYSTEM, resolution_id="res-lights", proposal_id="prop-lights", council_id="council-xikang",
            community_id="xikang", title="修复5号楼楼道灯", text="更换5号楼全部楼道灯。"), "res-lights"),
        ("oversight", oversight.TaskAssigned(
            **later, actor=WORKER, task_id="task-lights", resolution_id="res-lights",
            implementer=oversight.Implementer(kind="community_office", id="office-xikang", name="西康路社区居委会"),
            description="更换楼道灯。", acceptance_standards=("全部灯亮",),
            due_at=at + timedelta(days=60)), "task-lights"),
        ("oversight", oversight.TaskStalled(
            district=district, occurred_at=at + timedelta(days=50), actor=SYSTEM, task_id="task-lights",
            resolution_id="res-lights", stalled_after_days=10), "task-lights"),
        ("oversight", oversight.TaskEscalated(
            district=district, occurred_at=at + timedelta(days=55), actor=SYSTEM, task_id="task-lights",
            resolution_id="res-lights", to_level="street", to_authority_id="council-street",
            reason="十天没有进展。"), "task-lights"),
    ]
    return events


async def publish(servers, district: str, events) -> None:
    producer = new_producer(servers.kafka_bootstrap)
    await producer.start()
    try:
        for service, model, subject in events:
            envelope = to_envelope(model, id=str(uuid.uuid4()), source=f"/yishi/{district}/{service}",
                                   subject=subject, time=model.occurred_at, correlation_id=f"c-{uuid.uuid4()}")
            key, headers, value = envelope.to_kafka()
            await producer.send_and_wait(events_topic(district, service), value, key=key, headers=headers)
    finally:
        await producer.stop()


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def portal_running(servers):
    district = new_district()
    await ensure_topics(servers.kafka_bootstrap, [events_topic(district, s)
                                                  for s in ("proposals", "voting", "oversight")])
    events = story(district)
    async with running(portal(PortalSettings()), servers, district=district, clock=ManualClock(NOW)) as r:
        await publish(servers, district, events)

        await eventually(lambda: _count(r), timeout=60)
        r.events = events
        yield r


@pytest.fixture
def client(portal_running):
    """Anonymous: no token."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=portal_running.app), base_url="http://test")


class Text(HTMLParser):
    """The visible text of a page, and its elements' attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        if data.strip():
            self.text.append(data.strip())


def parse(html: str) -> Text:
    p = Text()
    p.feed(html)
    return p


async def test_the_roadmap_lists_every_resolution_of_the_community_with_its_figures(portal_running, client):
    d = portal_running.district
    page = await client.get(f"/{d}/communities/xikang", headers={"Accept-Language": "zh-CN"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert '<html lang="zh-CN">' in html
    assert "西康路社区议事会 成果运用路线图" in html
    shed = html[html.index('data-resolution="res-xikang-2026-017"'):]
    shed = shed[:shed.index("</li>")]
    assert "在3号院增设电动自行车集中充电棚" in shed
    assert "已办结" in shed  # closed, delivered
    assert 'aria-valuenow="100"' in shed
    assert "鼓楼绿色家园服务中心" in shed
    assert "2026-05-16" in shed  # the task's deadline, Beijing time
    assert "¥82,350.00 / ¥86,000.00" in shed  # spent against allocated
    assert "停滞" not in shed
    lights = html[html.index('data-resolution="res-lights"'):]
    lights = lights[:lights.index("</li>")]
    assert "办理中" in lights and 'aria-valuenow="0"' in lights
    assert "西康路社区居委会" in lights
    assert "停滞" in lights and "已上报" in lights  # stalled, then escalated, no news since
    assert "¥200,000.00" in html  # the community's fund
    # Newest first.
    assert html.index('data-resolution="res-lights"') < html.index('data-resolution="res-xikang-2026-017"')


async def test_a_resolutions_timeline_runs_from_the_need_to_the_rating_with_residents_masked(portal_running, client):
    d = portal_running.district
    page = await client.get(f"/{d}/resolutions/res-xikang-2026-017", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    html = page.text
    assert '<html lang="en">' in html
    text = " ".join(parse(html).text)
    order = ["Raised the proposal", "Published for notice until 2026-03-10", "Seconded", "Objected", "Spoke",
             "Vote closed: adopted, turnout 93.33% (11 for, 2 against, 1 abstaining)", "Decided: adopted",
             "Resolution registered", "Assigned to 鼓楼绿色家园服务中心, due 2026-05-16", "Reported progress: 40%",
             "The task stalled", "Spent ¥82,350.00", "Completed the task", "Inspected: satisfactory",
             "Satisfaction rated: 58 satisfied, 9 basically satisfied, 3 dissatisfied", "Resolution closed"]
    positions = [text.index(s) for s in order]
    assert positions == sorted(positions)
    assert "2026-03-02" in text  # raised on (Beijing time)
    # Residents and council members are masked by default; staff are named.
    for resident in ("resident-4211", "member-0932", "resident-5120", "expert-0007", "supervisor-01"):
        assert resident not in html
    assert "r***1" in text and "Resident r***0" in text
    assert "worker-0102" in text


async def test_the_read_model_rebuilt_from_kafka_alone_equals_the_live_one(servers, portal_running):
    """A fresh schema and consumer groups: the portal reads the topics from the beginning."""
    live = await projections.all_rows(portal_running.ctx.pool)
    async with running(portal(PortalSettings()), servers, district=portal_running.district,
                       clock=ManualClock(NOW)) as rebuilt:
        assert rebuilt.ctx.settings.db_schema != portal_running.ctx.settings.db_schema
        await eventually(lambda: _count(rebuilt), timeout=60)
        assert await projections.all_rows(rebuilt.ctx.pool) == live
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=rebuilt.app), base_url="http://test") as c:
            page = (await c.get(f"/{rebuilt.district}/communities/xikang")).text
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=portal_running.app),
                                     base_url="http://test") as c:
            assert (await c.get(f"/{rebuilt.district}/communities/xikang")).text == page


async def test_names_are_shown_where_the_district_says_so(servers, portal_running):
    async with running(portal(PortalSettings(show_names=True)), servers, schema=None,
                       district=portal_running.district, clock=ManualClock(NOW)) as shown:
        await eventually(lambda: _count(shown), timeout=60)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=shown.app), base_url="http://test") as c:
            html = (await c.get(f"/{shown.district}/resolutions/res-xikang-2026-017")).text
    assert "resident-4211" in html and "resident-5120" in html


async def _count(r) -> bool:
    """Every event the portal keeps is kept (it skips ballots, vote requests and reminders)."""
    kept = [m for service, m, _ in story(r.district) if type(m).__name__ in CONSUMED[service]]
    return len(await projections.all_rows(r.ctx.pool)) == len(kept)


async def test_a_secret_vote_shows_its_counts_and_no_voter(portal_running, client):
    d = portal_running.district
    page = await client.get(f"/{d}/votes/vote-xikang-2026-017", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    text = " ".join(parse(page.text).text)
    assert "Secret ballot: only the counts are published" in text
    for figure in ("adopted", "93.3%", "met", "15", "14", "11", "2", "1"):
        assert figure in text
    assert "member-0007" not in page.text and "member-0001" not in page.text  # no voter, no roll
    rows = await projections.all_rows(portal_running.ctx.pool)
    assert not any("member-0007" in str(r["body"]) or "member-0001" in str(r["body"]) for r in rows)


async def test_a_proposal_in_its_notice_period_is_listed_with_its_record(portal_running, client):
    d = portal_running.district
    html = (await client.get(f"/{d}/notices", headers={"Accept-Language": "en"})).text
    # The worked example's proposal was in its notice at NOW too, but its decision is a fact
    # already: only what nothing has ended is listed.
    assert html.count('class="notice"') == 1
    notice = html[html.index('data-proposal="prop-lift"'):]
    text = " ".join(parse(notice).text)
    assert "老楼加装电梯" in text and "Notice ends 2026-03-11 10:00" in text and "Session 2026-03-12 10:00" in text
    assert "1 seconds, 1 objections" in text
    assert [s for s in ("Raised the proposal", "Published for notice until 2026-03-11", "Seconded", "Objected",
                        "一楼住户担心采光。") if s not in text] == []
    assert "resident-zhao" not in html and "member-qian" not in html and "resident-sun" not in html
    assert "Resident r***o" in text and "Council member m***n" in text
    index = (await client.get(f"/{d}", headers={"Accept-Language": "en"})).text
    assert "老楼加装电梯" in index and f'href="/{d}/communities/xikang">西康路社区议事会</a>' in index


async def test_statistics_draw_svg_charts_with_a_table_of_their_figures(portal_running, client):
    d = portal_running.district
    page = await client.get(f"/{d}/statistics", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    html = page.text
    assert html.count("<svg") == 3 and "<script" not in html
    tables = html.count("<table")
    assert tables == 3
    text = " ".join(parse(html).text)
    assert "西康路社区议事会" in text and "200000" in text and "82350" in text and "95.7" in text
    # Figures from records, as oversight's (issue 20): one session held (its minutes
    # published), two attendances; ballots, raisings and statements are not person-times.
    assert "Sessions 1 Person-times 2" in text
    rows = await projections.all_rows(portal_running.ctx.pool)
    assert not any("resident-attends" in str(r["body"]) for r in rows)  # counted, not named


async def test_the_feeds_are_atom_with_an_entry_per_step(portal_running, client):
    d = portal_running.district
    for path, entries in ((f"/{d}/resolutions/res-xikang-2026-017/feed.atom", 19),
                          (f"/{d}/communities/xikang/feed.atom", None)):
        feed = await client.get(path, headers={"Accept-Language": "en"})
        assert feed.status_code == 200
        assert feed.headers["content-type"].startswith("application/atom+xml")
        root = ET.fromstring(feed.content)
        assert root.tag == f"{ATOM}feed"
        titles = [e.findtext(f"{ATOM}title") for e in root.findall(f"{ATOM}entry")]
        assert "Resolution closed" in titles
        if entries is not None:
            assert len(titles) == entries
    community = ET.fromstring((await client.get(f"/{d}/communities/xikang/feed.atom")).content)
    assert "任务停滞" in [e.findtext(f"{ATOM}title") for e in community.findall(f"{ATOM}entry")]
    # An entry is its event: one id per step, the same in both feeds, linking to its resolution.
    resolution = ET.fromstring((await client.get(f"/{d}/resolutions/res-xikang-2026-017/feed.atom")).content)
    ids = [e.findtext(f"{ATOM}id") for e in resolution.findall(f"{ATOM}entry")]
    assert len(set(ids)) == len(ids)
    shared = {e.findtext(f"{ATOM}id") for e in community.findall(f"{ATOM}entry")} & set(ids)
    assert len(shared) == 11  # registered, assigned, accepted, allocated, progress, stalled, spent, completed,
    #                           inspected, rated, closed: its proposal's steps are not the community's
    links = {e.find(f"{ATOM}link").get("href") for e in community.findall(f"{ATOM}entry")}
    assert links == {f"http://test/{d}/resolutions/res-xikang-2026-017", f"http://test/{d}/resolutions/res-lights"}


async def test_only_the_widget_may_be_framed(portal_running, client):
    d = portal_running.district
    page = await client.get(f"/{d}/communities/xikang")
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    widget = await client.get(f"/embed/{d}/communities/xikang")
    assert widget.status_code == 200
    assert "x-frame-options" not in widget.headers
    assert "frame-ancestors *" in widget.headers["content-security-policy"]
    assert 'data-resolution="res-lights"' in widget.text and 'target="_top"' in widget.text


async def test_unknown_things_and_other_districts_are_the_404_page(portal_running, client):
    d = portal_running.district
    for path in (f"/{d}/communities/nowhere", f"/{d}/resolutions/res-nowhere", f"/{d}/votes/vote-nowhere",
                 f"/{d}/communities/nowhere/feed.atom", f"/embed/{d}/communities/nowhere",
                 "/other/communities/xikang", "/other/resolutions/res-xikang-2026-017", "/other/statistics",
                 "/other"):
        page = await client.get(path, headers={"Accept-Language": "en"})
        assert page.status_code == 404, path
        assert page.headers["content-type"].startswith("text/html")
        assert "Page not found" in page.text


async def test_the_language_switch_is_a_link_that_sets_a_cookie(portal_running, client):
    d = portal_running.district
    page = await client.get(f"/{d}/communities/xikang")  # no Accept-Language: Chinese
    assert '<html lang="zh-CN">' in page.text
    link = next(a["href"] for tag, a in parse(page.text).tags if tag == "a" and a.get("hreflang") == "en")
    switched = await client.get(link)
    assert switched.status_code == 303
    assert switched.headers["location"] == f"/{d}/communities/xikang"
    assert "lang=en" in switched.headers["set-cookie"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=portal_running.app), base_url="http://test",
                                 cookies={"lang": "en"}) as switched_client:
        again = await switched_client.get(switched.headers["location"], headers={"Accept-Language": "zh-CN"})
    assert '<html lang="en">' in again.text and "outcome roadmap" in again.text
    for elsewhere in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        assert (await client.get("/lang/en", params={"next": elsewhere})).headers["location"] == f"/{d}"


async def test_the_pages_answer_without_a_token(portal_running, client):
    d = portal_running.district
    for path in (f"/{d}", f"/{d}/notices", f"/{d}/votes", f"/{d}/statistics", "/static/portal.css"):
        assert (await client.get(path)).status_code == 200, path


async def test_every_page_is_one_column_semantic_html_with_headings_in_order(portal_running, client):
    d = portal_running.district
    for path in (f"/{d}", f"/{d}/communities/xikang", f"/{d}/resolutions/res-xikang-2026-017", f"/{d}/notices",
                 f"/{d}/votes", f"/{d}/votes/vote-xikang-2026-017", f"/{d}/statistics", f"/embed/{d}/communities/xikang",
                 f"/{d}/communities/nowhere"):
        for language in ("zh-CN", "en"):
            page = parse((await client.get(path, headers={"Accept-Language": language})).text)
            tags = [tag for tag, _ in page.tags]
            attrs = dict(page.tags)
            assert attrs["html"]["lang"] == language, path
            assert {"name": "viewport", "content": "width=device-width, initial-scale=1"} in \
                [a for tag, a in page.tags if tag == "meta"], path
            assert tags.count("main") == 1 and tags.count("h1") == 1, path
            if not path.startswith("/embed"):
                assert {"header", "footer", "nav"} <= set(tags), path
                assert all(a.get("aria-label") for tag, a in page.tags if tag == "nav"), path
            levels = [int(tag[1]) for tag in tags if tag in ("h1", "h2", "h3", "h4")]
            assert levels[0] == 1 and all(b - a <= 1 for a, b in zip(levels, levels[1:])), (path, levels)
            assert all(a.get("alt") is not None for tag, a in page.tags if tag == "img"), path
            assert all(a.get("aria-label") for tag, a in page.tags if tag == "svg"), path
