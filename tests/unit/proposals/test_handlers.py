"""Every command handler of the proposals service, on the in-memory store (no
PostgreSQL, milliseconds each): councils and their seats, nominations and slates with
their confirmation votes, and the catalogue here; proposals in
:mod:`tests.unit.proposals.test_handlers_proposals`.

Each handler is accepted (the reply's subject and ids, the aggregate as stored after),
answered from its stored reply when resent under the same key (nothing more stored), and
refused through its own rules (reason and subject, nothing stored but the
``CommandRejected``). :func:`test_every_handler_has_its_unit_tests` fails when a handler
of the bus lacks one of these."""

from __future__ import annotations

import sys

from contracts.proposals import (
    AddCatalogueItem,
    DefineCatalogueCategory,
    FormCouncil,
    NominateRepresentative,
    NominateSlate,
    PubliciseNomination,
    RequestVote,
    RetireCatalogueItem,
    SeatMember,
    UnseatMember,
)
from services.proposals.application import build_bus
from services.proposals.consumers import TakeVoteResult
from services.proposals.domain import CatalogueCategory, CatalogueItem, Council, Nomination, Slate
from tests.support.handlers import assert_every_handler_tested, covers
from tests.unit.proposals import test_handlers_proposals, test_handlers_sessions
from tests.unit.proposals.handler_support import (  # noqa: F401  (h: fixture)
    D,
    DAY,
    OTHER_COUNCIL,
    WORKER,
    Bus,
    category,
    council,
    form_council,
    h,
    item,
    meeting_terms,
    nominate,
    nominate_slate,
    publicised,
    request_vote,
    result,
    retire,
)
from yishi.clock import ManualClock
from yishi.memory import MemoryEventStore
from yishi.repository import Repository


def test_every_handler_has_its_unit_tests():
    bus = build_bus(Repository(MemoryEventStore()), ManualClock(), project=None)
    assert_every_handler_tested(bus, sys.modules[__name__], test_handlers_proposals, test_handlers_sessions)
    assert {TakeVoteResult.__name__, "ReturnForReconsultation"} <= {m.__name__ for m in bus.internal}


# -- councils and members --


@covers(FormCouncil, "accepted", "resent")
async def test_form_council(h):
    reply = await h.once(form_council("c-street", level="street"))
    assert (reply.subject, reply.ids, reply.command_type) == ("c-street", {}, "FormCouncil")
    # A council under another is formed by those who act for the one above.
    await h.once(form_council("c-1", parent="c-street", seconds_required=2), acts_for=["c-street"])
    formed = await h.load(Council, D, "c-1")
    assert (formed.level, formed.parent_council_id, formed.holders) == ("community", "c-street", {})
    assert formed.seats == {"seat-1": "expert", "seat-2": "local_unit", "seat-3": "social_organisation",
                            "rr-1": "resident_representative", "rr-2": "resident_representative"}
    assert formed.rules["seconds_required"] == 2 and formed.rules["notice_period_days"] == 7


@covers(FormCouncil, "accepted")
async def test_form_council_chooses_the_id_left_out(h):
    reply = await h.once(form_council(None))
    (chosen,) = reply.ids.values()
    assert reply.ids == {"council_id": chosen} and reply.subject == chosen
    assert (await h.load(Council, D, chosen)).council_id == chosen


@covers(FormCouncil, "refused")
async def test_form_council_refused(h):
    await council(h, "c-1", members=0)
    await h.rejected(form_council("c-1"), "already_exists", "c-1")
    await h.rejected(form_council("c-2", parent="c-none"), "not_found", "c-none")
    # A parent must sit above: c-1 is a community council.
    await h.rejected(form_council("c-2", parent="c-1", level="street"), "invalid_state", "c-2")
    # A top-level council is district-wide staff's; a child one its parent's people's.
    await h.rejected(form_council("c-2"), "not_authorised", "c-2", acts_for=["c-1"])
    await h.rejected(form_council("c-2", parent="c-1", level="compound"), "not_authorised", "c-2",
                    acts_for=OTHER_COUNCIL)
    assert await h.load(Council, D, "c-2") is None


