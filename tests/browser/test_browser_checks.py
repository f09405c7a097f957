"""The browser tests' own checks catch what they are there for (no platform needed): axe-core
reports a serious or critical violation of a page that has one, and the console watch
records a page's console error and uncaught exception."""

from __future__ import annotations

from tests.support.browser import accessibility_violations

BROKEN = ("<!doctype html><html lang='en'><head><title>broken</title></head><body><main><h1>Broken</h1>"
          "<img src='data:,'><button></button></main></body></html>")
CLEAN = ("<!doctype html><html lang='en'><head><title>clean</title></head><body><main><h1>Clean</h1>"
         "<img src='data:,' alt='a dot'><button>Send</button></main></body></html>")


async def test_axe_reports_the_serious_and_critical_violations_of_a_page(phone):
    await phone.set_content(BROKEN)
    found = " ".join(await accessibility_violations(phone))
    assert "image-alt (critical)" in found and "button-name (critical)" in found
    await phone.set_content(CLEAN)
    assert await accessibility_violations(phone) == []


async def test_the_console_watch_records_errors_and_uncaught_exceptions(phone, console):
    async with phone.expect_event("pageerror"):  # the timer's exception, once it is thrown
        await phone.set_content("<script>console.error('broken'); setTimeout(() => { throw new Error('boom') })"
                                "</script>")
    assert any("console error: broken" in e for e in console.errors)
    assert any("uncaught" in e and "boom" in e for e in console.errors)
