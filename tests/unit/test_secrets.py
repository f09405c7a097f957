"""No secret in the repository: every tracked file is scanned for private keys and
well-known token formats, and code outside the tests and the docs for credentials
written as literals (``password = "..."``, ``scheme://user:pass@host``).

Tests may hold throw-away credentials for the test servers, and the docs show
placeholders; a private key or a real token format is refused everywhere.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

ANYWHERE = {
    "private key": re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"),
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\b(?:gh[pousr]|github_pat)_[A-Za-z0-9_]{30,}\b"),
    "Slack token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    "JSON web token": re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
}
IN_CODE = {
    # A literal value; "$(...)", "${VAR}" and "<placeholder>" are references, not secrets.
    "credential literal": re.compile(
        r"(?i)(?<![a-z0-9])(?:password|passwd|pwd|secret_key|client_secret|api_?key|access_key|auth_token|private_key)"
        r"""["']?\s*[:=]\s*["'](?![$<{])[^"'\s]{4,}["']"""),
    "credentials in a URL": re.compile(r"""\b[a-z][a-z0-9+.-]*://[^/\s:@"'$<{]+:[^/\s@"'$<{]+@"""),
}


def tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / name for name in out.decode().split("\0") if name]


def is_code(path: Path) -> bool:
    """Code and configuration, as opposed to tests and prose."""
    relative = path.relative_to(ROOT)
    return relative.parts[0] != "tests" and path.suffix != ".md"


def findings(path: Path, text: str) -> list[str]:
    """``path:line: what`` for each suspected secret in ``text``."""
    rules = {**ANYWHERE, **(IN_CODE if is_code(path) else {})}
    return [f"{path.relative_to(ROOT)}:{number}: {what}"
            for number, line in enumerate(text.splitlines(), 1)
            for what, pattern in rules.items() if pattern.search(line)]


def test_no_secret_in_tracked_files():
    files = tracked_files()
    assert len(files) > 100  # the scan reads the repository, not an empty list
    found = [hit for path in files if path.is_file()
             for hit in findings(path, path.read_text(encoding="utf-8", errors="replace"))]
    assert not found, "possible secrets in tracked files:\n" + "\n".join(found)


# Assembled at run time so that this file does not hold what it looks for.
KEY_HEADER = "-----BEGIN " + "RSA PRIVATE KEY-----"


@pytest.mark.parametrize("line", [
    KEY_HEADER,
    "-----BEGIN " + "OPENSSH PRIVATE KEY-----",
    "aws_key = " + "AKIA" + "ABCDEFGHIJKLMNOP",
    "token: " + "ghp_" + "a" * 36,
    'password = "' + 'hunter22"',
    "DATABASE_PASSWORD: '" + "kR7v9q'",
    '{"api_key": "' + 'sk-live-123456"}',
    "url = 'postgresql://app:" + "tops3cret@db:5432/app'",
])
def test_secrets_are_found_in_code(line):
    assert findings(ROOT / "yishi" / "example.py", line)


@pytest.mark.parametrize("line", [
    'password = os.environ["YISHI_KAFKA_SASL_PASSWORD"]',
    '--from-literal=password="$(openssl rand -hex 24)"',
    'password: "${DB_PASSWORD}"',
    "secretName: yishi-pg-ca",
    'SECRET = "secret"  # a ballot secrecy level',
    "YISHI_DATABASE_URL=postgresql://db:5432/yishi",
])
def test_references_and_names_are_not_secrets(line):
    assert not findings(ROOT / "yishi" / "example.py", line)


def test_tests_and_docs_may_hold_placeholder_credentials_but_no_keys():
    placeholder = "postgresql://user:" + "pass@db:5432/yishi"
    assert not findings(ROOT / "README.md", placeholder)
    assert not findings(ROOT / "tests" / "unit" / "example.py", 'kafka_sasl_password="s3cret"')
    assert findings(ROOT / "tests" / "unit" / "example.py", KEY_HEADER)


def test_no_token_or_password_reaches_a_log_line(capsys):
    """Whatever code logs (a header, a settings dump, an exception message), the log line
    carries neither the bearer token nor a password."""
    import logging

    import structlog

    from tests.support.auth import issuer
    from yishi.logging import configure_logging

    token = issuer().mint("w-1", "gulou", ["resident"])
    configure_logging("INFO", json_lines=True)
    log = structlog.get_logger("test.secrets")
    log.info("request", authorization=f"Bearer {token}", kafka_sasl_password="hunter22", path="/gulou/x")
    log.info(f"a message that quotes the token {token} by mistake")
    logging.getLogger("yishi.test.stdlib").warning("stdlib logger with %s", token)
    try:
        raise ValueError(f"bad token {token}")
    except ValueError:
        log.exception("failed")
    err = capsys.readouterr().err
    assert err.count("[redacted]") >= 5, err
    assert token not in err and token.split(".")[1] not in err
    assert "hunter22" not in err
    assert "/gulou/x" in err  # the rest of the line is kept
