"""Regenerate the committed artefacts from the models.

    python -m contracts.generate          # rewrite what differs
    python -m contracts.generate --check  # exit 1 and list what differs (CI)

Artefacts, all under ``contracts/``: ``schemas/<Type>/v<N>.json`` (JSON Schema 2020-12
per type and version), ``asyncapi.yaml`` (AsyncAPI 3.0, every channel and message) and
the generated sections of ``README.md`` (permissions, preconditions and refusals, type
catalogue and worked example). The
AsyncAPI document is built from the registry rather than by faststream, whose generator
needs live subscribers; building it here keeps it complete and byte-for-byte stable.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic.json_schema import models_json_schema

from contracts.common import DISTRICT_PATTERN
from contracts.examples import worked_example
from contracts.registry import REGISTRY, Kind, TypeSpec
from yishi.names import READERS, SERVICES

CONTRACTS_DIR = Path(__file__).resolve().parent
SCHEMAS = "schemas"
ASYNCAPI = "asyncapi.yaml"
README = "README.md"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

# (header, JSON Schema, description); the order is the order Envelope.to_kafka writes.
CLOUDEVENT_HEADERS: tuple[tuple[str, dict[str, Any], str], ...] = (
    ("ce_specversion", {"const": "1.0"}, "CloudEvents version."),
    ("ce_id", {"type": "string", "minLength": 1}, "Unique per message; consumers de-duplicate on it."),
    ("ce_source", {"type": "string", "minLength": 1},
     "Who sent it: /yishi/{district}/{service} for the platform, the district system's own URI for commands."),
    ("ce_type", {"type": "string"}, "Message type name, e.g. ProposalRaised; see contracts/registry.py."),
    ("ce_subject", {"type": "string"}, "Id of the aggregate the message is about; also the Kafka key."),
    ("ce_time", {"type": "string", "format": "date-time"}, "When it happened (events) or was sent (commands), UTC."),
    ("content-type", {"const": "application/json"}, "The value is a JSON object."),
    ("ce_district", {"type": "string", "pattern": DISTRICT_PATTERN}, "District; equals the body's district."),
    ("ce_correlationid", {"type": "string", "minLength": 1},
     "Chosen by whoever starts an exchange; replies and everything caused carry it on."),
    ("ce_schemaversion", {"type": "string", "pattern": "^[1-9][0-9]*$"}, "Schema version of ce_type."),
    ("ce_causationid", {"type": "string"}, "ce_id of the message that caused this one, if any."),
)
_REQUIRED_HEADERS = [name for name, _, _ in CLOUDEVENT_HEADERS if name != "ce_causationid"]
# Topic suffixes, as in yishi.names: {district}.{service}.<suffix>.
_SUFFIX = {Kind.EVENT: "events", Kind.COMMAND: "commands", Kind.REPLY: "replies"}


def schema_path(type_name: str, version: int) -> str:
    """Path of a committed JSON Schema, relative to ``contracts/``."""
    return f"{SCHEMAS}/{type_name}/v{version}.json"


def json_schema(spec: TypeSpec, version: int) -> dict[str, Any]:
    """The JSON Schema of one version of a type, with the registry's facts about it."""
    generated = spec.versions[version].model_json_schema()
    generated.pop("title", None)  # a historical model's class name is not the type name
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": spec.name,
        "x-yishi": {"type": spec.name, "version": version, "kind": str(spec.kind), "service": spec.service},
        **generated,
    }


def _dump_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def _message_id(spec: TypeSpec, version: int) -> str:
    return f"{spec.name}.v{version}"


def _all_versions() -> Iterator[tuple[TypeSpec, int]]:
    for spec in REGISTRY.values():
        for version in spec.versions:
            yield spec, version


def _channel_id(service: str, kind: Kind) -> str:
    return f"{service}{_SUFFIX[kind].capitalize()}"


def _on_channel(service: str, kind: Kind, message_ids: list[str]) -> dict[str, Any]:
    """An operation's channel and messages (AsyncAPI 3 requires the channel's own message refs)."""
    channel = _channel_id(service, kind)
    return {
        "channel": {"$ref": f"#/channels/{channel}"},
        "messages": [{"$ref": f"#/channels/{channel}/messages/{mid}"} for mid in message_ids],
    }


