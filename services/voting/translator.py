"""Private domain events of the voting service → public contracts (``contracts.voting``)."""

from __future__ import annotations

import json
from datetime import datetime

from contracts.common import VoteMatter, VoteTerms
from contracts.registry import encode
from contracts.voting import BallotAccepted, RecordedBallot, Tally, VoteClosed, VoteOpened
from yishi.commands import recorded_actor
from yishi.relay import Publication
from yishi.store import RecordedEvent

_PREFIX = "services.voting.domain:"


def translate(event: RecordedEvent) -> Publication | None:
    """The public form of a stored voting event; ``None`` for anything private."""
    if not event.topic.startswith(_PREFIX):
        return None
    name = event.topic.removeprefix(_PREFIX)
    state = json.loads(event.state)
    meta = event.metadata
    common = dict(district=event.district, occurred_at=datetime.fromisoformat(meta["occurred_at"]),
                  actor=recorded_actor(meta))
    subject = None
    if name == "Vote.Opened":
        # The vote's public id, not its stream's: the Kafka key and ce_subject.
        subject = state["vote_id"]
        model = VoteOpened(**common, vote_id=subject, council_id=state["council_id"],
                           matter=VoteMatter.model_validate(state["matter"]),
                           terms=VoteTerms.model_validate(state["terms"]))
    elif name == "Vote.Closed":
        subject = state["vote_id"]
        model = VoteClosed(
            **common, vote_id=subject, council_id=state["council_id"],
            matter=VoteMatter.model_validate(state["matter"]), electorate_size=state["electorate_size"],
            tally=Tally.model_validate(state["tally"]), turnout_percent=state["turnout_percent"],
            quorum_met=state["quorum_met"], outcome=state["outcome"], winning_option=state["winning_option"],
            closed_by=state["closed_by"], closed_at=_time(state["closed_at"]),
            ballots=None if state["ballots"] is None else tuple(
                RecordedBallot.model_validate(b) for b in state["ballots"]),
        )
    elif name in ("Ballot.Cast", "Ballot.Replaced"):
        # Keyed by the vote too: a ballot stream belongs to one vote, and ballots then
        # reach every consumer before the vote's VoteClosed (one partition, log order).
        subject = state["vote_id"]
        model = BallotAccepted(
            **common, vote_id=state["vote_id"], ballot_id=state["ballot_id"] or event.stream_id, choice=state["choice"],
            approvals=tuple(state["approvals"]) if state["approvals"] is not None else None,
            replaced=name == "Ballot.Replaced",
        )
    else:
        return None
    encoded = encode(model)
    return Publication(encoded.type, encoded.schema_version, encoded.data, subject=subject)


def _time(value: dict | str) -> datetime:
    """A datetime as the ``eventsourcing`` transcoder stores it."""
    return datetime.fromisoformat(value["_data_"] if isinstance(value, dict) else value)
