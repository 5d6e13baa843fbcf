"""The order in which a partition's input records are applied: a merge of the partition's
sources (purchases, feedback) by event time.

Each source is read in offset order; the merge takes, among the sources' oldest buffered
records, the one with the earliest event time (ties: purchases first, then by offset). It
waits while a source has nothing buffered unless that source is caught up with the broker, so
that a customer's feedback and purchases are applied in event-time order whatever order the
consumer happened to fetch them in. The audit folds the log with the same merge, which is why
replaying a log gives the same state and the same output events.

Within a source, records leave in offset order, so acknowledgements never leave gaps (the
commit path where faust-streaming has known bugs, e.g. faust-streaming/faust#606)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Generic, TypeVar

Payload = TypeVar("Payload")

# Records that carry no usable event time (undecodable bytes) leave as soon as they are the
# oldest of their source: they change no state, and holding them back would hold back acks.
NO_EVENT_TIME = -1


class Source(IntEnum):
    PURCHASES = 0
    FEEDBACK = 1


@dataclass(frozen=True, slots=True)
class Pending(Generic[Payload]):
    occurred_ms: int
    source: Source
    offset: int
    payload: Payload = field(compare=False)

    @property
    def order(self) -> tuple[int, int, int]:
        return (self.occurred_ms, self.source, self.offset)


class PartitionMerge(Generic[Payload]):
    """The merge for one partition. `push` records as they arrive (per source in offset
    order); `release` yields those whose turn has come."""

    def __init__(self) -> None:
        self._buffers: tuple[deque[Pending[Payload]], ...] = tuple(deque() for _ in Source)

    def push(self, pending: Pending[Payload]) -> None:
        buffer = self._buffers[pending.source]
        if buffer and buffer[-1].offset >= pending.offset:
            raise ValueError(
                f"{pending.source.name} offset {pending.offset} after {buffer[-1].offset}: "
                "a source must be pushed in offset order"
            )
        buffer.append(pending)

    def release(self, caught_up: Callable[[Source], bool]) -> Iterator[Pending[Payload]]:
        """Records in merge order, while the order is certain: every source either has a
        record buffered or is caught up (nothing more to read from it right now)."""
        while True:
            heads = [buffer[0] for buffer in self._buffers if buffer]
            if not heads:
                return
            for source, buffer in zip(Source, self._buffers, strict=True):
                if not buffer and not caught_up(source):
                    return
            first = min(heads, key=_order)
            self._buffers[first.source].popleft()
            yield first

    def buffered(self) -> int:
        return sum(len(buffer) for buffer in self._buffers)


def _order(pending: Pending[Payload]) -> tuple[int, int, int]:
    return pending.order


def merged(sources: Iterable[Iterable[Pending[Payload]]]) -> Iterator[Pending[Payload]]:
    """The merge over complete logs (each source in offset order): the order a worker applies
    records in when every source's records are available to it. The audit's reference."""
    merge: PartitionMerge[Payload] = PartitionMerge()
    for source_records in sources:
        for pending in source_records:
            merge.push(pending)
    yield from merge.release(lambda _source: True)
