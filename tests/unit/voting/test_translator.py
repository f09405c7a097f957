"""Private voting events → public contracts: what is published, and what never is."""

from __future__ import annotations

import uuid

from contracts.voting import (
    BallotAccepted,
    BoardEntry,
    VoteBoardPublished,
    VoteClosed,
    VoteOpened,
    VoteOutcome,
    VoteParticipants,
)
from services.voting.domain import Ballot, Tally
from services.voting.translator import translate
from contracts.voting import VoteClosure
from tests.unit.voting.test_domain import NOW, open_vote, terms
from yishi.repository import default_mapper
from yishi.store import Metadata, RecordedEvent

MAPPER = default_mapper()


def recorded(events, actor="worker-1", role="community_worker") -> list[RecordedEvent]:
    meta = Metadata(actor=actor, actor_role=role, district="gulou", correlation_id="c", occurred_at=NOW)
    out = []
    for i, e in enumerate(events, 1):
        s = MAPPER.to_stored_event(e)
        out.append(RecordedEvent(i, i, str(s.originator_id), s.originator_version, uuid.uuid4(), "gulou", s.topic,
                                 s.state, meta.to_dict(NOW), b""))
    return out


def published(event: RecordedEvent):
    publication = translate(event)
    model = {"VoteOpened": VoteOpened, "VoteClosed": VoteClosed, "BallotAccepted": BallotAccepted,
             "VoteBoardPublished": VoteBoardPublished, "VoteParticipants": VoteParticipants}[publication.type]
    return model.model_validate_json(publication.data)


def test_open_vote_publishes_terms_ballots_and_who_voted_how():
    vote = open_vote(terms())
    vote.close(Tally(6, 1, 0), VoteClosure.CONVENER, NOW,
               ballots=[{"voter_id": "m1", "choice": "in_favour", "approvals": None}])
    opened, closed = (published(e) for e in recorded(vote.collect_events()))
    assert opened.vote_id == "vote-1" and opened.terms == terms()
    assert closed.outcome is VoteOutcome.ADOPTED and closed.tally.in_favour == 6 and closed.electorate_size == 10
    assert closed.closed_by is VoteClosure.CONVENER and closed.ballots[0].voter_id == "m1"
    changeable = open_vote(terms(ballot_changes_allowed=True))
    ballot = Ballot.cast(vote=changeable, voter_id="m1", ballot_id="b-1", choice="against", approvals=None, now=NOW)
    ballot.replace(vote=changeable, ballot_id="b-2", choice="in_favour", approvals=None, now=NOW)
    cast, replaced = (published(e) for e in recorded(ballot.collect_events(), "m1", "council_member"))
    assert (cast.ballot_id, cast.choice, cast.replaced, cast.actor.id) == ("b-1", "against", False, "m1")
    assert (replaced.ballot_id, replaced.choice, replaced.replaced) == ("b-2", "in_favour", True)


def test_secret_vote_publishes_no_choice_and_no_receipt():
    vote = open_vote(terms(secrecy="secret", verifiable=False))
    vote.close(Tally(6, 1, 0), VoteClosure.DEADLINE, NOW, ballots=[{"voter_id": "m1", "choice": "in_favour"}])
    closed = published(recorded(vote.collect_events())[1])
    assert closed.ballots is None and closed.tally.in_favour == 6
    ballot = Ballot.cast(vote=vote, voter_id="m1", ballot_id="b-1", choice="in_favour", approvals=None, now=NOW)
    event = recorded(ballot.collect_events(), "m1", "council_member")[0]
    accepted = published(event)
    assert accepted.choice is None and accepted.ballot_id == event.stream_id and accepted.actor.id == "m1"


def test_a_verifiable_vote_publishes_its_board_and_participants_under_the_vote():
    vote = open_vote(terms(secrecy="secret"))
    board = [BoardEntry(tracking_code="b" * 20, choice="against"), BoardEntry(tracking_code="a" * 20,
                                                                              choice="in_favour")]
    vote.close(Tally(1, 1, 0), VoteClosure.DEADLINE, NOW, board=board, participants=["m2", "m1"])
    events = recorded(vote.collect_events())
    board_published, participants = (published(e) for e in events[2:])
    assert [translate(e).subject for e in events[2:]] == ["vote-1", "vote-1"]
    assert board_published.vote_id == "vote-1" and board_published.entries == tuple(sorted(
        board, key=lambda e: e.tracking_code))
    assert participants.voter_ids == ("m1", "m2") and b"m1" not in translate(events[2]).data
