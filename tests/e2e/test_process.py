"""The whole process across the four services as processes, through their public HTTP
APIs only (the steps of :mod:`yishi.demo`), over the real broker and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import datetime, timezone

import httpx
from rich.console import Console
from standardwebhooks import Webhook

from contracts.proposals import ReturnProposalForReconsultation
from contracts.voting import BallotChoice
from services.notify.channels import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from tests.support.auth import acting, bearer
from tests.support.kafka import read_topic
from yishi import demo
from yishi.demo import ADOPT, AUDITED, MEMBERS, WORKER, Api

# The story's output goes to pytest's captured stdout: shown when a test fails.
say = Console(width=160)
FOR, AGAINST = BallotChoice.IN_FAVOUR, BallotChoice.AGAINST


def tag() -> str:
    return uuid.uuid4().hex[:6]


async def test_full_process_from_raise_to_audit_trail(platform):
    district = platform.districts[0]
    trail = await demo.tell(platform.urls, say, district=district, inbox=platform.inbox, timeout=60,
                             auth=acting())

    steps = trail["steps"]
    types = [s["type"] for s in steps]
    assert set(AUDITED) <= set(types)
    # In time order: deliberation, decision, delivery, rating.
    first = {t: types.index(t) for t in AUDITED}
    assert (first["ProposalRaised"] < first["MotionSeconded"] < first["VoteOpened"] < first["VoteClosed"]
            < first["ResolutionRegistered"] < first["TaskStalled"] < first["TaskCompleted"]
            < first["InspectionRecorded"] < first["SatisfactionRated"])
    actors = {(s["type"], s["actor_id"]) for s in steps}
    assert {("ProposalRaised", "member-wang"), ("MotionSeconded", "member-li"), ("ObjectionLodged", "resident-liu"),
            ("StatementMade", "expert-sun"), ("VoteRequested", "worker-0102"), ("TaskAccepted", "staff-2201"),
            ("TaskCompleted", "staff-2201"), ("InspectionRecorded", "supervisor-01"),
            ("SatisfactionRated", "worker-0102")} <= actors
    assert {s["actor_id"] for s in steps if s["type"] == "BallotAccepted"} == {m for _, _, m in MEMBERS}
    closed = next(s["body"] for s in steps if s["type"] == "VoteClosed")
    assert (closed["tally"]["in_favour"], closed["tally"]["against"], closed["outcome"]) == (4, 1, "adopted")
    reminder = next(s["body"] for s in steps if s["type"] == "ReminderDue")
    assert (reminder["kind"], reminder["recipient_id"]) == ("stalled", "staff-2201")
    stalled = next(s["body"] for s in steps if s["type"] == "TaskStalled")
    assert stalled["stalled_after_days"] == 1

    # The reminder reached the implementer's webhook, signed with the platform's secret.
    async with Api(platform.urls, district, auth=acting()) as api:
        deliveries = await api.get("notify", "deliveries", recipient_id="staff-2201", status="delivered")
        # The staff subscribed to nothing: their organisation's entry in the district's
        # directory of default contacts reached them.
        assert (await api.get("notify", "subscriptions", subscriber_id="staff-2201"))["items"] == []
        assert (await api.get("notify", "default-contacts/org-green-home"))["address"] == platform.inbox.url
    reminder_delivery = next(d for d in deliveries["items"] if d["regarding_type"] == "ReminderDue")
    headers, body = next((h, b) for h, b in platform.inbox.received
                         if reminder_delivery["delivery_id"].encode() in b)
    assert Webhook(platform.webhook_secret.encode()).verify(body, headers)["delivery_id"] == \
        reminder_delivery["delivery_id"]  # Standard Webhooks, with its library's verifier
    assert verify(platform.webhook_secret.encode(), headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER],
                  datetime.now(timezone.utc))  # the old header, for one release


async def test_rejected_and_no_quorum_votes_return_to_consultation(platform):
    district, t = platform.districts[0], tag()
    async with Api(platform.urls, district, timeout=60, auth=acting()) as api:
        before = await api.get("oversight", "statistics")
        councils = await demo.form_councils(api, t, say)
        rejected, no_quorum = f"prop-rej-{t}", f"prop-nq-{t}"
        await asyncio.gather(demo.raise_and_deliberate(api, councils, rejected, say),
                             demo.raise_and_deliberate(api, councils, no_quorum, say))
        against = {voter: AGAINST if voter != "member-wang" else FOR for voter in ADOPT}
        two_of_five = {"member-wang": FOR, "member-li": FOR}  # 40% turnout, the quorum is 60%
        decided, returned = await asyncio.gather(
            demo.vote(api, councils, rejected, f"vote-rej-{t}", say, ballots=against),
            demo.vote(api, councils, no_quorum, f"vote-nq-{t}", say, ballots=two_of_five, close_early=True))

        assert decided.vote["result"]["outcome"] == "rejected"
        assert (decided.proposal["status"], decided.proposal["decision"]["decision"]) == ("rejected", "rejected")
        assert returned.vote["result"]["outcome"] == "no_quorum"
        assert returned.vote["result"]["quorum_met"] is False
        assert (returned.proposal["status"], returned.proposal["round"]) == ("published", 2)
        assert returned.proposal["history"][-1]["what"] == "returned_for_reconsultation"
        # The rejected proposal goes back too, when the council decides to consult again.
        await api.send(ReturnProposalForReconsultation(district=district, actor=WORKER, proposal_id=rejected,
                                                       reason="居民提出新的选址方案,重新协商。"))
        again = await api.get("proposals", f"proposals/{rejected}")
        assert (again["status"], again["round"]) == ("published", 2)
        # Neither became a resolution: oversight saw both deliberations and votes, registered nothing.
        await api.until("oversight's record of both votes", "oversight", "statistics",
                        lambda s: s["votes_closed"] + s["proposals_deliberated"]
                        >= before["votes_closed"] + before["proposals_deliberated"] + 4)
        assert await api.get("oversight", f"resolutions/res-{rejected}") is None
        assert await api.get("oversight", f"resolutions/res-{no_quorum}") is None


async def test_escalation_to_the_parent_council(platform):
    district, t = platform.districts[0], tag()
    async with Api(platform.urls, district, timeout=60, auth=acting()) as api:
        councils = await demo.form_councils(api, t, say)
        proposal_id = f"prop-esc-{t}"
        await demo.raise_and_deliberate(api, councils, proposal_id, say, title="改造西康路雨水管网")
        proposal = await demo.escalate(api, councils, proposal_id, say)

        assert (proposal["council_id"], proposal["status"], proposal["round"]) == (councils.street, "raised", 2)
        assert proposal["seconders"] == []  # the street council's members second afresh
        assert proposal["history"][-1]["what"] == "escalated"
        assert proposal["history"][-1]["details"]["from_council_id"] == councils.community
        at_street = await api.get("proposals", "proposals", council_id=councils.street)
        assert [p["proposal_id"] for p in at_street["items"]] == [proposal_id]
        assert await api.get("proposals", "proposals", council_id=councils.community) == \
            {"items": [], "next_cursor": None}


async def test_two_districts_at_once_do_not_see_each_other(platform):
    one, two = platform.districts
    t = tag()  # the same public ids in both districts
    async with Api(platform.urls, one, timeout=60, auth=acting()) as a, \
            Api(platform.urls, two, timeout=60, auth=acting()) as b:
        councils_a, councils_b = await asyncio.gather(demo.form_councils(a, t, say), demo.form_councils(b, t, say))
        proposal_id = f"prop-two-{t}"
        await asyncio.gather(demo.raise_and_deliberate(a, councils_a, proposal_id, say),
                             demo.raise_and_deliberate(b, councils_b, proposal_id, say))
        rejecting = {voter: AGAINST for voter in ADOPT}
        # Distinct vote ids: the voting service keys a vote by its public id alone, across districts.
        adopted, rejected = await asyncio.gather(
            demo.vote(a, councils_a, proposal_id, f"vote-{one}-{t}", say),
            demo.vote(b, councils_b, proposal_id, f"vote-{two}-{t}", say, ballots=rejecting))
        assert (adopted.proposal["status"], rejected.proposal["status"]) == ("adopted", "rejected")
        assert (adopted.vote["result"]["tally"]["in_favour"], rejected.vote["result"]["tally"]["in_favour"]) == (4, 0)
        await a.until("the resolution in the first district", "oversight", f"resolutions/res-{proposal_id}")
        # Something that exists only in the first district is not found from the second.
        only_a = f"prop-only-{t}"
        await demo.raise_and_deliberate(a, councils_a, only_a, say)
        assert await b.get("proposals", f"proposals/{only_a}") is None
        assert await b.get("oversight", f"resolutions/res-{proposal_id}") is None
        assert await b.get("oversight", f"tasks/task-{t}-1") is None
        stats = await b.until("oversight's figures of the second district", "oversight", "statistics",
                              lambda s: (s["proposals_deliberated"], s["votes_closed"]) == (1, 1))
        assert (stats["proposals"], stats["resolutions"]) == (1, 0)

    # The second district's topic carries its own events only: two councils, five seats, and
    # the proposal from raise to decision (raise, publish, second, objection, 5 statements,
    # vote request, decision).
    envelopes = await read_topic(platform.kafka_bootstrap, f"{two}.proposals.events", 18)
    assert len({e.id for e in envelopes}) == 18  # at-least-once: a repeat would carry the same id
    assert {e.district for e in envelopes} == {two}
    assert [e.type for e in envelopes].count("ProposalDecided") == 1


async def test_every_service_process_refuses_requests_without_a_valid_token(platform, tmp_path):
    """The real processes: no token, a token from an issuer they do not trust, and another
    district's token are all refused; health and readiness stay open."""
    from yishi.auth import LocalIssuer

    district, other = platform.districts
    forger = LocalIssuer(tmp_path / "forger")
    async with httpx.AsyncClient(timeout=10) as client:
        for name, url in platform.urls.items():
            assert (await client.get(f"{url}/healthz")).status_code == 200
            probe = {"proposals": "councils", "voting": "votes/v-1", "oversight": "statistics",
                     "notify": "subscriptions?subscriber_id=w-1",
                     "portal": "clock"}[name]  # its pages are public: its one route that takes a token
            target = f"{url}/{district}/{probe}"
            assert (await client.get(target)).status_code == 401, name
            forged = forger.mint("w-1", district, ["auditor"])
            assert (await client.get(target, headers={"authorization": f"Bearer {forged}"})).status_code == 401
            theirs = bearer("w-1", other, "auditor")
            refused = await client.get(target, headers=theirs)
            assert refused.status_code == 404, name
            assert (refused.json()["reason"], refused.json()["detail"]) == ("not_found", "Not Found"), name
            ours = bearer("w-1", district, "auditor")
            assert (await client.get(target, headers=ours)).status_code in (200, 404), name


async def test_service_logs_carry_no_token(platform):
    """Last in this module: every request above carried a bearer token; none of them, nor
    the webhook secret, reached the four services' logs."""
    logs = {path.name: path.read_text() for path in platform.logs.iterdir()}
    assert set(logs) == set(platform.urls)
    for name, text in logs.items():
        assert not re.search(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.", text), f"a token in {name}'s log"
        assert platform.webhook_secret not in text, f"the webhook secret in {name}'s log"
