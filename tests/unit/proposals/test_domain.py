"""Every rule of the proposals aggregates, accepted and rejected, without I/O."""

from __future__ import annotations

from contracts.common import RejectionReason as R
from services.proposals.domain import (
    CatalogueItem,
    Council,
    Nomination,
    Proposal,
    ProposalStatus,
    stream_id,
)
from tests.unit.proposals.support import (
    DAY,
    SEATS,
    T0,
    council,
    proposal,
    published,
    ready_for_vote,
    rejects,
    terms_for,
    voting,
)


def replayed(aggregate):
    """The aggregate rebuilt from the events it recorded."""
    state = None
    for e in aggregate.collect_events():
        state = e.mutate(state)
    return state


# --- ids -----------------------------------------------------------------------------


def test_the_same_public_id_in_two_districts_names_two_streams():
    assert stream_id("proposal", "gulou", "p-1") != stream_id("proposal", "chaoyang", "p-1")
    assert Proposal.create_id("gulou", "p-1") == stream_id("proposal", "gulou", "p-1")


# --- councils ------------------------------------------------------------------------


def test_council_is_formed_with_seats_rules_and_a_higher_parent():
    street = council(council_id="c-street", level="street", members={})
    community = council(parent=street, seconds_required=2, notice_period_days=3)
    assert community.parent_council_id == "c-street"
    assert community.rules["seconds_required"] == 2 and community.rules["notice_period_days"] == 3
    assert community.seats == dict(SEATS)
    assert community.roll == ["m1", "m2", "m3"]
    assert replayed(community).__dict__.keys() == community.__dict__.keys()


def test_parent_must_sit_higher():
    building = council(council_id="c-b", level="building", members={})
    rejects(
        R.INVALID_STATE,
        Council.form,
        district="gulou",
        council_id="c-2",
        name="x",
        level="community",
        area_id="a",
        parent=building,
        seats=list(SEATS),
        rules={},
        now=T0,
    )
    same = council(council_id="c-same", level="community", members={})
    rejects(
        R.INVALID_STATE,
        Council.form,
        district="gulou",
        council_id="c-2",
        name="x",
        level="community",
        area_id="a",
        parent=same,
        seats=list(SEATS),
        rules={},
        now=T0,
    )


def test_seat_ids_must_be_distinct():
    rejects(
        R.INVALID_COMMAND,
        Council.form,
        district="gulou",
        council_id="c-2",
        name="x",
        level="community",
        area_id="a",
        parent=None,
        seats=[("s", "expert"), ("s", "local_unit")],
        rules={},
        now=T0,
    )


def test_member_holds_at_most_one_seat_and_a_seat_one_member():
    c = council()
    rejects(R.DUPLICATE, c.seat, seat_id="s-npc", member_id="m1", term_ends_at=None, now=T0)
    rejects(R.INVALID_STATE, c.seat, seat_id="s-expert", member_id="m9", term_ends_at=None, now=T0)
    rejects(R.DUPLICATE, c.seat, seat_id="s-expert", member_id="m1", term_ends_at=None, now=T0)
    rejects(R.NOT_FOUND, c.seat, seat_id="s-none", member_id="m9", term_ends_at=None, now=T0)
    rejects(R.INVALID_COMMAND, c.seat, seat_id="s-npc", member_id="m9", term_ends_at=T0, now=T0)


def test_resident_representative_seats_are_filled_only_by_nomination():
    c = council()
    rejects(R.INVALID_STATE, c.seat, seat_id="s-rr", member_id="r1", term_ends_at=None, now=T0)
    c.seat(seat_id="s-rr", member_id="r1", term_ends_at=None, now=T0, by_nomination=True)
    assert c.seat_of("r1") == "s-rr"


def test_unseat_frees_the_seat_and_checks_the_holder():
    c = council()
    rejects(R.INVALID_STATE, c.unseat, seat_id="s-expert", member_id="m2", reason="wrong", now=T0)
    rejects(R.NOT_FOUND, c.unseat, seat_id="s-none", member_id="m1", reason="x", now=T0)
    c.unseat(seat_id="s-expert", member_id="m1", reason="任期届满", now=T0)
    assert c.seat_of("m1") is None and c.roll == ["m2", "m3"]
    c.seat(seat_id="s-npc", member_id="m1", term_ends_at=T0 + DAY, now=T0)
    assert c.seat_of("m1") == "s-npc"


# --- nominations ---------------------------------------------------------------------


