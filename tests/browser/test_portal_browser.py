"""The portal in a browser (issue 21): Debian's Chromium, driven by Playwright, against the
platform the tests start (every service and the portal as processes, one start for this
module), people signing in through the development issuer's login form.

* on a phone-sized viewport a resident signs in and votes (a second ballot is refused in
  plain words), objects to a proposal in its notice period, raises a proposal from the
  roadmap and signs out; a council member seconds from their seat (a second time refused);
* an implementer reports progress through the portal and the community's roadmap shows it
  within seconds (the page polled; nothing slept on);
* a supervisor records an inspection;
* the language switch turns every page to English and back;
* every public page has no serious or critical axe-core violation; no page visited logs a
  console error; screenshots are kept in ``test-artefacts/browser/``.

The platform's state before the browser comes in is made through the services' public
HTTP APIs, as the demo makes it (:mod:`yishi.demo`)."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
from rich.console import Console

from contracts.common import Electorate, ElectorateKind, VoteMatter, VoteMatterKind, VoteTerms
from contracts.oversight import AcceptTask, AssignTask, Implementer, ImplementerKind
from contracts.proposals import ConsultationForm, PublishProposal, RaiseProposal
from contracts.voting import OpenVote
from services.portal import messages
from tests.support.auth import acting
from tests.support.browser import accessibility_violations, screenshot
from tests.support.service import eventually
from yishi import demo
from yishi.demo import STAFF, WORKER, Api

pytestmark = pytest.mark.slow
say = Console(width=160)  # the story's output, shown when a test fails
ORG, ORG_NAME = demo.IMPLEMENTER_ID, "鼓楼绿色家园服务中心"
QUESTION = "是否在3号院试行夜间静音时段?"
NOTICED = "在小区东门加装路灯"


@dataclass
class Story:
    """What the platform holds when the browser comes in."""

    district: str
    community: str
    council: str
    vote_id: str
    voter: str
    resolution_id: str
    task_id: str
    noticed: str
    """A proposal in its notice period."""


@pytest.fixture(scope="module")
async def story(platform) -> Story:
    """A community council that decided a proposal (its resolution's task assigned to and
    accepted by an organisation) and a residents' vote open to two residents."""
    d, t = platform.districts[0], uuid.uuid4().hex[:6]
    voter = f"resident-zhou-{t}"
    async with Api(platform.urls, d, timeout=60, auth=acting({STAFF.id: [ORG]})) as api:
        councils = await demo.form_councils(api, t, say)
        proposal_id = f"prop-{t}"
        await demo.raise_and_deliberate(api, councils, proposal_id, say)
        decided = await demo.vote(api, councils, proposal_id, f"vote-council-{t}", say)
        assert decided.proposal["status"] == "adopted", decided.proposal
        resolution_id = decided.proposal["resolution_id"] or f"res-{proposal_id}"
        await api.until("the resolution", "oversight", f"resolutions/{resolution_id}")
        assigned = await api.send(AssignTask(
            district=d, actor=WORKER, resolution_id=resolution_id,
            implementer=Implementer(kind=ImplementerKind.SOCIAL_ORGANISATION, id=ORG, name=ORG_NAME),
            description="建设充电棚并完成消防验收。", acceptance_standards=("40个充电位全部可用",),
            due_at=await api.now() + timedelta(days=60)))
        task_id = assigned["ids"]["task_id"]
        await api.send(AcceptTask(district=d, actor=STAFF, task_id=task_id))
        # A second proposal, in its notice period for the whole module.
        noticed = f"prop-notice-{t}"
        await api.send(RaiseProposal(district=d, actor=demo.member("member-wang"), proposal_id=noticed,
                                     council_id=councils.community, title=NOTICED, summary="在小区东门加装照明。"))
        await api.send(PublishProposal(district=d, actor=WORKER, proposal_id=noticed, form=ConsultationForm.COUNCIL,
                                       notice_ends_at=await api.now() + timedelta(days=7)))
        vote_id = f"vote-residents-{t}"
        roll = (voter, f"resident-wu-{t}")
        await api.send(OpenVote(district=d, actor=WORKER, vote_id=vote_id, council_id=councils.community,
                                matter=VoteMatter(kind=VoteMatterKind.QUESTION, id=f"question-{t}"),
                                terms=VoteTerms(question=QUESTION,
                                                closes_at=await api.now() + timedelta(days=7),
                                                electorate=Electorate(kind=ElectorateKind.RESIDENTS_MEETING,
                                                                      scope_id="xikang", size=2, roll=roll),
                                                method="show_of_hands", majority="simple", quorum_percent=50,
                                                secrecy="open")))
        await api.until("the residents' vote", "voting", f"votes/{vote_id}")
    async with httpx.AsyncClient(base_url=platform.urls["portal"], timeout=10) as portal:
        # The portal's copy catches up with the events: the pages the tests start from.
        await eventually(lambda: portal_shows(portal, f"/{d}/votes/{vote_id}", QUESTION), timeout=60)
        await eventually(lambda: portal_shows(portal, f"/{d}/notices", NOTICED), timeout=60)
        await eventually(lambda: portal_shows(portal, f"/{d}/resolutions/{resolution_id}", ORG_NAME), timeout=60)
    return Story(d, "xikang", councils.community, vote_id, voter, resolution_id, task_id, noticed)


