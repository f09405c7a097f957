"""What the proposals handler unit tests share: the service's bus on the in-memory store
(:class:`Bus`, fixture ``h``), the people who send its commands, and builders that bring
a council, a nomination, a slate or a proposal to a stage through the bus. The checks
every handler gets (accepted, resent, refused) and :func:`covers` are the shared ones of
:mod:`tests.support.handlers`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from contracts.common import Actor, CommandAccepted, VoteTerms
from contracts.proposals import (
    AddCatalogueItem,
    DefineCatalogueCategory,
    FormCouncil,
    MakeStatement,
    NominateRepresentative,
    NominateSlate,
    PubliciseNomination,
    PublishProposal,
    RaiseProposal,
    RequestVote,
    RetireCatalogueItem,
    SeatMember,
    SecondMotion,
)
from services.proposals.application import build_bus
from services.proposals.consumers import TakeVoteResult
from tests.support.handlers import Handlers

D = "gulou"
DAY = timedelta(days=1)
WORKER = Actor(id="worker-0102", role="community_worker")
RESIDENT = Actor(id="resident-4211", role="resident")
OTHER_COUNCIL = ["c-other"]
"""An ``acts_for`` naming a council other than the one addressed."""


def member(n: int) -> Actor:
    """The council member ``m{n}``, acting from seat ``seat-{n}``."""
    return Actor(id=f"m{n}", role="council_member", seat_id=f"seat-{n}")


class Bus(Handlers):
    """The proposals bus on a fresh in-memory store."""

    def __init__(self) -> None:
        super().__init__(build_bus)


@pytest.fixture
def h() -> Bus:
    """A fresh bus."""
    return Bus()


# -- builders: each goes through the bus, as the people concerned would --

SEATS = [("seat-1", "expert"), ("seat-2", "local_unit"), ("seat-3", "social_organisation"),
         ("rr-1", "resident_representative"), ("rr-2", "resident_representative")]


def form_council(council_id: str = "c-1", *, parent: str | None = None, level: str = "community",
                 **rules: Any) -> FormCouncil:
    return FormCouncil(district=D, actor=WORKER, council_id=council_id, name="西康社区议事会", level=level,
                       area_id="xikang", parent_council_id=parent,
                       seats=[{"seat_id": s, "kind": k} for s, k in SEATS], rules=rules)


async def council(h: Bus, council_id: str = "c-1", *, members: int = 3, **kw: Any) -> None:
    """A council with the :data:`SEATS` and members ``m1`` … on ``seat-1`` …"""
    await h.accepted(form_council(council_id, **kw))
    for n in range(1, members + 1):
        await h.accepted(SeatMember(district=D, actor=WORKER, council_id=council_id, seat_id=f"seat-{n}",
                                    member_id=f"m{n}"))


def raise_proposal(proposal_id: str = "p-1", council_id: str = "c-1", **kw: Any) -> RaiseProposal:
    return RaiseProposal(**{"district": D, "actor": RESIDENT, "proposal_id": proposal_id, "council_id": council_id,
                            "title": "在3号院增设电动自行车集中充电棚", "summary": "建设集中充电棚,约40个充电位。", **kw})


def publish(proposal_id: str = "p-1", notice_ends_at: datetime | None = None, **kw: Any) -> PublishProposal:
    return PublishProposal(**{"district": D, "actor": WORKER, "proposal_id": proposal_id, "form": "council",
                              "notice_ends_at": notice_ends_at, **kw})


def motion(proposal_id: str = "p-1", statement_id: str = "st-1") -> MakeStatement:
    return MakeStatement(district=D, actor=RESIDENT, proposal_id=proposal_id, statement_id=statement_id,
                         step="motion", speaker_role="proposer", text="我提议建设充电棚。")


async def published(h: Bus, proposal_id: str = "p-1", council_id: str = "c-1") -> datetime:
    """A proposal raised and publicised for 7 days (the default notice period); returns
    when the notice ends."""
    ends = h.clock.now() + 7 * DAY
    await h.accepted(raise_proposal(proposal_id, council_id))
    await h.accepted(publish(proposal_id, ends))
    return ends


async def ready(h: Bus, proposal_id: str = "p-1", council_id: str = "c-1") -> None:
    """Published, its motion presented and seconded by ``m1``, the notice period over."""
    ends = await published(h, proposal_id, council_id)
    await h.accepted(motion(proposal_id))
    await h.accepted(SecondMotion(district=D, actor=member(1), proposal_id=proposal_id))
    h.clock.set(ends)


def council_terms(h: Bus, council_id: str = "c-1", size: int = 3, **changes: Any) -> VoteTerms:
    """Terms within a default council's rules: its ``size`` members, simple majority, 50 %."""
    return VoteTerms.model_validate({
        "question": "是否建设充电棚?", "closes_at": h.clock.now() + 3 * DAY, "method": "show_of_hands",
        "majority": "simple", "quorum_percent": 50, "secrecy": "open",
        "electorate": {"kind": "council_members", "scope_id": council_id, "size": size}, **changes})


