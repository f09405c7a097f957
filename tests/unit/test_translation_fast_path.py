"""The replay's fast path publishes exactly what the old path published: for every stored
event type of every service (public and private ones), the translator with the
repository's mapper (:func:`yishi.repository.default_mapper`: orjson, a decode plan per
topic) gives the same :class:`yishi.audit.sources.PublicEvent` as the service's mapping
on the ``eventsourcing`` library's own mapper and JSON transcoder, byte for byte; and
the transcoder decodes any state as the library does. A later optimisation of the
decoding, the translation or :func:`to_public` cannot change output unnoticed."""

from __future__ import annotations

import json
import uuid
from datetime import timezone

from eventsourcing.persistence import StoredEvent
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import registry
from contracts.voting import BoardEntry, VoteClosure
from services.notify import translator as notify_translator
from services.oversight import translator as oversight_translator
from services.proposals import translator as proposals_translator
from services.voting import translator as voting_translator
from services.voting.domain import Ballot, Tally
from tests.unit.test_public_subjects import notify_events, oversight_events, proposals_events
from tests.unit.test_translator_outputs import as_read, library_mapper
from tests.unit.voting.test_domain import NOW, open_vote, terms
from tests.unit.voting.test_translator import recorded as voting_recorded
from yishi.audit.sources import to_public
from yishi.relay import Publication
from yishi.repository import Repository, default_mapper
from yishi.store import RecordedEvent


def voting_events() -> list[RecordedEvent]:
    """Every stored voting event type: an open vote closed with its ballots, a verifiable
    one closed with its board and participants, a ballot cast and replaced."""
    open_ = open_vote(terms())
    open_.close(Tally(6, 1, 0), VoteClosure.CONVENER, NOW,
                ballots=[{"voter_id": "m1", "choice": "in_favour", "approvals": None}])
    verifiable = open_vote(terms(secrecy="secret", ballot_changes_allowed=True))
    ballot = Ballot.cast(vote=verifiable, voter_id="m1", ballot_id="b-1", choice="in_favour", approvals=None, now=NOW)
    ballot.replace(vote=verifiable, ballot_id="b-2", choice="against", approvals=None, now=NOW)
    verifiable.close(Tally(0, 1, 0), VoteClosure.DEADLINE, NOW,
                     board=[BoardEntry(tracking_code="a" * 20, choice="against")], participants=["m1"])
    return voting_recorded([*open_.collect_events(), *ballot.collect_events(), *verifiable.collect_events()])


SERVICES = {"proposals": (proposals_events, proposals_translator._public),
            "oversight": (oversight_events, oversight_translator._public),
            "notify": (notify_events, notify_translator._public),
            "voting": (voting_events, voting_translator._public)}
TRANSLATORS = {"proposals": lambda: proposals_translator.translate, "oversight": oversight_translator.translator,
               "notify": lambda: notify_translator.make_translator(Repository(None).to_domain_event),
               "voting": lambda: voting_translator.translate}


# Public event types of a service that its translator never makes (published otherwise).
UNTRANSLATED: dict[str, set[str]] = {}


def old_translator(to_public_model):
    """The translator as it was: the library's mapper decodes a ``StoredEvent``, the
    service maps it, pydantic serialises the model."""
    mapper = library_mapper()

    def translate(recorded: RecordedEvent) -> Publication | None:
        stored = StoredEvent(originator_id=recorded.stream_id, originator_version=recorded.version,
                             topic=recorded.topic, state=recorded.state)
        public = to_public_model(mapper.to_domain_event(stored), recorded)
        if public is None:
            return None
        model, subject = public
        type_name, version = registry._BY_MODEL[type(model)]
        return Publication(type_name, version, model.model_dump_json().encode(), subject=subject)

    return translate


