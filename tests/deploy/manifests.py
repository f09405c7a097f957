"""Render the Kustomize trees under ``deploy/`` and validate what they produce, offline.

Core Kubernetes objects are checked with ``kubernetes-validate`` (strict: unknown fields
are errors, as with ``kubectl apply``'s default server-side field validation); Strimzi
and CloudNativePG resources against the ``openAPIV3Schema`` of their published CRDs,
made strict the same way. The CRD files live in ``../shared/crds`` beside the checkout
and are never copied into the repository.
"""

from __future__ import annotations

import copy
import functools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
CRD_DIR = REPO_ROOT.parent / "shared" / "crds"
# What `kubectl apply -k` accepts: the base on its own and every environment overlay.
TREES = ("base", "overlays/dev", "overlays/prod")
OVERLAYS = ("overlays/dev", "overlays/prod")
SERVICES = ("proposals", "voting", "oversight", "notify", "portal")  # the portal: a reader, no topics
READERS = ("portal",)
# The kubectl on every machine (and the oldest cluster the manifests target).
KUBERNETES_VERSION = "1.32.0"
CUSTOM_GROUPS = frozenset({"kafka.strimzi.io", "postgresql.cnpg.io", "barmancloud.cnpg.io"})
# Custom kinds whose CRDs are not in ../shared/crds: test_backups.py checks them against
# the fields of their published CRDs.
WITHOUT_SHARED_CRD = frozenset({("postgresql.cnpg.io/v1", "ScheduledBackup"),
                                ("barmancloud.cnpg.io/v1", "ObjectStore")})
# The Prometheus Operator's kinds: its CRDs are not in ../shared/crds, so
# tests/deploy/test_monitoring.py checks them against the operator's documented schema.
PROMETHEUS_OPERATOR_GROUP = "monitoring.coreos.com"
# libyaml when PyYAML has it: the CRD files are about 1 MB.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Obj = dict[str, Any]


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        raise RuntimeError("kubectl (with its built-in kustomize) is needed to render deploy/")
    return path


def render(tree: Path) -> list[Obj]:
    """``kubectl kustomize TREE`` as a list of objects."""
    result = subprocess.run([kubectl(), "kustomize", str(tree)], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {tree} failed:\n{result.stderr[-3000:]}")
    return [doc for doc in yaml.load_all(result.stdout, Loader=_LOADER) if doc]


@functools.cache
def _render_committed(tree: str) -> tuple[Obj, ...]:
    return tuple(render(DEPLOY / tree))


def rendered(tree: str) -> list[Obj]:
    """The committed tree ``deploy/TREE`` rendered (once per test session), as copies."""
    return copy.deepcopy(list(_render_committed(tree)))


def group_of(obj: Obj) -> str:
    api_version = obj.get("apiVersion", "")
    return api_version.split("/")[0] if "/" in api_version else ""


def is_custom(obj: Obj) -> bool:
    return group_of(obj) in CUSTOM_GROUPS


def name_of(obj: Obj) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def _where(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(root)"


def kubernetes_errors(objects: list[Obj], version: str = KUBERNETES_VERSION) -> list[str]:
    """Schema errors of the core (non-custom) objects; a kind without a schema is an error."""
    errors = []
    for obj in objects:
        if is_custom(obj) or group_of(obj) == PROMETHEUS_OPERATOR_GROUP:
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{name_of(obj)}: {_where(exc)}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(f"{name_of(obj)}: {exc.message}")
    return errors


def _strict(schema: Any) -> Any:
    """The schema with unknown fields rejected wherever the API server would reject them.

    Structural CRD schemas list their fields; the API server prunes (and kubectl's
    strict field validation rejects) any other field unless the schema preserves
    unknown fields or describes a map through additionalProperties.
    """
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _strict(value) for key, value in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def crd_schemas(crd_dir: Path = CRD_DIR) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(group, version, kind) -> strict openAPIV3Schema, for every served version of every CRD."""
    schemas = {}
    for path in sorted(crd_dir.glob("*.yaml")):
        for crd in yaml.load_all(path.read_text(encoding="utf-8"), Loader=_LOADER):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                if version.get("served") and "schema" in version:
                    key = (spec["group"], version["name"], spec["names"]["kind"])
                    schemas[key] = _strict(version["schema"]["openAPIV3Schema"])
    return schemas


def crd_errors(objects: list[Obj], schemas: dict[tuple[str, str, str], dict[str, Any]]) -> list[str]:
    """Schema errors of the Strimzi and CloudNativePG resources (all errors of each).

    CEL rules (``x-kubernetes-validations``) are not evaluated: only the API server can.
    """
    errors = []
    for obj in objects:
        if not is_custom(obj) or (obj["apiVersion"], obj["kind"]) in WITHOUT_SHARED_CRD:
            continue
        group, _, version = obj["apiVersion"].partition("/")
        schema = schemas.get((group, version, obj["kind"]))
        if schema is None:
            served = sorted(v for g, v, k in schemas if g == group and k == obj["kind"])
            errors.append(f"{name_of(obj)}: {obj['apiVersion']} is not a served version (served: {served})")
            continue
        # OpenAPI v3.0 schemas follow JSON Schema draft 4 (boolean exclusiveMinimum etc.).
        validator = jsonschema.Draft4Validator(schema)
        for error in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path)):
            errors.append(f"{name_of(obj)}: {_where(error)}: {error.message}")
    return errors
