#!/usr/bin/env python3
"""Write the Kustomize component of one district: ``deploy/districts/NAME/``.

    python deploy/new_district.py NAME        # write (or rewrite) the folder
    python deploy/new_district.py --check     # exit 1 if a committed folder is stale

A district brings its Kafka topics (events, commands and replies of each service, and
a dead-letter topic for every topic a service consumes), the Kafka ACLs of the four
service principals on those topics, one principal for the district's own systems, and
its path (/NAME) on each service's Ingress.
Include the folder in an overlay's ``components`` and add NAME to YISHI_DISTRICTS there
(deploy/README.md, "Add a district"). The folders are generated: change this file, then
regenerate them all; a test fails when a committed folder differs from its output.

Standard library only, so it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

DISTRICTS_DIR = Path(__file__).resolve().parent / "districts"

SERVICES = ("proposals", "voting", "oversight", "notify")  # each has its topics
READERS = ("portal",)  # no topics of its own: it reads others' events (yishi.names.READERS)
# Whose events topics each service consumes (besides its own commands topic).
CONSUMES = {
    "proposals": ("voting", "oversight"),  # vote outcomes; re-consultation from oversight
    "voting": ("proposals",),
    "oversight": ("proposals", "voting"),
    "notify": SERVICES,
    "portal": ("proposals", "voting", "oversight"),
}
KAFKA_CLUSTER = "yishi-kafka"
# Same rule as yishi.names.check_district (a test keeps them equal).
DISTRICT = re.compile(r"^[a-z][a-z0-9-]{0,39}$")

PARTITIONS = 6  # upper bound of a consumer group's useful size (HPA maxReplicas)
DLQ_PARTITIONS = 1
DAY_MS = 24 * 3600 * 1000
# Events topics are the public, replayable history: kept for ever, never compacted
# (compaction by key = stream id would keep only each aggregate's last event).
# Commands and replies are requests in flight; dead letters wait for an operator.
RETENTION_MS = {"events": -1, "commands": 7 * DAY_MS, "replies": 7 * DAY_MS, "dlq": 30 * DAY_MS}


def topic_names(district: str) -> list[tuple[str, str]]:
    """Every topic of a district as (topic name, kind), kind in events/commands/replies/dlq."""
    topics = [(f"{district}.{s}.{kind}", kind) for s in SERVICES for kind in ("events", "commands", "replies")]
    consumed = {f"{district}.{s}.commands" for s in SERVICES}
    consumed |= {f"{district}.{t}.events" for s in SERVICES + READERS for t in CONSUMES[s]}
    topics += [(f"{name}.dlq", "dlq") for name, _ in topics if name in consumed]
    return topics


def _acl_fields(resource_type: str, name: str, pattern: str, operations: list[str], indent: str) -> str:
    """One ACL of a KafkaUser as YAML mapping lines, each starting with ``indent``."""
    return (
        f"{indent}resource:\n"
        f"{indent}  type: {resource_type}\n"
        f"{indent}  name: {name}\n"
        f"{indent}  patternType: {pattern}\n"
        f"{indent}operations: [{', '.join(operations)}]\n"
    )


def _acl_item(resource_type: str, name: str, pattern: str, operations: list[str], indent: str) -> str:
    """The same ACL as an item of a YAML list indented by ``indent``."""
    fields = _acl_fields(resource_type, name, pattern, operations, indent + "  ")
    return indent + "- " + fields[len(indent) + 2:]


def _acl_patch(district: str, service: str) -> str:
    """JSON patch appending the district's ACLs to KafkaUser yishi-SERVICE (in the base)."""
    entries = [] if service in READERS else [("topic", f"{district}.{service}.", "prefix",
                                                ["Describe", "Read", "Write"])]
    for other in CONSUMES[service]:
        if other != service:  # its own topics are covered by the prefix above
            entries.append(("topic", f"{district}.{other}.events", "literal", ["Describe", "Read"]))
            entries.append(("topic", f"{district}.{other}.events.dlq", "literal", ["Describe", "Write"]))
    ops = "".join(
        "- op: add\n  path: /spec/authorization/acls/-\n  value:\n" + _acl_fields(*entry, indent="    ")
        for entry in entries
    )
    return (
        f"# District {district}: what service {service} may do on its topics (appended to\n"
        f"# KafkaUser yishi-{service}). Own topics by prefix; others' events read, their\n"
        f"# dead-letter topics written.\n" + ops
    )


def _topics(district: str) -> str:
    docs = []
    for name, kind in topic_names(district):
        partitions = DLQ_PARTITIONS if kind == "dlq" else PARTITIONS
        docs.append(
            "apiVersion: kafka.strimzi.io/v1\n"
            "kind: KafkaTopic\n"
            "metadata:\n"
            f"  name: {name.replace('.', '-')}\n"
            "  labels:\n"
            f"    strimzi.io/cluster: {KAFKA_CLUSTER}\n"
            "    app.kubernetes.io/part-of: yishi\n"
            f"    yishi.io/district: {district}\n"
            "spec:\n"
            f"  topicName: {name}\n"
            f"  partitions: {partitions}\n"
            "  replicas: 3\n"
            "  config:\n"
            "    min.insync.replicas: 2\n"
            "    cleanup.policy: delete\n"
            f"    retention.ms: {RETENTION_MS[kind]}\n"
            + ("    retention.bytes: -1\n" if kind == "events" else "")
        )
    return f"# Kafka topics of district {district}.\n" + "---\n".join(docs)