def seat(seat_id: str = "seat-1", member_id: str = "m1", **kw) -> SeatMember:
    return SeatMember(district=D, actor=WORKER, council_id="c-1", seat_id=seat_id, member_id=member_id, **kw)


@covers(SeatMember, "accepted", "resent")
async def test_seat_member(h):
    await council(h, members=0)
    ends = h.clock.now() + 365 * DAY
    reply = await h.once(seat(term_ends_at=ends), acts_for=["c-1"])
    assert (reply.subject, reply.ids) == ("c-1", {})
    holders = (await h.load(Council, D, "c-1")).holders
    assert holders == {"seat-1": {"member_id": "m1", "term_ends_at": ends, "since": h.clock.now()}}


@covers(SeatMember, "refused")
async def test_seat_member_refused(h):
    await council(h, members=1)
    await h.rejected(SeatMember(district=D, actor=WORKER, council_id="c-none", seat_id="seat-1", member_id="m9"),
                    "not_found", "c-none")
    await h.rejected(seat("seat-2"), "not_authorised", "c-1", acts_for=OTHER_COUNCIL)
    await h.rejected(seat("seat-9", "m9"), "not_found", "c-1")
    await h.rejected(seat("seat-2", "m1"), "duplicate", "c-1")  # one seat of a council each
    await h.rejected(seat("seat-1", "m9"), "invalid_state", "c-1")  # held by m1
    # Resident representatives are seated by a confirmed nomination only.
    await h.rejected(seat("rr-1", "resident-1"), "invalid_state", "c-1")
    assert (await h.load(Council, D, "c-1")).roll == ["m1"]


def unseat(seat_id: str = "seat-1", member_id: str = "m1") -> UnseatMember:
    return UnseatMember(district=D, actor=WORKER, council_id="c-1", seat_id=seat_id, member_id=member_id,
                        reason="任期内辞职")


@covers(UnseatMember, "accepted", "resent")
async def test_unseat_member(h):
    await council(h, members=2)
    reply = await h.once(unseat())
    assert reply.subject == "c-1"
    assert (await h.load(Council, D, "c-1")).roll == ["m2"]


@covers(UnseatMember, "refused")
async def test_unseat_member_refused(h):
    await council(h, members=2)
    await h.rejected(unseat("seat-1", "m2"), "invalid_state", "c-1")
    await h.rejected(unseat("seat-9", "m1"), "not_found", "c-1")
    await h.rejected(unseat(), "not_authorised", "c-1", acts_for=OTHER_COUNCIL)
    assert (await h.load(Council, D, "c-1")).roll == ["m1", "m2"]


# -- nominations and slates --


@covers(NominateRepresentative, "accepted", "resent")
async def test_nominate_representative(h):
    await council(h)
    reply = await h.once(nominate(), acts_for=["c-1"])
    assert (reply.subject, reply.ids) == ("n-1", {})
    n = await h.load(Nomination, D, "n-1")
    assert (n.status, n.council_id, n.seat_id, n.nominee_id, n.route) == (
        "nominated", "c-1", "rr-1", "resident-1", "recommendation")


@covers(NominateRepresentative, "refused")
async def test_nominate_representative_refused(h):
    await council(h)
    await h.accepted(nominate())
    await h.rejected(nominate("n-1", "rr-2", "resident-2"), "already_exists", "n-1")
    await h.rejected(nominate("n-2", council_id="c-none"), "not_found", "c-none")
    await h.rejected(nominate("n-2"), "not_authorised", "n-2", acts_for=OTHER_COUNCIL)
    await h.rejected(nominate("n-2", "seat-1"), "invalid_state", "n-2")  # not a representative seat
    await h.rejected(nominate("n-2", "rr-2", "m1"), "duplicate", "n-2")  # m1 holds seat-1
    assert await h.load(Nomination, D, "n-2") is None


