"""Every service's relay translator, one style (``yishi.translation``): a stored event of
every kind it publishes is decoded by the mapper and published as its public model,
with the stored event's district, actor and time, and the domain event's values."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from pydantic_core import to_jsonable_python

from contracts import registry
from contracts.common import Actor, VoteMatter
from contracts.voting import (
    BallotAccepted,
    BoardEntry,
    RecordedBallot,
    Tally as PublicTally,
    VoteClosed,
    VoteClosure,
    VoteOpened,
    VoteOutcome,
)
from services.notify.domain import Delivery, Notification
from services.notify.translator import make_translator
from services.oversight import translator as oversight_translator
from services.proposals import translator as proposals_translator
from services.voting.domain import Ballot, Tally, Vote
from services.voting.translator import translate as voting_translate
from tests.unit.test_public_subjects import notify_events, oversight_events, proposals_events, recorded
from tests.unit.voting.test_domain import NOW, OPTIONS, open_vote, terms
from tests.unit.voting.test_translator import recorded as voting_recorded
from yishi.relay import Publication, Translator
from yishi.repository import Repository, default_mapper
from yishi.store import RecordedEvent

MAPPER = default_mapper()


def voting_events() -> list[RecordedEvent]:
    """Every kind voting publishes: open and approval votes, cast and replaced ballots, secret ones,
    a verifiable vote's board and participants."""
    events = []
    for t in (terms(), terms("approval", **OPTIONS), terms(secrecy="secret")):
        vote = open_vote(t)
        approvals = {"east": 4, "west": 2} if t.majority == "approval" else {}
        board = dict(board=[BoardEntry(tracking_code="0" * 20, choice="in_favour")], participants=["m1"]) \
            if vote.verifiable else {}
        vote.close(Tally(6, 1, 0, approvals), VoteClosure.CONVENER, NOW,
                   ballots=[{"voter_id": "m1", "choice": "in_favour", "approvals": None}], **board)
        events += voting_recorded(vote.collect_events())
    changeable = open_vote(terms(ballot_changes_allowed=True))
    ballot = Ballot.cast(vote=changeable, voter_id="m1", ballot_id="b-1", choice="against", approvals=None, now=NOW)
    ballot.replace(vote=changeable, ballot_id="b-2", choice="in_favour", approvals=None, now=NOW)
    secret = Ballot.cast(vote=open_vote(terms(secrecy="secret")), voter_id="m2", ballot_id="b-3", choice="in_favour",
                         approvals=None, now=NOW)
    return events + voting_recorded(ballot.collect_events() + secret.collect_events(), "m1", "council_member")


def notify_events_with_no_recipient() -> list[RecordedEvent]:
    notification = Notification(district="gulou", notification_id="n-3", template="task.reminder_due",
                                params={"task_id": "task-1"}, recipients=[["person", "supervisor-01"]], channels=[],
                                regarding=["ReminderDue", "task-1"])
    notification.no_recipient("supervisor-01")
    return notify_events() + recorded(notification)


# Each service: its translator as its main wires it, stored events of every kind it
# publishes, and those kinds.
SERVICES: dict[str, tuple[Callable[[], Translator], Callable[[], list[RecordedEvent]], set[type]]] = {
    "proposals": (lambda: proposals_translator.translate, proposals_events, set(proposals_translator._CONTRACTS)),
    "oversight": (oversight_translator.translator, oversight_events, set(oversight_translator._MAPPINGS)),
    "notify": (lambda: make_translator(Repository(None).to_domain_event), notify_events_with_no_recipient,
               {Notification.Created, Notification.NoRecipient, Delivery.Delivered, Delivery.Failed,
                Delivery.DeadLettered}),
    "voting": (lambda: voting_translate, voting_events, {Vote.Opened, Vote.Closed, Vote.BoardPublished,
                                                         Vote.ParticipantsListed, Ballot.Cast, Ballot.Replaced}),
}

# Domain event fields that the public model names alike but shapes differently (checked
# by the services' own translator tests): a council's seats are a map, published as a
# list; a notification's recipients and what it regards are pairs, published as objects;
# a secret ballot has no ballot id, published as its stream's.
RESHAPED = {("CouncilFormed", "seats"), ("NotificationRequested", "recipients"),
            ("NotificationRequested", "regarding"), ("BallotAccepted", "ballot_id")}


