"""The customer table keeps its changelog writes until the worker hands them to the producer,
and drops those of partitions it no longer owns (see `customer_table`)."""

from __future__ import annotations

import asyncio
from typing import Any

import faust

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

    assert not await table.hand_over(lambda partition: partition != 1)  # must not be acked
    assert not table.unsent
    table.send_changelog(3, b"e", b"E")
    assert await table.hand_over(lambda partition: True)  # all went: the record is done
    assert [(key, partition) for key, _, partition in published] == [
        (b"a", 0),
        (b"c", 0),
        (b"d", 2),
        (b"e", 3),
    ]
