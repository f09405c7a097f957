"""The guard every service's handler tests share (:mod:`tests.support.handlers`): it fails
when a handler has no test of one of its aspects, and a test fails when it claims an aspect
it did not check."""

from __future__ import annotations

from types import ModuleType

import pytest

from contracts.common import Command
from contracts.proposals import FormCouncil
from tests.support.handlers import assert_every_handler_tested, covers
from tests.unit.proposals import test_handlers, test_handlers_proposals, test_handlers_sessions
from tests.unit.proposals.handler_support import Bus, form_council

PROPOSALS_TESTS = (test_handlers, test_handlers_proposals, test_handlers_sessions)


class DissolveCouncil(Command):
    """A command a handler is added for, without tests."""

    council_id: str


def test_a_handler_added_without_tests_fails_the_guard():
    h = Bus()
    assert_every_handler_tested(h.bus, *PROPOSALS_TESTS)

    @h.bus.handles(DissolveCouncil, internal=True)
    async def dissolve(ctx, command):  # never sent
        raise AssertionError

    with pytest.raises(AssertionError, match=r"\{'DissolveCouncil': \['accepted', 'refused', 'resent'\]\}"):
        assert_every_handler_tested(h.bus, *PROPOSALS_TESTS)


def test_an_aspect_a_service_declares_needs_its_test_and_an_undeclared_one_fails():
    h = Bus()
    with pytest.raises(AssertionError, match=r"\{'FormCouncil': \['by_post'\]\}"):
        assert_every_handler_tested(h.bus, *PROPOSALS_TESTS, extra={FormCouncil: ["by_post"]})

    @covers(FormCouncil, "resnt")
    async def test_misspelt(h):  # never run
        pass

    misspelt = ModuleType("misspelt")
    test_misspelt.__module__, misspelt.test_misspelt = "misspelt", test_misspelt
    with pytest.raises(AssertionError, match=r"does not ask: \{'FormCouncil': \['resnt'\]\}"):
        assert_every_handler_tested(h.bus, *PROPOSALS_TESTS, misspelt)


async def test_a_test_claiming_what_it_did_not_check_fails():
    @covers(FormCouncil, "accepted", "resent", "refused")
    async def test_form_council(h):
        await h.accepted(form_council())

    with pytest.raises(AssertionError, match=r"claimed but not checked: \['FormCouncil refused', "
                                             r"'FormCouncil resent'\]"):
        await test_form_council(Bus())


async def test_a_test_making_the_checks_it_claims_passes():
    @covers(FormCouncil, "accepted", "resent")
    @covers(FormCouncil, "refused")
    async def test_form_council(h):
        await h.once(form_council())
        await h.rejected(form_council(), "already_exists", "c-1")

    await test_form_council(Bus())
    assert test_form_council.claims == {(FormCouncil, "accepted"), (FormCouncil, "resent"),
                                        (FormCouncil, "refused")}


async def test_a_check_made_outside_a_claiming_test_counts_for_none():
    h = Bus()
    await h.once(form_council())  # not under covers(): recorded nowhere

    @covers(FormCouncil, "resent")
    async def test_claims_the_resend_made_before(h):
        pass

    with pytest.raises(AssertionError, match=r"claimed but not checked: \['FormCouncil resent'\]"):
        await test_claims_the_resend_made_before(h)