def nomination(c: Council) -> Nomination:
    return Nomination.nominate(
        district="gulou",
        nomination_id="n-1",
        council=c,
        seat_id="s-rr",
        nominee_id="r1",
        route="self_nomination",
        now=T0,
    )


def test_nomination_only_for_a_vacant_representative_seat_and_a_nominee_without_a_seat():
    c = council()
    rejects(
        R.INVALID_STATE,
        Nomination.nominate,
        district="gulou",
        nomination_id="n",
        council=c,
        seat_id="s-npc",
        nominee_id="r1",
        route="recommendation",
        now=T0,
    )
    rejects(
        R.DUPLICATE,
        Nomination.nominate,
        district="gulou",
        nomination_id="n",
        council=c,
        seat_id="s-rr",
        nominee_id="m1",
        route="recommendation",
        now=T0,
    )
    rejects(
        R.NOT_FOUND,
        Nomination.nominate,
        district="gulou",
        nomination_id="n",
        council=c,
        seat_id="s-x",
        nominee_id="r1",
        route="recommendation",
        now=T0,
    )
    c.seat(seat_id="s-rr", member_id="r0", term_ends_at=None, now=T0, by_nomination=True)
    rejects(
        R.INVALID_STATE,
        Nomination.nominate,
        district="gulou",
        nomination_id="n",
        council=c,
        seat_id="s-rr",
        nominee_id="r1",
        route="recommendation",
        now=T0,
    )


def test_nomination_is_publicised_then_voted_after_the_notice_period():
    n = nomination(council())
    rejects(R.INVALID_STATE, n.request_vote, vote_id="v", terms={}, closes_at=T0 + 9 * DAY, now=T0)
    rejects(R.INVALID_COMMAND, n.publicise, notice_ends_at=T0, now=T0)
    n.publicise(notice_ends_at=T0 + 5 * DAY, now=T0)
    rejects(R.INVALID_STATE, n.publicise, notice_ends_at=T0 + 6 * DAY, now=T0)
    rejects(R.INVALID_STATE, n.request_vote, vote_id="v", terms={}, closes_at=T0 + 9 * DAY, now=T0 + 4 * DAY)
    rejects(R.DEADLINE_PASSED, n.request_vote, vote_id="v", terms={}, closes_at=T0 + 5 * DAY, now=T0 + 5 * DAY)
    n.request_vote(vote_id="v", terms={"question": "q"}, closes_at=T0 + 9 * DAY, now=T0 + 5 * DAY)
    assert n.status == "voting" and n.vote_id == "v"


def test_nomination_vote_result_confirms_or_rejects_once():
    n = nomination(council())
    n.publicise(notice_ends_at=T0 + DAY, now=T0)
    n.request_vote(vote_id="v", terms={}, closes_at=T0 + 9 * DAY, now=T0 + DAY)
    assert n.close_vote(vote_id="other", outcome="adopted", now=T0 + 9 * DAY) is False
    assert n.close_vote(vote_id="v", outcome="adopted", now=T0 + 9 * DAY) is True
    assert n.status == "confirmed"
    assert n.close_vote(vote_id="v", outcome="rejected", now=T0 + 9 * DAY) is False
    tied = nomination(council())
    tied.publicise(notice_ends_at=T0 + DAY, now=T0)
    tied.request_vote(vote_id="v", terms={}, closes_at=T0 + 9 * DAY, now=T0 + DAY)
    tied.close_vote(vote_id="v", outcome="tied", now=T0 + 9 * DAY)
    assert (tied.status, tied.outcome) == ("rejected", "tied")


# --- catalogue -----------------------------------------------------------------------


def test_retired_item_takes_no_new_proposals_but_old_ones_keep_it():
    item = CatalogueItem(
        district="gulou",
        item_id="i-1",
        category_id="cat-1",
        community_id="xikang",
        title="充电",
        description="电动车充电",
        at=T0,
    )
    c = council()
    old = proposal(c, item=item)
    item.retire(reason="已完成", now=T0)
    rejects(R.INVALID_STATE, item.retire, reason="again", now=T0)
    rejects(R.INVALID_STATE, proposal, c, item=item)
    assert old.catalogue_item_id == "i-1"


# --- proposals -----------------------------------------------------------------------


