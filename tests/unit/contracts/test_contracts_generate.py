"""The committed artefacts are what the models generate, and ``--check`` notices when not."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from contracts import generate, registry
from contracts.generate import ASYNCAPI, CONTRACTS_DIR, README, SCHEMAS, schema_path
from yishi.names import SERVICES, commands_topic, events_topic, replies_topic


@pytest.fixture
def copy(tmp_path):
    """The committed artefacts in a scratch directory."""
    shutil.copytree(CONTRACTS_DIR / SCHEMAS, tmp_path / SCHEMAS)
    for name in (ASYNCAPI, README):
        shutil.copy(CONTRACTS_DIR / name, tmp_path / name)
    return tmp_path


def test_committed_artefacts_are_up_to_date():
    assert generate.differences() == []


def test_check_lists_stale_missing_and_leftover_files_and_write_fixes_them(copy, capsys):
    stale = copy / schema_path("VoteClosed", 1)
    stale.write_text(stale.read_text().replace('"quorum_met"', '"quorum"'))
    (copy / schema_path("CastBallot", 1)).unlink()
    (copy / SCHEMAS / "Gone").mkdir()
    (copy / SCHEMAS / "Gone" / "v1.json").write_text("{}")
    readme = copy / README
    readme.write_text(readme.read_text().replace("ResolutionClosed", "ResolutionShut"))

    assert generate.main(["--check", "--dir", str(copy)]) == 1
    printed = capsys.readouterr().out.splitlines()
    assert printed == [
        f"stale: contracts/{path}"
        for path in sorted([README, schema_path("CastBallot", 1), "schemas/Gone/v1.json", schema_path("VoteClosed", 1)])
    ]
    assert generate.main(["--dir", str(copy)]) == 0
    assert generate.differences(copy) == []
    assert not (copy / SCHEMAS / "Gone" / "v1.json").exists()


def test_readme_without_markers_is_an_error(copy):
    (copy / README).write_text("# no generated sections\n")
    with pytest.raises(ValueError, match="markers"):
        generate.artefacts(copy)


def test_schemas_carry_the_registry_facts():
    schema = json.loads((CONTRACTS_DIR / schema_path("FundsAllocated", 1)).read_text())
    assert schema["title"] == "FundsAllocated"
    assert schema["x-yishi"] == {"type": "FundsAllocated", "version": 1, "kind": "event", "service": "oversight"}
    assert "amount_yuan" in schema["properties"]
    command = json.loads((CONTRACTS_DIR / schema_path("CastBallot", 1)).read_text())
    assert command["additionalProperties"] is False  # commands are strict
    assert "additionalProperties" not in json.loads((CONTRACTS_DIR / schema_path("VoteClosed", 1)).read_text())


def test_asyncapi_has_every_channel_and_message():
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml, when present, reads it 10x faster
    doc = yaml.load((CONTRACTS_DIR / ASYNCAPI).read_text(encoding="utf-8"), Loader=loader)
    assert doc["asyncapi"] == "3.0.0"
    addresses = {channel["address"].replace("{district}", "gulou") for channel in doc["channels"].values()}
    assert addresses == {
        make("gulou", service) for service in SERVICES for make in (events_topic, commands_topic, replies_topic)
    }
    messages = doc["components"]["messages"]
    assert set(messages) == {f"{s.name}.v{v}" for s in registry.REGISTRY.values() for v in s.versions}
    assert messages["FundsAllocated.v2"]["payload"] == {"$ref": "#/components/schemas/FundsAllocated"}
    assert doc["operations"]["voting.consume.proposals"]["messages"] == [
        {"$ref": "#/channels/proposalsEvents/messages/VoteRequested.v1"}
    ]
    headers = doc["components"]["schemas"]["CloudEventHeaders"]
    assert {"ce_type", "ce_district", "ce_correlationid", "ce_schemaversion"} <= set(headers["required"])
