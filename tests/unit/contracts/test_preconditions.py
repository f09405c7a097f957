"""Every command's preconditions and refusals are documented (contracts/README.md, section
"Commands: preconditions and refusals", generated from services/NAME/preconditions.py), and
each service documents exactly the rejection reasons its rules raise."""

from __future__ import annotations

import ast
from pathlib import Path

from contracts import generate
from contracts.common import RejectionReason
from contracts.preconditions import EVERY_COMMAND, preconditions
from contracts.registry import REGISTRY, Kind
from yishi.names import SERVICES

ROOT = Path(__file__).resolve().parents[3]
COMMON = {reason for reason, _ in EVERY_COMMAND}
BACKGROUND_ONLY = {"notify": {"Delivery"}}
"""Aggregates only background jobs change (notify's delivery worker): their refusals answer
no command."""


def raised(service: str) -> set[RejectionReason]:
    """The reasons ``service``'s own code names (``RejectionReason.X``; ``within_horizon``
    refuses ``invalid_command``), its preconditions left out."""
    found = set()
    for path in (ROOT / "services" / service).rglob("*.py"):  # with a package domain (proposals)
        if path.name == "preconditions.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name in BACKGROUND_ONLY.get(service, ()):
                tree.body.remove(node)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id == "RejectionReason":
                found.add(RejectionReason[node.attr])
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "within_horizon":
                found.add(RejectionReason.INVALID_COMMAND)
    return found


def test_every_command_has_its_preconditions_in_its_own_service():
    for service in SERVICES:
        commands = {s.name for s in REGISTRY.values() if s.kind is Kind.COMMAND and s.service == service}
        documented = preconditions(service)
        assert set(documented) == commands, (
            f"services/{service}/preconditions.py: missing {sorted(commands - set(documented))}, "
            f"not commands of {service} {sorted(set(documented) - commands)}")
        for name, refusals in documented.items():
            assert refusals, f"{name}: no refusal documented"
            for reason, when in refusals:
                assert isinstance(reason, RejectionReason) and when.strip(), (name, reason, when)
            reasons = [reason for reason, _ in refusals]
            assert len(reasons) == len(set(reasons)), f"{name}: one row per reason"


def test_each_service_documents_the_reasons_its_rules_raise():
    for service in SERVICES:
        documented = {reason for refusals in preconditions(service).values() for reason, _ in refusals}
        code = raised(service)
        assert code - COMMON <= documented, f"{service} raises {sorted(code - COMMON - documented)}, undocumented"
        assert documented - COMMON <= code, f"{service} documents {sorted(documented - COMMON - code)}, never raised"


def test_the_section_is_generated_in_the_readme():
    readme = (ROOT / "contracts" / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Commands: preconditions and refusals\n", 1)[1].split("\n## ", 1)[0]
    assert "<!-- BEGIN GENERATED: preconditions -->" in section and "<!-- END GENERATED: preconditions -->" in section
    assert generate.readme(readme) == readme, "stale: run `python -m contracts.generate`"
    assert "| `RequestVote` (proposals) |" in section and "the motion has not been presented" in section