def asyncapi() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of every per-district channel, message and operation."""
    pairs = list(_all_versions())
    refs, definitions = models_json_schema(
        [(spec.versions[version], "validation") for spec, version in pairs],
        ref_template="#/components/schemas/{model}",
    )
    messages: dict[str, Any] = {}
    for spec, version in pairs:
        model = spec.versions[version]
        doc = inspect.cleandoc(model.__doc__ or "")
        messages[_message_id(spec, version)] = {
            "name": spec.name,
            "title": f"{spec.name} v{version}",
            "summary": doc.splitlines()[0],
            "description": doc,
            "contentType": "application/json",
            "correlationId": {"$ref": "#/components/correlationIds/correlation"},
            "headers": {
                "allOf": [
                    {"$ref": "#/components/schemas/CloudEventHeaders"},
                    {"type": "object", "properties": {
                        "ce_type": {"const": spec.name}, "ce_schemaversion": {"const": str(version)},
                    }},
                ],
            },
            "payload": refs[(model, "validation")],
            "bindings": {"kafka": {"key": {"type": "string", "description": "ce_subject"}, "bindingVersion": "0.5.0"}},
        }

    def ids(service: str, kind: Kind, consumer: str | None = None) -> list[str]:
        owner = None if kind is Kind.REPLY else service  # every service writes the same replies
        return [
            _message_id(s, v) for s, v in pairs
            if s.kind is kind and s.service == owner and (consumer is None or consumer in s.consumers)
        ]

    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for service in SERVICES:
        for kind in Kind:
            channels[_channel_id(service, kind)] = {
                "address": f"{{district}}.{service}.{_SUFFIX[kind]}",
                "title": f"{service} {_SUFFIX[kind]}",
                "parameters": {"district": {"$ref": "#/components/parameters/district"}},
                "messages": {mid: {"$ref": f"#/components/messages/{mid}"} for mid in ids(service, kind)},
            }
        operations[f"{service}.publishEvents"] = {
            "action": "send",
            "summary": f"The {service} service publishes its events, keyed by aggregate id.",
            **_on_channel(service, Kind.EVENT, ids(service, Kind.EVENT)),
        }
        operations[f"{service}.handleCommands"] = {
            "action": "receive",
            "summary": f"The {service} service carries out commands and answers each on its replies topic.",
            **_on_channel(service, Kind.COMMAND, ids(service, Kind.COMMAND)),
            "reply": _on_channel(service, Kind.REPLY, ids(service, Kind.REPLY)),
        }
        for producer in SERVICES:
            if consumed := ids(producer, Kind.EVENT, consumer=service):
                operations[f"{service}.consume.{producer}"] = {
                    "action": "receive",
                    "summary": f"The {service} service reacts to these {producer} events.",
                    **_on_channel(producer, Kind.EVENT, consumed),
                }
    for reader in READERS:  # no channels of its own: it only reads the others' events
        for producer in SERVICES:
            if consumed := ids(producer, Kind.EVENT, consumer=reader):
                operations[f"{reader}.consume.{producer}"] = {
                    "action": "receive",
                    "summary": f"The {reader} service keeps a copy of these {producer} events.",
                    **_on_channel(producer, Kind.EVENT, consumed),
                }

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Yishi integration API",
            "version": "1.0.0",
            "description": (
                "Events, commands and replies of the Yishi deliberation platform, per district and service. "
                "Messages are CloudEvents 1.0 in Kafka binary content mode: attributes in ce_* headers, "
                "the JSON body as value, the aggregate id as key. Generated by `python -m contracts.generate`; "
                "see contracts/README.md."
            ),
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {
            "parameters": {
                "district": {
                    "description": "District slug: 1-40 lowercase letters, digits or hyphens, starting with a letter.",
                    "examples": ["gulou", "chaoyang"],
                    "location": "$message.header#/ce_district",
                },
            },
            "correlationIds": {
                "correlation": {
                    "description": "Matches a command's replies and everything it caused.",
                    "location": "$message.header#/ce_correlationid",
                },
            },
            "schemas": {
                "CloudEventHeaders": {
                    "type": "object",
                    "required": _REQUIRED_HEADERS,
                    "properties": {name: {**schema, "description": text} for name, schema, text in CLOUDEVENT_HEADERS},
                },
                **definitions["$defs"],
            },
            "messages": messages,
        },
    }


def _catalogue() -> str:
    lines = []
    for service in SERVICES:
        lines += [
            f"### {service}", "",
            "| type | kind | versions | topic | also consumed by | meaning |",
            "|---|---|---|---|---|---|",
        ]
        for spec in REGISTRY.values():
            if spec.service != service:
                continue
            where = f"`{{district}}.{service}.{_SUFFIX[spec.kind]}`"
            doc = inspect.cleandoc(spec.model.__doc__ or "").splitlines()[0]
            versions = ", ".join(f"[v{v}]({schema_path(spec.name, v)})" for v in spec.versions)
            lines.append(
                f"| `{spec.name}` | {spec.kind} | {versions} | {where} | {', '.join(sorted(spec.consumers))} | {doc} |"
            )
        lines.append("")
    lines += ["### replies (every service)", "", "| type | versions | topic | meaning |", "|---|---|---|---|"]
    for spec in REGISTRY.values():
        if spec.kind is Kind.REPLY:
            doc = inspect.cleandoc(spec.model.__doc__ or "").splitlines()[0]
            versions = ", ".join(f"[v{v}]({schema_path(spec.name, v)})" for v in spec.versions)
            lines.append(f"| `{spec.name}` | {versions} | `{{district}}.{{service}}.replies` | {doc} |")
    return "\n".join(lines) + "\n"


def _example() -> str:
    blocks = []
    for number, step in enumerate(worked_example(), 1):
        key, headers, value = step.envelope.to_kafka()
        blocks += [
            f"**{number}. {step.caption}** — topic `{step.topic}`, key `{key.decode()}`", "",
            "```text", *(f"{name}: {raw.decode()}" for name, raw in headers), "```", "",
            "```json", json.dumps(json.loads(value), indent=2, ensure_ascii=False), "```", "",
        ]
    return "\n".join(blocks)


def _permissions() -> str:
    from contracts.common import Role
    from contracts.permissions import PERMISSIONS

    def owner(name: str) -> str:
        return REGISTRY[name].service

    roles = [r for r in Role if r is not Role.SYSTEM]
    lines = ["| command | " + " | ".join(f"`{r}`" for r in roles) + " |", "|---|" + "---|" * len(roles)]
    for name in sorted(PERMISSIONS, key=lambda n: (SERVICES.index(owner(n)), n)):
        marks = " | ".join("✓" if r in PERMISSIONS[name] else "" for r in roles)
        lines.append(f"| `{name}` ({owner(name)}) | {marks} |")
    return "\n".join(lines) + "\n"


def _preconditions() -> str:
    from contracts.preconditions import EVERY_COMMAND, preconditions
    from yishi.command_http import HTTP_STATUS

    lines = ["Any command, before its rules are checked (the command bus):", "",
             "| reason | HTTP | when |", "|---|---|---|"]
    lines += [f"| `{reason}` | {HTTP_STATUS.get(reason, 400)} | {when} |" for reason, when in EVERY_COMMAND]
    lines += ["", "Then each command's own, in the order its rules check them:", "",
              "| command | reason | HTTP | when |", "|---|---|---|---|"]
    for service in SERVICES:
        for name, refusals in preconditions(service).items():
            lines += [f"| {f'`{name}` ({service})' if i == 0 else ''} | `{reason}` | {HTTP_STATUS.get(reason, 400)} "
                      f"| {when} |" for i, (reason, when) in enumerate(refusals)]
    return "\n".join(lines) + "\n"


_SECTIONS = {"catalogue": _catalogue, "example": _example, "permissions": _permissions,
             "preconditions": _preconditions}


def readme(current: str) -> str:
    """``current`` with each ``<!-- BEGIN GENERATED: name -->`` section re-rendered."""
    for name, render in _SECTIONS.items():
        found = re.search(rf"<!-- BEGIN GENERATED: {name} -->\n(.*?)<!-- END GENERATED: {name} -->", current, re.DOTALL)
        if not found:
            raise ValueError(f"{README} lacks the markers of the generated section {name!r}")
        current = current[: found.start(1)] + render() + current[found.end(1) :]
    return current


@cache
def _from_models() -> dict[str, str]:
    # The models cannot change while the process runs; rendering them once is enough.
    files = {schema_path(s.name, v): _dump_json(json_schema(s, v)) for s, v in _all_versions()}
    # The pure-Python dumper, not libyaml's: the two fold long lines differently, and the
    # output must be byte-for-byte the same on every machine.
    files[ASYNCAPI] = yaml.dump(asyncapi(), Dumper=yaml.SafeDumper, sort_keys=False, allow_unicode=True, width=120)
    return files


def artefacts(directory: Path = CONTRACTS_DIR) -> dict[str, str]:
    """Every generated file's path (relative to ``directory``) and expected content."""
    return {**_from_models(), README: readme((directory / README).read_text(encoding="utf-8"))}


