"""The new ids of every command (``NewId``) are the ones contracts/README.md lists under
"New ids", service by service, and the one derived id is derived as documented."""

from __future__ import annotations

import re
from pathlib import Path

from contracts.common import new_id_fields
from contracts.oversight import RegisterResolution
from contracts.registry import REGISTRY, Kind
from yishi.ids import SequentialIds, choose_ids

README = Path(__file__).resolve().parents[3] / "contracts" / "README.md"


def documented() -> dict[str, set[tuple[str, str]]]:
    """``{service: {(command, field)}}`` from the table of README's "New ids"."""
    section = README.read_text(encoding="utf-8").split("### New ids", 1)[1].split("\n## ", 1)[0]
    table: dict[str, set[tuple[str, str]]] = {}
    for service, cell in re.findall(r"^\| (\w+) \| (.+) \|$", section, re.M):
        if service == "service":
            continue
        for part in cell.split("; "):
            commands, field = re.match(r"(.+?): `(\w+)`", part).groups()
            table.setdefault(service, set()).update((c, field) for c in re.findall(r"`(\w+)`", commands))
    return table


def test_every_new_id_is_listed_in_the_readme_under_its_service():
    declared: dict[str, set[tuple[str, str]]] = {}
    for spec in REGISTRY.values():
        if spec.kind is Kind.COMMAND:
            for field in new_id_fields(spec.versions[max(spec.versions)]):
                declared.setdefault(spec.service, set()).add((spec.name, field))
    assert documented() == declared
    assert {"voting", "oversight", "notify", "proposals"} <= set(declared)


def test_a_registered_resolution_left_without_its_id_is_named_after_its_proposal():
    command = RegisterResolution.model_validate({
        "district": "gulou", "actor": {"id": "worker-1", "role": "community_worker"}, "proposal_id": "p-17",
        "council_id": "c-1", "title": "增设座椅", "text": "在花园增设座椅。"})
    filled, chosen = choose_ids(command, "identity", SequentialIds())
    assert chosen == {"resolution_id": "res-p-17"} and filled.resolution_id == "res-p-17"
    mine = command.model_copy(update={"resolution_id": "r-mine"})
    assert choose_ids(mine, "identity", SequentialIds()) == (mine, {})