async def portal_shows(portal: httpx.AsyncClient, path: str, text: str) -> bool:
    page = await portal.get(path)
    return page.status_code == 200 and text in page.text


def t(key: str, lang: str = "zh-CN", **params) -> str:
    """The portal's words for ``key``: the tests expect exactly what the catalogue says."""
    return messages.translate(lang, key, **params)


async def until_shown(page, url: str, text: str, *, attempts: int = 60) -> None:
    """Reload ``url`` until ``text`` is on the page (a bounded poll: each reload is an
    answer from the portal, not a pause hoped to be long enough)."""
    for _ in range(attempts):
        await page.goto(url)
        if text in await page.inner_text("main"):
            return
        await page.wait_for_timeout(250)
    raise AssertionError(f"{text!r} not shown at {url} after {attempts} reloads:\n{await page.inner_text('main')}")


async def sign_in(page, portal: str, start: str, subject: str, district: str, roles: tuple[str, ...],
                  acts_for: str = "*", seat: str = "") -> None:
    """Sign in from ``start`` through the development issuer's login form, and land back there."""
    await page.goto(f"{portal}{start}")
    await page.click("a[href^='/auth/login']")
    await page.wait_for_selector("form[action='authorize']")
    await page.fill("#subject", subject)
    await page.fill("#district", district)
    for box in await page.query_selector_all("input[name='roles']"):
        if await box.get_attribute("value") in roles:
            await box.check()
        else:
            await box.uncheck()
    await page.fill("#acts_for", acts_for)
    await page.fill("#seat", seat)
    await page.click("button[type='submit']")
    await page.wait_for_url(re.compile(re.escape(portal) + r"/"))
    assert page.url.split("?")[0] == f"{portal}{start}", page.url
    assert "code=" not in page.url and "token" not in page.url
    assert t("signin.signed_in") in await page.inner_text("body")


