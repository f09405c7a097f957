"""Consumers' offsets are committed together (``yishi.inbox.OffsetCommits``): one commit of
the latest offset done per partition, of the partitions the consumer still has."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition

from yishi.inbox import OffsetCommits


class Consumer:
    """What OffsetCommits asks of an AIOKafkaConsumer, recording the commits."""

    def __init__(self, *assigned: TopicPartition, fail: bool = False) -> None:
        self.assigned, self.fail, self.commits = set(assigned), fail, []

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.fail:
            raise RuntimeError("the group is rebalancing")
        self.commits.append(dict(offsets))


A0, A1 = TopicPartition("a", 0), TopicPartition("a", 1)


async def test_one_commit_holds_the_next_offset_of_each_partition_done():
    commits, consumer = OffsetCommits(), Consumer(A0, A1)
    for offset in (0, 1, 2):
        commits.done(consumer, "a", 0, offset)
    commits.done(consumer, "a", 1, 7)
    await commits.flush()
    await commits.flush()  # nothing new: nothing sent
    assert consumer.commits == [{A0: 3, A1: 8}]


async def test_a_partition_taken_away_meanwhile_is_left_to_its_new_owner():
    commits, consumer = OffsetCommits(), Consumer(A0)
    commits.done(consumer, "a", 0, 4)
    commits.done(consumer, "a", 1, 9)  # ended after a rebalance gave partition 1 away
    await commits.flush()
    assert consumer.commits == [{A0: 5}]


async def test_a_failed_commit_does_not_keep_other_consumers_waiting():
    commits, failing, other = OffsetCommits(), Consumer(A0, fail=True), Consumer(A1)
    commits.done(failing, "a", 0, 1)
    commits.done(other, "a", 1, 1)
    await commits.flush()
    assert other.commits == [{A1: 2}]


async def test_the_background_loop_commits_within_its_interval_and_stops():
    commits, consumer, stop = OffsetCommits(interval=0.01), Consumer(A0), asyncio.Event()
    loop = asyncio.create_task(commits.run(stop))
    commits.done(consumer, "a", 0, 0)
    for _ in range(200):
        if consumer.commits:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(loop, 5)
    assert consumer.commits == [{A0: 1}]
