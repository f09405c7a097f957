"""Every topic a service's domain stored before it became a package (issue 17) names the
class that now has it, through ``yishi.topics.register_moved`` in the package, not only
while the package happens to re-export each aggregate under its old module name.

tests/integration/proposals/test_old_topics.py and tests/integration/oversight/
test_old_streams.py load streams stored under these names and give them new commands."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Each aggregate and the events it recorded, as the one-module domains named them, and
# the module of the package that now holds it.
STORED_BEFORE = {
    "services.proposals.domain": {
        ("Council", "council"): ["Formed", "MemberSeated", "MemberUnseated"],
        ("Nomination", "nominations"): ["Nominated", "Publicised", "VoteRequested", "Confirmed", "Rejected"],
        ("Slate", "nominations"): ["Nominated", "VoteRequested", "Confirmed", "Rejected"],
        ("CatalogueCategory", "catalogue"): ["Defined"],
        ("CatalogueItem", "catalogue"): ["Added", "Retired"],
        ("Proposal", "proposal"): ["Raised", "Published", "MotionSeconded", "ObjectionLodged", "StatementMade",
                                   "VoteRequested", "Decided", "ReturnedForReconsultation", "Escalated", "Withdrawn"],
    },
    "services.oversight.domain": {
        ("Resolution", "resolution"): ["Registered", "Inspected", "SatisfactionRated", "ReconsultationRequested",
                                       "Closed"],
        ("Task", "task"): ["Assigned", "FundsAllocated", "Accepted", "ProgressReported", "Completed", "Inspected",
                           "FollowUpScheduled", "Escalated", "Stalled", "ReminderFired"],
        ("Fund", "fund"): ["Established", "Allocated", "Spent"],
        ("ReminderPolicy", "policy"): ["Set", "Changed"],
    },
}


@pytest.mark.parametrize("package", sorted(STORED_BEFORE))
def test_every_old_topic_resolves_to_the_moved_class_without_the_re_exports(package):
    aggregates = STORED_BEFORE[package]
    old = {f"{package}:{name}": f"{package}.{module}:{name}"
           for (aggregate, module), events in aggregates.items()
           for name in (aggregate, *(f"{aggregate}.{e}" for e in events))}
    # In a fresh interpreter, so that no earlier resolution has cached a topic: the
    # package's re-exports are removed before any old topic is resolved.
    probe = f"""
import json
from eventsourcing.utils import get_topic, resolve_topic
import {package} as domain
for name in {[a for a, _ in aggregates]!r}:
    delattr(domain, name)
print(json.dumps({{topic: get_topic(resolve_topic(topic)) for topic in {list(old)!r}}}))
"""
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == old
