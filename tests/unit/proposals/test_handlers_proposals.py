"""The proposals service's handlers of a proposal's course, on the in-memory store: raised,
published, seconded, objected to, deliberated, referred to a vote on terms within its
council's rules, decided by the vote's result (the platform's ``TakeVoteResult``),
escalated, withdrawn and returned for reconsultation (by its council's staff, or by the
platform for a problem in delivery). As in :mod:`tests.unit.proposals.test_handlers`:
accepted, resent, refused for each."""

from __future__ import annotations

from contracts.common import Actor
from contracts.proposals import (
    EscalateProposal,
    LodgeObjection,
    MakeStatement,
    PublishProposal,
    RaiseProposal,
    RequestVote,
    ReturnProposalForReconsultation,
    SecondMotion,
    WithdrawProposal,
)
from services.proposals.consumers import ReturnForReconsultation, TakeVoteResult
from services.proposals.domain import Proposal
from tests.support.handlers import covers
from tests.unit.proposals.handler_support import (  # noqa: F401  (h: fixture)
    D,
    DAY,
    OTHER_COUNCIL,
    RESIDENT,
    WORKER,
    category,
    council,
    council_terms,
    decided,
    form_council,
    h,
    item,
    member,
    motion,
    publish,
    published,
    raise_proposal,
    ready,
    request_vote,
    result,
    retire,
    voting,
)

NEIGHBOUR = Actor(id="resident-5120", role="resident")


@covers(RaiseProposal, "accepted", "resent")
async def test_raise_proposal(h):
    await council(h)
    reply = await h.once(raise_proposal())
    assert (reply.subject, reply.ids) == ("p-1", {})
    p = await h.load(Proposal, D, "p-1")
    assert (p.status, p.council_id, p.proposer_id, p.proposer_seat_id, p.round) == (
        "raised", "c-1", RESIDENT.id, None, 1)
    # A member raising one is its proposer from their seat.
    await h.once(raise_proposal("p-2", actor=member(2)))
    p2 = await h.load(Proposal, D, "p-2")
    assert (p2.proposer_id, p2.proposer_seat_id) == ("m2", "seat-2")


@covers(RaiseProposal, "refused")
async def test_raise_proposal_refused(h):
    await council(h)
    await h.accepted(category())
    await h.accepted(item())
    await h.accepted(raise_proposal())
    await h.rejected(raise_proposal(title="again"), "already_exists", "p-1")
    await h.rejected(raise_proposal("p-2", "c-none"), "not_found", "c-none")
    await h.rejected(raise_proposal("p-2", catalogue_item_id="item-none"), "not_found", "item-none")
    await h.accepted(retire())
    await h.rejected(raise_proposal("p-2", catalogue_item_id="item-1"), "invalid_state", "item-1")
    assert await h.load(Proposal, D, "p-2") is None


@covers(PublishProposal, "accepted", "resent")
async def test_publish_proposal(h):
    await council(h)
    await h.accepted(raise_proposal())
    ends, session = h.clock.now() + 7 * DAY, h.clock.now() + 8 * DAY
    reply = await h.once(publish("p-1", ends, session_at=session), acts_for=["c-1"])
    assert reply.subject == "p-1"
    p = await h.load(Proposal, D, "p-1")
    assert (p.status, p.form, p.notice_ends_at, p.session_at) == ("published", "council", ends, session)


@covers(PublishProposal, "refused")
async def test_publish_proposal_refused(h):
    await council(h)
    await h.accepted(raise_proposal())
    ends = h.clock.now() + 7 * DAY
    await h.rejected(publish("p-none", ends), "not_found", "p-none")
    await h.rejected(publish("p-1", ends), "not_authorised", "p-1", acts_for=OTHER_COUNCIL)
    await h.rejected(publish("p-1", ends - DAY), "invalid_state", "p-1")  # c-1 gives notice for 7 days
    await h.rejected(publish("p-1", ends, form="online"), "invalid_state", "p-1")  # c-1 sits as a council
    await h.rejected(publish("p-1", ends, session_at=h.clock.now() - DAY), "invalid_command", "p-1")
    assert (await h.load(Proposal, D, "p-1")).status == "raised"


def second(n: int, proposal_id: str = "p-1") -> SecondMotion:
    return SecondMotion(district=D, actor=member(n), proposal_id=proposal_id)


