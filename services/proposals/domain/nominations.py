"""Representative nominations: one person for one seat (:class:`Nomination`) or a list
for several (:class:`Slate`), publicised and then confirmed or rejected by a residents'
vote. Both go through the same statuses and the same confirmation-vote rule."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from eventsourcing.domain import Aggregate, event

from contracts.common import RejectionReason
from contracts.proposals import SeatKind
from contracts.voting import VoteOutcome
from services.proposals.domain.council import Council
from services.proposals.domain.rules import stream_id
from yishi.rules import Rejected, within_horizon


class NominationStatus(StrEnum):
    """Where a representative nomination stands."""

    NOMINATED = "nominated"
    PUBLICISED = "publicised"
    VOTING = "voting"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"

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
