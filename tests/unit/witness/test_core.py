"""The witness's rules (yishi.witness.core, pure) and its state machine over a state file
(yishi.witness.server.Witness): cosign, advance, refuse a fork, k of n, split views."""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path

import pytest

from tests.support.tlog import FakeLog, witness_signer
from yishi.tlog import note
from yishi.witness import core
from yishi.witness.server import Witness, WitnessConfig

C2SP = json.loads((Path(__file__).resolve().parents[2] / "vectors" / "signed-note" / "c2sp.json").read_text())


# --- the request ------------------------------------------------------------------------


def test_the_spec_request_parses() -> None:
    request = core.parse_request(C2SP["add_checkpoint_request"].encode())
    assert request.old_size == 20852014 and len(request.proof) == 4
    assert request.checkpoint.startswith(b"example.com/behind-the-sofa\n20852163\n")
    assert core.format_request(request.old_size, request.proof, request.checkpoint) == C2SP["add_checkpoint_request"].encode()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"old 01\n\nx", "old <size>"),
        (b"old -1\n\nx", "old <size>"),
        (b"new 1\n\nx", "old <size>"),
        (b"old 1\nAAAA\n", "no blank line"),
        (b"old 1\n" + b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n" * 64 + b"\nx", "64 consistency proof lines"),
        (b"old 1\nnot base64!\n\nx", "not base64"),
        (b"old 1\nAAAA\n\nx", "3 bytes"),
        (b"old 0\n\n" + b"x" * 70000, "more than 65536 bytes"),
    ],
)
def test_malformed_requests_are_refused(body: bytes, reason: str) -> None:
    with pytest.raises(core.BadRequest, match=reason):
        core.parse_request(body)


# --- the rules --------------------------------------------------------------------------


def _check(log: FakeLog, body: bytes, latest: core.TreeHead | None) -> note.Checkpoint:
    return core.check(core.parse_request(body), log.log, latest)


def test_a_first_checkpoint_is_cosigned_and_the_next_needs_a_proof() -> None:
    log = FakeLog()
    assert _check(log, log.request(0, 5), None).size == 5
    head = core.TreeHead(5, log.root(5))
    assert _check(log, log.request(5, 9), head).root_hash == log.root(9)
    assert _check(log, log.request(5, 5), head).size == 5  # the same head again: cosigned again


def test_an_old_size_that_is_not_the_cosigned_one_is_a_conflict_naming_it() -> None:
    log = FakeLog()
    with pytest.raises(core.Conflict) as caught:
        _check(log, log.request(3, 9), core.TreeHead(5, log.root(5)))
    assert caught.value.size == 5 and not caught.value.evidence
    with pytest.raises(core.Conflict) as never:
        _check(log, log.request(3, 9), None)
    assert never.value.size == 0


def test_a_fork_at_the_same_size_is_a_conflict_kept_as_evidence() -> None:
    log = FakeLog()
    with pytest.raises(core.Conflict, match="fork") as caught:
        _check(log, log.fork().request(5, 5), core.TreeHead(5, log.root(5)))
    assert caught.value.size == 5 and caught.value.evidence


def test_a_forked_history_fails_its_proof() -> None:
    log = FakeLog()
    forked = log.fork()
    head = core.TreeHead(5, log.root(5))
    with pytest.raises(core.BadProof, match="from 5 to 9"):
        _check(log, forked.request(5, 9), head)
    # the fork's proof, pasted beside the honest checkpoint, fails too
    body = core.format_request(5, forked.proof(5, 9), log.checkpoint(9))
    with pytest.raises(core.BadProof):
        _check(log, body, core.TreeHead(5, forked.root(5)))


@pytest.mark.parametrize(("old", "new", "proof"), [(0, 5, [bytes(32)]), (5, 5, [bytes(32)]), (5, 9, [])])
def test_proofs_of_the_wrong_shape_are_refused(old: int, new: int, proof: list[bytes]) -> None:
    log = FakeLog()
    latest = core.TreeHead(old, log.root(old)) if old else None
    with pytest.raises(core.BadProof):
        _check(log, core.format_request(old, proof, log.checkpoint(new)), latest)


def test_an_old_size_past_the_checkpoint_is_a_bad_request() -> None:
    log = FakeLog()
    with pytest.raises(core.BadRequest, match="larger"):
        _check(log, core.format_request(9, [], log.checkpoint(5)), core.TreeHead(9, log.root(9)))


def test_a_checkpoint_not_signed_by_the_logs_key_is_forbidden() -> None:
    log, impostor = FakeLog(), FakeLog()  # same origin, another key
    with pytest.raises(core.Forbidden):
        _check(log, impostor.request(0, 5), None)


# --- the state machine over its file ------------------------------------------------------


def _witness(tmp_path: Path, *logs: FakeLog, clock=lambda: 1700000000.0) -> Witness:
    signer = witness_signer()
    config = WitnessConfig(signer, {log.origin: log.log for log in logs}, tmp_path / "witness.sqlite3")
    return Witness(config, clock)