async def test_a_resident_signs_in_on_a_phone_and_votes(platform, story: Story, phone, console):
    portal = platform.urls["portal"]
    vote_page = f"/{story.district}/votes/{story.vote_id}"
    await sign_in(phone, portal, vote_page, story.voter, story.district, ("resident",))
    await screenshot(phone, "phone-1-signed-in")
    cookies = {c["name"]: c for c in await phone.context.cookies()}
    session = cookies["yishi_portal"]
    assert session["httpOnly"] and session["sameSite"] == "Lax"

    await phone.check("form[action='/act/vote'] input[value='in_favour']")
    await phone.click("form[action='/act/vote'] button[type='submit']")
    await phone.wait_for_url(f"{portal}{vote_page}")
    assert t("done.vote") in await phone.inner_text("[role='status']")
    await screenshot(phone, "phone-2-voted")

    # A second ballot (a new form, so a new command) is the service's refusal, in plain words.
    await phone.check("form[action='/act/vote'] input[value='against']")
    await phone.click("form[action='/act/vote'] button[type='submit']")
    await phone.wait_for_url(f"{portal}{vote_page}")
    assert t("refused.duplicate") in await phone.inner_text("[role='alert']")
    await screenshot(phone, "phone-3-refused")

    # On a proposal in its notice period: an objection is recorded; seconding is a council
    # member's, so a resident is offered no such form.
    notices = f"/{story.district}/notices"
    await phone.goto(f"{portal}{notices}")
    notice = f"article[data-proposal='{story.noticed}']"
    await phone.fill(f"{notice} textarea[name='grounds']", "路灯会照进卧室,请装遮光罩。")
    await phone.click(f"{notice} form[action='/act/object'] button[type='submit']")
    await phone.wait_for_url(f"{portal}{notices}")
    assert t("done.object") in await phone.inner_text("[role='status']")
    assert await phone.locator(f"{notice} form[action='/act/second']").count() == 0
    await screenshot(phone, "phone-4-objected")

    # Raising a proposal before the community's council, from its roadmap.
    roadmap = f"/{story.district}/communities/{story.community}"
    await phone.goto(f"{portal}{roadmap}")
    await phone.fill("#raise-title", "在5号楼加装扶手")
    await phone.fill("#raise-summary", "5号楼楼梯没有扶手,老人上下不便。")
    await phone.click("form[action='/act/raise'] button[type='submit']")
    await phone.wait_for_url(f"{portal}{roadmap}")
    assert t("done.raise") in await phone.inner_text("[role='status']")
    await screenshot(phone, "phone-5-raised")

    await phone.click("form[action='/auth/logout'] button[type='submit']")
    await phone.wait_for_url(f"{portal}{roadmap}")
    assert t("signin.signed_out") in await phone.inner_text("[role='status']")
    assert await phone.locator("form[action='/act/raise']").count() == 0
    assert await phone.locator("a[href^='/auth/login']").count() == 1
    width = await phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page scrolls sideways on a phone: {width}px"
    assert console.errors == [], "\n".join(console.errors)


async def test_a_council_member_seconds_from_their_seat_once(platform, story: Story, phone, console):
    portal = platform.urls["portal"]
    notices = f"/{story.district}/notices"
    await sign_in(phone, portal, notices, "member-li", story.district, ("council_member",), seat="seat-so-01")
    second = f"article[data-proposal='{story.noticed}'] form[action='/act/second'] button[type='submit']"
    await phone.click(second)
    await phone.wait_for_url(f"{portal}{notices}")
    assert t("done.second") in await phone.inner_text("[role='status']")
    await phone.click(second)  # a new form, a second seconding: the service's refusal, in plain words
    await phone.wait_for_url(f"{portal}{notices}")
    assert t("refused.duplicate") in await phone.inner_text("[role='alert']")
    await screenshot(phone, "member-seconded")
    assert console.errors == [], "\n".join(console.errors)


async def test_the_roadmap_shows_an_implementers_report_within_seconds(platform, story: Story, phone, console):
    portal = platform.urls["portal"]
    resolution_page = f"/{story.district}/resolutions/{story.resolution_id}"
    roadmap = f"{portal}/{story.district}/communities/{story.community}"
    await sign_in(phone, portal, resolution_page, STAFF.id, story.district, ("implementer",), acts_for=ORG)
    form = f"form[action='/act/progress']:has(input[name='task_id'][value='{story.task_id}'])"
    await phone.fill(f"{form} input[name='percent_complete']", "65")
    await phone.fill(f"{form} textarea[name='summary']", "充电桩安装完成。")
    await phone.click(f"{form} button[type='submit']")
    await phone.wait_for_url(f"{portal}{resolution_page}")
    assert t("done.progress") in await phone.inner_text("[role='status']")
    started = time.monotonic()
    await until_shown(phone, roadmap, t("progress.label", percent=65))
    say.print(f"the roadmap showed 65% {time.monotonic() - started:.2f} s after the report was accepted")
    await screenshot(phone, "roadmap-after-progress")
    assert console.errors == [], "\n".join(console.errors)