@covers(SecondMotion, "accepted", "resent")
async def test_second_motion(h):
    await council(h)
    await published(h)
    assert (await h.once(second(2))).subject == "p-1"
    seconders = (await h.load(Proposal, D, "p-1")).seconders
    assert [(s["member_id"], s["seat_id"]) for s in seconders] == [("m2", "seat-2")]


@covers(SecondMotion, "refused")
async def test_second_motion_refused(h):
    await council(h)
    await h.accepted(raise_proposal("p-m1", actor=member(1)))
    await h.rejected(second(2, "p-m1"), "invalid_state", "p-m1")  # not published yet
    await h.accepted(publish("p-m1", h.clock.now() + 7 * DAY))
    await h.rejected(second(1, "p-m1"), "not_authorised", "p-m1")  # its proposer
    await h.rejected(second(4, "p-m1"), "not_authorised", "p-m1")  # no seat of c-1
    await h.rejected(second(2, "p-none"), "not_found", "p-none")
    await h.accepted(second(2, "p-m1"))
    await h.rejected(second(2, "p-m1"), "duplicate", "p-m1")
    assert len((await h.load(Proposal, D, "p-m1")).seconders) == 1


def objection(objection_id: str = "ob-1", actor: Actor = NEIGHBOUR) -> LodgeObjection:
    return LodgeObjection(district=D, actor=actor, proposal_id="p-1", objection_id=objection_id,
                          grounds="充电棚距离住户窗户太近")


@covers(LodgeObjection, "accepted", "resent")
async def test_lodge_objection(h):
    await council(h)
    await published(h)
    assert (await h.once(objection())).subject == "p-1"
    (lodged,) = (await h.load(Proposal, D, "p-1")).objections
    assert (lodged["objection_id"], lodged["objector_id"]) == ("ob-1", NEIGHBOUR.id)


@covers(LodgeObjection, "refused")
async def test_lodge_objection_refused(h):
    await council(h)
    await h.accepted(raise_proposal())
    await h.rejected(objection(), "invalid_state", "p-1")  # not published yet
    await h.accepted(publish("p-1", h.clock.now() + 7 * DAY))
    await h.rejected(objection(actor=RESIDENT), "not_authorised", "p-1")  # its proposer
    await h.accepted(objection())
    await h.rejected(objection(actor=member(2)), "already_exists", "p-1")  # ob-1 is on record
    assert len((await h.load(Proposal, D, "p-1")).objections) == 1


def statement(statement_id: str, step: str, role: str, actor: Actor = RESIDENT) -> MakeStatement:
    return MakeStatement(district=D, actor=actor, proposal_id="p-1", statement_id=statement_id, step=step,
                         speaker_role=role, text="陈述")


@covers(MakeStatement, "accepted", "resent")
async def test_make_statement(h):
    await council(h)
    await published(h)
    assert (await h.once(motion())).subject == "p-1"
    await h.accepted(second(2))
    await h.once(statement("st-2", "seconding", "seconder", member(2)))
    heard = (await h.load(Proposal, D, "p-1")).statements
    assert [(s["statement_id"], s["step"], s["speaker_id"], s["round"]) for s in heard] == [
        ("st-1", "motion", RESIDENT.id, 1), ("st-2", "seconding", "m2", 1)]


@covers(MakeStatement, "refused")
async def test_make_statement_refused(h):
    await council(h)
    await published(h)
    await h.rejected(statement("st-1", "debate", "proposer"), "invalid_state", "p-1")  # the motion opens
    await h.rejected(statement("st-1", "motion", "proposer", NEIGHBOUR), "not_authorised", "p-1")
    await h.rejected(statement("st-1", "motion", "supporter"), "not_authorised", "p-1")
    await h.accepted(motion())
    await h.rejected(statement("st-1", "debate", "proposer"), "already_exists", "p-1")
    await h.rejected(statement("st-2", "seconding", "seconder", member(2)), "not_authorised", "p-1")  # no second
    assert len((await h.load(Proposal, D, "p-1")).statements) == 1