def agrees(public: Any, domain: Any) -> bool:
    """Whether a public value (as JSON) carries the domain value (as JSON): equal, or for
    objects every key the domain value has (the public model may add defaults)."""
    if isinstance(domain, dict):
        return isinstance(public, dict) and all(k in public and agrees(public[k], v) for k, v in domain.items())
    if isinstance(domain, list):
        return isinstance(public, list) and len(public) == len(domain) and all(map(agrees, public, domain))
    return public == domain


@pytest.mark.parametrize("service", SERVICES)
def test_every_kind_is_published_as_its_public_model(service):
    make_translator_, make_events, kinds = SERVICES[service]
    translate = make_translator_()
    published: set[type] = set()
    for stored in make_events():
        event = Repository(None).to_domain_event(stored)
        publication = translate(stored)
        if publication is None:
            assert type(event) not in kinds, stored.topic
            continue
        published.add(type(event))
        spec = registry.spec(publication.type)
        assert publication.schema_version == spec.latest, stored.topic
        model = spec.versions[spec.latest].model_validate_json(publication.data)
        assert registry.encode(model).data == publication.data, stored.topic  # the public model's own encoding
        meta = stored.metadata
        assert (model.district, model.actor.id, str(model.actor.role), model.occurred_at.isoformat()) == (
            stored.district, meta["actor"], meta["actor_role"], meta["occurred_at"]), stored.topic
        public = json.loads(publication.data)
        shared = (vars(event).keys() & public.keys()) - {"district"}
        for name in shared - {n for t, n in RESHAPED if t == publication.type}:
            assert agrees(public[name], to_jsonable_python(getattr(event, name))), (stored.topic, name)
    assert published == kinds


def published(event: RecordedEvent) -> Publication:
    publication = voting_translate(event)
    assert publication is not None
    return publication


def as_published(model: Any) -> Publication:
    encoded = registry.encode(model)
    return Publication(encoded.type, encoded.schema_version, encoded.data, subject="vote-1")


def test_voting_publishes_exactly_its_public_models():
    worker = dict(district="gulou", occurred_at=NOW, actor=Actor(id="worker-1", role="community_worker"))
    voter = dict(district="gulou", occurred_at=NOW, actor=Actor(id="m1", role="council_member"))
    matter = VoteMatter(kind="proposal", id="p-1")
    t = terms("approval", **OPTIONS)
    vote = open_vote(t)
    vote.close(Tally(6, 1, 0, {"east": 4, "west": 2}), VoteClosure.DEADLINE, NOW,
               ballots=[{"voter_id": "m1", "choice": "in_favour", "approvals": ["east"]}])
    opened, closed = voting_recorded(vote.collect_events())
    assert published(opened) == as_published(VoteOpened(**worker, vote_id="vote-1", council_id="c-1", matter=matter,
                                                         terms=t))
    assert published(closed) == as_published(VoteClosed(
        **worker, vote_id="vote-1", council_id="c-1", matter=matter,
        tally=PublicTally(in_favour=6, against=1, abstain=0, approvals={"east": 4, "west": 2}), electorate_size=10,
        turnout_percent=70.0, quorum_met=True, outcome=VoteOutcome.ADOPTED, winning_option="east",
        closed_by=VoteClosure.DEADLINE, closed_at=NOW,
        ballots=(RecordedBallot(voter_id="m1", choice="in_favour", approvals=("east",)),)))
    changeable = open_vote(terms("approval", ballot_changes_allowed=True, **OPTIONS))
    ballot = Ballot.cast(vote=changeable, voter_id="m1", ballot_id="b-1", choice="in_favour", approvals=["east"],
                         now=NOW)
    ballot.replace(vote=changeable, ballot_id="b-2", choice="against", approvals=None, now=NOW)
    cast, replaced = voting_recorded(ballot.collect_events(), "m1", "council_member")
    assert published(cast) == as_published(BallotAccepted(**voter, vote_id="vote-1", ballot_id="b-1",
                                                          choice="in_favour", approvals=("east",)))
    assert published(replaced) == as_published(BallotAccepted(**voter, vote_id="vote-1", ballot_id="b-2",
                                                              choice="against", replaced=True))
    secret = Ballot.cast(vote=open_vote(terms(secrecy="secret")), voter_id="m1", ballot_id="b-1", choice="in_favour",
                         approvals=None, now=NOW)
    (stored,) = voting_recorded(secret.collect_events(), "m1", "council_member")
    assert published(stored) == as_published(BallotAccepted(**voter, vote_id="vote-1", ballot_id=stored.stream_id))
