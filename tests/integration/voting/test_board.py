"""A verifiable vote's board over the voting service's HTTP API: published in pages (here
of two entries) and read back whole, in code order, with who took part; none for a vote
still open nor for a secret vote turned off."""

from __future__ import annotations

from datetime import timedelta

from contracts.voting import BoardEntry, Tally, recount
from services.voting import domain
from services.voting.main import spec
from tests.integration.voting.test_concurrency import open_command
from tests.support.auth import bearer
from tests.support.service import eventually, running

VOTERS = ["res-1", "res-2", "res-3", "res-4", "res-5"]
CHOICES = ["in_favour", "against", "in_favour", "abstain", "in_favour"]


async def test_a_board_published_in_pages_is_read_whole(servers, monkeypatch):
    monkeypatch.setattr(domain, "BOARD_PAGE", 2)  # five ballots: three pages of the board, three of participants
    async with running(spec(), servers) as r:
        d, client = r.district, r.client
        for vote_id, terms in (("v-board", {}), ("v-off", {"verifiable": False})):
            opened = open_command(d, vote_id, r.clock.now() + timedelta(days=2), 5, secrecy="secret", roll=VOTERS,
                                  **terms)
            assert (await client.post(f"/{d}/commands/OpenVote", json=opened.model_dump(mode="json"))).status_code \
                == 200
            still_open = await client.get(f"/{d}/votes/{vote_id}/board")
            assert still_open.status_code == 404 and "published no board" in still_open.text
            for voter, choice in zip(VOTERS, CHOICES):
                body = {"district": d, "actor": {"id": voter, "role": "resident"}, "vote_id": vote_id,
                        "ballot_id": f"rcpt-{voter}", "choice": choice}
                assert (await client.post(f"/{d}/commands/CastBallot", json=body)).status_code == 200
        codes = {voter: (await client.get(f"/{d}/votes/v-board/receipts/rcpt-{voter}",
                                          headers=bearer(voter, d, "resident"))).json()["tracking_code"]
                 for voter in VOTERS}

        # Everyone voted: the timer closes both (the codes are read before or after, the same).
        async def board():
            found = await client.get(f"/{d}/votes/v-board/board")
            return found.json() if found.status_code == 200 else None
        published = await eventually(board)
        entries = [BoardEntry.model_validate(e) for e in published["entries"]]
        assert [e.tracking_code for e in entries] == sorted(codes.values())
        assert {e.tracking_code: e.choice for e in entries} == {codes[v]: c for v, c in zip(VOTERS, CHOICES)}
        assert published["voter_ids"] == VOTERS
        assert recount(entries, approval=False) == Tally.model_validate(published["tally"]) == Tally(
            in_favour=3, against=1, abstain=1)
        pages = await r.ctx.pool.fetch("SELECT topic FROM events WHERE topic LIKE '%Vote.BoardPublished' "
                                       "OR topic LIKE '%Vote.ParticipantsListed'")
        assert len(pages) == 3 + 3

        async def closed_off():
            return (await client.get(f"/{d}/votes/v-off")).json()["status"] == "closed"
        await eventually(closed_off)
        off = await client.get(f"/{d}/votes/v-off/board")
        assert off.status_code == 404 and off.headers["content-type"].startswith("application/problem+json")
        assert (await client.get(f"/{d}/votes/v-off/receipts/rcpt-res-1",
                                 headers=bearer("res-1", d, "resident"))).json()["tracking_code"] is None
