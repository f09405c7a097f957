"""Property: whatever commands arrive, in whatever order and at whatever times, a
proposal never reaches a state the rules forbid, and a rejected command records nothing."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from services.proposals.domain import STEPS, Proposal, ProposalStatus
from tests.unit.proposals.support import DAY, T0, council, proposal, terms_for
from yishi.rules import Rejected

STREET = council(council_id="c-street", level="street", members={"s-expert": "m7", "s-unit": "m8"})
COMMUNITY = council(parent=STREET, seconds_required=2, notice_period_days=3)
COUNCILS = {c.council_id: c for c in (STREET, COMMUNITY)}
PEOPLE = ["resident-1", "m1", "m2", "m3", "m7", "m8", "r2"]
TALLY = {"in_favour": 1, "against": 1, "abstain": 0}

Action = tuple[str, str, str, int]
actions = st.lists(
    st.tuples(
        st.sampled_from(["publish", "second", "object", "state", "vote", "close", "escalate", "withdraw", "return"]),
        st.sampled_from(PEOPLE),
        st.sampled_from(["a", "b", "c", "d", "e"]),  # picks a step, a role, an outcome or a notice length
        st.integers(min_value=0, max_value=4),  # days that pass before the command
    ),
    max_size=40,
)

ROLES = ["proposer", "seconder", "objector", "supporter", "expert"]
OUTCOMES = ["adopted", "rejected", "no_quorum", "tied", "adopted"]


def apply(p: Proposal, action: Action, n: int, now) -> None:
    kind, who, pick, _ = action
    index = "abcde".index(pick)
    c = COUNCILS[p.council_id]
    if kind == "publish":
        p.publish(council=c, form="council", notice_ends_at=now + index * DAY, session_at=None, now=now)
    elif kind == "second":
        p.second(council=c, member_id=who, now=now)
    elif kind == "object":
        p.lodge_objection(objection_id=f"o-{n}", objector_id=who, grounds="g", now=now)
    elif kind == "state":
        p.make_statement(
            statement_id=f"s-{n}", step=STEPS[index], speaker_role=ROLES[index], speaker_id=who, text="t", now=now
        )
    elif kind == "vote":
        p.request_vote(council=c, vote_id=f"v-{n}", terms=terms_for(c, now + DAY), now=now)
    elif kind == "close":
        vote_id = p.votes[-1]["vote_id"] if p.votes else "v-none"
        p.close_vote(vote_id=vote_id, outcome=OUTCOMES[index], tally=TALLY, now=now)
    elif kind == "escalate":
        parent = COUNCILS.get(c.parent_council_id) if c.parent_council_id else None
        p.escalate(council=c, parent=parent, reason="r", now=now)
    elif kind == "withdraw":
        p.withdraw(actor_id=who, reason="r", now=now)
    else:
        p.return_for_reconsultation(reason="r", now=now)


def check(p: Proposal) -> None:
    assert p.status in set(ProposalStatus)
    members = [m for m in p.seconders]
    ids = [s["member_id"] for s in members]
    assert len(ids) == len(set(ids)), "a member seconded twice"
    assert p.proposer_id not in ids, "the proposer seconded"
    assert all(COUNCILS[p.council_id].seat_of(i) is not None for i in ids), "a non-member seconded"
    for round_ in {s["round"] for s in p.statements}:
        steps = [STEPS.index(s["step"]) for s in p.statements if s["round"] == round_]
        assert steps[0] == 0 and steps == sorted(steps), "statements out of order"
    if p.status == ProposalStatus.VOTING:
        vote = p.votes[-1]
        assert vote["outcome"] is None
        assert vote["requested_at"] >= p.notice_ends_at, "vote before the notice period ended"
        assert len(ids) >= COUNCILS[p.council_id].rules["seconds_required"]
        assert any(s["step"] == "motion" and s["round"] == p.round for s in p.statements)
    if p.status in (ProposalStatus.ADOPTED, ProposalStatus.REJECTED):
        assert p.decision is not None and p.decision["vote_id"] == p.votes[-1]["vote_id"]
        assert p.votes[-1]["outcome"] == p.status
    else:
        assert p.decision is None
    if p.status == ProposalStatus.RAISED:
        assert p.notice_ends_at is None and not ids


@settings(max_examples=300, deadline=None)
@given(actions)
def test_random_command_sequences_never_break_the_rules(sequence: list[Action]):
    p = proposal(COMMUNITY)
    now = T0
    withdrawn = False
    for n, action in enumerate(sequence):
        now = now + action[3] * DAY
        recorded = len(p.pending_events)
        try:
            apply(p, action, n, now)
        except Rejected:
            assert len(p.pending_events) == recorded, "a rejected command recorded an event"
        if withdrawn:
            assert len(p.pending_events) == recorded and p.status == ProposalStatus.WITHDRAWN, "withdrawn is final"
        withdrawn = p.status == ProposalStatus.WITHDRAWN
        check(p)
    replayed = None
    for e in p.collect_events():
        replayed = e.mutate(replayed)
    assert {k: v for k, v in replayed.__dict__.items() if k != "_pending_events"} == {
        k: v for k, v in p.__dict__.items() if k != "_pending_events"
    }


def test_the_generator_reaches_every_status():
    """The property is only as good as its reach: a scripted sequence shows that each
    status is reachable through apply(), so the random ones can get there too."""
    p = proposal(COMMUNITY)
    script = [
        ("state", "resident-1", "a", 0),
        ("publish", "x", "d", 0),
        ("state", "resident-1", "a", 0),
        ("second", "m1", "a", 0),
        ("second", "m2", "a", 0),
        ("vote", "x", "a", 3),
        ("close", "x", "a", 1),
    ]
    now, seen = T0, set()
    for n, action in enumerate(script):
        now += action[3] * DAY
        try:
            apply(p, action, n, now)
        except Rejected:
            pass
        seen.add(p.status)
    assert seen == {"raised", "published", "voting", "adopted"}
