"""Maps the private domain events of the proposals service to its public contracts.

Domain events carry every field their public form needs, so translating needs no I/O.
The actor and the time come from the stored event's metadata. Every public event is
keyed (Kafka key and ``ce_subject``) by the public id of the aggregate it was recorded
on, the same for all events of one stream, so one aggregate's events stay in order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from contracts import proposals as c
from contracts import sessions as cs
from contracts.common import Contract, VoteMatter, VoteMatterKind
from services.proposals.domain import (
    Calendar,
    CatalogueCategory,
    CatalogueItem,
    Council,
    Nomination,
    Proposal,
    Session,
    Slate,
)
from yishi.commands import recorded_actor
from yishi.relay import Translator
from yishi.repository import Repository
from yishi.store import RecordedEvent
from yishi.translation import Public, common_fields, translator

_decoder = Repository(None)  # only its mapper is used: decoding needs no store

Fields = Callable[[Any], dict[str, Any]]

# Each entry: the public model and the fields it takes from the domain event;
# translate() adds district, actor and occurred_at.
_CONTRACTS: dict[type, tuple[type[Contract], Fields]] = {
    Council.Formed: (
        c.CouncilFormed,
        lambda e: dict(
            council_id=e.council_id,
            name=e.name,
            level=e.level,
            area_id=e.area_id,
            parent_council_id=e.parent_council_id,
            rules=e.rules,
            seats=[{"seat_id": s, "kind": k} for s, k in e.seats.items()],
        ),
    ),
    Council.MemberSeated: (
        c.MemberSeated,
        lambda e: dict(
            council_id=e.council_id,
            seat_id=e.seat_id,
            member_id=e.member_id,
            term_ends_at=e.term_ends_at,
            seat_kind=e.seat_kind,
        ),
    ),
    Council.MemberUnseated: (
        c.MemberUnseated,
        lambda e: dict(
            council_id=e.council_id, seat_id=e.seat_id, member_id=e.member_id, reason=e.reason, seat_kind=e.seat_kind
        ),
    ),
    Nomination.Nominated: (
        c.RepresentativeNominated,
        lambda e: dict(
            nomination_id=e.nomination_id,
            council_id=e.council_id,
            seat_id=e.seat_id,
            nominee_id=e.nominee_id,
            route=e.route,
        ),
    ),
    Nomination.Publicised: (
        c.NominationPublicised,
        lambda e: dict(nomination_id=e.nomination_id, council_id=e.council_id, notice_ends_at=e.notice_ends_at),
    ),
    Nomination.VoteRequested: (
        c.VoteRequested,
        lambda e: dict(
            vote_id=e.vote_id,
            council_id=e.council_id,
            terms=e.terms,
            matter=VoteMatter(kind=VoteMatterKind.NOMINATION, id=e.nomination_id),
        ),
    ),
    Nomination.Confirmed: (
        c.NominationConfirmed,
        lambda e: dict(
            nomination_id=e.nomination_id,
            council_id=e.council_id,
            seat_id=e.seat_id,
            nominee_id=e.nominee_id,
            vote_id=e.vote_id,
        ),
    ),
    Nomination.Rejected: (
        c.NominationRejected,
        lambda e: dict(nomination_id=e.nomination_id, council_id=e.council_id, vote_id=e.vote_id),
    ),
    Slate.Nominated: (
        c.SlateNominated,
        lambda e: dict(
            slate_id=e.slate_id, council_id=e.council_id, nominees=e.nominees, notice_ends_at=e.notice_ends_at
        ),
    ),
    Slate.VoteRequested: (
        c.VoteRequested,
        lambda e: dict(
            vote_id=e.vote_id,
            council_id=e.council_id,
            terms=e.terms,
            matter=VoteMatter(kind=VoteMatterKind.SLATE, id=e.slate_id),
        ),
    ),
    Slate.Confirmed: (
        c.SlateConfirmed,
        lambda e: dict(slate_id=e.slate_id, council_id=e.council_id, vote_id=e.vote_id, nominees=e.nominees),
    ),
    Slate.Rejected: (
        c.SlateRejected,
        lambda e: dict(slate_id=e.slate_id, council_id=e.council_id, vote_id=e.vote_id),
    ),
    CatalogueCategory.Defined: (
        c.CatalogueCategoryDefined,
        lambda e: dict(category_id=e.category_id, code=e.code, title=e.title, description=e.description),
    ),
    CatalogueItem.Added: (
        c.CatalogueItemAdded,
        lambda e: dict(
            item_id=e.item_id,
            category_id=e.category_id,
            community_id=e.community_id,
            title=e.title,
            description=e.description,
        ),
    ),
    CatalogueItem.Retired: (
        c.CatalogueItemRetired,
        lambda e: dict(item_id=e.item_id, category_id=e.category_id, reason=e.reason),
    ),
    Proposal.Raised: (
        c.ProposalRaised,
        lambda e: dict(
            proposal_id=e.proposal_id,
            council_id=e.council_id,
            catalogue_item_id=e.catalogue_item_id,
            title=e.title,
            summary=e.summary,
            attachments=e.attachments,
        ),
    ),
    Proposal.Published: (
        c.ProposalPublished,
        lambda e: dict(
            proposal_id=e.proposal_id,
            council_id=e.council_id,
            form=e.form,
            notice_ends_at=e.notice_ends_at,
            session_at=e.session_at,
        ),
    ),
    Proposal.MotionSeconded: (c.MotionSeconded, lambda e: dict(proposal_id=e.proposal_id, council_id=e.council_id)),
    Proposal.ObjectionLodged: (
        c.ObjectionLodged,
        lambda e: dict(
            proposal_id=e.proposal_id, council_id=e.council_id, objection_id=e.objection_id, grounds=e.grounds
        ),
    ),
    Proposal.StatementMade: (
        c.StatementMade,
        lambda e: dict(
            proposal_id=e.proposal_id,
            council_id=e.council_id,
            statement_id=e.statement_id,
            step=e.step,
            speaker_role=e.speaker_role,
            text=e.text,
            session_id=getattr(e, "session_id", None),  # absent from statements stored before sessions
            invited=getattr(e, "invited", False),
        ),
    ),
    Proposal.VoteRequested: (
        c.VoteRequested,
        lambda e: dict(
            vote_id=e.vote_id,
            council_id=e.council_id,
            terms=e.terms,
            session_id=getattr(e, "session_id", None),
            matter=VoteMatter(kind=VoteMatterKind.PROPOSAL, id=e.proposal_id),
        ),
    ),
    Proposal.Decided: (
        c.ProposalDecided,
        lambda e: dict(
            proposal_id=e.proposal_id,
            council_id=e.council_id,
            vote_id=e.vote_id,
            decision=e.decision,
            title=e.title,
            catalogue_item_id=e.catalogue_item_id,
            resolution=e.resolution,
            resolution_id=c.resolution_id_for(e.proposal_id) if e.decision == c.Decision.ADOPTED else None,
            session_id=getattr(e, "session_id", None),
        ),
    ),
    Proposal.ReturnedForReconsultation: (
        c.ProposalReturnedForReconsultation,
        lambda e: dict(
            proposal_id=e.proposal_id,
            council_id=e.council_id,
            reason=e.reason,
            vote_id=e.vote_id,
            resolution_id=e.resolution_id,
        ),
    ),
    Proposal.Escalated: (
        c.ProposalEscalated,
        lambda e: dict(
            proposal_id=e.proposal_id,
            from_council_id=e.from_council_id,
            to_council_id=e.to_council_id,
            to_level=e.to_level,
            reason=e.reason,
        ),
    ),
    Proposal.Withdrawn: (
        c.ProposalWithdrawn,
        lambda e: dict(proposal_id=e.proposal_id, council_id=e.council_id, reason=e.reason),
    ),
    # consultation sessions; a session's check-in code is never published
    Calendar.RotaSet: (cs.ChairRotaSet, lambda e: dict(council_id=e.council_id, chairs=e.chairs)),
    Calendar.ScheduleSet: (cs.SessionScheduleSet, lambda e: dict(council_id=e.council_id, **e.schedule)),
    Session.Scheduled: (
        cs.SessionScheduled,
        lambda e: dict(session_id=e.session_id, council_id=e.council_id, form=e.form, starts_at=e.starts_at,
                       place=e.place, online_link=e.online_link, chair=e.chair, from_rota=e.from_rota),
    ),
    Session.ChairChanged: (
        cs.SessionChairChanged,
        lambda e: dict(session_id=e.session_id, council_id=e.council_id, chair=e.chair, reason=e.reason),
    ),
    Session.ItemAdded: (
        cs.AgendaItemAdded,
        lambda e: dict(session_id=e.session_id, council_id=e.council_id, proposal_id=e.proposal_id,
                       offered=e.offered),
    ),
    Session.StakeholderInvited: (
        cs.StakeholderInvited,
        lambda e: dict(session_id=e.session_id, council_id=e.council_id, proposal_id=e.proposal_id,
                       person_id=e.person_id, kind=e.kind, name=e.name),
    ),
    Session.Opened: (
        cs.SessionOpened,
        lambda e: dict(session_id=e.session_id, council_id=e.council_id, opened_at=e.at, chair=e.chair),
    ),
    Session.Attended: (
        cs.AttendanceRecorded,
        lambda e: dict(session_id=e.session_id, council_id=e.council_id, person_id=e.person_id, by=e.by,
                       proxy_for=e.proxy_for),
    ),
    Session.Closed: (
        cs.SessionClosed, lambda e: dict(session_id=e.session_id, council_id=e.council_id, closed_at=e.at),
    ),
    Session.MinutesPublished: (
        cs.SessionMinutesPublished,
        lambda e: dict(session_id=e.session_id, council_id=e.council_id, form=e.form, held_at=e.held_at,
                       chair=e.chair, agenda=e.agenda, attendance=e.attendance, proxies=e.proxies,
                       statements=e.statements, votes=e.votes, decisions=e.decisions, text=e.text),
    ),
}


# The public id of each aggregate: the subject of every event of its stream. Events that
# also name another aggregate (a proposal's VoteRequested names the vote, a nomination's
# names the council) are still keyed by the aggregate whose stream records them.
# Councils, nominations, categories, items and proposals have ids of their own kinds, so
# two of different kinds may share an id and then a key: harmless, only more ordering.
_PUBLIC_ID: dict[type, str] = {
    Council: "council_id",
    Nomination: "nomination_id",
    Slate: "slate_id",
    CatalogueCategory: "category_id",
    CatalogueItem: "item_id",
    Proposal: "proposal_id",
    Calendar: "council_id",
    Session: "session_id",
}
_SUBJECT: dict[type, str] = {
    event_type: field
    for aggregate, field in _PUBLIC_ID.items()
    for event_type in vars(aggregate).values()
    if event_type in _CONTRACTS
}
if _SUBJECT.keys() != _CONTRACTS.keys():  # a public event whose aggregate has no public id here
    raise RuntimeError(f"no subject for {sorted(t.__qualname__ for t in _CONTRACTS.keys() - _SUBJECT.keys())}")


def _actor_seat(event: Any) -> str | None:
    """The seat the actor acted from, for the events that record it."""
    if isinstance(event, Proposal.MotionSeconded):
        return event.seat_id
    if isinstance(event, Proposal.Raised):
        return event.proposer_seat_id
    return None


def _public(event: Any, recorded: RecordedEvent) -> Public | None:
    """The public model of a domain event and its subject, or None."""
    found = _CONTRACTS.get(type(event))
    if found is None:
        return None
    model, fields = found
    actor = recorded_actor(recorded.metadata, seat_id=_actor_seat(event))
    contract = model.model_validate({**common_fields(recorded, actor), **fields(event)})
    return contract, getattr(event, _SUBJECT[type(event)])


# ``_decoder`` is read at each call, so that another mapper can stand in for it (the
# tests compare what the library's own transcoder decodes).
translate: Translator = translator(lambda recorded: _decoder.to_domain_event(recorded), _public)
"""The relay's translator: the public form of a stored event, keyed by the public id of
its aggregate, or None."""
