"""Events stored before the proposals domain became a package still load (issue 17).

The library names every class by its module: until the split every proposals event was
stored as ``services.proposals.domain:Proposal.Raised`` (and a creation event's
``originator_topic``, a snapshot's ``topic``, named ``services.proposals.domain:…``);
now the classes live in ``services.proposals.domain.proposal`` and so on. Streams are
stored here under the old names as the service stored them then, and must load, take
new commands, translate to the same public events and rebuild into the read models.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from eventsourcing.domain import Snapshot

from contracts.proposals import CouncilRules
from services.proposals import domain, translator
from services.proposals.domain import Council, Proposal
from tests.integration.proposals.support import T0, get, post, service  # noqa: F401 (service: a fixture)
from tests.support.auth import bearer
from yishi.repository import Repository, Snapshot as StoredSnapshot
from yishi.store import Metadata, NewEvent

pytestmark = pytest.mark.asyncio(loop_scope="session")

OLD = b"services.proposals.domain:"


def old_topic(topic: str) -> str:
    """``…domain.proposal:Proposal.Raised`` as it was stored: ``…domain:Proposal.Raised``."""
    module, _, name = topic.partition(":")
    assert module.startswith(f"{domain.__name__}."), topic
    return f"{domain.__name__}:{name}"


def old_state(state: bytes) -> bytes:
    """A stored state with the classes it names (``originator_topic``, a snapshot's
    ``topic``) under the old module's name."""
    for module in ("council", "nominations", "catalogue", "proposal"):
        state = state.replace(f"{domain.__name__}.{module}:".encode(), OLD)
    return state


async def store_as_before(r, *aggregates) -> None:
    """Append the aggregates' pending events under the topics they had before the split."""
    mapper = Repository(None).mapper
    meta = Metadata(actor="worker-0102", actor_role="community_worker", district=r.district, correlation_id="old",
                    occurred_at=T0)
    for aggregate in aggregates:
        events = aggregate.collect_events()
        stored = [mapper.to_stored_event(e) for e in events]
        await r.ctx.store.append(str(aggregate.id), events[0].originator_version - 1,
                                 [NewEvent(old_topic(s.topic), old_state(s.state)) for s in stored], meta)


async def test_streams_stored_under_the_old_topics_load_translate_take_commands_and_rebuild(service):
    r = service
    council = Council.form(district=r.district, council_id="c-old", name="西康社区议事会", level="community",
                           area_id="xikang", parent=None, seats=[("seat-1", "expert"), ("seat-2", "local_unit")],
                           rules=CouncilRules().model_dump(mode="json"), now=T0)
    for n in (1, 2):
        council.seat(seat_id=f"seat-{n}", member_id=f"m{n}", term_ends_at=None, now=T0)
    proposal = Proposal.raise_proposal(district=r.district, proposal_id="p-old", council=council,
                                       proposer_id="resident-4211", proposer_role="resident", proposer_seat_id=None,
                                       item=None, title="增设电动自行车充电棚", summary="建设集中充电棚。",
                                       attachments=[], now=T0)
    proposal.publish(council=council, form="council", notice_ends_at=T0 + timedelta(days=7), session_at=None, now=T0)
    await store_as_before(r, council, proposal)
    # The council's snapshot, as taken then (its stored topic is the library's, its state
    # names the aggregate's class): a load starts from it and finds no later event.
    snap = Repository(None).mapper.to_stored_event(Snapshot.take(council))
    await r.ctx.store.save_snapshot(StoredSnapshot(str(council.id), council.version, snap.topic,
                                                   old_state(snap.state)))

    stored = await r.ctx.store.read_stream(str(proposal.id)) + await r.ctx.store.read_stream(str(council.id))
    assert {e.topic for e in stored} == {"services.proposals.domain:Proposal.Raised",
                                         "services.proposals.domain:Proposal.Published",
                                         "services.proposals.domain:Council.Formed",
                                         "services.proposals.domain:Council.MemberSeated"}
    assert all(OLD in e.state for e in stored if e.version == 1)  # originator_topic: the old name

    repository = Repository(r.ctx.store)
    loaded = await repository.get(Proposal, proposal.id)
    assert (loaded.status, loaded.council_id, loaded.notice_ends_at) == ("published", "c-old", T0 + timedelta(days=7))
    assert (await repository.get(Council, council.id)).holders.keys() == {"seat-1", "seat-2"}
    assert [(p.type, p.subject) for p in map(translator.translate, stored)] == [
        ("ProposalRaised", "p-old"), ("ProposalPublished", "p-old"),
        ("CouncilFormed", "c-old"), ("MemberSeated", "c-old"), ("MemberSeated", "c-old")]

    # A new command on an old stream: its event is stored under the new name.
    await post(r, "SecondMotion", {"actor": {"id": "m1", "role": "council_member", "seat_id": "seat-1"},
                                   "proposal_id": "p-old"})
    newest = (await r.ctx.store.read_stream(str(proposal.id)))[-1]
    assert newest.topic == "services.proposals.domain.proposal:Proposal.MotionSeconded"

    await r.ctx.pool.execute("DELETE FROM read_models")
    rebuilt = await r.client.post("/admin/read-models/rebuild", headers=bearer("admin-1", r.district, "district_admin"))
    assert rebuilt.json() == {"documents": 2}
    detail = await get(r, "proposals/p-old")
    assert detail["status"] == "published"
    assert [s["member_id"] for s in detail["seconders"]] == ["m1"]
    assert [s["member_id"] for s in (await get(r, "councils/c-old"))["seats"]] == ["m1", "m2"]
