"""The compatibility check rejects breaking schema changes and accepts additive ones.

Each test commits the current schemas to a scratch git repository, edits the work
tree copy the way a careless change would, and runs the check against ``HEAD``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from contracts import compat
from contracts.generate import CONTRACTS_DIR, SCHEMAS

RAISED = Path(compat.SCHEMAS_DIR) / "ProposalRaised" / "v1.json"


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "commit.gpgsign=false",
         "-C", str(repo), *args],
        check=True, capture_output=True,
    )


@pytest.fixture(scope="module")
def committed(tmp_path_factory):
    """A repository whose HEAD holds some of the committed schemas, one with two versions."""
    root = tmp_path_factory.mktemp("repo")
    for name in ("ProposalRaised", "FundsAllocated", "CastBallot"):
        shutil.copytree(CONTRACTS_DIR / SCHEMAS / name, root / compat.SCHEMAS_DIR / name)
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "schemas")
    return root


@pytest.fixture
def repo(committed):
    """The repository with its work tree reset to HEAD."""
    git(committed, "checkout", "-q", "--", ".")
    git(committed, "clean", "-fdq")
    return committed


def edit(repo: Path, path: Path, change) -> None:
    schema = json.loads((repo / path).read_text())
    change(schema)
    (repo / path).write_text(json.dumps(schema))


def problems(repo: Path) -> list[str]:
    return [str(p) for p in compat.check(repo)]


def test_unchanged_schemas_pass(repo):
    assert problems(repo) == []


def test_an_additive_optional_field_passes(repo):
    edit(repo, RAISED, lambda s: s["properties"].update(urgency={"type": "string", "default": "normal"}))
    assert problems(repo) == []


def test_a_removed_field_breaks(repo):
    def remove_summary(schema):
        del schema["properties"]["summary"]
        schema["required"].remove("summary")

    edit(repo, RAISED, remove_summary)
    assert problems(repo) == [
        f"{RAISED.as_posix()}: breaking change since HEAD (removed field 'summary'); "
        "keep this version as it was and add the next version with an upcaster"
    ]


def test_a_removed_optional_field_breaks(repo):
    edit(repo, RAISED, lambda s: s["properties"].pop("catalogue_item_id"))
    assert "removed field 'catalogue_item_id'" in problems(repo)[0]


def test_a_newly_required_field_breaks(repo):
    def require_urgency(schema):
        schema["properties"]["urgency"] = {"type": "string"}
        schema["required"].append("urgency")

    edit(repo, RAISED, require_urgency)
    assert "new required field 'urgency'" in problems(repo)[0]


def test_an_optional_field_made_required_breaks(repo):
    edit(repo, RAISED, lambda s: s["required"].append("catalogue_item_id"))
    assert "field 'catalogue_item_id' became required" in problems(repo)[0]


def test_a_retyped_field_breaks(repo):
    edit(repo, RAISED, lambda s: s["properties"].update(title={"type": "integer"}))
    assert "changed field 'title'" in problems(repo)[0]


def test_a_narrowed_enum_breaks(repo):
    edit(repo, RAISED, lambda s: s["$defs"]["Role"]["enum"].remove("official"))
    assert "changed definition 'Role'" in problems(repo)[0]


def test_a_widened_enum_passes(repo):
    edit(repo, RAISED, lambda s: s["$defs"]["Role"]["enum"].append("volunteer"))
    assert problems(repo) == []


def test_a_removed_schema_breaks(repo):
    (repo / RAISED).unlink()
    assert problems(repo) == [f"{RAISED.as_posix()}: removed, but messages of this version exist since HEAD"]


def test_a_new_version_needs_a_registered_upcaster(repo):
    v2 = RAISED.with_name("v2.json")
    shutil.copy(repo / RAISED, repo / v2)
    assert problems(repo) == [f"{v2.as_posix()}: no ProposalRaised v2 in contracts/registry.py"]


def test_cli_exit_codes(repo, capsys):
    assert compat.main(["--repo", str(repo)]) == 0
    assert compat.main(["--repo", str(repo), "--base", "no-such-ref"]) == 2
    edit(repo, RAISED, lambda s: s["properties"].update(title={"type": "integer"}))
    assert compat.main(["--repo", str(repo)]) == 1
    assert "ProposalRaised/v1.json: breaking change" in capsys.readouterr().out


def test_closing_only_touches_objects_that_declare_fields():
    schema = {"type": "object", "properties": {"a": {"type": "object", "additionalProperties": {"type": "integer"}}}}
    assert compat.closed(schema) == {
        "type": "object", "additionalProperties": False,
        "properties": {"a": {"type": "object", "additionalProperties": {"type": "integer"}}},
    }
