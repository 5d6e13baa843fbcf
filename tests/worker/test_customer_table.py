"""The customer table keeps its changelog writes until the worker hands them to the producer,
and drops those of partitions it no longer owns (see `customer_table`)."""

from __future__ import annotations

import asyncio
import weakref
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import faust
import faust.streams

from streams.worker.customer_table import CustomerTable


def test_changelog_writes_wait_for_the_hand_over_and_skip_partitions_given_up() -> None:
    # all inside one event loop: Faust's future messages need a running one
    asyncio.run(changelog_writes_wait_for_the_hand_over_and_skip_partitions_given_up())


async def changelog_writes_wait_for_the_hand_over_and_skip_partitions_given_up() -> None:
    app = faust.App("customer-table-test", store="memory://")
    table = CustomerTable(app, name="customers", beacon=app.tables.beacon, partitions=4,
                          key_type=bytes, value_type=bytes)  # fmt: skip
    app.tables.add(table)
    published: list[tuple[Any, Any, int | None]] = []

    async def publish_message(fut: Any, wait: bool = False) -> None:
        assert not wait  # handed over, not waited for: the commit waits
        published.append((fut.message.key, fut.message.value, fut.message.partition))

    topic = table.changelog_topic
    topic.publish_message = publish_message  # type: ignore[method-assign, assignment]
    for partition, key in ((0, b"a"), (1, b"b"), (0, b"c"), (2, b"d")):
        fut = table.send_changelog(partition, key, key.upper())
        assert fut.message.channel is topic and fut.message.partition == partition
    assert published == []  # nothing leaves before the hand-over

    assert await table.hand_over(lambda partition: partition != 1) == {1: 0}  # none went
    assert not table.unsent
    table.send_changelog(3, b"e", b"E")
    assert await table.hand_over(lambda partition: True) == {}  # all went: records done
    assert [(key, partition) for key, _, partition in published] == [
        (b"a", 0),
        (b"c", 0),
        (b"d", 2),
        (b"e", 3),
    ]


def test_a_dropped_write_is_undone_in_the_local_store() -> None:
    asyncio.run(a_dropped_write_is_undone_in_the_local_store())


async def a_dropped_write_is_undone_in_the_local_store() -> None:
    """Faust writes the local store at once: a write whose changelog record is dropped (its
    partition given up meanwhile) must not stay there, or a partition that comes back to
    this worker holds a state its changelog never got, and the record, read again, is
    skipped as applied."""
    app = faust.App("customer-table-undo-test", store="memory://")
    table = CustomerTable(app, name="customers", beacon=app.tables.beacon, partitions=4,
                          key_type=bytes, value_type=bytes)  # fmt: skip
    app.tables.add(table)

    async def publish_message(fut: Any, wait: bool = False) -> None:
        return None

    table.changelog_topic.publish_message = publish_message  # type: ignore[method-assign, assignment]
    table.data[b"kept"] = b"v1"
    table.data[b"old"] = b"v1"

    def write(partition: int, key: bytes, value: bytes) -> None:
        table.send_changelog(partition, key, value)  # what Faust's __setitem__ does, in order
        table.data[key] = value

    write(0, b"kept", b"v2")
    write(1, b"old", b"v2")
    write(1, b"old", b"v3")  # written twice before the hand-over: back to before the first
    write(1, b"new", b"v1")
    assert await table.hand_over(lambda partition: partition != 1) == {1: 0}
    assert dict(table.data.items()) == {b"kept": b"v2", b"old": b"v1"}
    write(1, b"new", b"v1")
    assert await table.hand_over(lambda partition: True) == {}
    assert table.data[b"new"] == b"v1"


def test_a_put_goes_to_the_partition_it_names_whatever_event_is_at_hand() -> None:
    asyncio.run(a_put_goes_to_the_partition_it_names_whatever_event_is_at_hand())