@covers(NominateSlate, "accepted", "resent")
async def test_nominate_slate(h):
    await council(h)
    ends = h.clock.now() + 3 * DAY
    reply = await h.once(nominate_slate("sl-1", ends), acts_for=["c-1"])
    assert (reply.subject, reply.ids) == ("sl-1", {})
    s = await h.load(Slate, D, "sl-1")
    assert (s.status, s.council_id, s.notice_ends_at) == ("publicised", "c-1", ends)
    assert [(n["seat_id"], n["nominee_id"]) for n in s.nominees] == [("rr-1", "resident-1"), ("rr-2", "resident-2")]


@covers(NominateSlate, "refused")
async def test_nominate_slate_refused(h):
    await council(h)
    ends = h.clock.now() + 3 * DAY
    await h.accepted(nominate_slate("sl-1", ends))
    await h.rejected(nominate_slate("sl-1", ends), "already_exists", "sl-1")
    await h.rejected(nominate_slate("sl-2", ends, council_id="c-none"), "not_found", "c-none")
    await h.rejected(nominate_slate("sl-2", ends), "not_authorised", "sl-2", acts_for=OTHER_COUNCIL)
    twice = (("rr-1", "resident-1"), ("rr-1", "resident-2"))
    await h.rejected(nominate_slate("sl-2", ends, twice), "invalid_command", "sl-2")
    # One seat that is no representative seat refuses the whole slate.
    await h.rejected(nominate_slate("sl-2", ends, (("rr-1", "resident-1"), ("seat-1", "resident-2"))),
                    "invalid_state", "sl-2")
    await h.rejected(nominate_slate("sl-2", h.clock.now() - DAY), "invalid_command", "sl-2")
    assert await h.load(Slate, D, "sl-2") is None


def publicise(h: Bus, nomination_id: str = "n-1", days: int = 3) -> PubliciseNomination:
    return PubliciseNomination(district=D, actor=WORKER, nomination_id=nomination_id,
                               notice_ends_at=h.clock.now() + days * DAY)


@covers(PubliciseNomination, "accepted", "resent")
async def test_publicise_nomination(h):
    await council(h)
    await h.accepted(nominate())
    reply = await h.once(publicise(h), acts_for=["c-1"])
    assert reply.subject == "n-1"
    n = await h.load(Nomination, D, "n-1")
    assert (n.status, n.notice_ends_at) == ("publicised", h.clock.now() + 3 * DAY)


@covers(PubliciseNomination, "refused")
async def test_publicise_nomination_refused(h):
    await council(h)
    await h.accepted(nominate())
    await h.rejected(publicise(h, "n-none"), "not_found", "n-none")
    await h.rejected(publicise(h), "not_authorised", "n-1", acts_for=OTHER_COUNCIL)
    await h.rejected(publicise(h, days=-1), "invalid_command", "n-1")
    await h.accepted(publicise(h))
    await h.rejected(publicise(h, days=5), "invalid_state", "n-1")  # already publicised
    assert (await h.load(Nomination, D, "n-1")).notice_ends_at == h.clock.now() + 3 * DAY


@covers(RequestVote, "accepted", "resent")
async def test_request_vote_on_a_nomination_and_a_slate(h):
    await council(h)
    ends = await publicised(h)
    await h.accepted(nominate_slate("sl-1", ends, (("rr-2", "resident-2"),)))
    h.clock.set(ends)
    reply = await h.once(request_vote("nomination", "n-1", meeting_terms(h), "v-1"), acts_for=["c-1"])
    assert (reply.subject, reply.ids) == ("n-1", {})
    n = await h.load(Nomination, D, "n-1")
    assert (n.status, n.vote_id, n.vote_terms["electorate"]["kind"]) == ("voting", "v-1", "residents_meeting")
    assert (await h.once(request_vote("slate", "sl-1", meeting_terms(h), "v-2"))).subject == "sl-1"
    s = await h.load(Slate, D, "sl-1")
    assert (s.status, s.vote_id) == ("voting", "v-2")


