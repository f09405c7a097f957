"""A residents' meeting seats its nine representatives as the practice does: one slate,
publicised, confirmed by one vote. The four services run as processes; everything goes
through their public HTTP APIs, and the ids the caller leaves out are chosen by the
platform and read from the replies."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta, timezone

import httpx

from tests.support.auth import acting

WORKER = {"id": "worker-0102", "role": "community_worker"}
VOTERS = [f"resident-v{n}" for n in range(1, 6)]
NOTICE_S = 2.0


class Client:
    """Sends commands to the service that owns them and counts them."""

    def __init__(self, platform, district: str) -> None:
        self.urls, self.district = platform.urls, district
        self.http = httpx.AsyncClient(timeout=30, auth=acting())
        self.sent = 0

    async def command(self, service: str, type_: str, body: dict) -> dict:
        self.sent += 1
        response = await self.http.post(f"{self.urls[service]}/{self.district}/commands/{type_}",
                                        json={"district": self.district, **body},
                                        headers={"Idempotency-Key": str(uuid.uuid4())})
        assert response.status_code == 200, response.text
        return response.json()

    async def until(self, service: str, path: str, check, timeout: float = 60.0):
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            response = await self.http.get(f"{self.urls[service]}/{self.district}/{path}")
            if response.status_code == 200:
                seen = response.json()
                if check(seen):
                    return seen
            await asyncio.sleep(0.2)
        raise AssertionError(f"GET {service} {path}: still {seen}")


async def test_nine_representatives_are_seated_with_a_handful_of_commands(platform):
    api = Client(platform, platform.districts[1])
    try:
        formed = await api.command("proposals", "FormCouncil", {
            "actor": WORKER, "name": "西康社区居民议事会", "level": "community", "area_id": "xikang",
            "seats": [{"seat_id": f"rr-{n}", "kind": "resident_representative"} for n in range(1, 10)]})
        council_id = formed["ids"]["council_id"]

        notice_ends = datetime.now(timezone.utc) + timedelta(seconds=NOTICE_S)
        nominated = await api.command("proposals", "NominateSlate", {
            "actor": WORKER, "council_id": council_id, "notice_ends_at": notice_ends.isoformat(),
            "nominees": [{"seat_id": f"rr-{n}", "nominee_id": f"resident-{n:02d}", "route": "recommendation"}
                         for n in range(1, 10)]})
        slate_id = nominated["ids"]["slate_id"]
        assert (await api.until("proposals", f"slates/{slate_id}", bool))["status"] == "publicised"

        await asyncio.sleep(max(0.0, (notice_ends - datetime.now(timezone.utc)).total_seconds()) + 0.2)
        requested = await api.command("proposals", "RequestVote", {
            "actor": WORKER, "council_id": council_id, "matter": {"kind": "slate", "id": slate_id},
            "terms": {"question": "是否确认9名居民代表?",
                      "electorate": {"kind": "residents_meeting", "scope_id": "xikang", "size": len(VOTERS),
                                     "roll": VOTERS},
                      "method": "online", "majority": "simple", "quorum_percent": 50, "secrecy": "secret",
                      "closes_at": (datetime.now(timezone.utc) + timedelta(minutes=10)).isoformat()}})
        vote_id = requested["ids"]["vote_id"]
        await api.until("voting", f"votes/{vote_id}", lambda v: v["status"] == "open")
        for n, voter in enumerate(VOTERS):
            await api.command("voting", "CastBallot", {
                "actor": {"id": voter, "role": "resident"}, "vote_id": vote_id, "ballot_id": uuid.uuid4().hex,
                "choice": "against" if n == 0 else "in_favour"})

        members = await api.until("proposals", f"councils/{council_id}/members", lambda m: len(m) == 9)
        assert sorted((m["seat_id"], m["member_id"]) for m in members) == [
            (f"rr-{n}", f"resident-{n:02d}") for n in range(1, 10)]
        slate = await api.until("proposals", f"slates/{slate_id}", lambda s: s["status"] == "confirmed")
        assert (slate["vote_id"], slate["outcome"]) == (vote_id, "adopted")
        # Council, slate, vote request and one ballot per voter: 8 commands. One by one
        # (nominate, publicise and request a vote for each of 9, and 5 ballots on each
        # vote) it was 1 + 9 * (3 + 5) = 73.
        assert api.sent == 3 + len(VOTERS) == 8
    finally:
        await api.http.aclose()
