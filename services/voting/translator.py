"""Private domain events of the voting service → public contracts (``contracts.voting``)."""

from __future__ import annotations

from typing import Any

from contracts.common import VoteMatter, VoteTerms
from contracts.voting import (
    BallotAccepted,
    BoardEntry,
    RecordedBallot,
    Tally,
    VoteBoardPublished,
    VoteClosed,
    VoteOpened,
    VoteParticipants,
)
from services.voting.domain import Ballot, Vote
from yishi.commands import recorded_actor
from yishi.store import RecordedEvent
from yishi.translation import Public, common_fields, decoder, translator


def _public(event: Any, recorded: RecordedEvent) -> Public | None:
    """The public model of a voting domain event and its subject; ``None`` for anything private.

    Every public event is keyed by the vote's public id, not its stream's: ballots too, as
    a ballot stream belongs to one vote, and ballots then reach every consumer before the
    vote's VoteClosed (one partition, log order)."""
    common = common_fields(recorded, recorded_actor(recorded.metadata))
    if isinstance(event, Vote.Opened):
        model = VoteOpened(**common, vote_id=event.vote_id, council_id=event.council_id,
                           matter=VoteMatter.model_validate(event.matter),
                           terms=VoteTerms.model_validate(event.terms))
    elif isinstance(event, Vote.Closed):
        model = VoteClosed(
            **common, vote_id=event.vote_id, council_id=event.council_id,
            matter=VoteMatter.model_validate(event.matter), electorate_size=event.electorate_size,
            tally=Tally.model_validate(event.tally), turnout_percent=event.turnout_percent,
            quorum_met=event.quorum_met, outcome=event.outcome, winning_option=event.winning_option,
            closed_by=event.closed_by, closed_at=event.closed_at,
            ballots=None if event.ballots is None else tuple(RecordedBallot.model_validate(b) for b in event.ballots),
        )
    elif isinstance(event, Vote.BoardPublished):
        model = VoteBoardPublished(**common, vote_id=event.vote_id, page=event.page, pages=event.pages,
                                   entries=tuple(BoardEntry.model_validate(e) for e in event.entries))
    elif isinstance(event, Vote.ParticipantsListed):
        model = VoteParticipants(**common, vote_id=event.vote_id, voter_ids=tuple(event.voter_ids), page=event.page,
                                 pages=event.pages)
    elif isinstance(event, (Ballot.Cast, Ballot.Replaced)):
        model = BallotAccepted(
            **common, vote_id=event.vote_id, ballot_id=event.ballot_id or recorded.stream_id, choice=event.choice,
            approvals=tuple(event.approvals) if event.approvals is not None else None,
            replaced=isinstance(event, Ballot.Replaced),
        )
    else:
        return None
    return model, event.vote_id


translate = translator(decoder(), _public)
"""The relay translator of the voting service."""