def test_publish_needs_the_councils_notice_period_and_form():
    c = council(notice_period_days=7, forms=["council", "online"])
    p = proposal(c)
    rejects(R.INVALID_STATE, p.publish, council=c, form="council", notice_ends_at=T0 + 6 * DAY, session_at=None, now=T0)
    rejects(
        R.INVALID_STATE,
        p.publish,
        council=c,
        form="consultation_day",
        notice_ends_at=T0 + 7 * DAY,
        session_at=None,
        now=T0,
    )
    rejects(
        R.INVALID_COMMAND, p.publish, council=c, form="online", notice_ends_at=T0 + 7 * DAY, session_at=T0 - DAY, now=T0
    )
    p.publish(council=c, form="online", notice_ends_at=T0 + 7 * DAY, session_at=T0 + 8 * DAY, now=T0)
    assert p.status == ProposalStatus.PUBLISHED
    rejects(R.INVALID_STATE, p.publish, council=c, form="online", notice_ends_at=T0 + 9 * DAY, session_at=None, now=T0)


def test_seconding_rules():
    c = council()
    p = proposal(c, proposer="m2")
    rejects(R.INVALID_STATE, p.second, council=c, member_id="m1", now=T0)  # before publication
    p.publish(council=c, form="council", notice_ends_at=T0 + 7 * DAY, session_at=None, now=T0)
    rejects(R.NOT_AUTHORISED, p.second, council=c, member_id="m2", now=T0)  # the proposer
    rejects(R.NOT_AUTHORISED, p.second, council=c, member_id="resident-9", now=T0)  # not a member
    p.second(council=c, member_id="m1", now=T0)
    rejects(R.DUPLICATE, p.second, council=c, member_id="m1", now=T0)
    assert [s["seat_id"] for s in p.seconders] == ["s-expert"]


def test_seconding_a_withdrawn_proposal_is_rejected():
    c = council()
    p = published(c)
    p.withdraw(actor_id="resident-1", reason="已协调解决", now=T0)
    error = rejects(R.INVALID_STATE, p.second, council=c, member_id="m1", now=T0)
    assert "withdrawn" in error.message


def test_objections():
    c = council()
    p = proposal(c)
    rejects(R.INVALID_STATE, p.lodge_objection, objection_id="o", objector_id="r2", grounds="噪音", now=T0)
    p.publish(council=c, form="council", notice_ends_at=T0 + 7 * DAY, session_at=None, now=T0)
    rejects(R.NOT_AUTHORISED, p.lodge_objection, objection_id="o", objector_id="resident-1", grounds="x", now=T0)
    p.lodge_objection(objection_id="o", objector_id="r2", grounds="噪音", now=T0)
    rejects(R.ALREADY_EXISTS, p.lodge_objection, objection_id="o", objector_id="r3", grounds="x", now=T0)


def test_five_steps_in_order_with_the_right_speakers():
    c = council()
    p = published(c)
    say = p.make_statement
    rejects(
        R.INVALID_STATE,
        say,
        statement_id="a",
        step="debate",
        speaker_role="supporter",
        speaker_id="x",
        text="t",
        now=T0,
    )  # a round opens with the motion
    rejects(
        R.NOT_AUTHORISED,
        say,
        statement_id="a",
        step="motion",
        speaker_role="proposer",
        speaker_id="m1",
        text="t",
        now=T0,
    )  # not the proposer
    rejects(
        R.NOT_AUTHORISED,
        say,
        statement_id="a",
        step="motion",
        speaker_role="expert",
        speaker_id="resident-1",
        text="t",
        now=T0,
    )  # wrong role for the step
    say(statement_id="a", step="motion", speaker_role="proposer", speaker_id="resident-1", text="t", now=T0)
    rejects(
        R.ALREADY_EXISTS,
        say,
        statement_id="a",
        step="debate",
        speaker_role="supporter",
        speaker_id="x",
        text="t",
        now=T0,
    )
    rejects(
        R.NOT_AUTHORISED,
        say,
        statement_id="b",
        step="seconding",
        speaker_role="seconder",
        speaker_id="m1",
        text="t",
        now=T0,
    )  # has not seconded
    p.second(council=c, member_id="m1", now=T0)
    say(statement_id="b", step="seconding", speaker_role="seconder", speaker_id="m1", text="t", now=T0)
    rejects(
        R.NOT_AUTHORISED,
        say,
        statement_id="c",
        step="objection",
        speaker_role="objector",
        speaker_id="r2",
        text="t",
        now=T0,
    )  # lodged no objection
    p.lodge_objection(objection_id="o", objector_id="r2", grounds="g", now=T0)
    say(statement_id="c", step="objection", speaker_role="objector", speaker_id="r2", text="t", now=T0)
    say(statement_id="d", step="debate", speaker_role="supporter", speaker_id="r5", text="t", now=T0)
    say(statement_id="e", step="debate", speaker_role="proposer", speaker_id="resident-1", text="t", now=T0)
    say(statement_id="f", step="expert_comment", speaker_role="expert", speaker_id="e1", text="t", now=T0)
    rejects(
        R.INVALID_STATE,
        say,
        statement_id="g",
        step="debate",
        speaker_role="supporter",
        speaker_id="x",
        text="t",
        now=T0,
    )  # back to an earlier step
    assert [s["step"] for s in p.statements] == [
        "motion",
        "seconding",
        "objection",
        "debate",
        "debate",
        "expert_comment",
    ]


