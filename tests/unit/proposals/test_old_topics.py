"""Every topic the proposals domain stored before it became a package (issue 17) names the
class that now has it, through the registration in ``services.proposals.domain``, not
only while the package happens to re-export each aggregate under its old module name.

tests/integration/proposals/test_old_topics.py loads, translates and rebuilds streams
stored under these names."""

from __future__ import annotations

import json
import subprocess
import sys

# Each aggregate and the events it recorded, as services/proposals/domain.py named them.
STORED_BEFORE = {
    "Council": ["Formed", "MemberSeated", "MemberUnseated"],
    "Nomination": ["Nominated", "Publicised", "VoteRequested", "Confirmed", "Rejected"],
    "Slate": ["Nominated", "VoteRequested", "Confirmed", "Rejected"],
    "CatalogueCategory": ["Defined"],
    "CatalogueItem": ["Added", "Retired"],
    "Proposal": ["Raised", "Published", "MotionSeconded", "ObjectionLodged", "StatementMade", "VoteRequested",
                 "Decided", "ReturnedForReconsultation", "Escalated", "Withdrawn"],
}
OLD_TOPICS = [f"services.proposals.domain:{name}" for aggregate, events in STORED_BEFORE.items()
              for name in (aggregate, *(f"{aggregate}.{e}" for e in events))]


def test_every_old_topic_resolves_to_the_moved_class_without_the_re_exports():
    # In a fresh interpreter, so that no earlier resolution has cached a topic: the
    # package's re-exports are removed before any old topic is resolved.
    probe = f"""
import json
from eventsourcing.utils import get_topic, resolve_topic
import services.proposals.domain as domain
for name in {list(STORED_BEFORE)!r}:
    delattr(domain, name)
print(json.dumps({{topic: get_topic(resolve_topic(topic)) for topic in {OLD_TOPICS!r}}}))
"""
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    modules = {"Council": "council", "Nomination": "nominations", "Slate": "nominations",
               "CatalogueCategory": "catalogue", "CatalogueItem": "catalogue", "Proposal": "proposal"}
    assert json.loads(run.stdout) == {
        topic: topic.replace(":", f".{modules[topic.split(':')[1].split('.')[0]]}:") for topic in OLD_TOPICS
    }
