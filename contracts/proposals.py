"""Contracts of the proposals service: councils, seats and members, nominations, the
consultation catalogue, and proposals with their deliberation record.

Commands that create something carry the new id (:data:`contracts.common.NewId`): the
sender may choose it, or leave it out and read the one the platform chose from the
reply. Either way a resend under the same idempotency key cannot create the thing twice.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, Field, model_validator

from contracts.common import (
    Attachment,
    Command,
    CouncilLevel,
    Event,
    Id,
    JsonInteger,
    MajorityRule,
    Moment,
    NewId,
    Percent,
    Secrecy,
    Share,
    Text,
    Title,
    Value,
    VoteMatter,
    VoteTerms,
    VotingMethod,
)


class SeatKind(StrEnum):
    """Seat system (席位制): who a seat is reserved for."""

    RESIDENT_REPRESENTATIVE = "resident_representative"
    LOCAL_UNIT = "local_unit"  # 驻区单位
    SOCIAL_ORGANISATION = "social_organisation"
    NPC_DEPUTY = "npc_deputy"  # invited: people's congress deputy
    PARTY_MEMBER = "party_member"  # invited
    CPPCC_MEMBER = "cppcc_member"  # invited
    EXPERT = "expert"  # invited
    BUREAU_STAFF = "bureau_staff"  # invited: staff of a government bureau


class Seat(Value):
    """One seat of a council."""

    seat_id: Id
    kind: SeatKind


class NominationRoute(StrEnum):
    """How a resident representative came to be nominated."""

    PARTY_ORGANISATION = "party_organisation"
    RECOMMENDATION = "recommendation"
    SELF_NOMINATION = "self_nomination"


class ConsultationForm(StrEnum):
    """The form a consultation takes."""

    COUNCIL = "council"  # a regular council session
    COUNCIL_OF_DIRECTORS = "council_of_directors"  # 理事制
    ONLINE = "online"  # 云协商
    INVITATION = "invitation"  # 邀约式: the stakeholders of one topic are invited
    CONSULTATION_DAY = "consultation_day"  # 协商日: fixed monthly day, rotating chair
    SUPERVISORY_BOARD = "supervisory_board"  # 协约督事


class DeliberationStep(StrEnum):
    """The five steps of deliberation, in order."""

    MOTION = "motion"  # 动议: the proposer presents
    SECONDING = "seconding"  # 附议
    OBJECTION = "objection"  # 反对方陈述
    DEBATE = "debate"  # 辩论
    EXPERT_COMMENT = "expert_comment"  # 议事能手 comments


class SpeakerRole(StrEnum):
    """The part a speaker plays in one proposal's deliberation."""

    PROPOSER = "proposer"
    SECONDER = "seconder"
    OBJECTOR = "objector"
    SUPPORTER = "supporter"
    EXPERT = "expert"
    CHAIR = "chair"


class CouncilRules(Value):
    """How a council works: what a motion needs, how long notice lasts, how it votes.

    The voting rules bound what a ``RequestVote`` on one of its proposals may ask for
    (``contracts/README.md``, "Voting rules"): the quorum is a minimum, the majority a
    minimum strength, a secret ballot (``secrecy: secret``) a requirement; the method is
    the council's usual one and does not bind.
    """

    seconds_required: Annotated[int, Field(ge=0, le=50), JsonInteger] = Field(
        default=1, description="Members (other than the proposer) who must second a motion before a vote.")
    notice_period_days: Annotated[int, Field(ge=0, le=365), JsonInteger] = Field(
        default=7, description="Minimum days a proposal is publicised (告知) before a vote.")
    quorum_percent: Percent = Field(default=50, description="The least quorum of the council's votes, in whole "
                                    "percent (ignored when `quorum` is given).")
    quorum: Share | None = Field(default=None, description="The least quorum exactly, e.g. two thirds.")
    majority: MajorityRule = MajorityRule.SIMPLE
    method: VotingMethod = VotingMethod.SHOW_OF_HANDS
    secrecy: Secrecy = Secrecy.OPEN
    forms: tuple[ConsultationForm, ...] = Field(
        default=(ConsultationForm.COUNCIL,), min_length=1, description="Forms of consultation the council uses.")
    proxies_allowed: bool = Field(
        default=False, description="Whether a household member may attend a session as proxy for a resident.")