def test_the_witness_cosigns_advances_and_remembers_across_a_restart(tmp_path: Path) -> None:
    log = FakeLog()
    witness = _witness(tmp_path, log)
    line = witness.add_checkpoint(log.request(0, 5))
    cosigned = note.add_signature_lines(log.checkpoint(5), line)
    opened = note.open_note(cosigned, [log.signer.verifier, witness.config.signer.verifier])
    assert note.cosignature_timestamp(opened.signed_by(witness.config.signer.verifier)) == 1700000000
    witness.add_checkpoint(log.request(5, 8))
    again = Witness(witness.config)  # a new process on the same file
    with pytest.raises(core.Conflict) as caught:
        again.add_checkpoint(log.request(5, 9))
    assert caught.value.size == 8
    assert again.store.latest(log.origin).head == core.TreeHead(8, log.root(8))


def test_the_witness_refuses_an_unknown_log_and_keeps_a_fork_as_evidence(tmp_path: Path) -> None:
    log = FakeLog()
    witness = _witness(tmp_path, log)
    with pytest.raises(core.UnknownLog):
        witness.add_checkpoint(FakeLog("other.test/log").request(0, 1))
    witness.add_checkpoint(log.request(0, 5))
    fork = log.fork().request(5, 5)
    with pytest.raises(core.Conflict):
        witness.add_checkpoint(fork)
    assert witness.store.evidence(log.origin) == [("a fork: size 5 was cosigned with another root hash", fork)]
    assert witness.store.latest(log.origin).head == core.TreeHead(5, log.root(5))


def test_requests_racing_from_one_old_size_advance_once(tmp_path: Path) -> None:
    log = FakeLog()
    witness = _witness(tmp_path, log)
    witness.add_checkpoint(log.request(0, 4))
    bodies = [log.request(4, 4 + n) for n in range(1, 9)]
    outcomes: list[object] = [None] * len(bodies)
    start = threading.Barrier(len(bodies))

    def submit(i: int) -> None:
        start.wait()
        try:
            outcomes[i] = witness.add_checkpoint(bodies[i])
        except core.Conflict as conflict:
            outcomes[i] = conflict

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [i for i, o in enumerate(outcomes) if isinstance(o, str)]
    assert len(won) == 1
    assert [o.size for o in outcomes if isinstance(o, core.Conflict)] == [4 + won[0] + 1] * (len(bodies) - 1)
    assert witness.store.latest(log.origin).head.size == 4 + won[0] + 1


# --- k of n and split views -------------------------------------------------------------------


def _cosigned(log: FakeLog, size: int, *witnesses: note.Signer, at: int = 1700000000) -> bytes:
    msg = log.checkpoint(size)
    text = note.parse(msg).text
    for w in witnesses:
        msg = note.add_signature_lines(msg, note.cosignature_lines(text, w, at))
    return msg


def test_k_of_n_counts_each_trusted_witness_once() -> None:
    log = FakeLog()
    board, stats, neighbour, stranger = (witness_signer(n) for n in ("board.test/w", "stats.test/w", "next.test/w", "x.test/w"))
    trusted = [board.verifier, stats.verifier, neighbour.verifier]
    msg = _cosigned(log, 7, board, stats, stranger)
    result = core.verify_witnessed(msg, log.signer.verifier, trusted, 2)
    assert result.cosigners == ("board.test/w", "stats.test/w") and result.checkpoint.size == 7
    with pytest.raises(core.QuorumNotMet, match="2 of the 3 cosignatures required"):
        core.verify_witnessed(msg, log.signer.verifier, trusted, 3)
    with pytest.raises(ValueError, match="cannot require 3 of 2"):  # a key given twice is one witness
        core.verify_witnessed(msg, log.signer.verifier, [board.verifier, board.verifier, stats.verifier], 3)
    with pytest.raises(note.MalformedNote, match="two signatures"):
        core.verify_witnessed(msg + _cosigned(log, 7, board).split(b"\n\n")[1], log.signer.verifier, trusted, 2)


def test_cosignatures_without_the_logs_own_signature_do_not_count() -> None:
    log, impostor = FakeLog(), FakeLog()
    board = witness_signer()
    msg = _cosigned(impostor, 7, board)  # the witness was fooled by another key; the log never signed
    with pytest.raises(note.UnverifiedNote):
        core.verify_witnessed(msg, log.signer.verifier, [board.verifier], 1)


def test_a_cosignature_that_does_not_verify_refuses_the_note() -> None:
    log, board = FakeLog(), witness_signer()
    msg = _cosigned(log, 7, board)
    text = note.parse(msg).text
    other_root = text.replace(base64.b64encode(log.root(7)).decode(), base64.b64encode(bytes(32)).decode())
    tampered = note.add_signature_lines(note.sign(other_root, log.signer), note.parse(msg).signatures[1].line())
    with pytest.raises(note.InvalidSignature):
        core.verify_witnessed(tampered, log.signer.verifier, [board.verifier], 1)


def test_split_views_are_reported_with_who_saw_which_root() -> None:
    log = FakeLog()
    fork = log.fork()
    honest = note.Checkpoint.parse(note.parse(log.checkpoint(6)).text)
    shown = note.Checkpoint.parse(note.parse(fork.checkpoint(6)).text)
    later = note.Checkpoint.parse(note.parse(log.checkpoint(7)).text)
    splits = core.split_views([("alice", honest), ("bob", shown), ("board", honest), ("carol", later)])
    assert len(splits) == 1
    assert (splits[0].origin, splits[0].size) == (log.origin, 6)
    assert sorted(splits[0].roots.values()) == [("alice", "board"), ("bob",)]
    assert core.split_views([("alice", honest), ("carol", later)]) == []
