"""Backups in the prod overlay: the Cluster archives its WAL through the Barman Cloud
Plugin into an ObjectStore with a retention policy, a ScheduledBackup takes a base backup
daily, and the restore runbook's Cluster (deploy/README.md) is valid and recovers from
that store to a target time.

Neither the plugin's ObjectStore CRD nor CloudNativePG's ScheduledBackup CRD is in
../shared/crds, so: the ObjectStore's ``configuration`` is validated against the schema
the plugin declares it follows, the in-tree ``Cluster.spec.backup.barmanObjectStore``
of ../shared/crds (identical in plugin-barman-cloud v0.14.0's CRD but for one CEL rule:
no ``serverName``); its other fields and the ScheduledBackup's spec against the fields of
their published CRDs (transcribed below; cloudnative-pg a95a534, the commit of
../shared/crds, and plugin-barman-cloud v0.14.0).
"""

from __future__ import annotations

import re
import shutil
import textwrap

import jsonschema
import pytest

from tests.deploy.manifests import CRD_DIR, DEPLOY, crd_errors, crd_schemas, kubernetes_errors, render, rendered

PLUGIN = "barman-cloud.cloudnative-pg.io"

# config/crd/bases/postgresql.cnpg.io_scheduledbackups.yaml, spec (descriptions dropped).
SCHEDULED_BACKUP_SPEC = {
    "type": "object",
    "required": ["cluster", "schedule"],
    "additionalProperties": False,
    "properties": {
        "backupOwnerReference": {"type": "string", "enum": ["none", "self", "cluster"]},
        "cluster": {"type": "object", "required": ["name"], "additionalProperties": False,
                    "properties": {"name": {"type": "string"}}},
        "immediate": {"type": "boolean"},
        "method": {"type": "string", "enum": ["barmanObjectStore", "volumeSnapshot", "plugin"]},
        "online": {"type": "boolean"},
        "onlineConfiguration": {"type": "object", "additionalProperties": False, "properties": {
            "immediateCheckpoint": {"type": "boolean"}, "waitForArchive": {"type": "boolean"}}},
        "pluginConfiguration": {"type": "object", "required": ["name"], "additionalProperties": False,
                                "properties": {"name": {"type": "string"},
                                               "parameters": {"type": "object",
                                                              "additionalProperties": {"type": "string"}}}},
        "schedule": {"type": "string"},
        "suspend": {"type": "boolean"},
        "target": {"type": "string", "enum": ["primary", "prefer-standby"]},
    },
}
# plugin-barman-cloud config/crd/bases/barmancloud.cnpg.io_objectstores.yaml: spec's fields.
OBJECT_STORE_FIELDS = {"configuration", "instanceSidecarConfiguration", "retentionPolicy"}
RETENTION = re.compile(r"^[1-9][0-9]*[dwm]$")


def prod() -> dict[str, list[dict]]:
    by_kind: dict[str, list[dict]] = {}
    for obj in rendered("overlays/prod"):
        by_kind.setdefault(obj["kind"], []).append(obj)
    return by_kind


def the(kind: str) -> dict:
    objects = prod().get(kind, [])
    assert len(objects) == 1, f"the prod overlay renders {len(objects)} {kind} objects, not one"
    return objects[0]


def barman_object_store_schema() -> dict:
    if not CRD_DIR.is_dir():
        pytest.skip(f"CRD files not found at {CRD_DIR}")
    cluster = crd_schemas(CRD_DIR)[("postgresql.cnpg.io", "v1", "Cluster")]
    return cluster["properties"]["spec"]["properties"]["backup"]["properties"]["barmanObjectStore"]


def archiver(cluster: dict) -> dict:
    archivers = [p for p in cluster["spec"].get("plugins", []) if p.get("isWALArchiver")]
    assert len(archivers) == 1, "the Cluster must name exactly one WAL archiver plugin"
    return archivers[0]


def test_the_cluster_archives_its_wal_through_the_barman_cloud_plugin():
    cluster, store = the("Cluster"), the("ObjectStore")
    plugin = archiver(cluster)
    assert plugin["name"] == PLUGIN and plugin.get("enabled", True)
    assert plugin["parameters"]["barmanObjectName"] == store["metadata"]["name"]
    assert plugin["parameters"]["serverName"] == cluster["metadata"]["name"]
    # The deprecated in-tree mechanism is not used (and cannot be, beside a WAL archiver plugin).
    assert "backup" not in cluster["spec"]


