"""Command handlers of the proposals service: one per command, each loads the
aggregates it needs, calls one rule and saves, with the read models updated in the
same transaction (:func:`services.proposals.projections.project`, the bus's hook)."""

from __future__ import annotations

from typing import Any, TypeVar

import structlog
from eventsourcing.domain import Aggregate

from contracts.common import Command, RejectionReason, VoteMatterKind
from contracts.permissions import Party
from contracts.proposals import (
    AddCatalogueItem,
    DefineCatalogueCategory,
    EscalateProposal,
    FormCouncil,
    LodgeObjection,
    MakeStatement,
    NominateRepresentative,
    NominateSlate,
    PubliciseNomination,
    PublishProposal,
    RaiseProposal,
    RequestVote,
    RetireCatalogueItem,
    ReturnProposalForReconsultation,
    SeatMember,
    SecondMotion,
    UnseatMember,
    WithdrawProposal,
)
from services.proposals import projections, sessions
from services.proposals.consumers import ReturnForReconsultation, TakeVoteResult
from services.proposals.domain import CatalogueCategory, CatalogueItem, Council, Nomination, Proposal, Session, Slate
from yishi.clock import Clock
from yishi.commands import CommandBus, CommandContext, Projection
from yishi.repository import Repository
from yishi.rules import Rejected

A = TypeVar("A", bound=Aggregate)
log = structlog.get_logger("yishi.proposals")


async def addressed(ctx: CommandContext, cmd: Command, cls: type[A], public_id: str,
                    subject: str | None = None) -> A:
    """The council's record ``cmd`` addresses (a council, a nomination, a slate, a
    proposal), once its caller is known to act for that council (a scoped role's
    ``acts_for``, :data:`contracts.permissions.PARTIES`); ``not_found`` first. A refusal
    names ``subject`` (default ``public_id``)."""
    record = await ctx.load(cls, cmd.district, public_id)
    ctx.authorise_party(cmd, {Party.COUNCIL: record.council_id}, subject or public_id)  # type: ignore[attr-defined]
    return record


async def load_optional(ctx: CommandContext, cls: type[A], district: str, public_id: str | None) -> A | None:
    """Like :meth:`CommandContext.load`, but ``None`` for no id."""
    return None if public_id is None else await ctx.load(cls, district, public_id)


