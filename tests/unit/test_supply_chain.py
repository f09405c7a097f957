"""Supply chain: what ./dev installs is exactly what was locked, and nothing locked has a
known vulnerability.

pyproject.toml pins every dependency with ``==``; requirements.lock (scripts/lock) pins
those and everything they pull in, each with the sha256 hashes pip must verify
(./dev installs with ``--require-hashes``). These tests keep the three in step:
pyproject's pins, the lock, and the environment the tests run in. The vulnerability check
is scripts/audit's, against the advisories stored in security/advisories.json, so it runs
without the network; the matcher is tested on a real advisory to show it can fail.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
import tomllib
from importlib.machinery import SourceFileLoader
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCK_TEXT = (ROOT / "requirements.lock").read_text()


def _load_audit():
    loader = SourceFileLoader("yishi_scripts_audit", str(ROOT / "scripts" / "audit"))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


audit = _load_audit()
LOCK = audit.read_lock(LOCK_TEXT)


def declared() -> list[Requirement]:
    project = PYPROJECT["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]


def test_pyproject_pins_every_dependency_exactly():
    loose = [str(r) for r in declared()
             if len(r.specifier) != 1 or next(iter(r.specifier)).operator != "=="
             or "*" in next(iter(r.specifier)).version]
    assert not loose, f"not pinned with an exact ==X.Y.Z in pyproject.toml: {loose}"


def test_every_locked_package_carries_hashes():
    # Entries are "name==version \" followed by "--hash=sha256:..." continuation lines.
    entries = re.split(r"\n(?=\S)", "\n".join(
        line for line in LOCK_TEXT.splitlines() if line.strip() and not line.lstrip().startswith("#")))
    assert len(entries) == len(LOCK) > 0, "a lock line that is not a name==version pin"
    unhashed = [e.split()[0] for e in entries if not re.search(r"--hash=sha256:[0-9a-f]{64}\b", e)]
    assert not unhashed, f"requirements.lock entries without a sha256 hash: {unhashed}"


def test_lock_agrees_with_pyproject():
    wrong = {str(r): LOCK.get(canonicalize_name(r.name)) for r in declared()
             if LOCK.get(canonicalize_name(r.name)) != next(iter(r.specifier)).version}
    assert not wrong, f"requirements.lock disagrees with pyproject.toml (run scripts/lock): {wrong}"
    # ./dev builds the project without build isolation, from the locked build backend.
    for build in map(Requirement, PYPROJECT["build-system"]["requires"]):
        locked = LOCK.get(canonicalize_name(build.name))
        assert locked and build.specifier.contains(locked), f"build requirement {build} not locked: {locked}"


def test_installed_environment_matches_lock():
    def installed(name: str) -> str | None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    drift = {f"{name}=={version}": installed(name) for name, version in LOCK.items()
             if installed(name) != version}
    assert not drift, f"installed versions differ from requirements.lock (./dev reinstalls): {drift}"


def test_no_known_vulnerabilities():
    data = json.loads((ROOT / "security" / "advisories.json").read_text())
    hits, stale, _uncovered = audit.check(data, LOCK)
    assert not stale, f"no data in security/advisories.json for (run scripts/audit --refresh): {stale}"
    assert not hits, "locked releases with known vulnerabilities:\n" + "\n".join(hits)


# A real advisory (Jinja2 sandbox escape through str.format_map, fixed in 2.10.1), as the
# PyPA advisory database publishes it, trimmed to what matching reads.
PYSEC_2019_217 = {
    "id": "PYSEC-2019-217",
    "aliases": ["CVE-2019-10906", "GHSA-462w-v97r-4m45"],
    "details": "In Pallets Jinja before 2.10.1, str.format_map allows a sandbox escape.",
    "affected": [{
        "package": {"name": "jinja2", "ecosystem": "PyPI"},
        "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.10.1"}]}],
        "versions": ["2.9.6", "2.10"],
    }],
}


def test_matcher_flags_a_known_vulnerable_pin():
    pins = audit.read_lock("Jinja2==2.10 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    hits = audit.findings(pins, {"jinja2": [PYSEC_2019_217]}, ignored={})
    assert len(hits) == 1 and hits[0].startswith("jinja2==2.10: PYSEC-2019-217 (CVE-2019-10906")
    assert "fixed in 2.10.1" in hits[0]
    assert audit.findings({"jinja2": "2.10.1"}, {"jinja2": [PYSEC_2019_217]}, ignored={}) == []
    # An ignore entry, by id or alias, silences it: that is the only way past a hit.
    assert audit.findings(pins, {"jinja2": [PYSEC_2019_217]}, ignored={"CVE-2019-10906": "why"}) == []


RANGES = [{"introduced": "1.2"}, {"fixed": "1.4"}, {"introduced": "2.0"}, {"last_affected": "2.1.3"}]


@pytest.mark.parametrize(("version", "affected"), [
    ("1.1", False), ("1.2", True), ("1.3.9", True), ("1.4", False), ("1.9", False),
    ("2.0", True), ("2.1.3", True), ("2.1.4", False), ("0.5", True),  # 0.5: listed in versions
    ("1.4.0", False), ("2.0rc1", False),
])
def test_osv_range_semantics(version, affected):
    record = {"id": "TEST-1", "affected": [{
        "package": {"name": "Some_Package", "ecosystem": "PyPI"},
        "ranges": [{"type": "ECOSYSTEM", "events": RANGES}, {"type": "GIT", "events": [{"introduced": "0"}]}],
        "versions": ["0.5"],
    }]}
    assert audit.affects(record, "some-package", version) is affected
    assert not audit.affects(record, "other-package", version)
    assert not audit.affects({**record, "withdrawn": "2024-01-01T00:00:00Z"}, "some-package", version)