def test_the_object_store_is_valid_and_keeps_a_recovery_window():
    store = the("ObjectStore")
    assert store["apiVersion"] == "barmancloud.cnpg.io/v1"
    assert set(store["spec"]) <= OBJECT_STORE_FIELDS
    configuration = store["spec"]["configuration"]
    errors = [e.message for e in jsonschema.Draft4Validator(barman_object_store_schema()).iter_errors(configuration)]
    assert errors == []
    assert "serverName" not in configuration  # the plugin's CRD forbids it: a Cluster parameter instead
    assert configuration["destinationPath"].startswith(("s3://", "gs://", "https://"))
    assert RETENTION.match(store["spec"]["retentionPolicy"])
    credentials = configuration["s3Credentials"]
    assert {credentials["accessKeyId"]["name"], credentials["secretAccessKey"]["name"]} == {"yishi-backup-s3"}
    assert "yishi-backup-s3" in (DEPLOY / "README.md").read_text(), "deploy/README.md must say who makes it"


def test_a_daily_scheduled_backup_through_the_plugin():
    backup, cluster = the("ScheduledBackup"), the("Cluster")
    assert backup["apiVersion"] == "postgresql.cnpg.io/v1"
    assert list(jsonschema.Draft4Validator(SCHEDULED_BACKUP_SPEC).iter_errors(backup["spec"])) == []
    spec = backup["spec"]
    assert spec["cluster"]["name"] == cluster["metadata"]["name"]
    assert spec["method"] == "plugin" and spec["pluginConfiguration"]["name"] == archiver(cluster)["name"]
    # Six fields, seconds first (robfig/cron): one run a day.
    second, minute, hour, *every = spec["schedule"].split()
    assert every == ["*", "*", "*"] and all(f.isdigit() for f in (second, minute, hour)), spec["schedule"]
    assert spec.get("immediate") is True  # a base backup as soon as the cluster has one


def test_the_validators_bite():
    broken = {**the("ScheduledBackup")["spec"], "scheduel": "0 0 2 * * *"}
    assert any("'scheduel' was unexpected" in e.message
               for e in jsonschema.Draft4Validator(SCHEDULED_BACKUP_SPEC).iter_errors(broken))
    configuration = {**the("ObjectStore")["spec"]["configuration"], "wal": {"compression": "zip"}}
    assert list(jsonschema.Draft4Validator(barman_object_store_schema()).iter_errors(configuration))


def runbook_patch() -> str:
    """The runbook's patch (deploy/README.md, "Restore to a point in time"): what
    overlays/prod/patches/postgres-backup.yaml says while the Cluster is restored."""
    text = (DEPLOY / "README.md").read_text()
    section = text.split("## Restore to a point in time", 1)[1].split("\n## ", 1)[0]
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", section, re.DOTALL) if "kind: Cluster" in b]
    return textwrap.dedent(block)


def test_the_restore_runbook_bootstraps_the_cluster_from_the_store_to_a_target_time(tmp_path):
    if not CRD_DIR.is_dir():
        pytest.skip(f"CRD files not found at {CRD_DIR}")
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "overlays/prod/patches/postgres-backup.yaml").write_text(runbook_patch())
    objects = render(copy / "overlays/prod")
    assert crd_errors(objects, crd_schemas(CRD_DIR)) == [] and kubernetes_errors(objects) == []
    (restored,) = [o for o in objects if o["kind"] == "Cluster"]
    cluster, store = the("Cluster"), the("ObjectStore")
    recovery = restored["spec"]["bootstrap"]["recovery"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", recovery["recoveryTarget"]["targetTime"])
    (source,) = [c for c in restored["spec"]["externalClusters"] if c["name"] == recovery["source"]]
    assert source["plugin"] == {"name": PLUGIN, "parameters": {
        "barmanObjectName": store["metadata"]["name"], "serverName": archiver(cluster)["parameters"]["serverName"]}}
    # It archives again, into the same store but a folder of its own: never over the old history.
    plugin = archiver(restored)
    assert plugin["parameters"]["barmanObjectName"] == store["metadata"]["name"]
    assert plugin["parameters"]["serverName"] != source["plugin"]["parameters"]["serverName"]
    # Everything else is the cluster it replaces (same name, instances, storage, roles).
    unchanged = {k: v for k, v in restored["spec"].items() if k not in {"bootstrap", "externalClusters", "plugins"}}
    assert unchanged == {k: v for k, v in cluster["spec"].items() if k != "plugins"}
    assert restored["metadata"] == cluster["metadata"]
