"""Unknown ``YISHI_*`` variables are an error at start: a misspelt setting never passes
silently. Every ``YISHI_*`` name the repository writes (code, tests, scripts, manifests,
docs) is one something reads."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from yishi.settings import NOT_SETTINGS, Settings, check_environment, known_variables

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["YISHI_HTTP_PROT", "YISHI_OIDC_ISSUER", "YISHI_NOTIFY_SMTP_HOTS",
                                  "YISHI_OVERSIGHT_POLICY_DAYS", "yishi_db_pool_maximum"])
def test_an_unknown_variable_stops_start(monkeypatch, name):
    monkeypatch.setenv(name, "1")
    with pytest.raises(ValueError, match=f"unknown setting.*{name.upper()}"):
        Settings()


def test_settings_of_the_platform_the_services_and_the_embedded_stack_are_known(monkeypatch):
    for name, value in {"YISHI_HTTP_PORT": "9001", "YISHI_AUTH_ISSUER": "https://id.example",
                        "YISHI_NOTIFY_SMTP_HOST": "smtp.example", "YISHI_OVERSIGHT_POLICY_DAY_S": "2",
                        "YISHI_EMBEDDED_KAFKA": "tansu", "YISHI_KAFKA_CLASSPATH_FILE": "/tmp/cp"}.items():
        monkeypatch.setenv(name, value)
    assert Settings().http_port == 9001
    check_environment({"PATH": "/bin", "YISHIFOO": "x"})  # other prefixes are not ours


def test_not_settings_are_listed_once_and_are_no_settings():
    fields = {f"YISHI_{name.upper()}" for name in Settings.model_fields}
    assert NOT_SETTINGS and not NOT_SETTINGS & fields
    assert {"YISHI_NOTIFY_WEBHOOK_SECRET", "YISHI_OVERSIGHT_POLICY_DAY_S", "YISHI_DB_POOL_MAX"} <= known_variables()


def test_every_yishi_variable_named_in_the_repository_exists():
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split("\0")
    known = known_variables()
    unknown = set()
    for name in files:
        path = ROOT / name
        if not name or not path.is_file() or path.suffix in {".lock", ".json"} or path == Path(__file__):
            continue  # this file misspells names on purpose
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for found in set(re.findall(r"YISHI_[A-Z0-9_]+", text)):
            # A name ending in "_" is a prefix (`YISHI_NOTIFY_*`): some variable must start with it.
            ok = any(k.startswith(found) for k in known) if found.endswith("_") else found in known
            if not ok:
                unknown.add(f"{name}: {found}")
    assert not unknown, sorted(unknown)