@covers(RequestVote, "accepted", "resent")
async def test_request_vote_on_a_proposal(h):
    await council(h)
    await ready(h)
    reply = await h.once(request_vote("proposal", "p-1", council_terms(h), "v-1"), acts_for=["c-1"])
    assert (reply.subject, reply.ids) == ("p-1", {})
    p = await h.load(Proposal, D, "p-1")
    (vote,) = p.votes
    assert (p.status, p.pending_vote_id, vote["terms"]["quorum_percent"]) == ("voting", "v-1", 50)
    assert vote["terms"]["electorate"]["roll"] == ["m1", "m2", "m3"]  # the council's roll filled in


@covers(RequestVote, "accepted")
async def test_request_vote_leaving_the_vote_id_out_gets_one(h):
    await council(h)
    await ready(h)
    reply = await h.once(request_vote("proposal", "p-1", council_terms(h), None))
    (chosen,) = reply.ids.values()
    assert reply.ids == {"vote_id": chosen}
    assert (await h.load(Proposal, D, "p-1")).pending_vote_id == chosen


@covers(RequestVote, "refused")
async def test_request_vote_on_a_proposal_refused(h):
    await council(h)
    await council(h, "c-2", members=0)
    ends = await published(h)
    await h.accepted(motion())
    terms = council_terms(h)
    await h.rejected(request_vote("proposal", "p-1", terms), "invalid_state", "p-1")  # notice still runs
    h.clock.set(ends)
    terms = council_terms(h)
    await h.rejected(request_vote("proposal", "p-1", terms), "invalid_state", "p-1")  # no second yet
    await h.accepted(second(1))
    await h.rejected(request_vote("proposal", "p-none", terms), "not_found", "p-none")
    await h.rejected(request_vote("proposal", "p-1", terms), "not_authorised", "p-1", acts_for=OTHER_COUNCIL)
    await h.rejected(request_vote("proposal", "p-1", terms, council_id="c-2"), "invalid_state", "p-1")
    # Terms the council's rules forbid are refused, never replaced.
    await h.rejected(request_vote("proposal", "p-1", council_terms(h, quorum_percent=10)), "council_rule", "p-1")
    await h.rejected(request_vote("proposal", "p-1", council_terms(h, size=2)), "council_rule", "p-1")
    await h.rejected(request_vote("proposal", "p-1", council_terms(h, closes_at=ends)), "deadline_passed", "p-1")
    assert (await h.load(Proposal, D, "p-1")).status == "published"


@covers(TakeVoteResult, "accepted", "resent")
async def test_take_vote_result_decides_a_proposal(h):
    await council(h)
    await voting(h)
    reply = await h.once(result(h, "proposal", "p-1", "adopted"), platform=True)
    assert (reply.subject, reply.actor.role) == ("p-1", "system")
    p = await h.load(Proposal, D, "p-1")
    assert (p.status, p.decision["vote_id"], p.votes[-1]["tally"]) == (
        "adopted", "v-1", {"in_favour": 3, "against": 0, "abstain": 0})
    assert p.resolution_id is not None


@covers(TakeVoteResult, "accepted")
async def test_take_vote_result_without_quorum_returns_the_proposal_to_deliberation(h):
    await council(h)
    await voting(h)
    await h.once(result(h, "proposal", "p-1", "no_quorum"), platform=True)
    p = await h.load(Proposal, D, "p-1")
    assert (p.status, p.round, p.decision, p.votes[-1]["outcome"]) == ("published", 2, None, "no_quorum")


@covers(TakeVoteResult, "refused")
async def test_take_vote_result_on_a_proposal_refused(h):
    await council(h)
    await h.accepted(raise_proposal())
    await h.rejected(result(h, "proposal", "p-1", "adopted"), "invalid_state", "p-1", platform=True)  # no vote
    await h.rejected(result(h, "proposal", "p-none", "adopted"), "not_found", "p-none", platform=True)
    await voting(h, "p-2", "v-2")
    await h.rejected(result(h, "proposal", "p-2", "adopted", "v-1"), "invalid_state", "p-2", platform=True)
    assert (await h.load(Proposal, D, "p-2")).status == "voting"


def escalate(proposal_id: str = "p-1") -> EscalateProposal:
    return EscalateProposal(district=D, actor=WORKER, proposal_id=proposal_id, reason="超出社区议事范围")


