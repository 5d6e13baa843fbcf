"""The memory store keeps no customer of a partition across a move of that partition: what it
held would otherwise outlive aborted transactions (see `memory_store`)."""

from __future__ import annotations

import asyncio

import faust
from faust.types import TP

from streams.core import new_customer
from streams.worker import memory_store
from streams.worker.envelope import stored


def customer_bytes(customer_id: str, partition: int) -> bytes:
    return stored(new_customer(customer_id), partition, (5, 3), None).to_bytes()


def test_customers_of_partitions_that_leave_or_arrive_are_forgotten_others_kept() -> None:
    app = faust.App("memory-store-test", store=memory_store.register())
    table = app.Table("customers", partitions=4, key_type=bytes, value_type=bytes)
    store = table.data
    assert isinstance(store, memory_store.PartitionedMemoryStore)
    for partition in range(4):
        store[f"c-{partition}".encode()] = customer_bytes(f"c-{partition}", partition)
    store[b"not-a-customer"] = b"\x00"  # not ours to judge: kept

    asyncio.run(
        store.on_rebalance(
            assigned={TP("purchases", 0), TP("purchases", 2), TP("feedback", 0)},
            revoked={TP("purchases", 1), TP("feedback", 1)},
            newly_assigned={TP("purchases", 2)},
        )
    )

    assert sorted(store.keys()) == [b"c-0", b"c-3", b"not-a-customer"]
