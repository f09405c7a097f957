"""Proposals before a council and their whole deliberation record.

About 540 lines: it is one aggregate class, whose recorded events the library builds
from the ``@event`` methods in its own body, so it cannot be cut in two without
changing the classes (and the topics) its stored events are named by."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from eventsourcing.domain import Aggregate, event

from contracts.common import RejectionReason, VoteTerms
from contracts.proposals import DeliberationStep, SpeakerRole, resolution_id_for
from contracts.voting import VoteOutcome
from services.proposals.domain.catalogue import CatalogueItem
from services.proposals.domain.council import Council
from services.proposals.domain.rules import STEP_ROLES, STEPS, stream_id
from services.proposals.domain.session import Session
from yishi.rules import Rejected, within_horizon


class ProposalStatus(StrEnum):
    """Where a proposal stands. Adopted, rejected and withdrawn end the ordinary course
    (adopted and rejected proposals can still be sent back to deliberation)."""

    RAISED = "raised"  # on record, not yet publicised (also after escalation to a new council)
    PUBLISHED = "published"  # publicised: notice period, then deliberation
    VOTING = "voting"  # referred to a vote, waiting for its result
    ADOPTED = "adopted"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"

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
        self, *, statement_id: str, step: str, speaker_role: str, speaker_id: str, text: str, now: datetime,
        session: Session | None = None,
    ) -> None:
        """Record a statement: steps in order (a round opens with the motion), each step
        heard from its own side, and a speaker's role matching what they did; made in an
        open ``session`` (which links it) if one is given, where its invited stakeholders
        speak on their own item only (:meth:`Session.admit_speaker`)."""
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
        invited = session.admit_speaker(proposal_id=self.proposal_id, speaker_id=speaker_id) if session else False
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
            session_id=session.session_id if session else None,
            invited=invited,
        )
        if session is not None:
            session.link_statement(statement_id, now)

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

    def request_vote(self, *, council: Council, vote_id: str, terms: VoteTerms, now: datetime,
                     session: Session | None = None) -> dict[str, Any]:
        """Refer the proposal to a vote on ``terms``, as requested within the council's
        voting rules (:meth:`Council.vote_terms`): only after the notice period, with the
        motion presented in this round and the council's required number of seconds; in
        an open ``session`` whose attendance makes the quorum (:meth:`Session.admit_vote`),
        which links it, if one is given. Returns the vote terms."""
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
        if session is not None:
            session.admit_vote(proposal_id=self.proposal_id, council_id=self.council_id,
                               electorate=decided["electorate"], quorum=terms.quorum_share)
        self._vote_requested(
            proposal_id=self.proposal_id, council_id=self.council_id, vote_id=vote_id, terms=decided, at=now,
            session_id=session.session_id if session else None,
        )
        if session is not None:
            session.link_vote(vote_id=vote_id, proposal_id=self.proposal_id, now=now)
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
                session_id=self.votes[-1].get("session_id"),
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
        session_id: str | None = None,  # absent from statements stored before sessions
        invited: bool = False,
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
                "session_id": session_id,
                "invited": invited,
            }
        )
        self.history.append({"what": "statement_made", "at": at, "statement_id": statement_id, "round": round,
                             "step": step, "speaker_role": speaker_role, "speaker_id": speaker_id})

    @event("VoteRequested")
    def _vote_requested(
        self, proposal_id: str, council_id: str, vote_id: str, terms: dict[str, Any], at: datetime,
        session_id: str | None = None,
    ) -> None:
        self.status = ProposalStatus.VOTING.value
        self.votes.append({"vote_id": vote_id, "requested_at": at, "terms": terms, "outcome": None, "tally": None,
                           "session_id": session_id})
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
        session_id: str | None = None,  # absent from decisions stored before sessions
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
