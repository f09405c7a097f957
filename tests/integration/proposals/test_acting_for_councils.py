"""Whom a council's staff act for (the token's ``acts_for`` claim), in proposals and
voting: a community worker or chair runs the record of the councils they serve (seats,
proposals, votes, the councils set up under theirs); another council's worker, or a
token without the claim, gets 403 ``not_authorised`` and a recorded ``CommandRejected``.
The platform's own ``OpenVote`` (from ``VoteRequested``) is not theirs to pass."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from services.proposals.main import spec as proposals_spec
from services.voting.main import spec as voting_spec
from tests.integration.proposals.test_proposals_service import council_vote_terms
from tests.support.auth import acting, bearer
from tests.support.service import eventually, new_district, running
from yishi.clock import ManualClock

T0 = datetime(2026, 3, 2, 1, tzinfo=timezone.utc)
OFFICIAL = {"id": "official-0001", "role": "official"}
OWN = {"id": "worker-own", "role": "community_worker"}  # serves c-own
OTHER = {"id": "worker-other", "role": "community_worker"}  # serves c-other only
CHAIR_OTHER = {"id": "chair-other", "role": "chair"}  # chairs c-other only
RESIDENT = {"id": "resident-4211", "role": "resident"}
BUILDING = {"id": "worker-bldg", "role": "community_worker"}  # serves c-bldg, the council under c-own
DIRECTORY = {"worker-own": ["c-own"], "worker-other": ["c-other"], "chair-other": ["c-other"],
             "worker-bldg": ["c-bldg"]}
SEATS = [{"seat_id": f"seat-{n}", "kind": "expert"} for n in (1, 2, 3)] + [
    {"seat_id": f"seat-{n}", "kind": "resident_representative"} for n in (4, 5)]


def member(n: int) -> dict:
    return {"id": f"m{n}", "role": "council_member", "seat_id": f"seat-{n}"}


def council(council_id: str, level: str = "community", parent: str | None = None) -> dict:
    return {"council_id": council_id, "name": "西康社区议事会", "level": level, "area_id": "xikang",
            "seats": SEATS, "parent_council_id": parent,
            "rules": {"seconds_required": 2, "notice_period_days": 7, "quorum_percent": 60}}


def question(vote_id: str) -> dict:
    return {"vote_id": vote_id, "council_id": "c-own", "matter": {"kind": "question", "id": f"q-{vote_id}"},
            "terms": {"question": "在3号院增设充电棚?", "method": "online", "majority": "simple",
                      "quorum_percent": 50, "secrecy": "open", "closes_at": (T0 + timedelta(days=30)).isoformat(),
                      "electorate": {"kind": "council_members", "scope_id": "c-own", "size": 3,
                                     "roll": ["m1", "m2", "m3"]}}}


async def post(svc, name: str, who: dict, /, **fields):
    """``name`` sent by ``who`` with a token acting for what :data:`DIRECTORY` lists."""
    return await svc.client.post(f"/{svc.district}/commands/{name}", auth=acting(DIRECTORY),
                                 json={"district": svc.district, "actor": who, **fields})


async def accepted(svc, name: str, who: dict, /, **fields) -> None:
    reply = await post(svc, name, who, **fields)
    assert reply.status_code == 200, (name, who, reply.text)


async def refused(svc, name: str, who: dict, /, **fields) -> None:
    """Refused to ``who`` (acting for another council) and to :data:`OWN` with no claim."""
    reply = await post(svc, name, who, **fields)
    assert (reply.status_code, reply.json()["reason"]) == (403, "not_authorised"), (name, who, reply.text)
    d = svc.district
    no_claim = await svc.client.post(f"/{d}/commands/{name}", headers=bearer(OWN["id"], d, OWN["role"]),
                                     json={"district": d, "actor": OWN, **fields})
    assert (no_claim.status_code, no_claim.json()["reason"]) == (403, "not_authorised"), (name, no_claim.text)


async def rejections(svc) -> list[tuple[str, str, str, str | None]]:
    """The service's recorded ``CommandRejected``: (command, actor, reason, subject)."""
    rows = await svc.ctx.pool.fetch(
        "SELECT state FROM events WHERE topic = 'contract:CommandRejected' ORDER BY position")
    return [(x["command_type"], x["actor"]["id"], x["reason"], x["subject"])
            for x in map(json.loads, (row["state"] for row in rows))]


