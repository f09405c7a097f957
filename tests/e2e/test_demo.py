"""The README's run command with the demo, from a fresh checkout's point of view: no
YISHI_* settings, so the embedded stack, every service as a process, and the story told
to completion through the public APIs."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.ports import free_ports

STORY = ("(public pages, no login)", "forms 西康路社区议事会", "raises «", "seconds the motion", "lodges an objection", "expert_comment:",
         "voting opens", "ballot: ", "vote closed (all_voted): 4 in favour, 1 against", "ProposalDecided:",
         "ResolutionRegistered:", "TaskAssigned:", "TaskStalled:", "NotificationDelivered", "by webhook: 任务提醒",
         "TaskCompleted:", "InspectionRecorded:", "SatisfactionRated", "audit trail:",
         "the outcome roadmap, public, no login: http://127.0.0.1:", "the story is complete",
         "stopped")
"""Key lines of the story, in the order they are told."""


def test_run_with_the_demo_tells_the_whole_story_and_exits():
    env = {k: v for k, v in os.environ.items() if not k.startswith("YISHI_")}
    done = subprocess.run([sys.executable, "-m", "yishi.cli", "run", "--demo", "--demo-exit", "--base-port", str(free_ports(5))],
                          env={**env, "COLUMNS": "200"}, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-5000:]
    missing = [line for line in STORY if line not in done.stderr]
    assert not missing, f"missing {missing} in:\n{done.stderr[-5000:]}"
    positions = [done.stderr.index(line) for line in STORY]
    assert positions == sorted(positions), "the story is told out of order"