async def test_a_supervisor_records_an_inspection(platform, story: Story, phone, console):
    portal = platform.urls["portal"]
    resolution_page = f"/{story.district}/resolutions/{story.resolution_id}"
    await sign_in(phone, portal, resolution_page, "supervisor-01", story.district, ("supervisor",))
    form = "form[action='/act/inspect']"
    await phone.check(f"{form} input[name='aspects'][value='progress']")
    await phone.select_option(f"{form} select[name='finding']", "needs_improvement")
    await phone.fill(f"{form} textarea[name='notes']", "进度滞后,请加快。")
    await phone.click(f"{form} button[type='submit']")
    await phone.wait_for_url(f"{portal}{resolution_page}")
    assert t("done.inspect") in await phone.inner_text("[role='status']")
    await screenshot(phone, "inspection-recorded")
    # A resident has no inspection form; sent anyway, it would be the service's refusal.
    assert console.errors == [], "\n".join(console.errors)


async def test_the_language_switch_turns_the_pages_to_english_and_back(platform, story: Story, phone, console):
    portal = platform.urls["portal"]
    await phone.goto(f"{portal}/{story.district}/notices")
    assert await phone.get_attribute("html", "lang") == "zh-CN"
    assert t("nav.notices") in await phone.inner_text("nav")
    await phone.click("a[hreflang='en']")
    await phone.wait_for_url(f"{portal}/{story.district}/notices")
    assert await phone.get_attribute("html", "lang") == "en"
    assert t("nav.notices", "en") in await phone.inner_text("nav")
    await phone.goto(f"{portal}/{story.district}/votes")  # the choice stays
    assert await phone.get_attribute("html", "lang") == "en"
    await screenshot(phone, "language-english")
    await phone.click("a[hreflang='zh-CN']")
    assert await phone.get_attribute("html", "lang") == "zh-CN"
    assert console.errors == [], "\n".join(console.errors)


async def test_every_public_page_is_accessible_and_logs_no_error(platform, story: Story, phone, console):
    portal = platform.urls["portal"]
    d = story.district
    pages = {"district": f"/{d}", "roadmap": f"/{d}/communities/{story.community}",
             "resolution": f"/{d}/resolutions/{story.resolution_id}", "notices": f"/{d}/notices",
             "votes": f"/{d}/votes", "vote": f"/{d}/votes/{story.vote_id}", "statistics": f"/{d}/statistics",
             "widget": f"/embed/{d}/communities/{story.community}", "not-found": f"/{d}/resolutions/none"}
    console.not_found.add(f"{portal}{pages['not-found']}")
    found = {}
    for lang in ("zh-CN", "en"):
        await phone.context.add_cookies([{"name": messages.COOKIE, "value": lang, "url": portal}])
        for name, path in pages.items():
            answer = await phone.goto(f"{portal}{path}")
            assert answer.status == (404 if name == "not-found" else 200), (path, answer.status)
            await screenshot(phone, f"public-{name}-{lang}")
            violations = await accessibility_violations(phone)
            if violations:
                found[f"{path} ({lang})"] = violations
    # An anonymous reader is given no session: the only cookie is the language chosen.
    assert {c["name"] for c in await phone.context.cookies()} == {messages.COOKIE}
    assert not found, "serious or critical accessibility violations:\n" + "\n".join(
        f"{page}: {v}" for page, vs in found.items() for v in vs)
    assert console.errors == [], "\n".join(console.errors)
