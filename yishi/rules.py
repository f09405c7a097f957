"""The domain's own errors and limits, without any I/O dependency: what aggregates raise
when a command breaks a rule. Aggregates import this module, never the command bus
(:mod:`yishi.commands`), so that importing a domain loads no web, database or broker
library (``tests/unit/test_domain_imports.py``)."""

from __future__ import annotations

from datetime import datetime, timedelta

from contracts.common import RejectionReason


class Rejected(Exception):
    """A command breaks a rule; nothing it did is kept."""

    def __init__(self, reason: RejectionReason, message: str, subject: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.subject = subject


HORIZON = timedelta(days=5 * 366)
"""How far ahead a deadline may lie: a notice period's end, a session, a vote's opening
and closing, a task's due date. Five years covers any real council term or building
project; a date beyond it is a typo (or 9999-12-31), and refused rather than stored."""


def within_horizon(when: datetime, now: datetime, field: str, subject: str | None = None) -> None:
    """Raise ``invalid_command`` when ``when`` lies beyond :data:`HORIZON` from ``now``."""
    latest = now + HORIZON
    if when > latest:
        raise Rejected(RejectionReason.INVALID_COMMAND,
                       f"{field} may be at most five years ahead: {latest.date().isoformat()} at the latest", subject)
