"""YISHI_WITNESS_URLS: ``URL VKEY`` pairs, a mistake refused with its reason at start."""

from __future__ import annotations

import pytest

from tests.support.tlog import FakeLog, witness_signer
from yishi.witness.submit import parse_witness_urls


def test_url_and_key_pairs_are_read() -> None:
    board, stats = witness_signer("board.test/w"), witness_signer("stats.test/w")
    value = f" https://board.test/witness/ {board.verifier.vkey}, http://stats.test {stats.verifier.vkey},"
    endpoints = parse_witness_urls(value)
    assert [(e.url, e.verifier) for e in endpoints] == [("https://board.test/witness", board.verifier),
                                                         ("http://stats.test", stats.verifier)]
    assert parse_witness_urls(None) == parse_witness_urls("") == []


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("https://board.test", "is not 'URL VKEY'"),
        ("board.test " + witness_signer().verifier.vkey, "is not 'URL VKEY'"),
        ("https://board.test board+00000000+BAAA", "verifier key|key ID|32 bytes"),
        ("https://board.test " + FakeLog().signer.verifier.vkey, "cosignature/v1"),
    ],
)
def test_mistakes_are_refused(value: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_witness_urls(value)
