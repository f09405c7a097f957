"""Councils (议事会): their level, parent, seats, rules and seated members, and the
voting rules a council imposes on votes about its matters."""

from __future__ import annotations

import uuid
from datetime import datetime
from fractions import Fraction
from typing import Any

from eventsourcing.domain import Aggregate, event

from contracts.common import ElectorateKind, RejectionReason, Secrecy, Share, VoteTerms, quorum_of
from contracts.proposals import SeatKind
from services.proposals.domain.rules import AT_LEAST_AS_STRICT, LEVELS, stream_id
from yishi.rules import Rejected, within_horizon


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
