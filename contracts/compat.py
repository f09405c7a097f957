"""Fail on breaking changes to committed schemas.

    python -m contracts.compat [--base REF]   # exit 1 and list problems; REF defaults to HEAD

Each ``contracts/schemas/<Type>/v<N>.json`` in the work tree is compared with the same
file at ``REF`` (``git show REF:path``). A version must keep accepting every message it
accepted at ``REF``: new code replays old events and serves old senders. A file that is
new at ``REF`` has nothing to compare with; a file that is gone is a break. Every
version above 1 of a committed schema needs an upcaster from the version below.

The verdict is jsoncompat's *deserializer* check (is every document valid under the old
schema valid under the new one?) on both schemas closed to unknown fields. Closing is
what makes the check mean "the declared fields": on open schemas jsoncompat rightly
notes that the old schema already allowed any extra field with any type, so an additive
optional field would count as breaking and a removed field as harmless. Closed, removed,
retyped and newly required fields and narrowed enums or constraints break; additive
optional fields do not.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsoncompat

from contracts.registry import REGISTRY

SCHEMAS_DIR = "contracts/schemas"


class GitError(RuntimeError):
    """The base revision or the repository could not be read."""


@dataclass(frozen=True)
class Problem:
    """One breaking change, by committed schema path."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def closed(schema: Any) -> Any:
    """``schema`` with every object that declares properties closed to other properties."""
    if isinstance(schema, list):
        return [closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: closed(value) for key, value in schema.items()}
    if "properties" in result and "additionalProperties" not in result:
        result["additionalProperties"] = False
    return result


def is_compatible(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether every message valid under ``old`` (its declared fields only) is valid under ``new``."""
    return jsoncompat.check_compat(json.dumps(closed(old)), json.dumps(closed(new)), "deserializer")


def describe(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What changed between two versions of a schema, field by field, to explain a verdict."""
    notes = []
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    old_req, new_req = set(old.get("required", ())), set(new.get("required", ()))
    notes += [f"removed field {name!r}" for name in old_props if name not in new_props]
    kept = [name for name in old_props if name in new_props]
    notes += [f"changed field {name!r}" for name in kept if old_props[name] != new_props[name]]
    notes += [f"new required field {name!r}" for name in new_props if name not in old_props and name in new_req]
    notes += [f"field {name!r} became required" for name in sorted(new_req & (old_props.keys() - old_req))]
    old_defs, new_defs = old.get("$defs", {}), new.get("$defs", {})
    notes += [f"changed definition {name!r}" for name in old_defs if old_defs[name] != new_defs.get(name)]
    return notes


def _git(repo: Path, *args: str, stdin: bytes | None = None) -> bytes:
    done = subprocess.run(["git", "-C", str(repo), *args], input=stdin, capture_output=True, check=False)
    if done.returncode != 0:
        raise GitError(f"git {' '.join(args)}: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def base_schemas(repo: Path, base: str) -> dict[str, dict[str, Any]]:
    """Every committed schema at revision ``base``, by repository-relative path."""
    try:
        commit = _git(repo, "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}").decode().strip()
    except GitError:
        raise GitError(f"{base!r} is not a commit in {repo}") from None
    listing = _git(repo, "ls-tree", "-r", "-z", "--name-only", commit, "--", SCHEMAS_DIR).decode()
    paths = [p for p in listing.split("\0") if p.endswith(".json")]
    # One `git cat-file --batch` for all files instead of one `git show` each.
    out = _git(repo, "cat-file", "--batch", stdin="".join(f"{commit}:{p}\n" for p in paths).encode())
    schemas, offset = {}, 0
    for path in paths:
        header_end = out.index(b"\n", offset)
        size = int(out[offset:header_end].split()[2])
        schemas[path] = json.loads(out[header_end + 1 : header_end + 1 + size])
        offset = header_end + 1 + size + 1  # the content is followed by a newline
    return schemas


def _upcaster_problems(repo: Path) -> list[Problem]:
    problems = []
    for file in sorted((repo / SCHEMAS_DIR).glob("*/*.json")):
        path = file.relative_to(repo).as_posix()
        if not (named := re.fullmatch(r"v([1-9][0-9]*)", file.stem)):
            problems.append(Problem(path, "not a schema file name: expected <Type>/v<N>.json"))
            continue
        type_name, version = file.parent.name, int(named[1])
        spec = REGISTRY.get(type_name)
        if spec is None or version not in spec.versions:
            problems.append(Problem(path, f"no {type_name} v{version} in contracts/registry.py"))
        elif version > 1 and version - 1 not in spec.upcasters:
            problems.append(Problem(path, f"no upcaster from v{version - 1} to v{version} is registered"))
    return problems


def check(repo: Path, base: str = "HEAD") -> list[Problem]:
    """Breaking changes in ``repo``'s work tree relative to revision ``base``; empty if none."""
    problems = _upcaster_problems(repo)
    for path, old in base_schemas(repo, base).items():
        file = repo / path
        if not file.is_file():
            problems.append(Problem(path, f"removed, but messages of this version exist since {base}"))
            continue
        new = json.loads(file.read_text(encoding="utf-8"))
        if not is_compatible(old, new):
            changes = "; ".join(describe(old, new)) or "a constraint was tightened"
            problems.append(Problem(
                path,
                f"breaking change since {base} ({changes}); keep this version as it was and add the next "
                "version with an upcaster",
            ))
    return problems


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m contracts.compat", description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="HEAD", help="git revision to compare with (default HEAD)")
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parent.parent, help="repository root")
    args = parser.parse_args(argv)
    try:
        problems = check(args.repo, args.base)
    except GitError as exc:
        print(f"cannot compare: {exc}", file=sys.stderr)
        return 2
    for problem in problems:
        print(problem)
    if not problems:
        print(f"contracts compatible with {args.base}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