def test_vote_is_requested_after_notice_with_motion_and_seconds_on_the_councils_terms():
    c = council(seconds_required=2, quorum_percent=60, majority="two_thirds", secrecy="secret")
    p = published(c)
    ask = p.request_vote
    rejects(
        R.INVALID_STATE, ask, council=c, vote_id="v", terms=terms_for(c, T0 + 9 * DAY), now=T0 + 7 * DAY
    )  # no motion yet
    p.make_statement(
        statement_id="a", step="motion", speaker_role="proposer", speaker_id="resident-1", text="t", now=T0
    )
    p.second(council=c, member_id="m1", now=T0)
    rejects(
        R.INVALID_STATE, ask, council=c, vote_id="v", terms=terms_for(c, T0 + 9 * DAY), now=T0 + 7 * DAY
    )  # one second of two
    p.second(council=c, member_id="m2", now=T0)
    error = rejects(
        R.INVALID_STATE, ask, council=c, vote_id="v", terms=terms_for(c, T0 + 9 * DAY), now=T0 + 7 * DAY - DAY / 24
    )  # notice period not over
    assert "notice period" in error.message
    rejects(R.DEADLINE_PASSED, ask, council=c, vote_id="v", terms=terms_for(c, T0 + 7 * DAY), now=T0 + 7 * DAY)
    terms = ask(council=c, vote_id="v", terms=terms_for(c, T0 + 9 * DAY), now=T0 + 7 * DAY)
    assert terms["electorate"] == {"kind": "council_members", "scope_id": "c-1", "size": 3, "roll": ["m1", "m2", "m3"]}
    assert (terms["quorum_percent"], terms["majority"], terms["secrecy"]) == (60, "two_thirds", "secret")
    assert p.status == ProposalStatus.VOTING and p.pending_vote_id == "v"
    rejects(R.INVALID_STATE, ask, council=c, vote_id="v2", terms=terms_for(c, T0 + 9 * DAY), now=T0 + 8 * DAY)


def test_vote_needs_an_electorate_and_a_fresh_vote_id():
    c = council()
    p = ready_for_vote(c)
    empty = council(council_id="c-1", members={})
    rejects(
        R.INVALID_STATE,
        p.request_vote,
        council=empty,
        vote_id="v",
        terms=terms_for(empty, T0 + 9 * DAY),
        now=T0 + 7 * DAY,
    )
    p.request_vote(council=c, vote_id="v", terms=terms_for(c, T0 + 9 * DAY), now=T0 + 7 * DAY)
    p.close_vote(vote_id="v", outcome="tied", tally={"in_favour": 1, "against": 1, "abstain": 1}, now=T0 + 9 * DAY)
    p.make_statement(
        statement_id="m2", step="motion", speaker_role="proposer", speaker_id="resident-1", text="t", now=T0 + 9 * DAY
    )
    rejects(
        R.ALREADY_EXISTS,
        p.request_vote,
        council=c,
        vote_id="v",
        terms=terms_for(c, T0 + 19 * DAY),
        now=T0 + 9 * DAY,
    )


def test_adopted_vote_decides_once_with_the_resolution():
    p = voting(council())
    tally = {"in_favour": 3, "against": 0, "abstain": 0}
    assert p.close_vote(vote_id="other", outcome="adopted", tally=tally, now=T0 + 9 * DAY) is False
    assert p.close_vote(vote_id="v-1", outcome="adopted", tally=tally, now=T0 + 9 * DAY) is True
    assert p.status == ProposalStatus.ADOPTED
    assert p.decision["resolution"] == p.summary and p.votes[-1]["tally"] == tally
    assert p.close_vote(vote_id="v-1", outcome="adopted", tally=tally, now=T0 + 9 * DAY) is False
    assert [type(e).__name__ for e in p.collect_events()].count("Decided") == 1