def meeting_terms(h: Bus) -> VoteTerms:
    """A residents' meeting confirming a nomination or a slate."""
    return VoteTerms.model_validate({
        "question": "是否确认居民代表?", "closes_at": h.clock.now() + 3 * DAY, "method": "paper_ballot",
        "majority": "simple", "quorum_percent": 50, "secrecy": "secret",
        "electorate": {"kind": "residents_meeting", "scope_id": "xikang", "size": 60}})


def request_vote(kind: str, matter_id: str, terms: VoteTerms, vote_id: str = "v-1",
                 council_id: str = "c-1") -> RequestVote:
    return RequestVote(district=D, actor=WORKER, vote_id=vote_id, council_id=council_id,
                       matter={"kind": kind, "id": matter_id}, terms=terms)


async def voting(h: Bus, proposal_id: str = "p-1", vote_id: str = "v-1") -> None:
    """A proposal of ``c-1`` waiting for the result of ``vote_id``."""
    await ready(h, proposal_id)
    await h.accepted(request_vote("proposal", proposal_id, council_terms(h), vote_id))


def result(h: Bus, kind: str, matter_id: str, outcome: str, vote_id: str = "v-1") -> TakeVoteResult:
    """What the platform decides on voting's ``VoteClosed``."""
    in_favour, against = (3, 0) if outcome == "adopted" else (0, 3)
    return TakeVoteResult(district=D, actor=h.bus.system_actor, vote_id=vote_id,
                          matter={"kind": kind, "id": matter_id}, outcome=outcome,
                          tally={"in_favour": in_favour, "against": against, "abstain": 0})


async def decided(h: Bus, proposal_id: str = "p-1", outcome: str = "adopted") -> None:
    """A proposal of ``c-1`` its vote decided."""
    await voting(h, proposal_id)
    assert isinstance(await h.send(result(h, "proposal", proposal_id, outcome), platform=True), CommandAccepted)


def nominate(nomination_id: str = "n-1", seat_id: str = "rr-1", nominee_id: str = "resident-1",
             council_id: str = "c-1") -> NominateRepresentative:
    return NominateRepresentative(district=D, actor=WORKER, nomination_id=nomination_id, council_id=council_id,
                                  seat_id=seat_id, nominee_id=nominee_id, route="recommendation")


async def publicised(h: Bus, nomination_id: str = "n-1", seat_id: str = "rr-1",
                     nominee_id: str = "resident-1") -> datetime:
    """A nomination to ``c-1`` publicised for 3 days; returns when the notice ends."""
    ends = h.clock.now() + 3 * DAY
    await h.accepted(nominate(nomination_id, seat_id, nominee_id))
    await h.accepted(PubliciseNomination(district=D, actor=WORKER, nomination_id=nomination_id, notice_ends_at=ends))
    return ends


def nominate_slate(slate_id: str = "sl-1", notice_ends_at: datetime | None = None,
                   nominees: tuple[tuple[str, str], ...] = (("rr-1", "resident-1"), ("rr-2", "resident-2")),
                   council_id: str = "c-1") -> NominateSlate:
    return NominateSlate(district=D, actor=WORKER, slate_id=slate_id, council_id=council_id,
                         notice_ends_at=notice_ends_at,
                         nominees=[{"seat_id": s, "nominee_id": n, "route": "recommendation"} for s, n in nominees])


def category(category_id: str = "cat-1", code: str = "PA") -> DefineCatalogueCategory:
    return DefineCatalogueCategory(district=D, actor=WORKER, category_id=category_id, code=code,
                                   title="公共事务", description="涉及居民共同利益的事务")


def item(item_id: str = "item-1", category_id: str = "cat-1") -> AddCatalogueItem:
    return AddCatalogueItem(district=D, actor=WORKER, item_id=item_id, category_id=category_id,
                            community_id="xikang", title="电动车充电", description="充电设施")


def retire(item_id: str = "item-1") -> RetireCatalogueItem:
    return RetireCatalogueItem(district=D, actor=WORKER, item_id=item_id, reason="已纳入街道统一规划")
