"""``yishi witness serve`` as a process, over HTTP (C2SP tlog-witness): it cosigns, advances
with a consistency proof, answers 409 with its size to a stale ``old`` and to a fork,
422 to a failing proof, 403/404 to an unknown key or log; it keeps its state across a
SIGKILL, and of concurrent requests from one old size exactly one advances; an auditor
shown a fork sees the split view against what the witness cosigned."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from typer.testing import CliRunner

from tests.support.tlog import FakeLog
from yishi.cli import app as cli
from yishi.embedded import free_port
from yishi.tlog import note
from yishi.tlog.note import COSIGNATURE_V1, Signer
from yishi.witness import core

NAME = "board.test/witness"


class WitnessProcess:
    """A witness process on a free port, with a config naming the logs given."""

    def __init__(self, folder: Path, *logs: FakeLog) -> None:
        key = Ed25519PrivateKey.generate()
        (folder / "witness.pem").write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        self.verifier = Signer(NAME, key, COSIGNATURE_V1).verifier
        entries = "".join(f'[[logs]]\norigin = "{log.origin}"\nkeys = ["{log.signer.verifier.vkey}"]\n' for log in logs)
        self.config = folder / "witness.toml"
        self.config.write_text(f'name = "{NAME}"\nkey_file = "witness.pem"\nstate = "state.sqlite3"\n{entries}')
        self.output = folder / "witness.log"
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        with self.output.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "yishi.cli", "witness", "serve", "--config",
                                          str(self.config), "--port", str(port)], stdout=out, stderr=out)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.output.read_text()
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"the witness did not start: {self.output.read_text()}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


LOGS = {name: FakeLog(f"yishi.test/{name}") for name in ("cosign", "fork", "refuse", "restart", "race", "split")}
"""One log per test, so the tests share one witness process (a start takes seconds)."""


@pytest.fixture(scope="module")
def witness(tmp_path_factory: pytest.TempPathFactory):
    process = WitnessProcess(tmp_path_factory.mktemp("witness"), *LOGS.values())
    process.start()
    yield process
    if process.proc and process.proc.poll() is None:
        process.proc.terminate()
        process.proc.wait(10)


def post(witness: WitnessProcess, body: bytes) -> httpx.Response:
    return httpx.post(f"{witness.url}/add-checkpoint", content=body, timeout=10)


def test_it_cosigns_advances_and_answers_409_with_its_size(witness: WitnessProcess) -> None:
    log = LOGS["cosign"]
    first = post(witness, log.request(0, 5))
    assert first.status_code == 200, first.text
    cosigned = note.add_signature_lines(log.checkpoint(5), first.text)
    assert core.verify_witnessed(cosigned, log.signer.verifier, [witness.verifier], 1).cosigners == (NAME,)

    assert post(witness, log.request(5, 12)).status_code == 200
    stale = post(witness, log.request(5, 13))
    assert (stale.status_code, stale.headers["content-type"], stale.text) == (409, "text/x.tlog.size", "12\n")
    assert post(witness, log.request(12, 13)).status_code == 200

    latest = httpx.get(f"{witness.url}/checkpoint", params={"origin": log.origin}, timeout=10)
    assert note.open_checkpoint(latest.content, log.signer.verifier, [witness.verifier])[0].size == 13


def test_it_refuses_a_fork_and_a_failing_proof(witness: WitnessProcess) -> None:
    log = LOGS["fork"]
    assert post(witness, log.request(0, 6)).status_code == 200
    fork = log.fork()
    same_size = post(witness, fork.request(6, 6))
    assert (same_size.status_code, same_size.text) == (409, "6\n")
    extended = post(witness, fork.request(6, 9))
    assert extended.status_code == 422 and "consistency proof" in extended.json()["detail"]
    # it still follows the honest log
    assert post(witness, log.request(6, 9)).status_code == 200


def test_it_refuses_unknown_logs_keys_and_bodies(witness: WitnessProcess) -> None:
    log = LOGS["refuse"]
    assert post(witness, FakeLog("other.test/log").request(0, 3)).status_code == 404
    assert post(witness, FakeLog(log.origin).request(0, 3)).status_code == 403  # the origin, another key
    assert post(witness, b"old 1\nnonsense").status_code == 400
    assert post(witness, core.format_request(4, [], log.checkpoint(3))).status_code == 400
    assert post(witness, b"old 0\n\n" + b"x" * 70000).status_code == 413


def test_it_keeps_its_state_across_a_kill(witness: WitnessProcess) -> None:
    log = LOGS["restart"]
    assert post(witness, log.request(0, 7)).status_code == 200
    witness.kill()
    witness.start()
    stale = post(witness, log.request(0, 8))
    assert (stale.status_code, stale.text) == (409, "7\n")
    assert post(witness, log.fork().request(7, 7)).status_code == 409
    assert post(witness, log.request(7, 8)).status_code == 200


def test_of_concurrent_requests_from_one_size_exactly_one_advances(witness: WitnessProcess) -> None:
    log = LOGS["race"]
    assert post(witness, log.request(0, 10)).status_code == 200
    bodies = [log.request(10, 10 + n) for n in range(1, 11)]

    async def race() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(*(client.post(f"{witness.url}/add-checkpoint", content=b) for b in bodies))

    answers = asyncio.run(race())
    won = [i for i, a in enumerate(answers) if a.status_code == 200]
    assert len(won) == 1
    size = 10 + won[0] + 1
    assert sorted((a.status_code, a.text) for a in answers if a.status_code != 200) == [(409, f"{size}\n")] * 9
    assert post(witness, log.request(size, 21)).status_code == 200


def test_an_auditor_shown_a_fork_sees_the_split_view_against_the_witness(witness: WitnessProcess, tmp_path: Path) -> None:
    log = LOGS["split"]
    assert post(witness, log.request(0, 6)).status_code == 200
    shown = tmp_path / "shown.checkpoint"
    shown.write_bytes(log.fork().checkpoint(6))  # signed by the log's key, another history
    result = CliRunner().invoke(cli, ["audit", "witnesses", "--checkpoint", str(shown), "--log-key",
                                      log.signer.verifier.vkey, "--witness-url", witness.url])
    assert result.exit_code == 1, result.output
    assert f"SPLIT VIEW {log.origin} size 6" in result.output
    assert str(shown) in result.output and witness.url in result.output
    honest = tmp_path / "honest.checkpoint"
    honest.write_bytes(log.checkpoint(6))
    agreed = CliRunner().invoke(cli, ["audit", "witnesses", "--checkpoint", str(honest), "--log-key",
                                      log.signer.verifier.vkey, "--witness-url", witness.url])
    assert agreed.exit_code == 0, agreed.output
