"""``yishi witness keygen`` and ``yishi witness evidence``: a key a config can name, and the
forks the witness refused listed with the log's signed request kept."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tests.support.tlog import FakeLog
from yishi.cli import app as cli
from yishi.cli_support import UserError
from yishi.tlog.note import COSIGNATURE_V1, Verifier
from yishi.witness import core
from yishi.witness.server import Witness, WitnessConfig


def test_keygen_writes_a_private_key_and_prints_its_cosignature_key(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["witness", "keygen", "--name", "board.test/w", "--out", str(tmp_path / "w.pem")])
    assert result.exit_code == 0, result.output
    verifier = Verifier.parse(result.output.strip())
    assert (verifier.name, verifier.signature_type) == ("board.test/w", COSIGNATURE_V1)
    assert (tmp_path / "w.pem").stat().st_mode & 0o777 == 0o600
    again = CliRunner().invoke(cli, ["witness", "keygen", "--name", "board.test/w", "--out", str(tmp_path / "w.pem")])
    assert isinstance(again.exception, UserError) and again.exception.code == 2  # main() prints it as one line
    assert "exists: not overwriting a key" in str(again.exception)


def test_evidence_lists_the_forks_refused(tmp_path: Path) -> None:
    log = FakeLog("yishi.test/voting")
    CliRunner().invoke(cli, ["witness", "keygen", "--name", "board.test/w", "--out", str(tmp_path / "w.pem")])
    config = tmp_path / "witness.toml"
    config.write_text(f'name = "board.test/w"\nkey_file = "w.pem"\n[[logs]]\norigin = "{log.origin}"\n'
                      f'keys = ["{log.signer.verifier.vkey}"]\n')
    witness = Witness(WitnessConfig.load(config))
    witness.add_checkpoint(log.request(0, 4))
    for body in (log.fork().request(4, 4), log.fork().request(4, 6)):
        try:
            witness.add_checkpoint(body)
        except core.Refusal:
            pass
    result = CliRunner().invoke(cli, ["witness", "evidence", "--config", str(config), "--out", str(tmp_path / "kept")])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0] == f"{log.origin} size 4: a fork: size 4 was cosigned with another root hash"
    assert lines[1].startswith(f"{log.origin} size 6: the consistency proof from 4 to 6 fails")
    assert (tmp_path / "kept" / "evidence-2.txt").read_bytes() == log.fork().request(4, 6)
