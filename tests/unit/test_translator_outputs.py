"""The replay fast path changes nothing that is published: the mapper's orjson decoding
(``yishi.repository.default_mapper``) and the store's orjson metadata give the same
domain events, the same metadata and so the same public events, byte for byte, as the
``eventsourcing`` library's own JSON transcoder and the json module, for every public
event type of every service."""

from __future__ import annotations

import json

import pytest
from eventsourcing.persistence import DatetimeAsISO, DecimalAsStr, JSONTranscoder, Mapper, StoredEvent, UUIDAsHex

from services.notify.translator import make_translator
from services.oversight import translator as oversight_translator
from services.proposals import translator as proposals_translator
from services.voting.domain import Tally
from services.voting.translator import translate as voting_translate
from contracts.voting import VoteClosure
from tests.unit.test_public_subjects import notify_events, oversight_events, proposals_events
from tests.unit.voting.test_domain import NOW, open_vote, terms
from tests.unit.voting.test_translator import recorded as voting_recorded
from yishi.repository import Repository, default_mapper
from yishi.store import RecordedEvent


def library_mapper() -> Mapper:
    """What default_mapper was before: the library's transcoder on the json module."""
    transcoder = JSONTranscoder()
    for transcoding in (UUIDAsHex(), DatetimeAsISO(), DecimalAsStr()):
        transcoder.register(transcoding)
    return Mapper(transcoder=transcoder)


def as_read(event: RecordedEvent) -> RecordedEvent:
    """The event as a log read gives it: metadata as the JSON text of the jsonb column."""
    return RecordedEvent(event.position, event.tx_id, event.stream_id, event.version, event.event_id, event.district,
                         event.topic, event.state, json.dumps(event.metadata, ensure_ascii=False), event.hash)


def voting_events() -> list[RecordedEvent]:
    vote = open_vote(terms())
    vote.close(Tally(6, 1, 0), VoteClosure.CONVENER, NOW,
               ballots=[{"voter_id": "m1", "choice": "in_favour", "approvals": None}])
    return voting_recorded(vote.collect_events())


SERVICES = {"proposals": proposals_events, "oversight": oversight_events, "notify": notify_events,
            "voting": voting_events}


@pytest.mark.parametrize("service", SERVICES)
def test_every_stored_event_decodes_to_the_same_domain_event_and_metadata(service):
    new, old = default_mapper(), library_mapper()
    events = [as_read(e) for e in SERVICES[service]()]
    for e in events:
        stored = StoredEvent(originator_id=e.stream_id, originator_version=e.version, topic=e.topic, state=e.state)
        a, b = new.to_domain_event(stored), old.to_domain_event(stored)
        assert type(a) is type(b) and a.__dict__ == b.__dict__, e.topic
        assert e.metadata == json.loads(e.metadata_json)


def test_every_public_event_is_published_byte_for_byte_as_before(monkeypatch):
    events = {service: [as_read(e) for e in make()] for service, make in SERVICES.items()}
    library = Repository(None, library_mapper())
    now = {"proposals": proposals_translator.translate, "oversight": oversight_translator.translator(),
           "notify": make_translator(Repository(None).to_domain_event), "voting": voting_translate}
    got = {service: [now[service](e) for e in events[service]] for service in SERVICES}
    monkeypatch.setattr(proposals_translator, "_decoder", library)
    monkeypatch.setattr(oversight_translator, "default_mapper", library_mapper)
    before = {"proposals": proposals_translator.translate, "oversight": oversight_translator.translator(),
              "notify": make_translator(library.to_domain_event), "voting": voting_translate}
    published = 0
    for service in SERVICES:
        expected = [before[service](e) for e in events[service]]
        assert got[service] == expected, service
        published += sum(p is not None for p in expected)
    assert published > 40


def test_what_orjson_refuses_is_decoded_as_the_library_decodes_it():
    new, old = default_mapper().transcoder, library_mapper().transcoder
    for state in (b'{"n":123456789012345678901234567890}', b'{"x":NaN}', b'{"s":"\\ud800"}',
                  b'{"when":{"_type_":"datetime_iso","_data_":"2026-05-01T01:00:00+00:00"},"l":[{"_type_":'
                  b'"uuid_hex","_data_":"00000000000000000000000000000001"}]}'):
        a, b = new.decode(state), old.decode(state)
        assert a == b or (state == b'{"x":NaN}' and str(a) == str(b)), state
