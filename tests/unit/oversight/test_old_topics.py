"""Every topic oversight stored before its domain became a package (issue 17) names the
class that now has it, through the registration in ``services.oversight.domain``, not
only while the package happens to re-export each aggregate under its old module name.

tests/integration/oversight/test_old_streams.py loads streams stored under these names
and gives them new commands."""

from __future__ import annotations

import json
import subprocess
import sys

# Each aggregate and the events it recorded, as services/oversight/domain.py named them.
STORED_BEFORE = {
    "Resolution": ["Registered", "Inspected", "SatisfactionRated", "ReconsultationRequested", "Closed"],
    "Task": ["Assigned", "FundsAllocated", "Accepted", "ProgressReported", "Completed", "Inspected",
             "FollowUpScheduled", "Escalated", "Stalled", "ReminderFired"],
    "Fund": ["Established", "Allocated", "Spent"],
    "ReminderPolicy": ["Set", "Changed"],
}
OLD_TOPICS = [f"services.oversight.domain:{name}" for aggregate, events in STORED_BEFORE.items()
              for name in (aggregate, *(f"{aggregate}.{e}" for e in events))]
MODULES = {"Resolution": "resolution", "Task": "task", "Fund": "fund", "ReminderPolicy": "policy"}


def test_every_old_topic_resolves_to_the_moved_class_without_the_re_exports():
    # In a fresh interpreter, so that no earlier resolution has cached a topic: the
    # package's re-exports are removed before any old topic is resolved.
    probe = f"""
import json
from eventsourcing.utils import get_topic, resolve_topic
import services.oversight.domain as domain
for name in {list(STORED_BEFORE)!r}:
    delattr(domain, name)
print(json.dumps({{topic: get_topic(resolve_topic(topic)) for topic in {OLD_TOPICS!r}}}))
"""
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {
        topic: topic.replace(":", f".{MODULES[topic.split(':')[1].split('.')[0]]}:") for topic in OLD_TOPICS
    }