async def a_put_goes_to_the_partition_it_names_whatever_event_is_at_hand() -> None:
    """The worker writes a batch's states after its records, several partitions' at once:
    each write must reach its own partition's changelog, not that of the event Faust last
    handed to the agent (which it would take by default)."""
    app = faust.App("customer-table-put-test", store="memory://")
    table = CustomerTable(app, name="customers", beacon=app.tables.beacon, partitions=4,
                          key_type=bytes, value_type=bytes)  # fmt: skip
    app.tables.add(table)
    table.source_topic = "purchases"

    class EventAtHand:  # what Faust's table reads of an event (weakly referenced)
        message = SimpleNamespace(topic="purchases", partition=1)

    at_hand = EventAtHand()
    token = faust.streams._current_event.set(weakref.ref(cast(Any, at_hand)))
    try:
        table.put(3, b"a", b"A")
        table.put(0, b"b", b"B")
        assert cast(Any, faust.streams.current_event()) is at_hand  # left as it was
    finally:
        faust.streams._current_event.reset(token)
    assert [(fut.message.partition, key) for fut, key, _ in table.unsent] == [(3, b"a"), (0, b"b")]
    assert table.data[b"a"] == b"A" and table.data[b"b"] == b"B"


def test_a_partition_lost_part_way_says_how_many_of_its_writes_went() -> None:
    asyncio.run(a_partition_lost_part_way_says_how_many_of_its_writes_went())


async def a_partition_lost_part_way_says_how_many_of_its_writes_went() -> None:
    """The rebalance starts while a batch's writes are handed over: the partition's writes
    before that went (their records are applied), it and every later one of the partition
    are dropped, even if the partition looked owned again."""
    app = faust.App("customer-table-cut-test", store="memory://")
    table = CustomerTable(app, name="customers", beacon=app.tables.beacon, partitions=4,
                          key_type=bytes, value_type=bytes)  # fmt: skip
    app.tables.add(table)
    published: list[bytes] = []

    async def publish_message(fut: Any, wait: bool = False) -> None:
        published.append(fut.message.key)

    table.changelog_topic.publish_message = publish_message  # type: ignore[method-assign, assignment]
    answers = iter([True, True, False, True])  # partition 1: owned, owned, not, owned again
    for key in (b"a", b"b", b"c", b"d"):
        table.send_changelog(1, key, key.upper())
    table.send_changelog(2, b"e", b"E")
    assert await table.hand_over(lambda p: next(answers) if p == 1 else True) == {1: 2}
    assert published == [b"a", b"b", b"e"]


def test_a_dropped_write_is_undone_in_its_own_partitions_rocksdb(tmp_path: Path) -> None:
    asyncio.run(a_dropped_write_is_undone_in_its_own_partitions_rocksdb(tmp_path))


async def a_dropped_write_is_undone_in_its_own_partitions_rocksdb(tmp_path: Path) -> None:
    """RocksDB keeps a database per partition and picks it by the event at hand. The batch's
    last record was of partition 2; the dropped write was of partition 1: it must be undone
    there, not copied into partition 2's database (where it showed as a second, stale copy
    of the customer on a worker that then owned partition 2)."""
    app = faust.App("customer-table-rocksdb-test", store="rocksdb://", datadir=str(tmp_path))
    table = CustomerTable(app, name="customers", beacon=app.tables.beacon, partitions=4,
                          key_type=bytes, value_type=bytes)  # fmt: skip
    app.tables.add(table)
    table.source_topic = "purchases"

    async def publish_message(fut: Any, wait: bool = False) -> None:
        return None

    table.changelog_topic.publish_message = publish_message  # type: ignore[method-assign, assignment]
    table.put(1, b"kept", b"v1")
    assert await table.hand_over(lambda partition: True) == {}

    class EventAtHand:  # the agent's current record, of partition 2
        message = SimpleNamespace(topic="purchases", partition=2)

    at_hand = EventAtHand()
    token = faust.streams._current_event.set(weakref.ref(cast(Any, at_hand)))
    try:
        table.put(1, b"kept", b"v2")
        assert await table.hand_over(lambda partition: partition != 1) == {1: 0}
    finally:
        faust.streams._current_event.reset(token)
    store: Any = table.data
    assert store._db_for_partition(1).get(b"kept") == b"v1"  # undone where it was written
    assert store._db_for_partition(2).get(b"kept") is None  # and not copied elsewhere
