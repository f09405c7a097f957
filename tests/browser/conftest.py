"""The browser tests' fixtures: the platform as the end-to-end tests start it (the services
and the portal as processes, :func:`tests.e2e.conftest.platform`, one start per module),
Debian's Chromium driven by Playwright (:mod:`tests.support.browser`), and a page on a
phone-sized viewport whose console errors fail the test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.e2e.conftest import platform  # noqa: F401 - the fixture, one platform start per module
from tests.support.browser import PHONE, ConsoleWatch, ensure_chromium


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator:
    """Debian's Chromium (installed first if missing), headless, for the whole session."""
    executable = ensure_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        found = await playwright.chromium.launch(executable_path=str(executable))
        try:
            yield found
        finally:
            await found.close()


@pytest.fixture
async def console() -> ConsoleWatch:
    """The console errors of the test's pages; the test asserts there are none."""
    return ConsoleWatch()


@pytest.fixture
async def phone(browser, console: ConsoleWatch) -> AsyncIterator:
    """A fresh browser context (no cookies) on a phone-sized viewport, and its page."""
    context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2,
                                        locale="zh-CN")
    page = await context.new_page()
    console.attach(page)
    try:
        yield page
    finally:
        await context.close()