def _integration_user(district: str) -> str:
    acls = "".join(_acl_item("topic", f"{district}.{s}.commands", "literal", ["Describe", "Write"], "      ")
                   for s in SERVICES)
    acls += "".join(_acl_item("topic", f"{district}.{s}.{kind}", "literal", ["Describe", "Read"], "      ")
                    for s in SERVICES for kind in ("events", "replies"))
    acls += _acl_item("group", f"{district}.", "prefix", ["Describe", "Read"], "      ")
    return (
        f"# The principal of district {district}'s own systems (mini-program backend, grid\n"
        f"# management, statistics office): send commands, read events and replies of\n"
        f"# {district} only, consumer groups named {district}.*. Strimzi writes its password to the\n"
        f"# Secret {district}-integration. Its commands carry users' access tokens, checked\n"
        "# by the services; the quotas bound how fast it can fill the command topics.\n"
        "apiVersion: kafka.strimzi.io/v1\n"
        "kind: KafkaUser\n"
        "metadata:\n"
        f"  name: {district}-integration\n"
        "  labels:\n"
        f"    strimzi.io/cluster: {KAFKA_CLUSTER}\n"
        "    app.kubernetes.io/part-of: yishi\n"
        f"    yishi.io/district: {district}\n"
        "spec:\n"
        "  authentication:\n"
        "    type: scram-sha-512\n"
        "  quotas:\n"
        "    producerByteRate: 1048576\n"
        "    consumerByteRate: 4194304\n"
        "    requestPercentage: 25\n"
        "  authorization:\n"
        "    type: simple\n"
        "    acls:\n" + acls
    )


def _kustomization(district: str) -> str:
    patches = "".join(
        f"  - path: acl-{s}.yaml\n"
        "    target:\n"
        "      group: kafka.strimzi.io\n"
        "      version: v1\n"
        "      kind: KafkaUser\n"
        f"      name: yishi-{s}\n"
        for s in SERVICES + READERS
    )
    # Every service's API (and the portal's pages) for the district, /DISTRICT/..., through its Ingress
    # (base/ingress.yaml).
    patches += "".join(
        "  - target:\n"
        "      group: networking.k8s.io\n"
        "      version: v1\n"
        "      kind: Ingress\n"
        f"      name: yishi-{s}\n"
        "    patch: |-\n"
        "      - op: add\n"
        "        path: /spec/rules/0/http/paths/-\n"
        f"        value: {{path: /{district}, pathType: Prefix, backend: {{service: {{name: yishi-{s}, port: {{number: 8000}}}}}}}}\n"
        for s in SERVICES + READERS
    )
    return (
        f"# District {district}: include in an overlay's components and add {district} to\n"
        "# YISHI_DISTRICTS there.\n"
        "apiVersion: kustomize.config.k8s.io/v1alpha1\n"
        "kind: Component\n"
        "resources:\n"
        "  - topics.yaml\n"
        "  - integration-user.yaml\n"
        "patches:\n" + patches
    )


HEADER = "# Generated by deploy/new_district.py {district}: edit the generator, not this file.\n"


def render(district: str) -> dict[str, str]:
    """The files of ``deploy/districts/DISTRICT/``, by name."""
    if not DISTRICT.match(district):
        raise ValueError(
            f"invalid district {district!r}: use 1-40 lowercase letters, digits or hyphens, starting with a letter"
        )
    files = {
        "kustomization.yaml": _kustomization(district),
        "topics.yaml": _topics(district),
        "integration-user.yaml": _integration_user(district),
        **{f"acl-{s}.yaml": _acl_patch(district, s) for s in SERVICES + READERS},
    }
    return {name: HEADER.format(district=district) + text for name, text in files.items()}


def write(district: str, root: Path = DISTRICTS_DIR) -> Path:
    """(Re)write the folder of ``district`` under ``root``; files of other names are removed."""
    files = render(district)  # first: an invalid name must not leave a folder behind
    folder = root / district
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.iterdir():
        if stale.name not in files:
            stale.unlink()
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def stale(root: Path = DISTRICTS_DIR) -> list[str]:
    """Committed district folders that differ from what :func:`render` writes now."""
    problems = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        expected = render(folder.name)
        actual = {p.name: p.read_text(encoding="utf-8") for p in folder.iterdir() if p.is_file()}
        if actual != expected:
            changed = sorted(n for n in expected.keys() | actual.keys() if expected.get(n) != actual.get(n))
            problems.append(f"{folder.name}: {', '.join(changed)}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("district", nargs="?", help="district slug, e.g. gulou")
    parser.add_argument("--check", action="store_true", help="only check the committed folders")
    args = parser.parse_args(argv)
    if args.check:
        problems = stale()
        for problem in problems:
            print(f"stale: {problem} (run deploy/new_district.py NAME)", file=sys.stderr)
        return 1 if problems else 0
    if not args.district:
        parser.error("a district name is required (or --check)")
    try:
        folder = write(args.district)
    except ValueError as exc:
        parser.error(str(exc))
    print(f"wrote {folder}")
    print(f"next: add ../../districts/{args.district} to an overlay's components and "
          f"{args.district} to its YISHI_DISTRICTS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