@covers(RequestVote, "refused")
async def test_request_vote_on_a_nomination_refused(h):
    await council(h)
    await council(h, "c-2", members=0)
    ends = await publicised(h)
    terms = meeting_terms(h)
    await h.rejected(request_vote("nomination", "n-1", terms), "invalid_state", "n-1")  # notice still runs
    h.clock.set(ends)
    await h.rejected(request_vote("nomination", "n-none", terms), "not_found", "n-none")
    await h.rejected(request_vote("slate", "n-1", terms), "not_found", "n-1")  # n-1 is no slate
    # The record's council decides whom the caller must act for, not the one the command names.
    await h.rejected(request_vote("nomination", "n-1", terms, council_id="c-2"), "not_authorised", "n-1",
                    acts_for=["c-2"])
    await h.rejected(request_vote("nomination", "n-1", terms, council_id="c-2"), "invalid_state", "n-1")
    await h.rejected(request_vote("nomination", "n-1", meeting_terms(h).model_copy(update={"closes_at": ends})),
                    "deadline_passed", "n-1")
    assert (await h.load(Nomination, D, "n-1")).status == "publicised"


async def nomination_voting(h: Bus, nomination_id: str, seat_id: str, nominee_id: str, vote_id: str) -> None:
    h.clock.set(await publicised(h, nomination_id, seat_id, nominee_id))
    await h.accepted(request_vote("nomination", nomination_id, meeting_terms(h), vote_id))


@covers(TakeVoteResult, "accepted", "resent")
async def test_take_vote_result_confirms_a_nomination_and_seats_the_nominee(h):
    await council(h)
    await nomination_voting(h, "n-1", "rr-1", "resident-1", "v-1")
    reply = await h.once(result(h, "nomination", "n-1", "adopted"), platform=True)
    assert (reply.subject, reply.command_type, reply.actor.id) == ("n-1", "TakeVoteResult", "yishi-proposals")
    n = await h.load(Nomination, D, "n-1")
    assert (n.status, n.outcome) == ("confirmed", "adopted")
    assert (await h.load(Council, D, "c-1")).holders["rr-1"]["member_id"] == "resident-1"


@covers(TakeVoteResult, "accepted")
async def test_take_vote_result_rejects_a_nomination_and_seats_nobody(h):
    await council(h)
    await nomination_voting(h, "n-1", "rr-1", "resident-1", "v-1")
    await h.once(result(h, "nomination", "n-1", "rejected"), platform=True)
    assert (await h.load(Nomination, D, "n-1")).status == "rejected"
    assert "rr-1" not in (await h.load(Council, D, "c-1")).holders


@covers(TakeVoteResult, "accepted")
async def test_take_vote_result_confirms_a_nomination_whose_seat_was_taken_meanwhile(h):
    await council(h)
    await nomination_voting(h, "n-1", "rr-1", "resident-1", "v-1")
    await nomination_voting(h, "n-2", "rr-1", "resident-2", "v-2")
    await h.once(result(h, "nomination", "n-1", "adopted"), platform=True)
    await h.once(result(h, "nomination", "n-2", "adopted", "v-2"), platform=True)
    assert (await h.load(Nomination, D, "n-2")).status == "confirmed"  # on record
    assert (await h.load(Council, D, "c-1")).holders["rr-1"]["member_id"] == "resident-1"


@covers(TakeVoteResult, "accepted")
async def test_take_vote_result_confirms_a_slate_and_seats_every_nominee(h):
    await council(h)
    ends = h.clock.now() + 3 * DAY
    await h.accepted(nominate_slate("sl-1", ends))
    h.clock.set(ends)
    await h.accepted(request_vote("slate", "sl-1", meeting_terms(h)))
    assert (await h.once(result(h, "slate", "sl-1", "adopted"), platform=True)).subject == "sl-1"
    assert (await h.load(Slate, D, "sl-1")).status == "confirmed"
    holders = (await h.load(Council, D, "c-1")).holders
    assert (holders["rr-1"]["member_id"], holders["rr-2"]["member_id"]) == ("resident-1", "resident-2")


