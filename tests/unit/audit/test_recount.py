"""``yishi audit recount`` on an export bundle: a verifiable secret vote, run on the voting
service's handlers (memory store and ballot box), recounted from its published board;
then a board, a participant list and a ballot that disagree are each reported (exit 1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from contracts.common import VoteTerms
from contracts.voting import BoardEntry, Tally
from services.voting.application import build_bus
from services.voting import domain
from services.voting.ballot_box import MemoryBallotBox
from tests.support.handlers import Handlers
from tests.unit.voting.test_handlers import D, T0, ballot, close, open_vote
from yishi.audit.export import FORMAT
from yishi.audit.recount import Published, recount_vote
from yishi.audit.sources import record_to_json
from yishi.cli import app
from yishi.clock import ManualClock
from yishi.memory import MemoryEventStore
from yishi.repository import Repository


async def run_vote(h: Handlers, **terms) -> list[dict]:
    """Open v-1 (a secret vote of m1, m2, m3), cast three ballots, close it; its events as a bundle holds them."""
    await h.accepted(open_vote(secrecy="secret", **terms))
    for voter, choice in (("m1", "against"), ("m2", "in_favour"), ("m3", "against")):
        await h.accepted(ballot(voter, f"r-{voter}", choice))
    await h.accepted(close())
    return [record_to_json(e) for e in await h.store.read_log(limit=100)]


def write_bundle(path: Path, events: list[dict]) -> Path:
    (path / "events").mkdir(parents=True)
    with (path / "events" / "voting.jsonl").open("w") as f:
        f.writelines(json.dumps(e) + "\n" for e in events)
    (path / "manifest.json").write_text(json.dumps({"format": FORMAT, "services": {"voting": {"events": len(events)}},
                                                    "files": {}}))
    return path


def recount(bundle: Path, *args: str):
    return CliRunner().invoke(app, ["audit", "recount", "--bundle", str(bundle), *args])


def rewrite(events: list[dict], topic_end: str, change) -> list[dict]:
    """``events`` with the state of the one whose topic ends with ``topic_end`` changed."""
    out = []
    for e in events:
        if e["topic"].endswith(topic_end):
            state = json.loads(bytes.fromhex(e["state"]))
            change(state)
            e = {**e, "state": json.dumps(state).encode().hex()}
        out.append(e)
    return out


@pytest.fixture
def h() -> Handlers:
    return Handlers(build_bus, ManualClock(T0), Repository(MemoryEventStore(), snapshot_every=None),
                    box=MemoryBallotBox(seed=5))


async def test_a_bundle_is_recounted_equal_to_its_tally(h, tmp_path):
    result = recount(write_bundle(tmp_path / "b", await run_vote(h)))
    assert result.exit_code == 0, result.output
    assert (f"{D}/v-1: board of 3 recounted: in_favour 1, against 2, abstain 0, equal to the published tally; "
            "3 participants for 3 entries, each in the vote's roll") in " ".join(result.output.split())


async def test_a_changed_board_a_stranger_and_a_missing_voter_are_each_reported(h, tmp_path):
    events = await run_vote(h)

    def flip(state):
        state["entries"][0]["choice"] = "abstain" if state["entries"][0]["choice"] != "abstain" else "against"

    def stranger(state):
        state["voter_ids"][0] = "intruder"

    changed = recount(write_bundle(tmp_path / "changed", rewrite(events, "Vote.BoardPublished", flip)))
    assert changed.exit_code == 1 and "the board recounts to" in changed.output
    listed = " ".join(recount(write_bundle(tmp_path / "stranger",
                                           rewrite(events, "Vote.ParticipantsListed", stranger))).output.split())
    assert "participants not in the vote's roll: intruder" in listed
    assert "participants with no accepted ballot: intruder" in listed
    assert "voters with an accepted ballot not among the participants: m1" in listed


async def test_a_board_page_missing_is_reported(h, tmp_path, monkeypatch):
    monkeypatch.setattr(domain, "BOARD_PAGE", 2)
    events = await run_vote(h)
    assert recount(write_bundle(tmp_path / "whole", events)).exit_code == 0
    last = [e for e in events if e["topic"].endswith("Vote.BoardPublished")][-1]
    result = recount(write_bundle(tmp_path / "torn", [e for e in events if e is not last]))
    assert result.exit_code == 1
    assert "VoteBoardPublished pages missing: 2 of 2" in " ".join(result.output.split())


async def test_a_secret_vote_turned_off_is_named_not_recountable(h, tmp_path):
    result = recount(write_bundle(tmp_path / "b", await run_vote(h, verifiable=False)))
    assert result.exit_code == 1 and "published no board" in result.output
    assert str(result.exception) == "no closed vote with a published board"  # a UserError: `error: …`, exit 1


def test_the_checks_on_what_a_vote_published():
    terms = VoteTerms.model_validate({
        "question": "?", "method": "online", "majority": "simple", "quorum_percent": 50, "secrecy": "secret",
        "closes_at": T0.isoformat(), "electorate": {"kind": "residents_meeting", "scope_id": "c", "size": 2}})
    code = "0" * 20
    twice = Published(D, "v-1", terms, Tally(in_favour=2, against=0, abstain=0),
                      (BoardEntry(tracking_code=code, choice="in_favour"),) * 2, ("m1", "m1", "m2"))
    findings = recount_vote(twice).findings
    assert findings == ("3 participants but 2 entries on the board", f"tracking codes on the board twice: {code}",
                        "participants listed twice: m1")
    assert not recount_vote(Published(D, "v-1", terms, Tally(in_favour=1, against=0, abstain=0),
                                      (BoardEntry(tracking_code=code, choice="in_favour"),), ("m9",))).findings
