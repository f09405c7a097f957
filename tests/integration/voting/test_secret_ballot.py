"""A secret vote end to end over HTTP: afterwards no stored row (not even by transaction
id or physical order) and no published message pairs a voter with a choice, while
each voter can still check their ballot with their receipt."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import timedelta

from contracts.registry import decode
from tests.integration.voting.test_concurrency import open_command
from tests.support.auth import bearer
from tests.support.kafka import read_records, read_topic
from tests.support.service import eventually, running
from services.voting.main import spec
from services.voting.projections import receipt_hash

VOTERS = [f"res-{i:03d}" for i in range(40)]
CHOICES = ("in_favour", "against", "abstain")


def leaves(value) -> set[str]:
    """Every string leaf of a JSON-like value (keys excluded: a key names a field, not a fact)."""
    if isinstance(value, dict):
        return set().union(*(leaves(v) for v in value.values())) if value else set()
    if isinstance(value, (list, tuple)):
        return set().union(*(leaves(v) for v in value)) if value else set()
    if isinstance(value, (bytes, memoryview)):
        try:
            return leaves(json.loads(bytes(value)))
        except ValueError:
            return set()
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return {value}
        return leaves(parsed) | {value} if isinstance(parsed, (dict, list)) else {value}
    return {str(value)} if value is not None else set()


def pairs_voter_with_choice(values: set[str]) -> bool:
    return bool(values & set(VOTERS)) and bool(values & set(CHOICES))


async def test_secret_vote_leaves_no_link_from_voter_to_choice(servers):
    async with running(spec(), servers) as r:
        d, client = r.district, r.client
        command = open_command(d, "vote-secret", r.clock.now() + timedelta(days=2), len(VOTERS), secrecy="secret",
                               roll=VOTERS, ballot_changes_allowed=True)
        assert (await client.post(f"/{d}/commands/OpenVote", json=command.model_dump(mode="json"))).status_code == 200

        rng = random.Random(7)
        cast = {v: (f"rcpt-{rng.getrandbits(64):016x}", rng.choice(CHOICES)) for v in VOTERS}

        async def send(voter: str, ballot_id: str, choice: str) -> int:
            body = {"district": d, "actor": {"id": voter, "role": "resident"}, "vote_id": "vote-secret",
                    "ballot_id": ballot_id, "choice": choice}
            return (await client.post(f"/{d}/commands/CastBallot", json=body)).status_code

        for voter, (ballot_id, choice) in cast.items():
            assert await send(voter, ballot_id, choice) == 200
        # While open, a secret vote shows turnout but no running count.
        live = (await client.get(f"/{d}/votes/vote-secret/tally")).json()
        assert live["tally"] is None and live["turnout"] == len(VOTERS)
        # Two voters change their minds (allowed here); the change needs the receipt.
        for voter in VOTERS[:2]:
            ballot_id, choice = cast[voter]
            new = next(c for c in CHOICES if c != choice)
            assert await send(voter, f"{ballot_id}-x", new) == 409
            assert await send(voter, ballot_id, new) == 200
            cast[voter] = (ballot_id, new)

        # Everyone has voted, but ballots may change until closing: only the convener ends it early.
        await asyncio.sleep(0.5)
        assert (await client.get(f"/{d}/votes/vote-secret")).json()["status"] == "open"
        close = {"district": d, "actor": {"id": "worker-1", "role": "community_worker"}, "vote_id": "vote-secret"}
        assert (await client.post(f"/{d}/commands/CloseVote", json=close)).status_code == 200

        async def closed():
            vote = (await client.get(f"/{d}/votes/vote-secret")).json()
            return vote if vote["status"] == "closed" else None
        vote = await eventually(closed)
        counts = {c: sum(1 for _, x in cast.values() if x == c) for c in CHOICES}
        assert vote["result"]["closed_by"] == "convener"
        assert {c: vote["result"]["tally"][c] for c in CHOICES} == counts

        # Each voter checks their own receipt, and finds its tracking code on the published
        # board with their choice; a guessed one is no ballot of theirs.
        board = {e["tracking_code"]: e["choice"] for e in
                 (await client.get(f"/{d}/votes/vote-secret/board")).json()["entries"]}
        assert len(board) == len(VOTERS)
        for voter, (ballot_id, choice) in cast.items():
            receipt = (await client.get(f"/{d}/votes/vote-secret/receipts/{ballot_id}",
                                        headers=bearer(voter, d, "resident"))).json()
            code = receipt.pop("tracking_code")
            assert receipt == {"vote_id": "vote-secret", "recorded": True, "counted": True, "choice": choice,
                               "approvals": None}
            assert board[code] == choice
        assert (await client.get(f"/{d}/votes/vote-secret/receipts/guess-1",
                                 headers=bearer(VOTERS[0], d, "resident"))).status_code == 404

        # Every stored row of every table, with its transaction id and physical place.
        pool = r.ctx.pool
        tables = [t["tablename"] for t in await pool.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")]
        assert {"events", "votes", "participants", "secret_choices", "pending_choices"} <= set(tables)
        for table in tables:
            for row in await pool.fetch(f'SELECT * FROM "{table}"'):
                assert not pairs_voter_with_choice(leaves(dict(row))), (table, dict(row))
        ballot_txs = {r_["xmin"] for r_ in await pool.fetch("SELECT xmin::text FROM participants")}
        ballot_txs |= {r_["tx"] for r_ in await pool.fetch(
            "SELECT (tx_id::text::bigint % 4294967296)::text AS tx FROM events WHERE topic LIKE '%Ballot.%' "
            "OR metadata->>'actor' LIKE 'res-%'")}
        choices = await pool.fetch("SELECT xmin::text, receipt, choice FROM secret_choices ORDER BY ctid")
        assert len(choices) == len(VOTERS) and await pool.fetchval("SELECT count(*) FROM pending_choices") == 0
        assert not {c["xmin"] for c in choices} & ballot_txs  # not written by any voter's transaction
        stored_order = [c["receipt"] for c in choices]
        cast_order = [receipt_hash(d, "vote-secret", v, cast[v][0]) for v in VOTERS]
        assert sorted(stored_order) == sorted(cast_order) and stored_order != cast_order  # shuffled

        # Every message published for the district: events and replies, bodies and headers.
        # opened, the ballots, two replaced, closed, then its board and its participants
        events = await read_topic(servers.kafka_bootstrap, f"{d}.voting.events", 1 + len(VOTERS) + 2 + 1 + 2)
        for topic, expect in ((f"{d}.voting.events", len(events)), (f"{d}.voting.replies", 1 + len(VOTERS) + 4 + 1)):
            records = await read_records(servers.kafka_bootstrap, topic, expect)
            assert len(records) >= expect
            for record in records:
                values = leaves(record.value) | {bytes(v).decode(errors="ignore") for _, v in record.headers or ()}
                assert not pairs_voter_with_choice(values), (topic, record.value)
        published = [decode(e) for e in events]
        accepted = [m for m in published if type(m).__name__ == "BallotAccepted"]
        assert len(accepted) == len(VOTERS) + 2 and all(m.choice is None for m in accepted)
        receipts = {b for b, _ in cast.values()}
        assert not receipts & {m.ballot_id for m in accepted}  # the receipt is never published
        final = [m for m in published if type(m).__name__ == "VoteClosed"]
        assert len(final) == 1 and final[0].ballots is None
        assert final[0].tally.model_dump(include=set(CHOICES)) == counts