def test_every_stored_event_of_every_service_is_published_as_by_the_old_path():
    for service, (make, to_public_model) in SERVICES.items():
        events = [as_read(e) for e in make()]
        old, new = old_translator(to_public_model), TRANSLATORS[service]()
        published = set()
        for event in events:
            expected = to_public(service, old, event)
            assert to_public(service, new, as_read(event)) == expected, (service, event.topic)
            if expected is not None:
                published.add(expected.type)
        owned = {name for name, found in registry.REGISTRY.items()
                 if found.service == service and found.kind is registry.Kind.EVENT}
        # Every public event type the service's translator makes is among those compared.
        assert published == owned - UNTRANSLATED.get(service, set()), service


def test_every_public_type_of_the_mapping_tables_is_compared():
    proposals = {e.topic.rsplit(":", 1)[-1] for e in proposals_events()}
    assert proposals >= {t.__qualname__ for t in proposals_translator._CONTRACTS}
    oversight = {e.topic.rsplit(":", 1)[-1] for e in oversight_events()}
    assert oversight >= {t.__qualname__ for t in oversight_translator._MAPPINGS}
    voting = {e.topic.rsplit(":", 1)[-1] for e in voting_events()}
    assert voting >= {"Vote.Opened", "Vote.Closed", "Vote.BoardPublished", "Vote.ParticipantsListed",
                      "Ballot.Cast", "Ballot.Replaced"}


# --- the transcoder, on any state ----------------------------------------------------------------

_scalars = st.one_of(
    st.none(), st.booleans(), st.text(max_size=8),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**18, 10**19, 0.1, 1e19]),
)
_transcoded = st.one_of(
    st.datetimes(timezones=st.just(timezone.utc)), st.uuids(), st.decimals(allow_nan=False, allow_infinity=False),
)
_values = st.recursive(
    st.one_of(_scalars, _transcoded),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=6).filter(lambda k: k != "_type_"), inner, max_size=4)),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=8), _values, max_size=6))
def test_the_transcoder_decodes_any_state_as_the_library_does(state):
    encoded = library_mapper().transcoder.encode(state)
    new, old = default_mapper().transcoder.decode(encoded), library_mapper().transcoder.decode(encoded)
    assert new == old
    assert json.dumps(new, default=repr, sort_keys=True) == json.dumps(old, default=repr, sort_keys=True)


def test_the_transcoder_decodes_the_edge_cases_as_the_library_does():
    new, old = default_mapper().transcoder, library_mapper().transcoder
    when = {"_type_": "datetime_iso", "_data_": "2026-05-01T01:00:00+00:00"}
    for state in ({"n": 2**64}, {"n": -(2**63) - 1}, {"f": 0.5, "n": 2**70}, {"f": 1e19}, {"n": 10**18, "s": "1" * 30},
                  {"l": [[{"a": [2**65]}]], "when": when}, {"_type_": "x"}, {"_type_": "x", "y": 1},
                  {"_type_": 1, "_data_": 2}, [1, 2**64, when], 2**64, 0.25, "text"):
        data = json.dumps(state).encode()
        a, b = outcome(new.decode, data), outcome(old.decode, data)
        assert type(a) is type(b) and a == b, state


def outcome(decode, data: bytes):
    """What ``decode`` returns, or the type and text of what it raises."""
    try:
        return decode(data)
    except Exception as exc:  # noqa: BLE001 - the errors themselves are compared
        return type(exc), str(exc)


def test_the_mapper_makes_the_same_domain_events_and_the_same_errors():
    new, old = default_mapper(), library_mapper()
    events = [e for make, _ in SERVICES.values() for e in make()]
    for e in events:
        stored = StoredEvent(originator_id=e.stream_id, originator_version=e.version, topic=e.topic, state=e.state)
        for a in (new.to_domain_event(stored), Repository(None).to_domain_event(e)):
            b = old.to_domain_event(stored)
            assert type(a) is type(b) and a.__dict__ == b.__dict__, e.topic
    broken = StoredEvent(originator_id=str(uuid.uuid4()), originator_version=1, topic=events[0].topic, state=b"{")
    errors = []
    for mapper in (new, old):
        try:
            mapper.to_domain_event(broken)
        except Exception as exc:  # noqa: BLE001 - the errors themselves are compared
            errors.append((type(exc), str(exc).split(":")[0]))
    assert len(errors) == 2 and errors[0] == errors[1]
