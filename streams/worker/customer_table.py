"""The customer table: a Faust table whose changelog writes the worker hands to the producer
itself, before it acks the record that caused them.

Faust puts a table's changelog writes in a buffer that a background task drains into the
producer, and commits offsets without waiting for that buffer to drain: under exactly_once
its commit does not flush it at all, and under at_least_once its flush gives up after 0.1 s
without a message going out. An offset committed ahead of its record's state write loses the
record if the worker then dies: the next owner recovers the state without it and does not
read the record again (the crash test under exactly_once lost 798 outputs and the states of
the customers concerned that way). Here a write waits in `unsent` until the writer calls
`hand_over`, which gives it to the producer (into the partition's open transaction under
exactly_once) before the record is acked; a commit that includes the record's offset then
includes its write, or, under at_least_once, waits for it (Faust flushes the producer before
committing).

A write dropped at the hand-over is undone in the local store too. Faust writes the local
store (RocksDB, or memory) at once; left there, a dropped write outlives the rebalance when
the partition stays with this worker: the record, read again, is skipped as applied, and its
state never reaches the changelog, which the partition's next owner, `export` and `audit`
read. (Found while looking for why CI's read-side test once saw a customer's changelog 14
offsets behind; that this was the path there is not proven.)"""

from __future__ import annotations

import weakref
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any, cast

import faust
import faust.streams
from faust.types import EventT, FutureMessage
from faust.types.codecs import CodecArg

from streams.worker.kafka_transport import TRANSACTION_GONE


class CustomerTable(faust.Table):  # type: ignore[type-arg]  # keys and values are raw bytes
    def __post_init__(self) -> None:  # Faust's Service hook, after __init__
        super().__post_init__()
        # each write kept, with the key's value in the local store before it (None: absent)
        self.unsent: deque[tuple[FutureMessage, bytes, bytes | None]] = deque()
        # the input topic whose partitions the table's follow (set by the app); its name is
        # what Faust checks the changelog's partition count against
        self.source_topic = ""
        self._writers: dict[int, _PartitionWriter] = {}

    def put(self, partition: int, key: bytes, value: bytes) -> None:
        """Stores a customer of input partition `partition`. Faust picks a write's changelog
        partition, and RocksDB the partition's database, from the event being processed; the
        worker writes a batch of several partitions' customers after its records, so it says
        which partition each write is for, as the event of that partition would."""
        with self._as_event_of(partition):
            self[key] = value

    @contextmanager
    def _as_event_of(self, partition: int) -> Iterator[None]:
        """Makes Faust's table and store take `partition` for the event being processed."""
        writer = self._writers.get(partition)
        if writer is None:
            writer = self._writers[partition] = _PartitionWriter(self.source_topic, partition)
        token = faust.streams._current_event.set(weakref.ref(cast("EventT[Any]", writer)))
        try:
            yield
        finally:
            faust.streams._current_event.reset(token)

    def send_changelog(
        self,
        partition: int | None,
        key: Any,
        value: Any,
        key_serializer: CodecArg | None = None,
        value_serializer: CodecArg | None = None,
    ) -> FutureMessage:
        """Prepares the changelog write as Faust would, but keeps it for `hand_over`. Called
        by Faust before it writes the local store: what the store holds is the value before."""
        fut = self.changelog_topic.as_future_message(
            key=key,
            value=value,
            partition=partition,
            key_serializer=self.key_serializer if key_serializer is None else key_serializer,
            value_serializer=(
                self.value_serializer if value_serializer is None else value_serializer
            ),
            callback=self._on_changelog_sent,
            eager_partitioning=True,
        )
        self.unsent.append((fut, key, self.data.get(key)))
        return fut

    async def hand_over(self, still_owned: Callable[[int], bool]) -> dict[int, int]:
        """Gives every kept write to the producer, in order (without waiting for Kafka's
        acknowledgement). Once a write's partition is no longer owned, it and every later
        write of that partition are dropped: the records they belong to must not be acked, so
        that the partition's next owner applies them again (a write arriving behind that
        owner's recovery would later win over its newer states). A dropped write is undone in
        the local store. Returns, for each partition that lost writes, how many of its writes
        went to the producer before (the records those belong to are applied)."""
        dropped: list[tuple[int, bytes, bytes | None]] = []
        published: dict[int, int] = {}
        lost: dict[int, int] = {}
        while self.unsent:
            fut, key, before = self.unsent.popleft()
            partition = -1 if fut.message.partition is None else fut.message.partition
            if partition in lost or not still_owned(partition):
                dropped.append((partition, key, before))
                lost.setdefault(partition, published.get(partition, 0))
                continue
            try:
                await fut.message.channel.publish_message(fut, wait=False)
            except TRANSACTION_GONE:  # exactly_once: the partition's next owner fenced us
                dropped.append((partition, key, before))
                lost.setdefault(partition, published.get(partition, 0))
                continue
            published[partition] = published.get(partition, 0) + 1
        # newest first, so that a key written twice ends at its value before the first write;
        # each in its partition's store (RocksDB keeps one per partition and picks it by the
        # event at hand: a batch's other partition, once, put stale copies of customers there,
        # which then showed twice, their old state on a worker that did not own them)
        for partition, key, before in reversed(dropped):
            with self._as_event_of(partition):
                if before is None:
                    self.data.pop(key, None)
                else:
                    self.data[key] = before  # the store alone: no changelog write
        return lost


class _PartitionWriter:
    """What Faust's table and RocksDB store read of the event being processed when a key is
    set: its message's topic and partition."""

    def __init__(self, topic: str, partition: int) -> None:
        self.message = SimpleNamespace(topic=topic, partition=partition)
