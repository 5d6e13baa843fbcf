"""The offsets the worker's consumer commits: never past a record not yet processed, and
at once past every record that is (see `commit_offsets` for Faust's faults these pin down)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from faust.types import TP
from intervaltree import IntervalTree

from streams.worker.kafka_transport import BrokerEndOffsetsConsumer

INPUT = TP("purchases", 2)


class _Thread:
    """The consumer thread's answer to a seek: the committed offsets."""

    def __init__(self, committed: Mapping[TP, int | None]) -> None:
        self.committed = committed

    async def seek_to_committed(self) -> Mapping[TP, int | None]:
        return self.committed


def consumer(committed: int | None = None) -> Any:
    """The worker's consumer class with just the bookkeeping its commit offsets come from
    (Faust's own fields, as its `__init__` makes them)."""
    probe: Any = object.__new__(BrokerEndOffsetsConsumer)
    probe._acked = defaultdict(list)
    probe._acked_index = defaultdict(set)
    probe._gap = defaultdict(IntervalTree)
    probe._read_offset = defaultdict(lambda: None)
    probe._committed_offset = defaultdict(lambda: None)
    probe._committed_offset[INPUT] = committed
    probe._thread = _Thread({INPUT: committed})
    return probe


def ack(probe: Any, offsets: Iterable[int]) -> None:
    """As `Consumer.ack` records a processed record (without the message)."""
    for offset in offsets:
        if offset not in probe._acked_index[INPUT]:
            probe._acked_index[INPUT].add(offset)
            probe._acked[INPUT].append(offset)


def test_a_gap_ends_before_the_record_that_revealed_it() -> None:
    """Records 0-4, then 9 (5-8 are transaction markers, say): 5-8 are done, 9 is not until
    it is processed."""
    probe = consumer(committed=0)
    ack(probe, range(5))
    asyncio.run(probe._add_gap(INPUT, 5, 9))  # as Faust's fetcher calls it on seeing 9
    assert in_gaps(probe) == [5, 6, 7, 8]
    ack(probe, [9])
    assert probe._new_offset(INPUT) == 10


def in_gaps(probe: Any) -> list[int]:
    return sorted(o for interval in probe._gap[INPUT] for o in range(interval.begin, interval.end))


def test_records_delivered_before_a_seek_are_committed_once_processed_not_before() -> None:
    """A fresh worker: the fetcher delivered 0-641 before the seek to the committed offset
    (none), then 642 of the batch it was iterating looks like a jump from the committed
    offset. Nothing is done until processed; once 0-642 are, the commit is 643 at once."""
    probe = consumer(committed=500)
    probe._read_offset[INPUT] = 641
    asyncio.run(probe.perform_seek())
    assert probe._read_offset[INPUT] == 500  # Faust's seek
    asyncio.run(probe._add_gap(INPUT, 501, 642))
    ack(probe, range(500, 600))
    assert probe._new_offset(INPUT) == 600  # not past 600-642, delivered but not processed
    probe._committed_offset[INPUT] = 600
    ack(probe, range(600, 643))
    assert probe._new_offset(INPUT) == 643


def test_offsets_both_acked_and_in_a_gap_are_committed_in_one_go() -> None:
    """Faust lists such an offset twice, and its run of consecutive offsets stopped at the
    repeat: one or two offsets a commit (a takeover stalled 771 records behind)."""
    probe = consumer(committed=0)
    ack(probe, range(11))
    probe._gap[INPUT].addi(3, 9)  # 3-8, acked as well
    assert probe._new_offset(INPUT) == 11
    assert probe._acked[INPUT] == []


def test_an_offset_acked_after_its_gap_was_merged_is_not_a_repeat() -> None:
    probe = consumer(committed=0)
    ack(probe, range(3))
    probe._gap[INPUT].addi(3, 6)
    ack(probe, [7])
    assert probe._new_offset(INPUT) == 6  # 6 not processed yet
    probe._committed_offset[INPUT] = 6
    ack(probe, [6, 7, 8])  # 7 again: in `_acked` already, Faust's index forgot it
    probe._acked[INPUT].append(7)
    assert probe._new_offset(INPUT) == 9


def test_a_revoked_partition_forgets_what_was_delivered() -> None:
    """Assigned again later, a gap below what was delivered the first time (a transaction
    marker) must count: Faust forgot the first time's gaps."""
    probe = consumer(committed=0)
    probe._read_offset[INPUT] = 50
    asyncio.run(probe.perform_seek())
    probe.forget_delivered({INPUT})  # what `on_partitions_revoked` does first
    asyncio.run(probe._add_gap(INPUT, 10, 12))
    ack(probe, range(10))
    ack(probe, [12])
    assert probe._new_offset(INPUT) == 13
