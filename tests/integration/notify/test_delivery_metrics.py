"""Delivery attempts are counted by channel and outcome (yishi_notify_deliveries_total):
the counts move exactly as the deliveries' recorded histories say."""

from __future__ import annotations

from collections import Counter

from contracts.voting import VoteClosed
from tests.integration.notify.test_delivery import world  # noqa: F401  (the module's own notify world)
from tests.support.service import eventually
from yishi.metrics import DELIVERIES


def counted() -> Counter:
    return Counter({(s.labels["channel"], s.labels["outcome"]): s.value for m in DELIVERIES.collect()
                    for s in m.samples if s.name.endswith("_total")})


async def test_delivery_attempts_are_counted_by_channel_and_outcome(world):  # noqa: F811
    before = counted()
    for name in ("ok", "down"):
        await world.subscribe(f"sys-m-{name}", "webhook", world.receiver.url(f"/{name}"), kind="system",
                              language="en", event_types=["VoteClosed"])
    await world.publish("voting", world.event(
        VoteClosed, vote_id="vote-m", council_id="council-m", matter={"kind": "proposal", "id": "p-m"},
        tally={"in_favour": 3, "against": 0, "abstain": 0}, electorate_size=3, turnout_percent=100.0,
        quorum_met=True, outcome="adopted"), "vote-m")

    async def first_attempts_recorded():
        rows = [d for d in await world.deliveries() if d["regarding_subject"] == "vote-m"]
        return rows if len(rows) >= 2 and all(d["attempts"] >= 1 and d["status"] != "sending" for d in rows) \
            else None

    rows = await eventually(first_attempts_recorded, timeout=60)
    expected = Counter()
    for row in rows:
        for step in row["history"]:
            if step["outcome"] == "delivered":
                expected[(row["channel"], "delivered")] += 1
            elif step["outcome"] in ("failed", "dead_lettered"):
                expected[(row["channel"], step["reason"])] += 1
    assert expected[("webhook", "delivered")] >= 1 and expected[("webhook", "rejected_by_channel")] == 1, rows
    assert counted() - before == expected
