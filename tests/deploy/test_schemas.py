"""Every rendered object is valid against its schema, and the validators do reject errors.

(a) core objects against the Kubernetes schemas (always runs: kubectl and the
kubernetes-validate schemas are on every machine); (b) Strimzi and CloudNativePG
resources against their CRDs from ../shared/crds (skipped, with the reason, where that
folder is absent); (c) deliberately broken copies of deploy/ must fail.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.deploy.manifests import (
    CRD_DIR,
    DEPLOY,
    TREES,
    WITHOUT_SHARED_CRD,
    crd_errors,
    crd_schemas,
    is_custom,
    kubernetes_errors,
    render,
    rendered,
)

# The kinds the platform needs from each CRD file (the newest version each CRD serves).
CUSTOM_KINDS = {
    ("kafka.strimzi.io/v1", "Kafka"),
    ("kafka.strimzi.io/v1", "KafkaNodePool"),
    ("kafka.strimzi.io/v1", "KafkaTopic"),
    ("kafka.strimzi.io/v1", "KafkaUser"),
    ("postgresql.cnpg.io/v1", "Cluster"),
    ("postgresql.cnpg.io/v1", "Database"),
    ("postgresql.cnpg.io/v1", "ScheduledBackup"),
    ("barmancloud.cnpg.io/v1", "ObjectStore"),
}


def schemas_or_skip():
    if not CRD_DIR.is_dir():
        pytest.skip(f"CRD files not found at {CRD_DIR} (the shared/ folder beside the checkout); "
                    "custom resources not validated")
    return crd_schemas(CRD_DIR)


@pytest.mark.parametrize("tree", TREES)
def test_core_objects_match_kubernetes_schemas(tree):
    objects = rendered(tree)
    core = [o for o in objects if not is_custom(o)]
    assert core, f"{tree} renders no core objects"
    assert kubernetes_errors(objects) == []


@pytest.mark.parametrize("tree", TREES)
def test_custom_resources_match_their_crds(tree):
    schemas = schemas_or_skip()
    objects = rendered(tree)
    assert crd_errors(objects, schemas) == []


def test_the_crds_cover_every_custom_kind_used():
    schemas = schemas_or_skip()
    served = {(f"{group}/{version}", kind) for group, version, kind in schemas}
    used = {(o["apiVersion"], o["kind"]) for tree in TREES for o in rendered(tree) if is_custom(o)}
    assert used == CUSTOM_KINDS
    assert used - WITHOUT_SHARED_CRD <= served


# -- (c) the validators bite ------------------------------------------------------------

def broken_copy(tmp_path: Path, relative: str, old: str, new: str) -> Path:
    """A copy of deploy/ with one text replacement in one file; returns the dev overlay."""
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy, ignore=shutil.ignore_patterns("__pycache__"))
    path = copy / relative
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{relative} no longer contains {old!r}: update this test"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return copy / "overlays" / "dev"


@pytest.mark.parametrize(
    ("relative", "old", "new", "expected"),
    [
        # a wrong type in a field every service Deployment gets
        ("base/deployment-defaults.yaml", "failureThreshold: 60", 'failureThreshold: "sixty"',
         "'sixty' is not of type 'integer'"),
        # a misspelt field: only strict validation notices
        ("base/deployment-defaults.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFileSystem: true",
         "'readOnlyRootFileSystem' was unexpected"),
    ],
    ids=["deployment-wrong-type", "deployment-unknown-field"],
)
def test_broken_core_manifest_fails_validation(tmp_path, relative, old, new, expected):
    objects = render(broken_copy(tmp_path, relative, old, new))
    errors = kubernetes_errors(objects)
    assert errors, "the broken manifest passed validation"
    assert all(expected in e for e in errors), errors


@pytest.mark.parametrize(
    ("relative", "old", "new", "expected"),
    [
        ("districts/gulou/topics.yaml", "  replicas: 3\n", '  replicas: "3"\n',
         "KafkaTopic/gulou-proposals-events: spec.replicas: '3' is not of type 'integer'"),
        ("base/postgres/cluster.yaml", "  instances: 3", "  instances: 3\n  replicas: 3",
         "Cluster/yishi-pg: spec: Additional properties are not allowed ('replicas' was unexpected)"),
    ],
    ids=["kafkatopic-replicas-string", "cluster-unknown-field"],
)
def test_broken_custom_resource_fails_validation(tmp_path, relative, old, new, expected):
    schemas = schemas_or_skip()
    objects = render(broken_copy(tmp_path, relative, old, new))
    errors = crd_errors(objects, schemas)
    assert errors, "the broken custom resource passed validation"
    assert any(e.startswith(expected) for e in errors), errors
    assert kubernetes_errors(objects) == []  # the break is where it was made, nowhere else