class Decision(StrEnum):
    """What a council decided on a proposal."""

    ADOPTED = "adopted"
    REJECTED = "rejected"


# --- councils, seats, members ------------------------------------------------------


class CouncilFormed(Event):
    """A council (议事会) was set up at one of the five levels, with its seats."""

    council_id: Id
    name: Title
    level: CouncilLevel
    area_id: Id = Field(description="The building, compound, community, street or district it serves.")
    parent_council_id: Id | None = Field(default=None, description="Where matters beyond its reach go.")
    seats: tuple[Seat, ...] = Field(min_length=1)
    rules: CouncilRules = Field(default_factory=CouncilRules)


class MemberSeated(Event):
    """A person took a council seat, directly or after a confirmed nomination."""

    council_id: Id
    seat_id: Id
    member_id: Id
    term_ends_at: AwareDatetime | None = None
    seat_kind: SeatKind | None = Field(default=None, description="The category of the seat taken.")


class MemberUnseated(Event):
    """A member left a seat (term ended, resigned, removed)."""

    council_id: Id
    seat_id: Id
    member_id: Id
    reason: Text
    seat_kind: SeatKind | None = Field(default=None, description="The category of the seat left.")


class RepresentativeNominated(Event):
    """A resident was nominated for a representative seat."""

    nomination_id: Id
    council_id: Id
    seat_id: Id
    nominee_id: Id
    route: NominationRoute


class NominationPublicised(Event):
    """A nomination was made public for objections until ``notice_ends_at``."""

    nomination_id: Id
    council_id: Id
    notice_ends_at: AwareDatetime


class NominationConfirmed(Event):
    """The residents' meeting confirmed a nomination by vote; a ``MemberSeated`` follows."""

    nomination_id: Id
    council_id: Id
    seat_id: Id
    nominee_id: Id
    vote_id: Id


class NominationRejected(Event):
    """A nomination failed its confirmation vote."""

    nomination_id: Id
    council_id: Id
    vote_id: Id


class SlateEntry(Value):
    """One nominee of a slate and the resident representative seat they stand for."""

    seat_id: Id
    nominee_id: Id
    route: NominationRoute


class SlateNominated(Event):
    """A slate of residents was nominated, one per vacant representative seat, and publicised.

    It is public until ``notice_ends_at``; then one vote confirms or rejects them all."""

    slate_id: Id
    council_id: Id
    nominees: tuple[SlateEntry, ...] = Field(min_length=1)
    notice_ends_at: AwareDatetime


class SlateConfirmed(Event):
    """The residents' meeting confirmed a slate by vote; a ``MemberSeated`` follows per nominee."""

    slate_id: Id
    council_id: Id
    vote_id: Id
    nominees: tuple[SlateEntry, ...] = Field(min_length=1)


class SlateRejected(Event):
    """A slate failed its confirmation vote: none of its nominees is seated."""

    slate_id: Id
    council_id: Id
    vote_id: Id


# --- consultation catalogue --------------------------------------------------------


class CatalogueCategoryDefined(Event):
    """The district defined a first-level category of its consultation catalogue (协商目录)."""

    category_id: Id
    code: Id
    title: Title
    description: Text


class CatalogueItemAdded(Event):
    """A community added a second-level item under a category of the catalogue."""

    item_id: Id
    category_id: Id
    community_id: Id
    title: Title
    description: Text


class CatalogueItemRetired(Event):
    """A catalogue item takes no new proposals; proposals already filed under it keep it."""

    item_id: Id
    category_id: Id
    reason: Text