def _extra_schemas(directory: Path, expected: dict[str, str]) -> list[str]:
    found = (p.relative_to(directory).as_posix() for p in (directory / SCHEMAS).glob("**/*.json"))
    return sorted(path for path in found if path not in expected)


def _differences(directory: Path, expected: dict[str, str]) -> list[str]:
    differ = [
        path for path, text in expected.items()
        if not (directory / path).is_file() or (directory / path).read_text(encoding="utf-8") != text
    ]
    return sorted(differ + _extra_schemas(directory, expected))


def differences(directory: Path = CONTRACTS_DIR) -> list[str]:
    """Paths under ``directory`` that are missing, stale, or no longer generated."""
    return _differences(directory, artefacts(directory))


def write(directory: Path = CONTRACTS_DIR) -> list[str]:
    """Bring the artefacts under ``directory`` up to date; return the paths changed."""
    expected = artefacts(directory)
    changed = _differences(directory, expected)
    for path in changed:
        target = directory / path
        if path in expected:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(expected[path], encoding="utf-8")
        else:
            target.unlink()
    return changed


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m contracts.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if artefacts are stale")
    parser.add_argument("--dir", type=Path, default=CONTRACTS_DIR, help="the contracts directory")
    args = parser.parse_args(argv)
    if args.check:
        stale = differences(args.dir)
        for path in stale:
            print(f"stale: contracts/{path}")
        if stale:
            print("run `python -m contracts.generate` and commit the result", file=sys.stderr)
        return 1 if stale else 0
    for path in write(args.dir):
        print(f"wrote: contracts/{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
