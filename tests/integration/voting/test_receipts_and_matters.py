"""Who may read a secret ballot's receipt (issue 15, item 6), and which votes may be
opened directly (item 7), over the voting service's HTTP API."""

from __future__ import annotations

from datetime import timedelta

from tests.integration.voting.test_concurrency import open_command
from tests.support.auth import bearer
from tests.support.service import eventually, running
from services.voting.main import spec

VOTERS = ["res-1", "res-2", "res-3"]


def cast(d: str, voter: str, ballot_id: str, choice: str) -> dict:
    return {"district": d, "actor": {"id": voter, "role": "resident"}, "vote_id": "v-secret",
            "ballot_id": ballot_id, "choice": choice}


async def test_a_secret_receipt_is_shown_to_its_voter_only(servers):
    async with running(spec(), servers) as r:
        d, client = r.district, r.client
        opened = open_command(d, "v-secret", r.clock.now() + timedelta(days=2), 3, secrecy="secret", roll=VOTERS,
                              ballot_changes_allowed=True)
        assert (await client.post(f"/{d}/commands/OpenVote", json=opened.model_dump(mode="json"))).status_code == 200
        for voter, choice in zip(VOTERS[:2], ("in_favour", "against")):
            sent = await client.post(f"/{d}/commands/CastBallot", json=cast(d, voter, f"rcpt-{voter}", choice))
            assert sent.status_code == 200, sent.text
        receipt = "/{d}/votes/v-secret/receipts/rcpt-res-1".format(d=d)

        mine = await client.get(receipt, headers=bearer("res-1", d, "resident"))
        assert mine.status_code == 200 and mine.json()["choice"] == "in_favour"
        # Staff, the auditor and another voter who all know the ballot id: 404, as for no receipt.
        for who, role in (("worker-1", "community_worker"), ("auditor-1", "auditor"), ("res-2", "resident"),
                          ("chair-1", "chair")):
            other = await client.get(receipt, headers=bearer(who, d, role))
            assert other.status_code == 404, (who, other.text)
            assert other.headers["content-type"].startswith("application/problem+json")
            assert "in_favour" not in other.text
        assert (await client.get(receipt)).status_code == 404  # the test client reads as an auditor

        # Nor can another voter use the receipt to replace the ballot it belongs to.
        taken = await client.post(f"/{d}/commands/CastBallot", json=cast(d, "res-2", "rcpt-res-1", "against"))
        assert taken.status_code == 409 and taken.json()["reason"] == "invalid_state", taken.text
        close = {"district": d, "actor": {"id": "worker-1", "role": "community_worker"}, "vote_id": "v-secret"}
        assert (await client.post(f"/{d}/commands/CloseVote", json=close)).status_code == 200

        async def closed():
            vote = (await client.get(f"/{d}/votes/v-secret")).json()
            return vote["result"] if vote["status"] == "closed" else None
        tally = (await eventually(closed))["tally"]
        assert (tally["in_favour"], tally["against"], tally["abstain"]) == (1, 1, 0)
        counted = (await client.get(receipt, headers=bearer("res-1", d, "resident"))).json()
        assert (counted["counted"], counted["choice"]) == (True, "in_favour")


async def test_a_proposal_or_nomination_vote_is_not_opened_directly(servers):
    async with running(spec(), servers) as r:
        d, client = r.district, r.client
        for kind in ("proposal", "nomination"):
            body = open_command(d, f"v-{kind}", r.clock.now() + timedelta(days=2), 3).model_dump(mode="json")
            body["matter"] = {"kind": kind, "id": f"{kind}-1"}
            refused = await client.post(f"/{d}/commands/OpenVote", json=body)
            assert refused.status_code == 409, refused.text
            problem = refused.json()
            assert problem["reason"] == "vote_requested_through_proposals" and "RequestVote" in problem["message"]
            assert (problem["command_type"], problem["subject"]) == ("OpenVote", f"v-{kind}")
            assert (await client.get(f"/{d}/votes/v-{kind}")).status_code == 404
        question = open_command(d, "v-question", r.clock.now() + timedelta(days=2), 3)
        assert question.matter.kind == "question"
        accepted = await client.post(f"/{d}/commands/OpenVote", json=question.model_dump(mode="json"))
        assert accepted.status_code == 200, accepted.text
