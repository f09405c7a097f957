"""Every ``YISHI_*`` setting has a row in README.md's configuration table: the fields of the
pydantic-settings classes in ``yishi/settings.py`` and ``services/*/settings.py``, each
under its class's ``env_prefix``. A setting added without its row fails here."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]


def settings_variables() -> dict[str, str]:
    """Each setting's environment variable and the module that defines it."""
    found = {}
    paths = [ROOT / "yishi" / "settings.py", *sorted((ROOT / "services").glob("*/settings.py"))]
    for path in paths:
        module = importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
        for cls in vars(module).values():
            if isinstance(cls, type) and issubclass(cls, BaseSettings) and cls.__module__ == module.__name__:
                prefix = cls.model_config["env_prefix"].upper()
                found.update({prefix + name.upper(): module.__name__ for name in cls.model_fields})
    return found


def table_variables() -> set[str]:
    """The variables named in the first column of README.md's configuration table."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", row.split("|")[1])}


def test_settings_are_found():
    variables = settings_variables()
    assert {"YISHI_DATABASE_URL", "YISHI_NOTIFY_WEBHOOK_SECRET", "YISHI_OVERSIGHT_POLICY_DAY_S"} <= variables.keys()


def test_every_setting_has_a_row_in_the_readme_configuration_table():
    missing = {name: module for name, module in settings_variables().items() if name not in table_variables()}
    assert not missing, f"README.md's configuration table lacks {sorted(missing)} (from {sorted(set(missing.values()))})"


def test_the_table_names_no_setting_that_does_not_exist():
    stale = {n for n in table_variables() if n.startswith("YISHI_")} - settings_variables().keys()
    assert not stale, f"README.md's configuration table names settings nothing reads: {sorted(stale)}"
