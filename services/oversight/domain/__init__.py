"""Oversight aggregates (反馈 / 督): resolutions, tasks, micro-project funds, reminder policies,
one module each, and the claims that keep names unique (:mod:`.claim`).

Pure and synchronous: time always comes in as an argument. Every public method checks
the rules and raises :class:`Rejected`; it then calls a private ``@event`` method that
only records and applies, because that body runs again on every replay.

Aggregate ids are derived from (district, kind, public id) so that the same public id
always lands on the same stream: a replayed ``ProposalDecided`` or a resent command
meets the existing stream (expected-version append) instead of creating a twin, and two
districts using the same public id never share a stream.

The aggregates lived in one module, ``services.oversight.domain``, until it was split:
events stored then name their class by that module's topic
(``services.oversight.domain:Task.Accepted``), registered below for the class's new
home so that they still load.
"""

from __future__ import annotations

from contracts.proposals import resolution_id_for  # the public rule; oversight names resolutions by it
from services.oversight.domain.claim import FUND_OF_ALLOCATION, FUND_OF_YEAR, Claim, year_key
from services.oversight.domain.fund import Fund
from services.oversight.domain.policy import Policy, ReminderPolicy
from services.oversight.domain.resolution import Resolution
from services.oversight.domain.streams import stream_id
from services.oversight.domain.task import COUNCIL_ABOVE, IMPLEMENTER, SUPERVISOR, Authority, ReminderStep, Task
from yishi.topics import register_moved

__all__ = ["COUNCIL_ABOVE", "FUND_OF_ALLOCATION", "FUND_OF_YEAR", "IMPLEMENTER", "SUPERVISOR", "Authority", "Claim",
           "Fund", "Policy", "ReminderPolicy", "ReminderStep", "Resolution", "Task", "resolution_id_for",
           "stream_id", "year_key"]

register_moved(__name__, Resolution, Task, Fund, ReminderPolicy)  # see above
