"""Seating a slate of representatives with one confirmation vote, over HTTP on a real
proposals service (PostgreSQL and broker). Vote results arrive as voting publishes them.
The service runs with a sequential id source, so the ids it chooses are known here.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from contracts.registry import decode
from tests.integration.proposals.support import (  # noqa: F401 (service: a fixture)
    RESIDENT, WORKER, council_of_representatives, get, post, service, vote_closes,
)
from tests.support.kafka import read_topic
from tests.support.service import eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")

NINE = range(1, 10)


def meeting_terms(closes_at: datetime) -> dict:
    return {"question": "是否确认居民代表名单?",
            "electorate": {"kind": "residents_meeting", "scope_id": "xikang", "size": 60},
            "method": "paper_ballot", "majority": "simple", "quorum_percent": 50, "secrecy": "secret",
            "closes_at": closes_at.isoformat()}


def slate(council_id: str, slate_id: str | None, notice_ends_at: datetime, people=NINE, **extra) -> dict:
    body = {"actor": WORKER, "council_id": council_id, "notice_ends_at": notice_ends_at.isoformat(),
            "nominees": [{"seat_id": f"rr-{n}", "nominee_id": f"resident-{n:02d}", "route": "recommendation"}
                         for n in people], **extra}
    if slate_id is not None:
        body["slate_id"] = slate_id
    return body


async def test_one_confirmation_vote_seats_a_whole_slate(service, servers):
    r = service
    await council_of_representatives(r, "c-slate")
    notice_ends = r.clock.now() + timedelta(days=7)
    nominated = await post(r, "NominateSlate", slate("c-slate", "slate-2026", notice_ends))
    assert nominated["subject"] == "slate-2026"
    doc = await get(r, "slates/slate-2026")
    assert (doc["status"], doc["council_id"], len(doc["nominees"])) == ("publicised", "c-slate", 9)

    vote = {"actor": WORKER, "vote_id": "vote-slate-2026", "council_id": "c-slate",
            "matter": {"kind": "slate", "id": "slate-2026"}, "terms": meeting_terms(notice_ends + timedelta(days=1))}
    early = await post(r, "RequestVote", vote, status=409)
    assert early["reason"] == "invalid_state" and "notice period" in early["message"]
    r.clock.set(notice_ends)
    await post(r, "RequestVote", vote)
    assert (await get(r, "slates/slate-2026"))["status"] == "voting"
    assert (await get(r, "councils/c-slate/members")) == []

    await vote_closes(r, "vote-slate-2026", "c-slate", "slate", "slate-2026", "adopted")

    async def seated():
        members = await get(r, "councils/c-slate/members")
        return members if len(members) == 9 else None

    members = await eventually(seated)
    assert sorted((m["seat_id"], m["member_id"], m["seat_kind"]) for m in members) == sorted(
        (f"rr-{n}", f"resident-{n:02d}", "resident_representative") for n in NINE)
    doc = await get(r, "slates/slate-2026")
    assert (doc["status"], doc["vote_id"], doc["outcome"]) == ("confirmed", "vote-slate-2026", "adopted")

    async def published():
        got = await read_topic(servers.kafka_bootstrap, f"{r.district}.proposals.events", 200, timeout=5)
        mine = [e for e in got if e.subject in ("slate-2026", "c-slate")]
        return mine if sum(e.type == "MemberSeated" for e in mine) == 9 else None

    events = await eventually(published)
    types = [e.type for e in events if e.subject == "slate-2026"]
    assert types == ["SlateNominated", "VoteRequested", "SlateConfirmed"]
    nominated_event = decode(next(e for e in events if e.type == "SlateNominated"))
    assert [n.nominee_id for n in nominated_event.nominees] == [f"resident-{n:02d}" for n in NINE]
    requested = decode(next(e for e in events if e.type == "VoteRequested" and e.subject == "slate-2026"))
    assert (requested.matter.kind, requested.matter.id) == ("slate", "slate-2026")
    assert requested.terms.electorate.kind == "residents_meeting" and requested.terms.electorate.size == 60


async def test_a_rejected_slate_seats_no_one(service):
    r = service
    await council_of_representatives(r, "c-no")
    notice_ends = r.clock.now() + timedelta(days=3)
    await post(r, "NominateSlate", slate("c-no", "slate-no", notice_ends, people=(1, 2, 3)))
    r.clock.set(notice_ends)
    await post(r, "RequestVote", {"actor": WORKER, "vote_id": "vote-no", "council_id": "c-no",
                                  "matter": {"kind": "slate", "id": "slate-no"},
                                  "terms": meeting_terms(notice_ends + timedelta(days=1))})
    await vote_closes(r, "vote-no", "c-no", "slate", "slate-no", "rejected")

    async def rejected():
        doc = await get(r, "slates/slate-no")
        return doc if doc["status"] == "rejected" else None

    assert (await eventually(rejected))["outcome"] == "rejected"
    assert await get(r, "councils/c-no/members") == []


async def test_a_slate_that_breaks_a_seating_rule_is_refused_whole(service):
    r = service
    await council_of_representatives(r, "c-rules", seats=3)
    ends = r.clock.now() + timedelta(days=7)
    wrong_seat = slate("c-rules", "s-1", ends, people=(1,))
    wrong_seat["nominees"].append({"seat_id": "unit-1", "nominee_id": "resident-77", "route": "recommendation"})
    assert (await post(r, "NominateSlate", wrong_seat, status=409))["reason"] == "invalid_state"
    twice = slate("c-rules", "s-2", ends, people=(1, 2))
    twice["nominees"][1]["nominee_id"] = "resident-01"
    assert (await post(r, "NominateSlate", twice, status=422))["reason"] == "invalid_command"
    no_seat = slate("c-rules", "s-3", ends, people=(1, 4))
    assert (await post(r, "NominateSlate", no_seat, status=404))["reason"] == "not_found"
    resident = slate("c-rules", "s-4", ends, people=(1,)) | {"actor": RESIDENT}
    assert (await post(r, "NominateSlate", resident, status=403))["reason"] == "not_authorised"
    past = slate("c-rules", "s-5", r.clock.now() - timedelta(days=1), people=(1,))
    assert (await post(r, "NominateSlate", past, status=422))["reason"] == "invalid_command"
    for refused in ("s-1", "s-2", "s-3", "s-4", "s-5"):
        assert (await r.client.get(f"/{r.district}/slates/{refused}")).status_code == 404
    await post(r, "NominateSlate", slate("c-rules", "s-ok", ends, people=(1, 2, 3)))
    again = slate("c-rules", "s-ok", ends, people=(1,))
    assert (await post(r, "NominateSlate", again, status=409))["reason"] == "already_exists"


async def test_a_slate_and_its_vote_left_without_ids_get_them_from_the_platform(service):
    r = service
    await council_of_representatives(r, "c-ids", seats=2)
    ends = r.clock.now() + timedelta(days=7)
    slated = await post(r, "NominateSlate", slate("c-ids", None, ends, people=(1, 2)))
    assert slated["ids"] == {"slate_id": "slate-1"} and slated["subject"] == "slate-1"
    r.clock.set(ends)
    requested = await post(r, "RequestVote", {"actor": WORKER, "council_id": "c-ids",
                                              "matter": {"kind": "slate", "id": "slate-1"},
                                              "terms": meeting_terms(ends + timedelta(days=1))})
    assert requested["ids"] == {"vote_id": "vote-1"}
    assert (await get(r, "slates/slate-1"))["vote_id"] == "vote-1"