def twice(name: str, subject: str | None, who: dict = OTHER) -> list[tuple[str, str, str, str | None]]:
    """What :func:`refused` records: ``who``'s refusal, then the claimless token's."""
    return [(name, who["id"], "not_authorised", subject), (name, "worker-own", "not_authorised", subject)]


async def test_a_council_s_staff_act_for_it_and_no_other(servers):
    d, clock = new_district(), ManualClock(T0)
    async with running(proposals_spec(), servers, district=d, clock=clock) as p, \
            running(voting_spec(), servers, district=d, clock=clock) as v:

        # Councils: a top-level one only by district-wide staff; one under c-own by c-own's.
        await refused(p, "FormCouncil", OTHER, **council("c-own"))
        await accepted(p, "FormCouncil", OFFICIAL, **council("c-own"))
        await refused(p, "FormCouncil", OTHER, **council("c-bldg", "building", "c-own"))
        await accepted(p, "FormCouncil", OWN, **council("c-bldg", "building", "c-own"))

        await refused(p, "SeatMember", OTHER, council_id="c-own", seat_id="seat-1", member_id="m1")
        for n in (1, 2, 3):
            await accepted(p, "SeatMember", OWN, council_id="c-own", seat_id=f"seat-{n}", member_id=f"m{n}")
        assert [s["member_id"] for s in (await p.client.get(f"/{d}/councils/c-own")).json()["seats"]] == [
            "m1", "m2", "m3", None, None]

        await accepted(p, "RaiseProposal", RESIDENT, proposal_id="p-1", council_id="c-own", title="充电棚",
                       summary="建设集中充电棚")
        notice_ends = T0 + timedelta(days=7)
        publish = dict(proposal_id="p-1", form="council", notice_ends_at=notice_ends.isoformat())
        await refused(p, "PublishProposal", OTHER, **publish)
        await accepted(p, "PublishProposal", OWN, **publish)
        await accepted(p, "MakeStatement", RESIDENT, proposal_id="p-1", step="motion", speaker_role="proposer",
                       text="我提议建设充电棚。")
        for n in (1, 2):
            await accepted(p, "SecondMotion", member(n), proposal_id="p-1")
        clock.set(notice_ends)
        request = dict(vote_id="vote-p-1", council_id="c-own", matter={"kind": "proposal", "id": "p-1"},
                       terms=council_vote_terms(notice_ends + timedelta(days=2), "c-own"))
        await refused(p, "RequestVote", OTHER, **request)
        reply = await post(p, "RequestVote", CHAIR_OTHER, **request)
        assert (reply.status_code, reply.json()["reason"]) == (403, "not_authorised"), reply.text
        await accepted(p, "RequestVote", OWN, **request)

        # The platform opens the requested vote itself (its OpenVote passes no acts_for check).
        async def opened():
            got = await v.client.get(f"/{d}/votes/vote-p-1")
            return got.status_code == 200 and got.json()
        assert (await eventually(opened))["council_id"] == "c-own"

        # The proposal's vote closes as its council's, and the decided proposal goes back
        # to consultation only by its council's staff.
        for n in (1, 2):
            await accepted(v, "CastBallot", member(n), vote_id="vote-p-1", ballot_id=f"b-{n}", choice="in_favour")
        await refused(v, "CloseVote", OTHER, vote_id="vote-p-1")
        await accepted(v, "CloseVote", OWN, vote_id="vote-p-1")

        async def decided():
            return (await p.client.get(f"/{d}/proposals/p-1")).json()["status"] == "adopted"
        await eventually(decided)
        await refused(p, "ReturnProposalForReconsultation", OTHER, proposal_id="p-1", reason="居民意见分歧")
        await accepted(p, "ReturnProposalForReconsultation", OWN, proposal_id="p-1", reason="居民意见分歧")

        await refused(v, "OpenVote", OTHER, **question("vote-q"))
        await accepted(v, "OpenVote", OWN, **question("vote-q"))
        await refused(v, "CloseVote", OTHER, vote_id="vote-q")
        await accepted(v, "CloseVote", OWN, vote_id="vote-q")
        assert (await v.client.get(f"/{d}/votes/vote-q")).json()["status"] == "closed"

        assert await rejections(p) == [*twice("FormCouncil", "c-own"), *twice("FormCouncil", "c-bldg"),
                                       *twice("SeatMember", "c-own"), *twice("PublishProposal", "p-1"),
                                       *twice("RequestVote", "p-1"),
                                       ("RequestVote", "chair-other", "not_authorised", "p-1"),
                                       *twice("ReturnProposalForReconsultation", "p-1")]
        assert await rejections(v) == [*twice("CloseVote", "vote-p-1"), *twice("OpenVote", "vote-q"),
                                       *twice("CloseVote", "vote-q")]


