"""The proposals domain: councils and their seats, representative nominations, the
consultation catalogue, and proposals with their deliberation record.

Aggregates are pure and synchronous: the time comes in as an argument (``now``), other
aggregates a rule depends on (a proposal's council) are passed in, read only. Public
methods validate and raise :class:`yishi.rules.Rejected`; the private ``@event``
methods only record and apply, because their bodies run again on every replay.

Aggregate ids are derived from the district and the public id (:func:`stream_id`), so
the same public id in two districts names two different streams, and another
district's id is simply not found.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from fractions import Fraction
from enum import StrEnum
from typing import Any

from eventsourcing.domain import Aggregate, event

from contracts.common import (
    CouncilLevel,
    ElectorateKind,
    MajorityRule,
    RejectionReason,
    Secrecy,
    Share,
    VoteTerms,
    quorum_of,
)
from contracts.proposals import DeliberationStep, SeatKind, SpeakerRole, resolution_id_for
from contracts.voting import VoteOutcome
from yishi.rules import Rejected, within_horizon

_NAMESPACE = uuid.UUID("5b0e8f3c-4f7e-4d7a-9a57-2f1a3c0b9e11")

LEVELS: tuple[str, ...] = tuple(level.value for level in CouncilLevel)
"""The five council levels, lowest first: a parent sits strictly higher."""

STEPS: tuple[str, ...] = tuple(step.value for step in DeliberationStep)
"""The five deliberation steps in the order they are taken."""

# Who may speak in each step. Debate is open to every side; the expert step to experts.
STEP_ROLES: dict[str, frozenset[str]] = {
    DeliberationStep.MOTION: frozenset({SpeakerRole.PROPOSER}),
    DeliberationStep.SECONDING: frozenset({SpeakerRole.SECONDER}),
    DeliberationStep.OBJECTION: frozenset({SpeakerRole.OBJECTOR}),
    DeliberationStep.DEBATE: frozenset(
        {SpeakerRole.PROPOSER, SpeakerRole.SECONDER, SpeakerRole.OBJECTOR, SpeakerRole.SUPPORTER, SpeakerRole.CHAIR}
    ),
    DeliberationStep.EXPERT_COMMENT: frozenset({SpeakerRole.EXPERT}),
}

# The majority rules a council's rule allows a vote to use: itself, or one at least as
# strict (every tally the stricter rule adopts, the council's adopts too). Absolute
# counts the electorate, the others the ballots cast, so neither implies the other
# except through unanimity of ballots cast, which implies none that count the electorate.
AT_LEAST_AS_STRICT: dict[str, frozenset[str]] = {
    MajorityRule.SIMPLE: frozenset({MajorityRule.SIMPLE, MajorityRule.ABSOLUTE, MajorityRule.TWO_THIRDS,
                                    MajorityRule.UNANIMITY, MajorityRule.CONSENSUS}),
    MajorityRule.ABSOLUTE: frozenset({MajorityRule.ABSOLUTE}),
    MajorityRule.TWO_THIRDS: frozenset({MajorityRule.TWO_THIRDS, MajorityRule.UNANIMITY}),
    MajorityRule.CONSENSUS: frozenset({MajorityRule.CONSENSUS, MajorityRule.UNANIMITY}),
    MajorityRule.UNANIMITY: frozenset({MajorityRule.UNANIMITY}),
    MajorityRule.APPROVAL: frozenset({MajorityRule.APPROVAL}),
}


def stream_id(kind: str, district: str, public_id: str) -> uuid.UUID:
    """The aggregate id of the ``kind`` named ``public_id`` in ``district``."""
    return uuid.uuid5(_NAMESPACE, f"{district}/{kind}/{public_id}")


class ProposalStatus(StrEnum):
    """Where a proposal stands. Adopted, rejected and withdrawn end the ordinary course
    (adopted and rejected proposals can still be sent back to deliberation)."""

    RAISED = "raised"  # on record, not yet publicised (also after escalation to a new council)
    PUBLISHED = "published"  # publicised: notice period, then deliberation
    VOTING = "voting"  # referred to a vote, waiting for its result
    ADOPTED = "adopted"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


class NominationStatus(StrEnum):
    """Where a representative nomination stands."""

    NOMINATED = "nominated"
    PUBLICISED = "publicised"
    VOTING = "voting"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"


# --- councils ----------------------------------------------------------------------


class Council(Aggregate):
    """A council (议事会): its level, parent, seats by category, rules and members."""

    @staticmethod
    def create_id(district: str, council_id: str) -> uuid.UUID:
        return stream_id("council", district, council_id)

    @classmethod
    def form(
        cls,
        *,
        district: str,
        council_id: str,
        name: str,
        level: str,
        area_id: str,
        parent: Council | None,
        seats: list[tuple[str, str]],
        rules: dict[str, Any],
        now: datetime,
    ) -> Council:
        """Set up a council; a parent must exist in the district and sit at a higher level."""
        ids = [seat_id for seat_id, _ in seats]
        if len(set(ids)) != len(ids):
            raise Rejected(RejectionReason.INVALID_COMMAND, "seat ids must be distinct", council_id)
        if parent is not None and LEVELS.index(parent.level) <= LEVELS.index(level):
            raise Rejected(
                RejectionReason.INVALID_STATE,
                f"parent council {parent.council_id} ({parent.level}) does not sit above a {level} council",
                council_id,
            )
        return cls(
            district=district,
            council_id=council_id,
            name=name,
            level=str(level),
            area_id=area_id,
            parent_council_id=parent.council_id if parent else None,
            seats={seat_id: str(kind) for seat_id, kind in seats},
            rules=rules,
            at=now,
        )

    @event("Formed")
    def __init__(
        self,
        district: str,
        council_id: str,
        name: str,
        level: str,
        area_id: str,
        parent_council_id: str | None,
        seats: dict[str, str],
        rules: dict[str, Any],
        at: datetime,
    ) -> None:
        self.district = district
        self.council_id = council_id
        self.name = name
        self.level = level
        self.area_id = area_id
        self.parent_council_id = parent_council_id
        self.seats = seats
        self.rules = rules
        self.formed_at = at
        self.holders: dict[str, dict[str, Any]] = {}  # seat id -> {"member_id", "term_ends_at", "since"}

    # -- queries used by other aggregates' rules --

    def seat_of(self, member_id: str) -> str | None:
        """The seat ``member_id`` holds in this council, if any."""
        return next((s for s, h in self.holders.items() if h["member_id"] == member_id), None)

    @property
    def roll(self) -> list[str]:
        """The seated members, in a stable order: the electorate of council votes."""
        return sorted(h["member_id"] for h in self.holders.values())

    def vote_terms(self, terms: VoteTerms, subject: str) -> dict[str, Any]:
        """The terms of a vote on one of this council's proposals, exactly as requested,
        or :class:`Rejected` naming the rule they break (``contracts/README.md``, "Voting
        rules"). Only a council electorate's roll, when left out, is filled in: it is the
        seated members, and nothing the request says is replaced."""
        rules = self.rules
        electorate = terms.electorate
        council_rule = RejectionReason.COUNCIL_RULE
        if electorate.kind == ElectorateKind.COUNCIL_MEMBERS:
            roll = self.roll
            if not roll:
                raise Rejected(RejectionReason.INVALID_STATE, f"{self.council_id} has no seated members to vote",
                               subject)
            if electorate.scope_id != self.council_id:
                raise Rejected(RejectionReason.INVALID_COMMAND,
                               f"a council_members electorate is this council's: scope_id must be {self.council_id}",
                               subject)
            if electorate.size != len(roll) or (electorate.roll is not None and set(electorate.roll) != set(roll)):
                raise Rejected(council_rule, f"{self.council_id}'s members are its {len(roll)} seated members "
                               f"({', '.join(roll)}): the electorate must be that roll", subject)
        elif electorate.roll is None:
            raise Rejected(RejectionReason.INVALID_COMMAND,
                           f"a {electorate.kind} electorate needs its roll (the {electorate.size} people who may "
                           "vote): each ballot is checked against it", subject)
        least = quorum_of(rules["quorum_percent"], _share(rules.get("quorum")))
        if terms.quorum_share < least:
            raise Rejected(council_rule, f"{self.council_id}'s rule quorum is at least {_shown(least)} of the "
                           f"electorate; {_shown(terms.quorum_share)} was asked", subject)
        if terms.majority not in AT_LEAST_AS_STRICT[rules["majority"]]:
            allowed = ", ".join(sorted(AT_LEAST_AS_STRICT[rules["majority"]]))
            raise Rejected(council_rule, f"{self.council_id}'s rule majority is {rules['majority']}: a vote uses "
                           f"it or a stricter rule ({allowed}), not {terms.majority}", subject)
        if rules["secrecy"] == Secrecy.SECRET and terms.secrecy != Secrecy.SECRET:
            raise Rejected(council_rule, f"{self.council_id}'s rule secrecy requires a secret ballot", subject)
        decided = terms.model_dump(mode="json")
        if electorate.kind == ElectorateKind.COUNCIL_MEMBERS:
            decided["electorate"]["roll"] = self.roll
        return decided

    # -- commands --

    def seat(
        self, *, seat_id: str, member_id: str, term_ends_at: datetime | None, now: datetime, by_nomination: bool = False
    ) -> None:
        """Seat ``member_id``. Resident representatives are seated only through a confirmed
        nomination; a member holds at most one seat of a council."""
        kind = self._seat_kind(seat_id)
        if kind == SeatKind.RESIDENT_REPRESENTATIVE and not by_nomination:
            raise Rejected(
                RejectionReason.INVALID_STATE,
                "resident representative seats are filled by nomination and a residents' confirmation vote",
                self.council_id,
            )
        holder = self.holders.get(seat_id)
        if holder is not None:
            same = holder["member_id"] == member_id
            raise Rejected(
                RejectionReason.DUPLICATE if same else RejectionReason.INVALID_STATE,
                f"seat {seat_id} is already held by {holder['member_id']}",
                self.council_id,
            )
        other = self.seat_of(member_id)
        if other is not None:
            raise Rejected(
                RejectionReason.DUPLICATE,
                f"{member_id} already holds seat {other} of {self.council_id}",
                self.council_id,
            )
        if term_ends_at is not None and term_ends_at <= now:
            raise Rejected(RejectionReason.INVALID_COMMAND, "the term must end in the future", self.council_id)
        if term_ends_at is not None:
            within_horizon(term_ends_at, now, "term_ends_at", self.council_id)
        self._seated(
            council_id=self.council_id,
            seat_id=seat_id,
            seat_kind=kind,
            member_id=member_id,
            term_ends_at=term_ends_at,
            at=now,
        )

    def unseat(self, *, seat_id: str, member_id: str, reason: str, now: datetime) -> None:
        """End ``member_id``'s tenure of ``seat_id``."""
        kind = self._seat_kind(seat_id)
        holder = self.holders.get(seat_id)
        if holder is None or holder["member_id"] != member_id:
            raise Rejected(RejectionReason.INVALID_STATE, f"{member_id} does not hold seat {seat_id}", self.council_id)
        self._unseated(
            council_id=self.council_id, seat_id=seat_id, seat_kind=kind, member_id=member_id, reason=reason, at=now
        )

    def _seat_kind(self, seat_id: str) -> str:
        if seat_id not in self.seats:
            raise Rejected(RejectionReason.NOT_FOUND, f"{self.council_id} has no seat {seat_id}", self.council_id)
        return self.seats[seat_id]

    @event("MemberSeated")
    def _seated(
        self, council_id: str, seat_id: str, seat_kind: str, member_id: str, term_ends_at: datetime | None, at: datetime
    ) -> None:
        self.holders[seat_id] = {"member_id": member_id, "term_ends_at": term_ends_at, "since": at}

    @event("MemberUnseated")
    def _unseated(
        self, council_id: str, seat_id: str, seat_kind: str, member_id: str, reason: str, at: datetime
    ) -> None:
        del self.holders[seat_id]


def _share(value: dict[str, int] | None) -> Share | None:
    """A council's exact quorum as stored (a dict), as a ``Share``."""
    return Share.model_validate(value) if value is not None else None


def _shown(share: Fraction) -> str:
    """A fraction for a message: ``2/3``, or ``50%`` when it is a whole percent."""
    percent = share * 100
    return f"{percent.numerator}%" if percent.denominator == 1 else f"{share.numerator}/{share.denominator}"


# --- nominations ---------------------------------------------------------------------


class Nomination(Aggregate):
    """A resident nominated for a representative seat: publicised, then confirmed or
    rejected by a residents' vote."""

    @staticmethod
    def create_id(district: str, nomination_id: str) -> uuid.UUID:
        return stream_id("nomination", district, nomination_id)

    @classmethod
    def nominate(
        cls,
        *,
        district: str,
        nomination_id: str,
        council: Council,
        seat_id: str,
        nominee_id: str,
        route: str,
        now: datetime,
    ) -> Nomination:
        """Nominate for a vacant resident representative seat someone who holds no seat there."""
        if council._seat_kind(seat_id) != SeatKind.RESIDENT_REPRESENTATIVE:
            raise Rejected(
                RejectionReason.INVALID_STATE, f"seat {seat_id} is not a resident representative seat", nomination_id
            )
        if seat_id in council.holders:
            raise Rejected(RejectionReason.INVALID_STATE, f"seat {seat_id} is not vacant", nomination_id)
        if council.seat_of(nominee_id) is not None:
            raise Rejected(
                RejectionReason.DUPLICATE, f"{nominee_id} already holds a seat of {council.council_id}", nomination_id
            )
        return cls(
            district=district,
            nomination_id=nomination_id,
            council_id=council.council_id,
            seat_id=seat_id,
            nominee_id=nominee_id,
            route=str(route),
            at=now,
        )

    @event("Nominated")
    def __init__(
        self,
        district: str,
        nomination_id: str,
        council_id: str,
        seat_id: str,
        nominee_id: str,
        route: str,
        at: datetime,
    ) -> None:
        self.district = district
        self.nomination_id = nomination_id
        self.council_id = council_id
        self.seat_id = seat_id
        self.nominee_id = nominee_id
        self.route = route
        self.nominated_at = at
        self.status = NominationStatus.NOMINATED.value
        self.notice_ends_at: datetime | None = None
        self.vote_id: str | None = None
        self.vote_terms: dict[str, Any] | None = None
        self.outcome: str | None = None

    def publicise(self, *, notice_ends_at: datetime, now: datetime) -> None:
        """Publicise the nomination until ``notice_ends_at`` (in the future)."""
        if self.status != NominationStatus.NOMINATED:
            raise Rejected(RejectionReason.INVALID_STATE, f"nomination is {self.status}", self.nomination_id)
        if notice_ends_at <= now:
            raise Rejected(
                RejectionReason.INVALID_COMMAND, "the notice period must end in the future", self.nomination_id
            )
        within_horizon(notice_ends_at, now, "notice_ends_at", self.nomination_id)
        self._publicised(
            nomination_id=self.nomination_id, council_id=self.council_id, notice_ends_at=notice_ends_at, at=now
        )

    def request_vote(self, *, vote_id: str, terms: dict[str, Any], closes_at: datetime, now: datetime) -> None:
        """Refer the nomination to the residents' vote, once its notice period is over."""
        _check_confirmation_vote("nomination", self.status, self.notice_ends_at, closes_at, now, self.nomination_id)
        self._vote_requested(
            nomination_id=self.nomination_id, vote_id=vote_id, council_id=self.council_id, terms=terms, at=now
        )

    def close_vote(self, *, vote_id: str, outcome: str, now: datetime) -> bool:
        """Take the vote's outcome: confirmed when adopted, rejected otherwise. A result
        for another vote, or one already taken, changes nothing (returns False)."""
        if self.status != NominationStatus.VOTING or vote_id != self.vote_id:
            return False
        if outcome == VoteOutcome.ADOPTED:
            self._confirmed(
                nomination_id=self.nomination_id,
                council_id=self.council_id,
                seat_id=self.seat_id,
                nominee_id=self.nominee_id,
                vote_id=vote_id,
                at=now,
            )
        else:
            self._rejected(
                nomination_id=self.nomination_id,
                council_id=self.council_id,
                vote_id=vote_id,
                outcome=str(outcome),
                at=now,
            )
        return True

    @event("Publicised")
    def _publicised(self, nomination_id: str, council_id: str, notice_ends_at: datetime, at: datetime) -> None:
        self.status = NominationStatus.PUBLICISED.value
        self.notice_ends_at = notice_ends_at

    @event("VoteRequested")
    def _vote_requested(
        self, nomination_id: str, vote_id: str, council_id: str, terms: dict[str, Any], at: datetime
    ) -> None:
        self.status = NominationStatus.VOTING.value
        self.vote_id = vote_id
        self.vote_terms = terms

    @event("Confirmed")
    def _confirmed(
        self, nomination_id: str, council_id: str, seat_id: str, nominee_id: str, vote_id: str, at: datetime
    ) -> None:
        self.status = NominationStatus.CONFIRMED.value
        self.outcome = VoteOutcome.ADOPTED.value

    @event("Rejected")
    def _rejected(self, nomination_id: str, council_id: str, vote_id: str, outcome: str, at: datetime) -> None:
        self.status = NominationStatus.REJECTED.value
        self.outcome = outcome


def _check_confirmation_vote(
    what: str, status: str, notice_ends_at: datetime | None, closes_at: datetime, now: datetime, subject: str
) -> None:
    """A nomination or a slate goes to its confirmation vote once publicised and once its
    notice period is over, on a vote that closes in the future."""
    if status != NominationStatus.PUBLICISED:
        raise Rejected(RejectionReason.INVALID_STATE, f"{what} is {status}, not publicised", subject)
    if notice_ends_at is not None and now < notice_ends_at:
        raise Rejected(
            RejectionReason.INVALID_STATE, f"the notice period runs until {notice_ends_at.isoformat()}", subject
        )
    if closes_at <= now:
        raise Rejected(RejectionReason.DEADLINE_PASSED, "the vote would close in the past", subject)
    within_horizon(closes_at, now, "closes_at", subject)


class Slate(Aggregate):
    """Residents nominated together for a council's vacant representative seats, one
    each, publicised as one list and confirmed or rejected by one residents' vote (the
    slate path of 居民会议; :class:`Nomination` is the path of one person). Statuses are
    those of a nomination, from ``publicised`` on."""

    @staticmethod
    def create_id(district: str, slate_id: str) -> uuid.UUID:
        return stream_id("slate", district, slate_id)

    @classmethod
    def nominate(
        cls,
        *,
        district: str,
        slate_id: str,
        council: Council,
        nominees: list[dict[str, str]],
        notice_ends_at: datetime,
        now: datetime,
    ) -> Slate:
        """Nominate ``nominees`` (``seat_id``, ``nominee_id``, ``route``) and publicise them
        until ``notice_ends_at``: each for a distinct vacant resident representative seat,
        each a distinct person holding no seat of the council. One broken rule refuses
        the whole slate."""
        seats = [n["seat_id"] for n in nominees]
        people = [n["nominee_id"] for n in nominees]
        if len(set(seats)) != len(seats) or len(set(people)) != len(people):
            raise Rejected(RejectionReason.INVALID_COMMAND, "a slate names each seat and each nominee once", slate_id)
        for entry in nominees:
            seat_id, nominee_id = entry["seat_id"], entry["nominee_id"]
            if council._seat_kind(seat_id) != SeatKind.RESIDENT_REPRESENTATIVE:
                raise Rejected(
                    RejectionReason.INVALID_STATE, f"seat {seat_id} is not a resident representative seat", slate_id
                )
            if seat_id in council.holders:
                raise Rejected(RejectionReason.INVALID_STATE, f"seat {seat_id} is not vacant", slate_id)
            if council.seat_of(nominee_id) is not None:
                raise Rejected(
                    RejectionReason.DUPLICATE, f"{nominee_id} already holds a seat of {council.council_id}", slate_id
                )
        if notice_ends_at <= now:
            raise Rejected(RejectionReason.INVALID_COMMAND, "the notice period must end in the future", slate_id)
        within_horizon(notice_ends_at, now, "notice_ends_at", slate_id)
        return cls(
            district=district,
            slate_id=slate_id,
            council_id=council.council_id,
            nominees=[{"seat_id": n["seat_id"], "nominee_id": n["nominee_id"], "route": str(n["route"])}
                      for n in nominees],
            notice_ends_at=notice_ends_at,
            at=now,
        )

    @event("Nominated")
    def __init__(
        self,
        district: str,
        slate_id: str,
        council_id: str,
        nominees: list[dict[str, str]],
        notice_ends_at: datetime,
        at: datetime,
    ) -> None:
        self.district = district
        self.slate_id = slate_id
        self.council_id = council_id
        self.nominees = nominees
        self.notice_ends_at = notice_ends_at
        self.nominated_at = at
        self.status = NominationStatus.PUBLICISED.value
        self.vote_id: str | None = None
        self.vote_terms: dict[str, Any] | None = None
        self.outcome: str | None = None

    def request_vote(self, *, vote_id: str, terms: dict[str, Any], closes_at: datetime, now: datetime) -> None:
        """Refer the whole slate to the residents' vote, once its notice period is over."""
        _check_confirmation_vote("slate", self.status, self.notice_ends_at, closes_at, now, self.slate_id)
        self._vote_requested(slate_id=self.slate_id, vote_id=vote_id, council_id=self.council_id, terms=terms, at=now)

    def close_vote(self, *, vote_id: str, outcome: str, now: datetime) -> bool:
        """Take the vote's outcome: every nominee confirmed when adopted, none otherwise.
        A result for another vote, or one already taken, changes nothing (returns False)."""
        if self.status != NominationStatus.VOTING or vote_id != self.vote_id:
            return False
        if outcome == VoteOutcome.ADOPTED:
            self._confirmed(
                slate_id=self.slate_id, council_id=self.council_id, vote_id=vote_id, nominees=self.nominees, at=now
            )
        else:
            self._rejected(
                slate_id=self.slate_id, council_id=self.council_id, vote_id=vote_id, outcome=str(outcome), at=now
            )
        return True

    @event("VoteRequested")
    def _vote_requested(self, slate_id: str, vote_id: str, council_id: str, terms: dict[str, Any], at: datetime) -> None:
        self.status = NominationStatus.VOTING.value
        self.vote_id = vote_id
        self.vote_terms = terms

    @event("Confirmed")
    def _confirmed(
        self, slate_id: str, council_id: str, vote_id: str, nominees: list[dict[str, str]], at: datetime
    ) -> None:
        self.status = NominationStatus.CONFIRMED.value
        self.outcome = VoteOutcome.ADOPTED.value

    @event("Rejected")
    def _rejected(self, slate_id: str, council_id: str, vote_id: str, outcome: str, at: datetime) -> None:
        self.status = NominationStatus.REJECTED.value
        self.outcome = outcome


# --- catalogue -----------------------------------------------------------------------


class CatalogueCategory(Aggregate):
    """A first-level category of the district's consultation catalogue (协商目录)."""

    @staticmethod
    def create_id(district: str, category_id: str) -> uuid.UUID:
        return stream_id("category", district, category_id)

    @event("Defined")
    def __init__(self, district: str, category_id: str, code: str, title: str, description: str, at: datetime) -> None:
        self.district = district
        self.category_id = category_id
        self.code = code
        self.title = title
        self.description = description
        self.defined_at = at


class CatalogueItem(Aggregate):
    """A community's second-level item under a category; retired items take no new
    proposals, and proposals filed under them keep pointing at them."""

    @staticmethod
    def create_id(district: str, item_id: str) -> uuid.UUID:
        return stream_id("item", district, item_id)

    @event("Added")
    def __init__(
        self,
        district: str,
        item_id: str,
        category_id: str,
        community_id: str,
        title: str,
        description: str,
        at: datetime,
    ) -> None:
        self.district = district
        self.item_id = item_id
        self.category_id = category_id
        self.community_id = community_id
        self.title = title
        self.description = description
        self.added_at = at
        self.retired = False
        self.retired_reason: str | None = None

    def retire(self, *, reason: str, now: datetime) -> None:
        """Take no more proposals under this item."""
        if self.retired:
            raise Rejected(RejectionReason.INVALID_STATE, f"item {self.item_id} is already retired", self.item_id)
        self._retired(item_id=self.item_id, category_id=self.category_id, reason=reason, at=now)

    def check_open(self) -> None:
        """Raise unless new proposals may be filed under this item."""
        if self.retired:
            raise Rejected(
                RejectionReason.INVALID_STATE,
                f"catalogue item {self.item_id} is retired and takes no new proposals",
                self.item_id,
            )

    @event("Retired")
    def _retired(self, item_id: str, category_id: str, reason: str, at: datetime) -> None:
        self.retired = True
        self.retired_reason = reason


# --- proposals -----------------------------------------------------------------------


class Proposal(Aggregate):
    """A proposal before a council, and its whole deliberation record.

    Course: raised → published (notice period; seconds, objections, the five-step
    statements) → voting → adopted or rejected; an inconclusive vote (no quorum, tie) or
    a reconsultation request returns it to deliberation in a new round. It may be
    escalated to the parent council (raised again there) or withdrawn by its proposer
    before a vote is requested.
    """

    @staticmethod
    def create_id(district: str, proposal_id: str) -> uuid.UUID:
        return stream_id("proposal", district, proposal_id)

    @classmethod
    def raise_proposal(
        cls,
        *,
        district: str,
        proposal_id: str,
        council: Council,
        proposer_id: str,
        proposer_role: str,
        proposer_seat_id: str | None,
        item: CatalogueItem | None,
        title: str,
        summary: str,
        attachments: list[dict[str, str]],
        now: datetime,
    ) -> Proposal:
        """Raise a proposal before ``council`` (who may is in contracts.permissions), filed
        under an open catalogue item when one is given."""
        if item is not None:
            item.check_open()
        return cls(
            district=district,
            proposal_id=proposal_id,
            council_id=council.council_id,
            proposer_id=proposer_id,
            proposer_seat_id=proposer_seat_id,
            catalogue_item_id=item.item_id if item else None,
            title=title,
            summary=summary,
            attachments=attachments,
            at=now,
        )

    @event("Raised")
    def __init__(
        self,
        district: str,
        proposal_id: str,
        council_id: str,
        proposer_id: str,
        proposer_seat_id: str | None,
        catalogue_item_id: str | None,
        title: str,
        summary: str,
        attachments: list[dict[str, str]],
        at: datetime,
    ) -> None:
        self.district = district
        self.proposal_id = proposal_id
        self.council_id = council_id
        self.proposer_id = proposer_id
        self.proposer_seat_id = proposer_seat_id
        self.catalogue_item_id = catalogue_item_id
        self.title = title
        self.summary = summary
        self.attachments = attachments
        self.raised_at = at
        self.status = ProposalStatus.RAISED.value
        self.round = 1
        self.form: str | None = None
        self.notice_ends_at: datetime | None = None
        self.session_at: datetime | None = None
        self.seconders: list[dict[str, Any]] = []
        self.objections: list[dict[str, Any]] = []
        self.statements: list[dict[str, Any]] = []
        self.votes: list[dict[str, Any]] = []
        self.decision: dict[str, Any] | None = None
        self.resolution_id: str | None = None
        self.history: list[dict[str, Any]] = [{"what": "raised", "at": at, "council_id": council_id}]

    # -- queries --

    @property
    def pending_vote_id(self) -> str | None:
        """The vote whose result the proposal waits for."""
        return self.votes[-1]["vote_id"] if self.status == ProposalStatus.VOTING else None

    def _round_statements(self) -> list[dict[str, Any]]:
        return [s for s in self.statements if s["round"] == self.round]

    def _require(self, *statuses: ProposalStatus, doing: str) -> None:
        if self.status not in statuses:
            raise Rejected(
                RejectionReason.INVALID_STATE,
                f"cannot {doing}: proposal {self.proposal_id} is {self.status}",
                self.proposal_id,
            )

    # -- commands --

    def publish(
        self, *, council: Council, form: str, notice_ends_at: datetime, session_at: datetime | None, now: datetime
    ) -> None:
        """Publicise for at least the council's notice period, in a form the council uses."""
        self._require(ProposalStatus.RAISED, doing="publish")
        if form not in council.rules["forms"]:
            raise Rejected(
                RejectionReason.INVALID_STATE,
                f"{council.council_id} does not consult in the form {form}",
                self.proposal_id,
            )
        earliest = now + timedelta(days=council.rules["notice_period_days"])
        if notice_ends_at < earliest:
            raise Rejected(
                RejectionReason.INVALID_STATE,
                f"{council.council_id} requires a notice period of {council.rules['notice_period_days']} "
                f"days: notice may end no earlier than {earliest.isoformat()}",
                self.proposal_id,
            )
        within_horizon(notice_ends_at, now, "notice_ends_at", self.proposal_id)
        if session_at is not None and session_at < now:
            raise Rejected(RejectionReason.INVALID_COMMAND, "the session cannot be in the past", self.proposal_id)
        if session_at is not None:
            within_horizon(session_at, now, "session_at", self.proposal_id)
        self._published(
            proposal_id=self.proposal_id,
            council_id=self.council_id,
            form=str(form),
            notice_ends_at=notice_ends_at,
            session_at=session_at,
            at=now,
        )

    def second(self, *, council: Council, member_id: str, now: datetime) -> None:
        """Second the motion: only a seated member of its council, not the proposer, once."""
        self._require(ProposalStatus.PUBLISHED, doing="second")
        if member_id == self.proposer_id:
            raise Rejected(
                RejectionReason.NOT_AUTHORISED, "the proposer cannot second their own motion", self.proposal_id
            )
        seat_id = council.seat_of(member_id)
        if seat_id is None:
            raise Rejected(
                RejectionReason.NOT_AUTHORISED,
                f"{member_id} holds no seat of {self.council_id} and cannot second",
                self.proposal_id,
            )
        if any(s["member_id"] == member_id for s in self.seconders):
            raise Rejected(RejectionReason.DUPLICATE, f"{member_id} has already seconded", self.proposal_id)
        self._seconded(
            proposal_id=self.proposal_id, council_id=self.council_id, member_id=member_id, seat_id=seat_id, at=now
        )

    def lodge_objection(self, *, objection_id: str, objector_id: str, grounds: str, now: datetime) -> None:
        """Object to the published proposal (anyone but the proposer)."""
        self._require(ProposalStatus.PUBLISHED, doing="lodge an objection")
        if objector_id == self.proposer_id:
            raise Rejected(
                RejectionReason.NOT_AUTHORISED, "the proposer cannot object to their own proposal", self.proposal_id
            )
        if any(o["objection_id"] == objection_id for o in self.objections):
            raise Rejected(
                RejectionReason.ALREADY_EXISTS, f"objection {objection_id} is already on record", self.proposal_id
            )
        self._objection_lodged(
            proposal_id=self.proposal_id,
            council_id=self.council_id,
            objection_id=objection_id,
            objector_id=objector_id,
            grounds=grounds,
            at=now,
        )

    def make_statement(
        self, *, statement_id: str, step: str, speaker_role: str, speaker_id: str, text: str, now: datetime
    ) -> None:
        """Record a statement: steps in order (a round opens with the motion), each step
        heard from its own side, and a speaker's role matching what they did."""
        self._require(ProposalStatus.PUBLISHED, doing="make a statement")
        if any(s["statement_id"] == statement_id for s in self.statements):
            raise Rejected(
                RejectionReason.ALREADY_EXISTS, f"statement {statement_id} is already on record", self.proposal_id
            )
        heard = self._round_statements()
        current = STEPS.index(heard[-1]["step"]) if heard else -1
        if not heard and step != DeliberationStep.MOTION:
            raise Rejected(RejectionReason.INVALID_STATE, "deliberation opens with the motion", self.proposal_id)
        if STEPS.index(step) < current:
            raise Rejected(
                RejectionReason.INVALID_STATE,
                f"the {step} step is over: deliberation has reached the {STEPS[current]} step",
                self.proposal_id,
            )
        if speaker_role not in STEP_ROLES[step]:
            raise Rejected(
                RejectionReason.NOT_AUTHORISED, f"a {speaker_role} does not speak in the {step} step", self.proposal_id
            )
        self._check_speaker(speaker_role, speaker_id)
        self._statement_made(
            proposal_id=self.proposal_id,
            council_id=self.council_id,
            statement_id=statement_id,
            round=self.round,
            step=str(step),
            speaker_role=str(speaker_role),
            speaker_id=speaker_id,
            text=text,
            at=now,
        )

    def _check_speaker(self, role: str, speaker_id: str) -> None:
        checks = {
            SpeakerRole.PROPOSER: (speaker_id == self.proposer_id, "only the proposer speaks as proposer"),
            SpeakerRole.SECONDER: (
                any(s["member_id"] == speaker_id for s in self.seconders),
                f"{speaker_id} has not seconded the motion",
            ),
            SpeakerRole.OBJECTOR: (
                any(o["objector_id"] == speaker_id for o in self.objections),
                f"{speaker_id} has lodged no objection",
            ),
        }
        ok, message = checks.get(role, (True, ""))
        if not ok:
            raise Rejected(RejectionReason.NOT_AUTHORISED, message, self.proposal_id)

    def request_vote(self, *, council: Council, vote_id: str, terms: VoteTerms, now: datetime) -> dict[str, Any]:
        """Refer the proposal to a vote on ``terms``, as requested within the council's
        voting rules (:meth:`Council.vote_terms`): only after the notice period, with the
        motion presented in this round and the council's required number of seconds.
        Returns the vote terms."""
        closes_at = terms.closes_at
        self._require(ProposalStatus.PUBLISHED, doing="request a vote")
        if now < self.notice_ends_at:
            raise Rejected(
                RejectionReason.INVALID_STATE,
                f"the notice period runs until {self.notice_ends_at.isoformat()}",
                self.proposal_id,
            )
        if not any(s["step"] == DeliberationStep.MOTION for s in self._round_statements()):
            raise Rejected(RejectionReason.INVALID_STATE, "the motion has not been presented", self.proposal_id)
        required = council.rules["seconds_required"]
        if len(self.seconders) < required:
            raise Rejected(
                RejectionReason.INVALID_STATE,
                f"{self.council_id} requires {required} seconds, the motion has {len(self.seconders)}",
                self.proposal_id,
            )
        if any(v["vote_id"] == vote_id for v in self.votes):
            raise Rejected(RejectionReason.ALREADY_EXISTS, f"vote {vote_id} was already requested", self.proposal_id)
        if closes_at <= now:
            raise Rejected(RejectionReason.DEADLINE_PASSED, "the vote would close in the past", self.proposal_id)
        within_horizon(closes_at, now, "closes_at", self.proposal_id)
        decided = council.vote_terms(terms, self.proposal_id)
        self._vote_requested(
            proposal_id=self.proposal_id, council_id=self.council_id, vote_id=vote_id, terms=decided, at=now
        )
        return decided

    def close_vote(self, *, vote_id: str, outcome: str, tally: dict[str, int], now: datetime) -> bool:
        """Take a vote's result: adopted or rejected decide the proposal, no quorum or a
        tie returns it for further consultation. A result for a vote the proposal is not
        waiting for changes nothing (returns False)."""
        if vote_id != self.pending_vote_id:
            return False
        if outcome in (VoteOutcome.ADOPTED, VoteOutcome.REJECTED):
            self._decided(
                proposal_id=self.proposal_id,
                council_id=self.council_id,
                vote_id=vote_id,
                decision=str(outcome),
                tally=tally,
                title=self.title,
                catalogue_item_id=self.catalogue_item_id,
                resolution=self.summary if outcome == VoteOutcome.ADOPTED else None,
                at=now,
            )
        else:
            reason = "the vote did not reach its quorum" if outcome == VoteOutcome.NO_QUORUM else "the vote was tied"
            self._returned(
                proposal_id=self.proposal_id,
                council_id=self.council_id,
                reason=f"{reason}: further consultation",
                vote_id=vote_id,
                resolution_id=None,
                outcome=str(outcome),
                tally=tally,
                at=now,
            )
        return True

    def return_for_reconsultation(self, *, reason: str, now: datetime, resolution_id: str | None = None) -> None:
        """Send a decided proposal back to deliberation, in a new round."""
        self._require(ProposalStatus.ADOPTED, ProposalStatus.REJECTED, doing="return for reconsultation")
        self._returned(
            proposal_id=self.proposal_id,
            council_id=self.council_id,
            reason=reason,
            vote_id=None,
            resolution_id=resolution_id,
            outcome=None,
            tally=None,
            at=now,
        )

    def escalate(self, *, council: Council, parent: Council | None, reason: str, now: datetime) -> None:
        """Pass the proposal to ``parent``, the council one level up; it is raised there
        afresh (published again, seconded by the parent's members)."""
        self._require(ProposalStatus.RAISED, ProposalStatus.PUBLISHED, doing="escalate")
        if council.parent_council_id is None:
            raise Rejected(
                RejectionReason.INVALID_STATE, f"{council.council_id} has no council above it", self.proposal_id
            )
        if parent is None or parent.council_id != council.parent_council_id:
            raise Rejected(
                RejectionReason.NOT_FOUND,
                f"parent council {council.parent_council_id} does not exist",
                self.proposal_id,
            )
        self._escalated(
            proposal_id=self.proposal_id,
            from_council_id=self.council_id,
            to_council_id=parent.council_id,
            to_level=parent.level,
            reason=reason,
            at=now,
        )

    def withdraw(self, *, actor_id: str, reason: str, now: datetime) -> None:
        """Withdraw: only the proposer, and only before a vote is requested."""
        if actor_id != self.proposer_id:
            raise Rejected(
                RejectionReason.NOT_AUTHORISED, "only the proposer can withdraw a proposal", self.proposal_id
            )
        self._require(ProposalStatus.RAISED, ProposalStatus.PUBLISHED, doing="withdraw")
        self._withdrawn(proposal_id=self.proposal_id, council_id=self.council_id, reason=reason, at=now)

    # -- recorded events --

    @event("Published")
    def _published(
        self,
        proposal_id: str,
        council_id: str,
        form: str,
        notice_ends_at: datetime,
        session_at: datetime | None,
        at: datetime,
    ) -> None:
        self.status = ProposalStatus.PUBLISHED.value
        self.form = form
        self.notice_ends_at = notice_ends_at
        self.session_at = session_at
        self.history.append({"what": "published", "at": at, "notice_ends_at": notice_ends_at})

    @event("MotionSeconded")
    def _seconded(self, proposal_id: str, council_id: str, member_id: str, seat_id: str, at: datetime) -> None:
        self.seconders.append({"member_id": member_id, "seat_id": seat_id, "at": at})
        # The history keeps it when an escalation clears the seconders for the new council.
        self.history.append({"what": "seconded", "at": at, "council_id": council_id, "member_id": member_id,
                             "seat_id": seat_id})

    @event("ObjectionLodged")
    def _objection_lodged(
        self, proposal_id: str, council_id: str, objection_id: str, objector_id: str, grounds: str, at: datetime
    ) -> None:
        self.objections.append({"objection_id": objection_id, "objector_id": objector_id, "grounds": grounds, "at": at})
        self.history.append({"what": "objection_lodged", "at": at, "objection_id": objection_id,
                             "objector_id": objector_id})

    @event("StatementMade")
    def _statement_made(
        self,
        proposal_id: str,
        council_id: str,
        statement_id: str,
        round: int,
        step: str,
        speaker_role: str,
        speaker_id: str,
        text: str,
        at: datetime,
    ) -> None:
        self.statements.append(
            {
                "statement_id": statement_id,
                "round": round,
                "step": step,
                "speaker_role": speaker_role,
                "speaker_id": speaker_id,
                "text": text,
                "at": at,
            }
        )
        self.history.append({"what": "statement_made", "at": at, "statement_id": statement_id, "round": round,
                             "step": step, "speaker_role": speaker_role, "speaker_id": speaker_id})

    @event("VoteRequested")
    def _vote_requested(
        self, proposal_id: str, council_id: str, vote_id: str, terms: dict[str, Any], at: datetime
    ) -> None:
        self.status = ProposalStatus.VOTING.value
        self.votes.append({"vote_id": vote_id, "requested_at": at, "terms": terms, "outcome": None, "tally": None})
        self.history.append({"what": "vote_requested", "at": at, "vote_id": vote_id})

    @event("Decided")
    def _decided(
        self,
        proposal_id: str,
        council_id: str,
        vote_id: str,
        decision: str,
        tally: dict[str, int],
        title: str,
        catalogue_item_id: str | None,
        resolution: str | None,
        at: datetime,
    ) -> None:
        self.status = decision
        self.votes[-1].update(outcome=decision, tally=tally)
        self.decision = {"decision": decision, "vote_id": vote_id, "resolution": resolution, "at": at}
        if decision == ProposalStatus.ADOPTED:
            # Kept once adopted, also back in deliberation: the resolution stays on record.
            self.resolution_id = resolution_id_for(proposal_id)
        self.history.append({"what": decision, "at": at, "vote_id": vote_id})

    @event("ReturnedForReconsultation")
    def _returned(
        self,
        proposal_id: str,
        council_id: str,
        reason: str,
        vote_id: str | None,
        resolution_id: str | None,
        outcome: str | None,
        tally: dict[str, int] | None,
        at: datetime,
    ) -> None:
        if vote_id is not None:
            self.votes[-1].update(outcome=outcome, tally=tally)
        self.status = ProposalStatus.PUBLISHED.value
        self.decision = None
        self.round += 1
        self.history.append(
            {
                "what": "returned_for_reconsultation",
                "at": at,
                "reason": reason,
                "vote_id": vote_id,
                "resolution_id": resolution_id,
            }
        )

    @event("Escalated")
    def _escalated(
        self, proposal_id: str, from_council_id: str, to_council_id: str, to_level: str, reason: str, at: datetime
    ) -> None:
        # Seconds were given by the old council's members; the new council starts afresh.
        self.council_id = to_council_id
        self.status = ProposalStatus.RAISED.value
        self.seconders = []
        self.notice_ends_at = None
        self.form = None
        self.session_at = None
        self.round += 1
        self.history.append(
            {
                "what": "escalated",
                "at": at,
                "from_council_id": from_council_id,
                "council_id": to_council_id,
                "reason": reason,
            }
        )

    @event("Withdrawn")
    def _withdrawn(self, proposal_id: str, council_id: str, reason: str, at: datetime) -> None:
        self.status = ProposalStatus.WITHDRAWN.value
        self.history.append({"what": "withdrawn", "at": at, "reason": reason})
