"""The browser of the browser tests: Debian's Chromium (packages ``chromium`` and
``chromium-driver``, and a Chinese font), installed here with apt when missing, driven by Playwright for
Python through ``executable_path`` (Playwright downloads no browser of its own), with
axe-core (the copy ``axe-playwright-python`` pins and bundles) injected into each page.

A test never skips for want of the browser: on a machine where it cannot be installed
(not root, no apt) the tests fail and say what to install."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
PACKAGES = ("chromium", "chromium-driver", "fonts-wqy-microhei")
"""The browser and its driver, and a Chinese font (5 MB) so that the screenshots of the
zh-CN pages show their text, not empty boxes."""
ARTEFACTS = Path(__file__).resolve().parents[2] / "test-artefacts" / "browser"
"""Where the screenshots are kept (git-ignored; README's Tests section names it)."""
PHONE = {"width": 375, "height": 812}
"""A phone-sized viewport (an iPhone X's CSS pixels)."""
BLOCKING_IMPACTS = frozenset({"serious", "critical"})


def _installed(package: str) -> bool:
    found = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    return found.returncode == 0 and found.stdout == "install ok installed"


def ensure_chromium() -> Path:
    """The path of Debian's Chromium, installing the packages it needs first when missing."""
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    if not shutil.which("dpkg-query"):
        pytest.fail(f"the browser tests need Debian's {' and '.join(PACKAGES)} (no dpkg here)", pytrace=False)
    missing = [p for p in PACKAGES if not _installed(p)]
    if missing:
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            pytest.fail(f"the browser tests need Debian's {', '.join(missing)}: "
                        f"run `apt-get install {' '.join(missing)}` as root", pytrace=False)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for step in (["apt-get", "update", "-q"],
                     ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]):
            done = subprocess.run(step, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                pytest.fail(f"`{' '.join(step)}` failed ({done.returncode}):\n{done.stderr[-2000:]}", pytrace=False)
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing although {PACKAGES[0]} is installed", pytrace=False)
    return CHROMIUM


@dataclass
class ConsoleWatch:
    """The console errors and uncaught exceptions of every page a test visits."""

    errors: list[str] = field(default_factory=list)
    not_found: set[str] = field(default_factory=set)
    """Pages the test expects to be answered 404: Chromium logs that status of the page
    itself as an error, which here is what is being asserted, not a fault."""

    def attach(self, page) -> None:
        def console(msg) -> None:
            url = msg.location.get("url")
            if msg.type == "error" and not (url in self.not_found and "status of 404" in msg.text):
                self.errors.append(f"{page.url}: console {msg.type}: {msg.text} ({url})")

        page.on("console", console)
        page.on("pageerror", lambda exc: self.errors.append(f"{page.url}: uncaught {exc}"))


async def accessibility_violations(page) -> list[str]:
    """The page's serious and critical axe-core violations, one line each."""
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page)
    return [f"{v['id']} ({v['impact']}): {v['help']} — {', '.join(str(n['target']) for n in v['nodes'][:3])}"
            for v in results.response["violations"] if v.get("impact") in BLOCKING_IMPACTS]


async def screenshot(page, name: str) -> Path:
    """Keep a full-page screenshot of ``page`` as a test artefact."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTEFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
