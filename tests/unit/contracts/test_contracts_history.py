"""CI's compatibility gate: the committed schemas break no earlier committed version.

Comparing with every commit that touched the schemas (not only the previous one)
catches a field added in one commit and removed in a later one.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from contracts.compat import check

REPO = Path(__file__).resolve().parents[3]


def schema_commits() -> list[str]:
    try:
        out = subprocess.run(["git", "rev-list", "HEAD", "--", "contracts/schemas"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout
    except (subprocess.CalledProcessError, FileNotFoundError):
        return []
    return out.split()


def test_repository_history_is_available():
    assert (REPO / ".git").exists(), "the compatibility gate needs the git history"


@pytest.mark.parametrize("commit", schema_commits() or ["HEAD"])
def test_schemas_stay_compatible_with(commit):
    problems = check(REPO, commit)
    assert not problems, "\n".join(map(str, problems))