# --- proposals -----------------------------------------------------------------------


class ProposalRaised(Event):
    """A topic was raised as a proposal before a council; the actor is the proposer."""

    proposal_id: Id
    council_id: Id
    catalogue_item_id: Id | None = None
    title: Title
    summary: Text
    attachments: tuple[Attachment, ...] = Field(default=(), description="Documents and photos, by reference.")


class ProposalPublished(Event):
    """A proposal was publicised (告知) for a notice period before deliberation."""

    proposal_id: Id
    council_id: Id
    form: ConsultationForm
    notice_ends_at: AwareDatetime
    session_at: AwareDatetime | None = Field(default=None, description="When deliberation is scheduled.")


class MotionSeconded(Event):
    """A council member seconded (附议) the motion; the actor is the seconder."""

    proposal_id: Id
    council_id: Id


class ObjectionLodged(Event):
    """Someone objected to a proposal; the objector is heard in the objection step."""

    proposal_id: Id
    council_id: Id
    objection_id: Id
    grounds: Text


class StatementMade(Event):
    """A statement entered the deliberation record, in one of the five steps."""

    proposal_id: Id
    council_id: Id
    statement_id: Id
    step: DeliberationStep
    speaker_role: SpeakerRole
    text: Text
    session_id: Id | None = Field(default=None, description="The consultation session it was made in, if any.")
    invited: bool = Field(default=False, description="Made by a stakeholder invited to the session for this item.")


class VoteRequested(Event):
    """A council referred a matter (a proposal or a nomination) to a vote on these terms."""

    vote_id: Id = Field(description="Chosen by the requester; the vote opened for it has this id.")
    council_id: Id
    matter: VoteMatter
    terms: VoteTerms
    session_id: Id | None = Field(default=None, description="The consultation session it was requested in, if any.")


class ProposalEscalated(Event):
    """A proposal beyond the council's reach was passed to the council one level up."""

    proposal_id: Id
    from_council_id: Id
    to_council_id: Id
    to_level: CouncilLevel
    reason: Text


class ProposalWithdrawn(Event):
    """The proposer withdrew a proposal before it was decided."""

    proposal_id: Id
    council_id: Id
    reason: Text


class ProposalReturnedForReconsultation(Event):
    """A proposal goes back to deliberation: no consensus, or new problems during delivery."""

    proposal_id: Id
    council_id: Id
    reason: Text
    vote_id: Id | None = Field(default=None, description="The inconclusive vote, if a vote caused it.")
    resolution_id: Id | None = Field(default=None, description="The resolution whose delivery raised it.")


def resolution_id_for(proposal_id: str) -> str:
    """The id of the resolution oversight registers for an adopted proposal: ``res-`` and
    the proposal id, or ``res-`` and a digest of it when that would pass 80 characters."""
    candidate = f"res-{proposal_id}"
    if len(candidate) <= 80:
        return candidate
    return "res-" + hashlib.sha256(proposal_id.encode()).hexdigest()[:40]


class ProposalDecided(Event):
    """A council decided a proposal by vote; adopted proposals become resolutions."""

    proposal_id: Id
    council_id: Id
    vote_id: Id
    decision: Decision
    title: Title
    catalogue_item_id: Id | None = None
    resolution: Text | None = Field(default=None, description="The adopted wording; present iff adopted.")
    resolution_id: Id | None = Field(
        default=None, description="The resolution oversight registers for an adopted proposal "
        "(`resolution_id_for`: `res-` + the proposal id); absent otherwise.")
    session_id: Id | None = Field(default=None, description="The consultation session the deciding vote was "
                                  "requested in, if any.")

    @model_validator(mode="after")
    def _resolution_iff_adopted(self) -> ProposalDecided:
        if (self.resolution is not None) != (self.decision is Decision.ADOPTED):
            raise ValueError("resolution is required for an adopted proposal and absent otherwise")
        return self