@covers(TakeVoteResult, "refused")
async def test_take_vote_result_on_a_nomination_refused(h):
    await council(h)
    await nomination_voting(h, "n-1", "rr-1", "resident-1", "v-1")
    await h.rejected(result(h, "nomination", "n-none", "adopted"), "not_found", "n-none", platform=True)
    await h.rejected(result(h, "slate", "n-1", "adopted"), "not_found", "n-1", platform=True)
    await h.rejected(result(h, "nomination", "n-1", "adopted", "v-other"), "invalid_state", "n-1", platform=True)
    await h.accepted(result(h, "nomination", "n-1", "rejected"), principal=h.bus.platform)
    # A second result, even another outcome, finds the nomination no longer waiting.
    await h.rejected(result(h, "nomination", "n-1", "adopted"), "invalid_state", "n-1", platform=True)
    assert (await h.load(Nomination, D, "n-1")).status == "rejected"
    assert "rr-1" not in (await h.load(Council, D, "c-1")).holders


@covers(TakeVoteResult, "refused")
async def test_the_platforms_own_commands_are_refused_to_anyone_else(h):
    await council(h)
    await nomination_voting(h, "n-1", "rr-1", "resident-1", "v-1")
    taken = result(h, "nomination", "n-1", "adopted").model_copy(update={"actor": WORKER})
    await h.rejected(taken, "not_authorised", None)
    # Not even by someone claiming to be the platform's actor, without its credentials.
    await h.rejected(result(h, "nomination", "n-1", "adopted"), "not_authorised", None)
    assert (await h.load(Nomination, D, "n-1")).status == "voting"


# -- the catalogue --


@covers(DefineCatalogueCategory, "accepted", "resent")
async def test_define_catalogue_category(h):
    reply = await h.once(category())
    assert (reply.subject, reply.ids) == ("cat-1", {})
    c = await h.load(CatalogueCategory, D, "cat-1")
    assert (c.code, c.title, c.defined_at) == ("PA", "公共事务", h.clock.now())


@covers(DefineCatalogueCategory, "refused")
async def test_define_catalogue_category_refused(h):
    await h.accepted(category())
    await h.rejected(category(code="PB"), "already_exists", "cat-1")
    assert (await h.load(CatalogueCategory, D, "cat-1")).code == "PA"


@covers(AddCatalogueItem, "accepted", "resent")
async def test_add_catalogue_item(h):
    await h.accepted(category())
    reply = await h.once(item())
    assert (reply.subject, reply.ids) == ("item-1", {})
    i = await h.load(CatalogueItem, D, "item-1")
    assert (i.category_id, i.community_id, i.retired) == ("cat-1", "xikang", False)


@covers(AddCatalogueItem, "refused")
async def test_add_catalogue_item_refused(h):
    await h.accepted(category())
    await h.accepted(item())
    await h.rejected(item(), "already_exists", "item-1")
    await h.rejected(item("item-2", "cat-none"), "not_found", "cat-none")
    assert await h.load(CatalogueItem, D, "item-2") is None


@covers(RetireCatalogueItem, "accepted", "resent")
async def test_retire_catalogue_item(h):
    await h.accepted(category())
    await h.accepted(item())
    assert (await h.once(retire())).subject == "item-1"
    i = await h.load(CatalogueItem, D, "item-1")
    assert (i.retired, i.retired_reason) == (True, "已纳入街道统一规划")


@covers(RetireCatalogueItem, "refused")
async def test_retire_catalogue_item_refused(h):
    await h.accepted(category())
    await h.accepted(item())
    await h.rejected(retire("item-none"), "not_found", "item-none")
    await h.accepted(retire())
    await h.rejected(retire(), "invalid_state", "item-1")  # already retired (another key: no stored reply)