async def test_nominations_slates_seats_and_escalation_are_the_council_s_own(servers):
    d = new_district()
    async with running(proposals_spec(), servers, district=d, clock=ManualClock(T0)) as p:
        await accepted(p, "FormCouncil", OFFICIAL, **council("c-own"))
        await accepted(p, "FormCouncil", OFFICIAL, **council("c-bldg", "building", "c-own"))
        await accepted(p, "SeatMember", OWN, council_id="c-own", seat_id="seat-1", member_id="m1")
        unseat = dict(council_id="c-own", seat_id="seat-1", member_id="m1", reason="迁出")
        await refused(p, "UnseatMember", OTHER, **unseat)
        await accepted(p, "UnseatMember", OWN, **unseat)

        notice_ends_at = (T0 + timedelta(days=7)).isoformat()
        nominate = dict(nomination_id="nom-1", council_id="c-own", seat_id="seat-4", nominee_id="r-1",
                        route="recommendation")
        await refused(p, "NominateRepresentative", OTHER, **nominate)
        await accepted(p, "NominateRepresentative", OWN, **nominate)
        await refused(p, "PubliciseNomination", OTHER, nomination_id="nom-1", notice_ends_at=notice_ends_at)
        await accepted(p, "PubliciseNomination", OWN, nomination_id="nom-1", notice_ends_at=notice_ends_at)
        slate = dict(slate_id="slate-1", council_id="c-own", notice_ends_at=notice_ends_at,
                     nominees=[{"seat_id": "seat-5", "nominee_id": "r-2", "route": "recommendation"}])
        await refused(p, "NominateSlate", OTHER, **slate)
        await accepted(p, "NominateSlate", OWN, **slate)

        # A proposal before c-bldg is escalated by c-bldg's staff (not by those of the council
        # above); once before c-own, it is c-own's to publish.
        await accepted(p, "RaiseProposal", RESIDENT, proposal_id="p-2", council_id="c-bldg", title="加装电梯",
                       summary="全楼加装电梯")
        await refused(p, "EscalateProposal", OWN, proposal_id="p-2", reason="涉及全小区")
        await accepted(p, "EscalateProposal", BUILDING, proposal_id="p-2", reason="涉及全小区")
        publish = dict(proposal_id="p-2", form="council", notice_ends_at=notice_ends_at)
        await refused(p, "PublishProposal", BUILDING, **publish)
        await accepted(p, "PublishProposal", OWN, **publish)
        assert (await p.client.get(f"/{d}/proposals/p-2")).json()["council_id"] == "c-own"

        assert await rejections(p) == [
            *twice("UnseatMember", "c-own"), *twice("NominateRepresentative", "nom-1"),
            *twice("PubliciseNomination", "nom-1"), *twice("NominateSlate", "slate-1"),
            *twice("EscalateProposal", "p-2", OWN), *twice("PublishProposal", "p-2", BUILDING)]