# --- commands ------------------------------------------------------------------------


class FormCouncil(Command):
    """Set up a council; answered by ``CouncilFormed``."""

    council_id: NewId = None
    name: Title
    level: CouncilLevel
    area_id: Id
    parent_council_id: Id | None = None
    seats: tuple[Seat, ...] = Field(min_length=1)
    rules: CouncilRules = Field(default_factory=CouncilRules)


class SeatMember(Command):
    """Seat a person directly (invited members, local units, social organisations)."""

    council_id: Id
    seat_id: Id
    member_id: Id
    term_ends_at: Moment | None = None


class UnseatMember(Command):
    """Remove a member from a seat."""

    council_id: Id
    seat_id: Id
    member_id: Id
    reason: Text


class NominateRepresentative(Command):
    """Nominate a resident for a representative seat."""

    nomination_id: NewId = None
    council_id: Id
    seat_id: Id
    nominee_id: Id
    route: NominationRoute


class NominateSlate(Command):
    """Nominate and publicise a slate: several residents, one per vacant representative seat.

    The slate is public until ``notice_ends_at``; then one ``RequestVote`` (matter kind
    ``slate``) puts it to the residents' meeting, and its adoption seats every nominee."""

    slate_id: NewId = None
    council_id: Id
    nominees: tuple[SlateEntry, ...] = Field(min_length=1, max_length=200)
    notice_ends_at: Moment


class PubliciseNomination(Command):
    """Make a nomination public until ``notice_ends_at``."""

    nomination_id: Id
    notice_ends_at: Moment


class DefineCatalogueCategory(Command):
    """Define a first-level category of the district's consultation catalogue."""

    category_id: NewId = None
    code: Id
    title: Title
    description: Text


class AddCatalogueItem(Command):
    """Add a community's second-level item under a catalogue category."""

    item_id: NewId = None
    category_id: Id
    community_id: Id
    title: Title
    description: Text


class RetireCatalogueItem(Command):
    """Stop filing new proposals under a catalogue item (old proposals keep it)."""

    item_id: Id
    reason: Text


class RaiseProposal(Command):
    """Raise a proposal before a council; the actor becomes the proposer."""

    proposal_id: NewId = None
    council_id: Id
    catalogue_item_id: Id | None = None
    title: Title
    summary: Text
    attachments: tuple[Attachment, ...] = ()


class PublishProposal(Command):
    """Publicise a proposal for a notice period."""

    proposal_id: Id
    form: ConsultationForm
    notice_ends_at: Moment
    session_at: Moment | None = None


class SecondMotion(Command):
    """Second a published proposal; the actor must hold a seat of its council."""

    proposal_id: Id


class LodgeObjection(Command):
    """Object to a published proposal."""

    proposal_id: Id
    objection_id: NewId = None
    grounds: Text


class MakeStatement(Command):
    """Record a statement in one of the five deliberation steps."""

    proposal_id: Id
    statement_id: NewId = None
    step: DeliberationStep
    speaker_role: SpeakerRole
    text: Text
    session_id: Id | None = Field(default=None, description="The open session it is made in; an invited "
                                  "stakeholder must name it, and speaks only on the item invited for.")


class RequestVote(Command):
    """Refer a proposal, a nomination or a slate to a vote on the given terms."""

    vote_id: NewId = None
    council_id: Id
    matter: VoteMatter
    terms: VoteTerms
    session_id: Id | None = Field(default=None, description="The open session it is requested in; its "
                                  "attendance must make the quorum (contracts/README.md, \"Sessions\").")


class EscalateProposal(Command):
    """Pass a proposal to the parent council."""

    proposal_id: Id
    reason: Text


class WithdrawProposal(Command):
    """Withdraw a proposal that is not decided yet."""

    proposal_id: Id
    reason: Text


class ReturnProposalForReconsultation(Command):
    """Send a proposal back to deliberation."""

    proposal_id: Id
    reason: Text
