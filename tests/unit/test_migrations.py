"""The migration histories, without a database: one linear history per branch, every
service's schema = the platform's branch + its own, and the files ship in the wheel."""

from __future__ import annotations

import pytest
from setuptools import find_packages

from yishi import migrations
from yishi.names import SERVICES


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_schema_has_two_linear_branches(service):
    script = migrations._script(migrations.locations(service))
    revisions = list(script.walk_revisions())
    assert {r.revision.split("_")[0] for r in revisions} == {"yishi", service}
    assert sorted(script.get_bases()) == sorted([f"{service}_0001", "yishi_0001"])
    assert all(not r.is_merge_point and not r.is_branch_point for r in revisions)
    assert len(script.get_heads()) == 2


def test_the_migration_folders_are_packages_the_wheel_includes():
    packages = set(find_packages(include=["yishi*", "services*"]))
    assert "yishi.migrations.versions" in packages
    assert {f"services.{s}.migrations" for s in SERVICES} <= packages
