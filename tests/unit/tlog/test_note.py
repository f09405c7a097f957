"""yishi.tlog.note against the published vectors (tests/vectors/signed-note/SOURCE.md) of
golang.org/x/mod/sumdb/note, transparency-dev/formats and the C2SP specifications, and the
malformed input a note from the network may carry: a missing blank line, a NUL, an unknown
key, a duplicate signature, a very long line."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from yishi.tlog import note
from yishi.tlog.note import (
    COSIGNATURE_V1,
    Checkpoint,
    InvalidSignature,
    MalformedCheckpoint,
    MalformedKey,
    MalformedNote,
    Signer,
    UnverifiedNote,
    Verifier,
)

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "signed-note"
GO = json.loads((VECTORS / "golang-sumdb-note.json").read_text())
FORMATS = json.loads((VECTORS / "transparency-dev-formats.json").read_text())
C2SP = json.loads((VECTORS / "c2sp.json").read_text())

PETER = Verifier.parse(GO["verifier_keys"]["PeterNeumann"])
ENOCH = Verifier.parse(GO["verifier_keys"]["EnochRoot"])
SIGNED = GO["signed"]


def _note(entry: dict) -> bytes:
    return bytes.fromhex(entry["note_hex"]) if "note_hex" in entry else entry["note"].encode()


# --- the Go reference's keys and signatures --------------------------------------------


def test_the_go_signer_key_signs_the_published_note_byte_for_byte() -> None:
    signer = Signer.parse(GO["signer_key"])
    assert signer.verifier == PETER
    assert note.sign(GO["text"], signer).decode() == GO["signed"]


def test_signing_again_replaces_the_signers_own_signature() -> None:
    signer = Signer.parse(GO["signer_key"])
    stale = note.Signature("PeterNeumann", PETER.key_id, b"BADSIGNATURE")
    assert note.sign(GO["text"], signer, existing=[stale]).decode() == GO["signed"]


def test_verifier_keys_round_trip_and_their_key_ids_are_the_published_ones() -> None:
    assert PETER.key_id == 0xC74F20A3 and ENOCH.key_id == 0xAF0CFE78
    assert PETER.vkey == GO["verifier_keys"]["PeterNeumann"]
    for entry in FORMATS["verifier_keys"]:
        verifier = Verifier.parse(entry["key"])
        assert verifier.signature_type == entry["type"] and verifier.vkey == entry["key"]


@pytest.mark.parametrize(
    "vkey",
    [e["key"] for e in GO["bad_verifier_keys"] + FORMATS["bad_verifier_keys"]]
    + [
        GO["verifier_keys"]["PeterNeumann"].replace("c74f20a3", "c74f20a4"),  # key ID of another key
        GO["verifier_keys"]["PeterNeumann"].replace("c74f20a3", "C74F20A3"),  # not lowercase
        GO["verifier_keys"]["PeterNeumann"][:-1],  # truncated
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # space in the name
    ],
)
def test_malformed_verifier_keys_are_refused(vkey: str) -> None:
    with pytest.raises(MalformedKey):
        Verifier.parse(vkey)


def test_open_verifies_known_keys_and_keeps_unknown_signatures_aside() -> None:
    msg = (GO["text"] + "\n" + GO["signature_lines"]["PeterNeumann"] + GO["signature_lines"]["EnochRoot"]).encode()
    opened = note.open_note(msg, [PETER])
    assert opened.text == GO["text"]
    assert [v for v, _ in opened.verified] == [PETER]
    assert [s.name for s in opened.unverified] == ["EnochRoot"]
    both = note.open_note(msg, [PETER, ENOCH])
    assert [v for v, _ in both.verified] == [PETER, ENOCH] and both.unverified == ()


def test_a_note_signed_only_by_unknown_keys_is_unverified() -> None:
    msg = (GO["text"] + "\n" + GO["signature_lines"]["EnochRoot"]).encode()
    with pytest.raises(UnverifiedNote, match="no verifiable signature"):
        note.open_note(msg, [PETER])
    # A key that shares the name but not the ID (or the ID but not the name) is unknown too.
    impostor = Verifier("EnochRoot", 1, Ed25519PrivateKey.generate().public_key().public_bytes_raw())
    with pytest.raises(UnverifiedNote):
        note.open_note(msg, [impostor])
    other_id = SIGNED.replace("— PeterNeumann x08g", "— PeterNeumann xxxx").encode()  # Go's wrongHash
    with pytest.raises(UnverifiedNote):
        note.open_note(other_id, [PETER])


def test_a_bad_signature_from_a_known_key_refuses_the_whole_note() -> None:
    entry = GO["invalid_signature"]
    with pytest.raises(InvalidSignature, match=re.escape(entry["error"])):
        note.open_note(entry["note"].encode(), [PETER])


@pytest.mark.parametrize("entry", GO["malformed"], ids=lambda e: e["why"])
def test_the_notes_go_refuses_are_refused(entry: dict) -> None:
    with pytest.raises(MalformedNote):
        note.open_note(_note(entry), [PETER])


def test_more_than_a_hundred_signatures_are_refused() -> None:
    with pytest.raises(MalformedNote, match="101 signatures"):
        note.parse(GO["too_many_signatures"]["note"].encode())


def test_two_signatures_from_one_key_are_refused() -> None:
    with pytest.raises(MalformedNote, match="two signatures from key PeterNeumann\\+c74f20a3"):
        note.open_note(GO["duplicates"]["note"].encode(), [PETER])


# --- odd bytes ------------------------------------------------------------------------



@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (SIGNED.replace("\n\n", "\n", 1), "no blank line"),
        (SIGNED.replace("answer", "ans\x00wer"), "control character 0x00"),
        (SIGNED.replace("answer", "ans\rwer"), "control character 0x0d"),
        (SIGNED.replace("answer", "ans\twer"), "control character 0x09"),
        ("x" * 9000 + "\n" + SIGNED, "line 1 is longer than 8192 bytes"),
        (SIGNED.replace("— PeterNeumann", "-- PeterNeumann"), "not a signature line"),
        (SIGNED.replace("— PeterNeumann ", "— PeterNeumann  "), "not standard base64"),
        (SIGNED.replace("AM=\n", "AN=\n"), "not canonical base64"),
        (GO["text"] + "\n— PeterNeumann x08g\n", "shorter than a key ID"),
        (SIGNED + "\n", "no signature"),
        (SIGNED[:-1], "does not end in a newline"),
        ("", "does not end in a newline"),
    ],
)
def test_odd_bytes_are_refused_with_the_reason(msg: str, reason: str) -> None:
    with pytest.raises(MalformedNote, match=reason):
        note.open_note(msg.encode(), [PETER])


def test_a_note_larger_than_the_limit_is_refused_before_it_is_read() -> None:
    with pytest.raises(MalformedNote, match="more than 1048576"):
        note.parse(("y" * 100 + "\n") * 11000 + "\n" + GO["signature_lines"]["PeterNeumann"])


def test_the_text_is_separated_by_the_last_blank_line() -> None:
    parsed = note.parse(C2SP["note_with_blank_line_in_text"].encode())
    assert parsed.text.endswith("\ned è subito sera.\n") and "\n\n" in parsed.text
    assert [s.name for s in parsed.signatures] == ["quasimodo.example/salvatore"]


def test_signing_refuses_text_that_is_not_a_note_text() -> None:
    signer = Signer.parse(GO["signer_key"])
    for text in ["abc", "ab\x00c\n"]:
        with pytest.raises(MalformedNote):
            note.sign(text, signer)


# --- checkpoints -----------------------------------------------------------------------


def test_the_spec_checkpoint_parses_and_formats_back() -> None:
    entry = C2SP["checkpoint"]
    checkpoint = Checkpoint.parse(entry["text"])
    assert (checkpoint.origin, checkpoint.size, checkpoint.extensions) == (entry["origin"], entry["size"], ())
    assert checkpoint.text() == entry["text"]
    with_extension = Checkpoint(checkpoint.origin, 7, checkpoint.root_hash, ("extension 1",))
    assert Checkpoint.parse(with_extension.text()) == with_extension


@pytest.mark.parametrize(
    "text",
    [e["text"] for e in FORMATS["bad_checkpoints"]]
    + [e["text"] for e in FORMATS["checkpoints"] if not e["valid"]]
    + ["Log\n0123\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n", "Log\n18446744073709551616\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"],
)
def test_malformed_checkpoints_are_refused(text: str) -> None:
    with pytest.raises(MalformedCheckpoint):
        Checkpoint.parse(text)


def test_a_checkpoint_counts_only_with_the_logs_own_signature() -> None:
    log = Signer("example.com/log", Ed25519PrivateKey.generate())
    other = Signer("example.com/other", Ed25519PrivateKey.generate())
    checkpoint = Checkpoint("example.com/log", 3, bytes(32))
    signed = note.sign_checkpoint(checkpoint, log)
    assert note.open_checkpoint(signed, log.verifier)[0] == checkpoint
    with pytest.raises(UnverifiedNote, match="not signed by the log's key"):
        note.open_checkpoint(note.sign(checkpoint.text(), other), log.verifier, [other.verifier])


# --- cosignatures ----------------------------------------------------------------------


def test_the_cosigned_message_is_the_one_the_spec_shows() -> None:
    assert note.cosigned_message(C2SP["checkpoint"]["text"], C2SP["cosignature_timestamp"]).decode() == C2SP["cosigned_message"]


def test_cosignature_timestamps_are_read_from_the_published_signatures() -> None:
    spec = note.parse(C2SP["cosigned_checkpoint"].encode()).signatures[1]
    assert spec.name == "witness.example.com/w1" and note.cosignature_timestamp(spec) == C2SP["cosignature_timestamp"]
    for entry in FORMATS["cosignature_timestamps"]:
        raw = base64.b64decode(entry["signature"])
        sig = note.Signature("w", int.from_bytes(raw[:4], "big"), raw[4:])
        if entry["timestamp"] is None:
            with pytest.raises(MalformedNote):
                note.cosignature_timestamp(sig)
        else:
            assert note.cosignature_timestamp(sig) == entry["timestamp"]


def test_a_cosignature_verifies_under_type_0x04_and_covers_timestamp_and_extensions() -> None:
    log = Signer("example.com/log", Ed25519PrivateKey.generate())
    witness = Signer("witness.example/w1", Ed25519PrivateKey.generate(), COSIGNATURE_V1)
    text = Checkpoint("example.com/log", 5, bytes(range(32)), ("extension",)).text()
    line = note.cosignature_lines(text, witness, 1679315147)
    msg = note.add_signature_lines(note.sign(text, log), line)
    opened = note.open_note(msg, [log.verifier, witness.verifier])
    assert note.cosignature_timestamp(opened.signed_by(witness.verifier)) == 1679315147
    # The same key as a plain Ed25519 verifier has another key ID: the cosignature is unknown to it.
    plain = Verifier(witness.name, 1, witness.verifier.public_key)
    assert [s.name for s in note.open_note(msg, [log.verifier, plain]).unverified] == [witness.name]
    for tampered in [msg.replace(b"extension", b"extensioN"), _retime(msg, witness.name, 1679315148)]:
        with pytest.raises(InvalidSignature):
            note.open_note(tampered, [log.verifier, witness.verifier])


def _retime(msg: bytes, name: str, timestamp: int) -> bytes:
    parsed = note.parse(msg)
    sigs = tuple(
        note.Signature(s.name, s.key_id, timestamp.to_bytes(8, "big") + s.signature[8:]) if s.name == name else s
        for s in parsed.signatures
    )
    return note.Note(parsed.text, sigs).encode()


def test_a_witness_line_for_the_same_key_replaces_the_old_one() -> None:
    log = Signer("example.com/log", Ed25519PrivateKey.generate())
    witness = Signer("witness.example/w1", Ed25519PrivateKey.generate(), COSIGNATURE_V1)
    text = Checkpoint("example.com/log", 5, bytes(32)).text()
    once = note.add_signature_lines(note.sign(text, log), note.cosignature_lines(text, witness, 10))
    twice = note.add_signature_lines(once, note.cosignature_lines(text, witness, 20))
    sigs = note.open_note(twice, [log.verifier, witness.verifier]).verified
    assert [note.cosignature_timestamp(s) for v, s in sigs if v == witness.verifier] == [20]