def test_rejected_vote_decides_without_resolution():
    p = voting(council())
    p.close_vote(
        vote_id="v-1", outcome="rejected", tally={"in_favour": 0, "against": 3, "abstain": 0}, now=T0 + 9 * DAY
    )
    assert p.status == ProposalStatus.REJECTED and p.decision["resolution"] is None


def test_no_quorum_or_tie_returns_the_proposal_for_a_new_round():
    for outcome in ("no_quorum", "tied"):
        p = voting(council())
        p.close_vote(
            vote_id="v-1", outcome=outcome, tally={"in_favour": 1, "against": 1, "abstain": 0}, now=T0 + 9 * DAY
        )
        assert (p.status, p.round, p.decision) == (ProposalStatus.PUBLISHED, 2, None)
        assert p.history[-1]["what"] == "returned_for_reconsultation" and p.history[-1]["vote_id"] == "v-1"
        # the new round opens with the motion again
        rejects(
            R.INVALID_STATE,
            p.request_vote,
            council=council(),
            vote_id="v-2",
            terms=terms_for(council(), T0 + 19 * DAY),
            now=T0 + 9 * DAY,
        )


def test_return_for_reconsultation_only_after_a_decision():
    c = council()
    rejects(R.INVALID_STATE, published(c).return_for_reconsultation, reason="r", now=T0)
    p = voting(c)
    p.close_vote(vote_id="v-1", outcome="adopted", tally={"in_favour": 3, "against": 0, "abstain": 0}, now=T0 + 9 * DAY)
    p.return_for_reconsultation(reason="施工扰民", resolution_id="res-1", now=T0 + 30 * DAY)
    assert p.status == ProposalStatus.PUBLISHED and p.history[-1]["resolution_id"] == "res-1"


def test_escalate_to_the_parent_council_starts_afresh_there():
    street = council(council_id="c-street", level="street", members={"s-expert": "m7"})
    c = council(parent=street)
    p = published(c)
    p.second(council=c, member_id="m1", now=T0)
    rejects(R.NOT_FOUND, p.escalate, council=c, parent=None, reason="超出范围", now=T0)
    p.escalate(council=c, parent=street, reason="超出社区范围", now=T0)
    assert (p.council_id, p.status, p.seconders) == ("c-street", ProposalStatus.RAISED, [])
    rejects(R.INVALID_STATE, p.escalate, council=street, parent=None, reason="x", now=T0)  # top council
    v = voting(c)
    rejects(R.INVALID_STATE, v.escalate, council=c, parent=street, reason="x", now=T0)


def test_history_keeps_seconds_objections_and_statements_across_an_escalation():
    street = council(council_id="c-street", level="street", members={"s-expert": "m7"})
    c = council(parent=street)
    p = published(c)
    p.make_statement(statement_id="st-1", step="motion", speaker_role="proposer", speaker_id="resident-1",
                     text="我提议。", now=T0 + DAY)
    p.second(council=c, member_id="m1", now=T0 + DAY)
    p.lodge_objection(objection_id="obj-1", objector_id="resident-2", grounds="占用绿地", now=T0 + DAY)
    p.escalate(council=c, parent=street, reason="超出社区范围", now=T0 + 2 * DAY)
    assert p.seconders == []  # the street council starts afresh …
    steps = [(h["what"], h.get("member_id") or h.get("statement_id") or h.get("objection_id"), h.get("council_id"))
             for h in replayed(p).history]
    assert steps == [("raised", None, c.council_id), ("published", None, None), ("statement_made", "st-1", None),
                     ("seconded", "m1", c.council_id), ("objection_lodged", "obj-1", None),
                     ("escalated", None, "c-street")]  # … but the record keeps who seconded where


def test_withdraw_only_by_the_proposer_before_the_vote():
    c = council()
    p = published(c)
    rejects(R.NOT_AUTHORISED, p.withdraw, actor_id="m1", reason="x", now=T0)
    p.withdraw(actor_id="resident-1", reason="x", now=T0)
    rejects(R.INVALID_STATE, p.withdraw, actor_id="resident-1", reason="x", now=T0)
    rejects(R.INVALID_STATE, voting(c).withdraw, actor_id="resident-1", reason="x", now=T0)


def test_replay_gives_the_same_state():
    p = voting(council())
    p.close_vote(vote_id="v-1", outcome="tied", tally={"in_favour": 1, "against": 1, "abstain": 1}, now=T0 + 9 * DAY)
    live = dict(p.__dict__)
    copy = replayed(p)
    for key in ("status", "round", "seconders", "statements", "votes", "history", "decision"):
        assert getattr(copy, key) == live[key], key