def build_bus(repository: Repository, clock: Clock, project: Projection | None = projections.project) -> CommandBus:
    """The proposals service's command bus with every handler registered (``project``:
    its read models; None in handler unit tests on the in-memory store)."""
    bus = CommandBus("proposals", repository, clock, project=project)

    # -- councils and members --

    @bus.handles(FormCouncil)
    async def form_council(cmd: FormCouncil, ctx: CommandContext) -> str:
        await ctx.ensure_new(Council, cmd.district, cmd.council_id)
        parent = await load_optional(ctx, Council, cmd.district, cmd.parent_council_id)
        # A council is set up for the council above it; a top-level one (no parent) by
        # district-wide staff only (a scoped role's ``acts_for`` "*").
        ctx.authorise_party(cmd, {Party.COUNCIL: cmd.parent_council_id}, cmd.council_id)
        council = Council.form(
            district=cmd.district,
            council_id=cmd.council_id,
            name=cmd.name,
            level=cmd.level,
            area_id=cmd.area_id,
            parent=parent,
            seats=[(s.seat_id, s.kind) for s in cmd.seats],
            rules=cmd.rules.model_dump(mode="json"),
            now=ctx.clock.now(),
        )
        await ctx.save(cmd, council)
        return cmd.council_id

    @bus.handles(SeatMember)
    async def seat_member(cmd: SeatMember, ctx: CommandContext) -> str:
        council = await addressed(ctx, cmd, Council, cmd.council_id)
        council.seat(seat_id=cmd.seat_id, member_id=cmd.member_id, term_ends_at=cmd.term_ends_at, now=ctx.clock.now())
        await ctx.save(cmd, council)
        return cmd.council_id

    @bus.handles(UnseatMember)
    async def unseat_member(cmd: UnseatMember, ctx: CommandContext) -> str:
        council = await addressed(ctx, cmd, Council, cmd.council_id)
        council.unseat(seat_id=cmd.seat_id, member_id=cmd.member_id, reason=cmd.reason, now=ctx.clock.now())
        await ctx.save(cmd, council)
        return cmd.council_id

    # -- representatives --

    @bus.handles(NominateRepresentative)
    async def nominate_representative(cmd: NominateRepresentative, ctx: CommandContext) -> str:
        await ctx.ensure_new(Nomination, cmd.district, cmd.nomination_id)
        council = await addressed(ctx, cmd, Council, cmd.council_id, cmd.nomination_id)
        nomination = Nomination.nominate(
            district=cmd.district,
            nomination_id=cmd.nomination_id,
            council=council,
            seat_id=cmd.seat_id,
            nominee_id=cmd.nominee_id,
            route=cmd.route,
            now=ctx.clock.now(),
        )
        await ctx.save(cmd, nomination)
        return cmd.nomination_id

    @bus.handles(NominateSlate)
    async def nominate_slate(cmd: NominateSlate, ctx: CommandContext) -> str:
        await ctx.ensure_new(Slate, cmd.district, cmd.slate_id)
        council = await addressed(ctx, cmd, Council, cmd.council_id, cmd.slate_id)
        slate = Slate.nominate(
            district=cmd.district,
            slate_id=cmd.slate_id,
            council=council,
            nominees=[n.model_dump(mode="json") for n in cmd.nominees],
            notice_ends_at=cmd.notice_ends_at,
            now=ctx.clock.now(),
        )
        await ctx.save(cmd, slate)
        return cmd.slate_id

    @bus.handles(PubliciseNomination)
    async def publicise_nomination(cmd: PubliciseNomination, ctx: CommandContext) -> str:
        nomination = await addressed(ctx, cmd, Nomination, cmd.nomination_id)
        nomination.publicise(notice_ends_at=cmd.notice_ends_at, now=ctx.clock.now())
        await ctx.save(cmd, nomination)
        return cmd.nomination_id

    # -- catalogue --

    @bus.handles(DefineCatalogueCategory)
    async def define_catalogue_category(cmd: DefineCatalogueCategory, ctx: CommandContext) -> str:
        await ctx.ensure_new(CatalogueCategory, cmd.district, cmd.category_id)
        category = CatalogueCategory(
            district=cmd.district,
            category_id=cmd.category_id,
            code=cmd.code,
            title=cmd.title,
            description=cmd.description,
            at=ctx.clock.now(),
        )
        await ctx.save(cmd, category)
        return cmd.category_id

    @bus.handles(AddCatalogueItem)
    async def add_catalogue_item(cmd: AddCatalogueItem, ctx: CommandContext) -> str:
        await ctx.ensure_new(CatalogueItem, cmd.district, cmd.item_id)
        await ctx.load(CatalogueCategory, cmd.district, cmd.category_id)
        item = CatalogueItem(
            district=cmd.district,
            item_id=cmd.item_id,
            category_id=cmd.category_id,
            community_id=cmd.community_id,
            title=cmd.title,
            description=cmd.description,
            at=ctx.clock.now(),
        )
        await ctx.save(cmd, item)
        return cmd.item_id

    @bus.handles(RetireCatalogueItem)
    async def retire_catalogue_item(cmd: RetireCatalogueItem, ctx: CommandContext) -> str:
        item = await ctx.load(CatalogueItem, cmd.district, cmd.item_id)
        item.retire(reason=cmd.reason, now=ctx.clock.now())
        await ctx.save(cmd, item)
        return cmd.item_id

    # -- proposals --

    @bus.handles(RaiseProposal)
    async def raise_proposal(cmd: RaiseProposal, ctx: CommandContext) -> str:
        await ctx.ensure_new(Proposal, cmd.district, cmd.proposal_id)
        council = await ctx.load(Council, cmd.district, cmd.council_id)
        item = await load_optional(ctx, CatalogueItem, cmd.district, cmd.catalogue_item_id)
        proposal = Proposal.raise_proposal(
            district=cmd.district,
            proposal_id=cmd.proposal_id,
            council=council,
            proposer_id=cmd.actor.id,
            proposer_role=cmd.actor.role,
            proposer_seat_id=cmd.actor.seat_id,
            item=item,
            title=cmd.title,
            summary=cmd.summary,
            attachments=[a.model_dump(mode="json") for a in cmd.attachments],
            now=ctx.clock.now(),
        )
        await ctx.save(cmd, proposal)
        return cmd.proposal_id

    @bus.handles(PublishProposal)
    async def publish_proposal(cmd: PublishProposal, ctx: CommandContext) -> str:
        proposal = await addressed(ctx, cmd, Proposal, cmd.proposal_id)
        council = await ctx.load(Council, cmd.district, proposal.council_id)
        proposal.publish(
            council=council,
            form=cmd.form,
            notice_ends_at=cmd.notice_ends_at,
            session_at=cmd.session_at,
            now=ctx.clock.now(),
        )
        await ctx.save(cmd, proposal)
        return cmd.proposal_id

    @bus.handles(SecondMotion)
    async def second_motion(cmd: SecondMotion, ctx: CommandContext) -> str:
        proposal = await ctx.load(Proposal, cmd.district, cmd.proposal_id)
        council = await ctx.load(Council, cmd.district, proposal.council_id)
        proposal.second(council=council, member_id=cmd.actor.id, now=ctx.clock.now())
        await ctx.save(cmd, proposal)
        if len(proposal.seconders) == council.rules["seconds_required"]:
            # The seconding passed: the platform offers the proposal for the next session.
            await sessions.offer(bus, ctx, cmd.district, proposal.council_id, proposal.proposal_id)
        return cmd.proposal_id

    @bus.handles(LodgeObjection)
    async def lodge_objection(cmd: LodgeObjection, ctx: CommandContext) -> str:
        proposal = await ctx.load(Proposal, cmd.district, cmd.proposal_id)
        proposal.lodge_objection(
            objection_id=cmd.objection_id, objector_id=cmd.actor.id, grounds=cmd.grounds, now=ctx.clock.now()
        )
        await ctx.save(cmd, proposal)
        return cmd.proposal_id

    @bus.handles(MakeStatement)
    async def make_statement(cmd: MakeStatement, ctx: CommandContext) -> str:
        proposal = await ctx.load(Proposal, cmd.district, cmd.proposal_id)
        session = await load_optional(ctx, Session, cmd.district, cmd.session_id)
        proposal.make_statement(
            statement_id=cmd.statement_id,
            step=cmd.step,
            speaker_role=cmd.speaker_role,
            speaker_id=cmd.actor.id,
            text=cmd.text,
            now=ctx.clock.now(),
            session=session,
        )
        await ctx.save(cmd, proposal, *([session] if session else []))
        return cmd.proposal_id

    @bus.handles(RequestVote)
    async def request_vote(cmd: RequestVote, ctx: CommandContext) -> str:
        """Refer a proposal to a vote on the requested terms, within its council's voting
        rules (terms they forbid are refused with ``council_rule``, never replaced), or a
        nomination or a slate to the residents' vote as requested."""
        now = ctx.clock.now()
        matter: Any
        session = await load_optional(ctx, Session, cmd.district, cmd.session_id)
        if cmd.matter.kind == VoteMatterKind.PROPOSAL:
            matter = await addressed(ctx, cmd, Proposal, cmd.matter.id)
            council = await ctx.load(Council, cmd.district, matter.council_id)
            _check_council(cmd, matter.council_id)
            matter.request_vote(council=council, vote_id=cmd.vote_id, terms=cmd.terms, now=now, session=session)
        else:
            if session is not None:
                raise Rejected(RejectionReason.INVALID_STATE, f"a {cmd.matter.kind}'s vote is not a session's",
                               cmd.matter.id)
            confirmed = Slate if cmd.matter.kind == VoteMatterKind.SLATE else Nomination
            matter = await addressed(ctx, cmd, confirmed, cmd.matter.id)
            _check_council(cmd, matter.council_id)
            matter.request_vote(
                vote_id=cmd.vote_id, terms=cmd.terms.model_dump(mode="json"), closes_at=cmd.terms.closes_at, now=now
            )
        await ctx.save(cmd, matter, *([session] if session else []))
        return cmd.matter.id

    @bus.handles(EscalateProposal)
    async def escalate_proposal(cmd: EscalateProposal, ctx: CommandContext) -> str:
        proposal = await addressed(ctx, cmd, Proposal, cmd.proposal_id)
        council = await ctx.load(Council, cmd.district, proposal.council_id)
        parent = await load_optional(ctx, Council, cmd.district, council.parent_council_id)
        proposal.escalate(council=council, parent=parent, reason=cmd.reason, now=ctx.clock.now())
        await ctx.save(cmd, proposal)
        return cmd.proposal_id

    @bus.handles(WithdrawProposal)
    async def withdraw_proposal(cmd: WithdrawProposal, ctx: CommandContext) -> str:
        proposal = await ctx.load(Proposal, cmd.district, cmd.proposal_id)
        proposal.withdraw(actor_id=cmd.actor.id, reason=cmd.reason, now=ctx.clock.now())
        await ctx.save(cmd, proposal)
        return cmd.proposal_id

    @bus.handles(ReturnProposalForReconsultation)
    async def return_proposal_for_reconsultation(cmd: ReturnProposalForReconsultation, ctx: CommandContext) -> str:
        proposal = await addressed(ctx, cmd, Proposal, cmd.proposal_id)
        proposal.return_for_reconsultation(reason=cmd.reason, now=ctx.clock.now())
        await ctx.save(cmd, proposal)
        return cmd.proposal_id

    sessions.register(bus)

    # -- the platform's own, in reaction to other services' events (:mod:`.consumers`) --

    @bus.handles(TakeVoteResult, internal=True)
    async def take_vote_result(cmd: TakeVoteResult, ctx: CommandContext) -> str:
        """Decide the proposal, nomination or slate the vote was about; a confirmed
        nomination or slate seats its nominees."""
        now = ctx.clock.now()
        matter = cmd.matter
        if matter.kind == VoteMatterKind.PROPOSAL:
            proposal = await ctx.load(Proposal, cmd.district, matter.id)
            if not proposal.close_vote(vote_id=cmd.vote_id, outcome=cmd.outcome, tally=cmd.tally, now=now):
                raise _not_waiting(cmd)
            # A decision taken by a session's vote goes into that session's minutes.
            session = await load_optional(ctx, Session, cmd.district, proposal.votes[-1].get("session_id"))
            decided = proposal.decision is not None
            linked = session is not None and decided and session.link_decision(
                vote_id=cmd.vote_id, proposal_id=matter.id, now=now)
            await ctx.save(cmd, proposal, *([session] if linked else []))
            return matter.id
        slate = matter.kind == VoteMatterKind.SLATE
        confirmed: Any = await ctx.load(Slate if slate else Nomination, cmd.district, matter.id)
        if not confirmed.close_vote(vote_id=cmd.vote_id, outcome=cmd.outcome, now=now):
            raise _not_waiting(cmd)
        changed: list[Aggregate] = [confirmed]
        if confirmed.outcome == "adopted":
            council = await ctx.load(Council, cmd.district, confirmed.council_id)
            nominees = confirmed.nominees if slate else [
                {"seat_id": confirmed.seat_id, "nominee_id": confirmed.nominee_id}]
            for nominee in nominees:
                try:
                    council.seat(seat_id=nominee["seat_id"], member_id=nominee["nominee_id"], term_ends_at=None,
                                 now=now, by_nomination=True)
                except Rejected as exc:
                    # The confirmation stands on record; the seat was taken in the meantime.
                    log.warning("confirmed nominee could not be seated", matter_id=matter.id,
                                nominee_id=nominee["nominee_id"], reason=exc.message)
            changed.append(council)
        await ctx.save(cmd, *changed)
        return matter.id

    @bus.handles(ReturnForReconsultation, internal=True)
    async def return_for_reconsultation(cmd: ReturnForReconsultation, ctx: CommandContext) -> str:
        """Return the adopted proposal to deliberation because of a problem in delivery."""
        proposal = await ctx.load(Proposal, cmd.district, cmd.proposal_id)
        proposal.return_for_reconsultation(reason=cmd.problem, resolution_id=cmd.resolution_id, now=ctx.clock.now())
        await ctx.save(cmd, proposal)
        return cmd.proposal_id

    return bus


def _not_waiting(cmd: TakeVoteResult) -> Rejected:
    return Rejected(RejectionReason.INVALID_STATE,
                    f"{cmd.matter.kind} {cmd.matter.id} is not waiting for the result of vote {cmd.vote_id}",
                    cmd.matter.id)


def _check_council(cmd: RequestVote, council_id: str) -> None:
    if cmd.council_id != council_id:
        raise Rejected(
            RejectionReason.INVALID_STATE,
            f"{cmd.matter.kind} {cmd.matter.id} is before {council_id}, not {cmd.council_id}",
            cmd.matter.id,
        )
