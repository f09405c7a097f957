"""A vote opened without its id over HTTP gets one the platform chooses: named in the
reply, the same for a resend under the same Idempotency-Key, and the vote readable under
it. A ballot keeps its id the voter's own. The service runs with a sequential id source,
so its ids are known here."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import pytest_asyncio

from services.voting.main import spec
from tests.support.service import running
from yishi.clock import ManualClock
from yishi.ids import SequentialIds

pytestmark = pytest.mark.asyncio(loop_scope="session")

T0 = datetime(2026, 4, 1, 1, 0, tzinfo=timezone.utc)
WORKER = {"id": "worker-0102", "role": "community_worker"}
ROLL = ["m1", "m2", "m3"]


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def service(servers):
    async with running(spec(), servers, clock=ManualClock(T0), ids=SequentialIds()) as r:
        yield r


async def post(r, type_: str, body: dict, key: str | None = None):
    headers = {"Idempotency-Key": key} if key else {}
    return await r.client.post(f"/{r.district}/commands/{type_}", json={"district": r.district, **body},
                               headers=headers)


def question(r) -> dict:
    return {"actor": WORKER, "council_id": "council-1", "matter": {"kind": "question", "id": "q-1"},
            "terms": {"question": "在3号院增设充电棚?", "method": "online", "majority": "simple",
                      "quorum_percent": 50, "secrecy": "secret",
                      "closes_at": (r.clock.now() + timedelta(days=2)).isoformat(),
                      "electorate": {"kind": "council_members", "scope_id": "council-1", "size": len(ROLL),
                                     "roll": ROLL}}}


async def test_a_vote_opened_without_its_id_gets_one_named_in_the_reply(service):
    r = service
    opened = await post(r, "OpenVote", question(r), key="open-q-1")
    assert opened.status_code == 200, opened.text
    reply = opened.json()
    assert reply["ids"] == {"vote_id": "vote-1"} and reply["subject"] == "vote-1"
    # A resend under the same key: the same answer, no second vote.
    again = await post(r, "OpenVote", question(r), key="open-q-1")
    assert again.status_code == 200 and again.json() == reply
    vote = (await r.client.get(f"/{r.district}/votes/vote-1")).json()
    assert (vote["vote_id"], vote["matter"], vote["status"]) == ("vote-1", {"kind": "question", "id": "q-1"}, "open")
    listed = (await r.client.get(f"/{r.district}/votes", params={"council_id": "council-1"})).json()["items"]
    assert [v["vote_id"] for v in listed] == ["vote-1"]

    # Another key is another command: another vote.
    other = await post(r, "OpenVote", question(r) | {"vote_id": None}, key="open-q-2")
    assert other.status_code == 200 and other.json()["ids"] == {"vote_id": "vote-2"}
    # A caller may still choose the id; the reply then names none.
    mine = await post(r, "OpenVote", question(r) | {"vote_id": "v-mine"})
    assert mine.status_code == 200 and (mine.json()["subject"], mine.json()["ids"]) == ("v-mine", {})


async def test_a_ballot_id_stays_the_voter_s_own(service):
    r = service
    ballot = {"actor": {"id": "m1", "role": "resident"}, "vote_id": "vote-1", "choice": "in_favour"}
    missing = await post(r, "CastBallot", ballot)
    assert missing.status_code == 422, missing.text  # a secret ballot's id is its receipt: the voter keeps it
    cast = await post(r, "CastBallot", ballot | {"ballot_id": "receipt-m1-7f3c2a9e"})
    assert cast.status_code == 200 and cast.json()["ids"] == {}
