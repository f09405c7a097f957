"""Verifiable secret ballots end to end (issue 22): a secret vote over the four service
processes, its voters cast (one changes their mind), it closes; from what it published
(the voting service's board view, the events on Kafka) anyone recounts the tally, each
voter finds their tracking code with their choice, no voter id is on the board, and as
many took part as the board has entries. ``yishi audit recount`` agrees."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import timedelta

import httpx

from contracts.common import Actor, Role, VoteTerms
from contracts.registry import decode
from contracts.voting import BallotChoice, BoardEntry, CastBallot, CloseVote, OpenVote, Tally, recount
from tests.support.auth import acting, bearer
from tests.support.kafka import read_topic
from yishi.demo import WORKER, Api

FOR, AGAINST, ABSTAIN = BallotChoice.IN_FAVOUR, BallotChoice.AGAINST, BallotChoice.ABSTAIN


async def test_a_secret_vote_is_recounted_from_its_board_and_each_voter_finds_their_code(platform):
    district, t = platform.districts[0], uuid.uuid4().hex[:6]
    voters = [f"resident-{t}-{i:02d}" for i in range(12)]
    vote_id, council = f"vote-vb-{t}", f"council-vb-{t}"
    choices = dict(zip(voters, [FOR] * 6 + [AGAINST] * 4 + [ABSTAIN] * 2))
    receipts = {voter: f"rcpt-{uuid.uuid4().hex}" for voter in voters}
    async with Api(platform.urls, district, timeout=60, auth=acting()) as api, \
            httpx.AsyncClient(timeout=10, auth=acting()) as http:
        now = await api.now()
        terms = VoteTerms.model_validate({
            "question": "小区北门是否夜间关闭?", "method": "online", "majority": "simple", "quorum_percent": 50,
            "secrecy": "secret", "ballot_changes_allowed": True,
            "closes_at": (now + timedelta(days=2)).isoformat(),
            "electorate": {"kind": "residents_meeting", "scope_id": f"community-{t}", "size": 15,
                           "roll": voters + [f"resident-{t}-absent-{i}" for i in range(3)]}})
        assert terms.publishes_board  # verifiable: a secret vote's default
        await api.send(OpenVote(district=district, actor=WORKER, vote_id=vote_id, council_id=council,
                                matter={"kind": "question", "id": f"q-{t}"}, terms=terms))
        await api.until("the vote", "voting", f"votes/{vote_id}")
        for voter in voters:
            await api.send(CastBallot(district=district, actor=Actor(id=voter, role=Role.RESIDENT), vote_id=vote_id,
                                      ballot_id=receipts[voter], choice=choices[voter]))
        # One voter changes their mind: the board shows their new choice, under a new code.
        changed = voters[0]
        receipt_url = f"{platform.urls['voting']}/{district}/votes/{vote_id}/receipts/{receipts[changed]}"
        old_code = (await http.get(receipt_url, headers=bearer(changed, district, "resident"))).json()["tracking_code"]
        await api.send(CastBallot(district=district, actor=Actor(id=changed, role=Role.RESIDENT), vote_id=vote_id,
                                  ballot_id=receipts[changed], choice=AGAINST))
        choices[changed] = AGAINST
        await api.until("12 ballots", "voting", f"votes/{vote_id}", lambda v: v["turnout"] == 12)
        await api.send(CloseVote(district=district, actor=WORKER, vote_id=vote_id))
        closed = await api.until("the close", "voting", f"votes/{vote_id}", lambda v: v["result"] is not None)
        tally = Tally.model_validate(closed["result"]["tally"])
        assert (tally.in_favour, tally.against, tally.abstain) == (5, 5, 2)

        # The board, as any reader of the district sees it: recounted, it is the tally.
        board = (await http.get(f"{platform.urls['voting']}/{district}/votes/{vote_id}/board")).json()
        entries = [BoardEntry.model_validate(e) for e in board["entries"]]
        assert recount(entries, approval=False) == tally == Tally.model_validate(board["tally"])
        assert [e.tracking_code for e in entries] == sorted(e.tracking_code for e in entries)
        assert not any(voter in json.dumps(board["entries"]) for voter in voters)  # no voter id on the board
        assert len(board["voter_ids"]) == len(entries) == 12 and board["voter_ids"] == sorted(voters)

        # Each voter finds the code their receipt shows, with their choice; the replaced code is gone.
        on_board = {e.tracking_code: e.choice for e in entries}
        for voter in voters:
            mine = (await http.get(f"{platform.urls['voting']}/{district}/votes/{vote_id}/receipts/{receipts[voter]}",
                                   headers=bearer(voter, district, "resident"))).json()
            assert on_board[mine["tracking_code"]] == choices[voter], voter
        assert old_code not in on_board

        # The same board and participants were published as events (so into the service's log).
        events = [decode(e) for e in await read_topic(platform.kafka_bootstrap, f"{district}.voting.events",
                                                      1 + len(voters) + 1 + 3)]
        (published,) = [m for m in events if type(m).__name__ == "VoteBoardPublished"]
        (participants,) = [m for m in events if type(m).__name__ == "VoteParticipants"]
        assert list(published.entries) == entries and list(participants.voter_ids) == sorted(voters)
        assert not any(voter in published.model_dump_json() for voter in voters)

        # An auditor's recount from the service's URL, with a reader's token of the district.
        token = bearer("auditor-1", district, "auditor")["authorization"].removeprefix("Bearer ")
        recounted = subprocess.run(
            [sys.executable, "-m", "yishi.cli", "audit", "recount", "--url", platform.urls["voting"], "--district",
             district, "--vote", vote_id, "--token", token], capture_output=True, text=True, timeout=60)
        assert recounted.returncode == 0, recounted.stderr
        assert (f"{district}/{vote_id}: board of 12 recounted: in_favour 5, against 5, abstain 2, equal to the "
                f"published tally; 12 participants for 12 entries, each in the vote's roll") in " ".join(
                    recounted.stderr.split())