@covers(EscalateProposal, "accepted", "resent")
async def test_escalate_proposal(h):
    await h.accepted(form_council("c-street", level="street"))
    await council(h, parent="c-street")
    await published(h)
    await h.accepted(second(1))
    assert (await h.once(escalate(), acts_for=["c-1"])).subject == "p-1"
    p = await h.load(Proposal, D, "p-1")
    assert (p.council_id, p.status, p.round, p.seconders) == ("c-street", "raised", 2, [])


@covers(EscalateProposal, "refused")
async def test_escalate_proposal_refused(h):
    await council(h)
    await published(h)
    await h.rejected(escalate(), "invalid_state", "p-1")  # c-1 has no council above it
    await h.rejected(escalate("p-none"), "not_found", "p-none")
    await h.rejected(escalate(), "not_authorised", "p-1", acts_for=OTHER_COUNCIL)
    assert (await h.load(Proposal, D, "p-1")).council_id == "c-1"


def withdraw(actor: Actor = RESIDENT) -> WithdrawProposal:
    return WithdrawProposal(district=D, actor=actor, proposal_id="p-1", reason="已由物业解决")


@covers(WithdrawProposal, "accepted", "resent")
async def test_withdraw_proposal(h):
    await council(h)
    await published(h)
    assert (await h.once(withdraw())).subject == "p-1"
    assert (await h.load(Proposal, D, "p-1")).status == "withdrawn"


@covers(WithdrawProposal, "refused")
async def test_withdraw_proposal_refused(h):
    await council(h)
    await voting(h)
    await h.rejected(withdraw(NEIGHBOUR), "not_authorised", "p-1")  # only its proposer
    await h.rejected(withdraw(), "invalid_state", "p-1")  # a vote is requested
    await h.rejected(WithdrawProposal(district=D, actor=RESIDENT, proposal_id="p-none", reason="x"),
                    "not_found", "p-none")
    assert (await h.load(Proposal, D, "p-1")).status == "voting"


def send_back(proposal_id: str = "p-1") -> ReturnProposalForReconsultation:
    return ReturnProposalForReconsultation(district=D, actor=WORKER, proposal_id=proposal_id,
                                           reason="居民反映新的情况")


@covers(ReturnProposalForReconsultation, "accepted", "resent")
async def test_return_proposal_for_reconsultation(h):
    await council(h)
    await decided(h, outcome="rejected")
    assert (await h.once(send_back(), acts_for=["c-1"])).subject == "p-1"
    p = await h.load(Proposal, D, "p-1")
    assert (p.status, p.round, p.history[-1]["reason"]) == ("published", 2, "居民反映新的情况")


@covers(ReturnProposalForReconsultation, "refused")
async def test_return_proposal_for_reconsultation_refused(h):
    await council(h)
    await h.accepted(raise_proposal())
    await h.rejected(send_back(), "invalid_state", "p-1")  # not decided
    await h.rejected(send_back("p-none"), "not_found", "p-none")
    await decided(h, "p-2")
    await h.rejected(send_back("p-2"), "not_authorised", "p-2", acts_for=OTHER_COUNCIL)
    assert (await h.load(Proposal, D, "p-2")).status == "adopted"


def problem(h, proposal_id: str = "p-1") -> ReturnForReconsultation:
    """What the platform decides on oversight's ``ReconsultationRequested``."""
    return ReturnForReconsultation(district=D, actor=h.bus.system_actor, proposal_id=proposal_id,
                                   resolution_id="res-1", problem="选址距住户窗户不足8米")


@covers(ReturnForReconsultation, "accepted", "resent")
async def test_return_for_reconsultation(h):
    await council(h)
    await decided(h)
    reply = await h.once(problem(h), platform=True)
    assert (reply.subject, reply.command_type) == ("p-1", "ReturnForReconsultation")
    p = await h.load(Proposal, D, "p-1")
    assert (p.status, p.round) == ("published", 2)
    assert (p.history[-1]["reason"], p.history[-1]["resolution_id"]) == ("选址距住户窗户不足8米", "res-1")


@covers(ReturnForReconsultation, "refused")
async def test_return_for_reconsultation_refused(h):
    await council(h)
    await h.accepted(raise_proposal())
    await h.rejected(problem(h), "invalid_state", "p-1", platform=True)  # not decided
    await h.rejected(problem(h, "p-none"), "not_found", "p-none", platform=True)
    assert (await h.load(Proposal, D, "p-1")).status == "raised"
