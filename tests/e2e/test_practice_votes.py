"""The Chaoyang practice end to end (issue 15): a proposal escalated from a building
council through the community to the street, decided there by a secret residents'
meeting (由居民会议表决) of 60 on the terms requested, 31 voting, tied, and sent back to
consultation; a secret receipt shown to its voter and refused to staff. Four service
processes, their public HTTP APIs only."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timedelta, timezone

import httpx
from rich.console import Console

from contracts.common import (
    Actor,
    Electorate,
    ElectorateKind,
    Role,
    Secrecy,
    Share,
    VoteMatter,
    VoteMatterKind,
    VoteTerms,
)
from contracts.proposals import (
    ConsultationForm,
    CouncilRules,
    DeliberationStep,
    EscalateProposal,
    FormCouncil,
    MakeStatement,
    PublishProposal,
    RaiseProposal,
    RequestVote,
    Seat,
    SeatKind,
    SeatMember,
    SecondMotion,
    SpeakerRole,
)
from contracts.voting import BallotChoice, CastBallot, CloseVote
from tests.support.auth import acting, bearer
from yishi.demo import OFFICIAL, WORKER, Api

say = Console(width=160)
FOR, AGAINST, ABSTAIN = BallotChoice.IN_FAVOUR, BallotChoice.AGAINST, BallotChoice.ABSTAIN


async def test_escalated_proposal_decided_by_a_secret_residents_meeting_ties_and_returns(platform):
    district, t = platform.districts[0], uuid.uuid4().hex[:6]
    street, community, building = f"council-street-{t}", f"council-comm-{t}", f"council-bld-{t}"
    proposer = Actor(id=f"resident-{t}-00", role=Role.RESIDENT)
    seconder = Actor(id=f"member-st-{t}", role=Role.COUNCIL_MEMBER, seat_id="seat-st-1")
    residents = [f"resident-{t}-{i:02d}" for i in range(60)]
    proposal_id, vote_id = f"prop-cy-{t}", f"vote-cy-{t}"
    async with Api(platform.urls, district, timeout=60, auth=acting()) as api, \
            httpx.AsyncClient(timeout=10, auth=acting()) as http:
        # Three councils, each under the next; the street council votes by secret ballot,
        # with a quorum of at least one half and a simple majority, on paper as a rule.
        street_rules = CouncilRules(seconds_required=1, notice_period_days=0, quorum=Share(numerator=1, denominator=2),
                                    majority="simple", method="paper_ballot", secrecy="secret")
        for council_id, level, parent, seat, actor, rules in (
                (street, "street", None, SeatKind.BUREAU_STAFF, OFFICIAL, street_rules),
                (community, "community", street, SeatKind.LOCAL_UNIT, WORKER, CouncilRules(notice_period_days=0)),
                (building, "building", community, SeatKind.PARTY_MEMBER, WORKER, CouncilRules(notice_period_days=0))):
            await api.send(FormCouncil(district=district, actor=actor, council_id=council_id, name=f"{level} {t}",
                                       level=level, area_id=f"chaoyang-{level}-{t}", parent_council_id=parent,
                                       seats=(Seat(seat_id="seat-st-1", kind=seat),), rules=rules))
        await api.send(SeatMember(district=district, actor=WORKER, council_id=street, seat_id="seat-st-1",
                                  member_id=seconder.id))
        await api.until("the street council's member", "proposals", f"councils/{street}/members", bool)

        # Raised in the building, beyond its reach: to the community, then to the street.
        await api.send(RaiseProposal(district=district, actor=proposer, proposal_id=proposal_id, council_id=building,
                                     title="小区南门改造", summary="南门改为人车分流,需要占用市政道路。"))
        for above in (community, street):
            await api.send(EscalateProposal(district=district, actor=WORKER, proposal_id=proposal_id,
                                            reason="超出本级议事范围。"))
            await api.until(f"the escalation to {above}", "proposals", f"proposals/{proposal_id}",
                            lambda p, above=above: p["council_id"] == above)
        notice_ends = datetime.now(timezone.utc) + timedelta(seconds=2)
        await api.send(PublishProposal(district=district, actor=WORKER, proposal_id=proposal_id,
                                       form=ConsultationForm.COUNCIL, notice_ends_at=notice_ends))
        await api.send(MakeStatement(district=district, actor=proposer, proposal_id=proposal_id,
                                     statement_id=f"st-{t}-1", step=DeliberationStep.MOTION,
                                     speaker_role=SpeakerRole.PROPOSER, text="提议南门人车分流。"))
        await api.send(SecondMotion(district=district, actor=seconder, proposal_id=proposal_id))

        # The street council refers it to a residents' meeting of 60, online, secret, quorum one half.
        terms = VoteTerms(question="是否同意南门人车分流改造?", method="online", majority="simple",
                          quorum=Share(numerator=1, denominator=2), secrecy=Secrecy.SECRET,
                          closes_at=datetime.now(timezone.utc) + timedelta(minutes=10),
                          electorate=Electorate(kind=ElectorateKind.RESIDENTS_MEETING, scope_id=f"chaoyang-{t}",
                                                size=60, roll=tuple(residents)))
        request = RequestVote(district=district, actor=WORKER, vote_id=vote_id, council_id=street,
                              matter=VoteMatter(kind=VoteMatterKind.PROPOSAL, id=proposal_id), terms=terms)
        # An open ballot breaks the street council's rule: refused and named, not replaced.
        open_ballot = request.model_copy(update={"terms": terms.model_copy(update={"secrecy": Secrecy.OPEN})})
        await asyncio.sleep(max(0.0, (notice_ends - datetime.now(timezone.utc)).total_seconds()) + 0.2)
        refused = await http.post(f"{platform.urls['proposals']}/{district}/commands/RequestVote",
                                  content=open_ballot.model_dump_json(), headers={"content-type": "application/json"})
        assert refused.status_code == 409, refused.text
        assert refused.json()["reason"] == "council_rule" and "rule secrecy" in refused.json()["message"]
        await api.send(request, retry_while={"invalid_state"})

        opened = await api.until("the residents' meeting vote", "voting", f"votes/{vote_id}")
        assert VoteTerms.model_validate(opened["terms"]) == terms  # exactly the terms requested
        assert (opened["terms"]["electorate"]["kind"], opened["terms"]["electorate"]["size"]) == (
            "residents_meeting", 60)

        # 31 of the 60 vote: 15 for, 15 against, 1 abstains.
        choices = [FOR] * 15 + [AGAINST] * 15 + [ABSTAIN]
        receipts = {voter: f"rcpt-{uuid.uuid4().hex}" for voter in residents[:31]}
        await asyncio.gather(*(api.send(CastBallot(district=district, actor=Actor(id=voter, role=Role.RESIDENT),
                                                   vote_id=vote_id, ballot_id=receipts[voter], choice=choice))
                               for voter, choice in zip(residents[:31], choices)))
        await api.until("31 ballots", "voting", f"votes/{vote_id}", lambda v: v["turnout"] == 31)
        await api.send(CloseVote(district=district, actor=WORKER, vote_id=vote_id))
        closed = await api.until("the vote's close", "voting", f"votes/{vote_id}", lambda v: v["result"] is not None)
        result = closed["result"]
        say.print(f"residents' meeting: {result['tally']}, turnout {result['turnout_percent']}% → {result['outcome']}")
        assert {k: result["tally"][k] for k in ("in_favour", "against", "abstain")} == {
            "in_favour": 15, "against": 15, "abstain": 1}
        assert (result["quorum_met"], result["turnout_percent"], result["outcome"]) == (True, 51.67, "tied")

        # The tie sends the proposal back to consultation at the street council.
        back = await api.until("the return to consultation", "proposals", f"proposals/{proposal_id}",
                               lambda p: p["history"][-1]["what"] == "returned_for_reconsultation")
        assert (back["council_id"], back["status"], back["decision"]) == (street, "published", None)
        assert [h["what"] for h in back["history"]].count("escalated") == 2
        assert "tied" in json.dumps(back["history"][-1], ensure_ascii=False)

        # A secret receipt: shown to its voter, refused to a community worker and an auditor.
        voter = residents[0]
        url = f"{platform.urls['voting']}/{district}/votes/{vote_id}/receipts/{receipts[voter]}"
        mine = await http.get(url, headers=bearer(voter, district, "resident"))
        assert mine.status_code == 200, mine.text
        assert (mine.json()["choice"], mine.json()["counted"]) == ("in_favour", True)
        for who, role in ((WORKER.id, "community_worker"), ("auditor-cy", "auditor")):
            refused = await http.get(url, headers=bearer(who, district, role))
            assert refused.status_code == 404, (who, refused.text)
            assert "in_favour" not in refused.text
