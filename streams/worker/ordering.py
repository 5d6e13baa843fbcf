"""The order in which a partition's input records are applied: a merge of the partition's
sources (purchases, feedback) by record timestamp, that is by when the broker took them (the
input topics are made with `message.timestamp.type=LogAppendTime`: see `broker.topics`).

Each source is read in offset order; the merge takes, among the sources' oldest buffered
records, the one with the earliest timestamp (ties: purchases first, then by offset). It waits
while a source has nothing buffered unless that source is caught up with the broker, so that
a customer's feedback and purchases are applied in the order they were published, whatever
order the consumer happened to fetch them in. The timestamps are in the log, so the audit
folds it with the same merge: replaying a log gives the same state and the same outputs.

(Event time is not the merge key: a POS that sends a late event has published it late, and
the core applies late events as such; event time drives the partition's clock.)

Within a source, records leave in offset order, so acknowledgements never leave gaps (the
commit path where faust-streaming has known bugs, e.g. faust-streaming/faust#606)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Generic, TypeVar

Payload = TypeVar("Payload")


class Source(IntEnum):
    PURCHASES = 0
    FEEDBACK = 1


@dataclass(frozen=True, slots=True)
class Pending(Generic[Payload]):
    timestamp_ms: int  # the Kafka record's timestamp
    source: Source
    offset: int
    payload: Payload = field(compare=False)

    @property
    def order(self) -> tuple[int, int, int]:
        return (self.timestamp_ms, self.source, self.offset)


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

    def rewind(self, source: Source, offset: int) -> int:
        """The consumer went back to `offset` of `source` (Faust seeks to the committed
        offsets when its flow stops): the records buffered from there on will come again, so
        they leave the buffer now. Returns how many left."""
        buffer = self._buffers[source]
        kept = deque(pending for pending in buffer if pending.offset < offset)
        dropped = len(buffer) - len(kept)
        self._buffers[source].clear()
        self._buffers[source].extend(kept)
        return dropped

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

    def oldest_head_ms(self) -> int | None:
        """The earliest timestamp among the sources' oldest buffered records."""
        heads = [buffer[0].timestamp_ms for buffer in self._buffers if buffer]
        return min(heads) if heads else None

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
