"""Faust's aiokafka transport with one fix: the end offsets of changelog partitions that
table recovery reads up to are asked of the broker, also under exactly_once.

Under transactions Faust takes those end offsets from the consumer's last fetch response
(the last stable offset), which it does not have for a partition it has not fetched since
the assignment; it then reads the end as -1, concludes the changelog is empty, and starts
the partition from an empty table (the crash test under exactly_once applied records to
customers it thought new, losing their state and outputs), or, for a partition it kept,
stops with a ConsistencyError (its offset above -1). A ListOffsets request made with the
consumer's isolation level returns the last stable offset under read_committed, as Kafka's
own clients do (see faust-streaming/faust#158 and robinhood/aiokafka#7 for the -1).

A shorter wait for fetches of quiet partitions (`FETCH_MAX_WAIT_MS`), and fetches stamped
with the time they were sent, not the time their answer was processed (`fetch_time`).

The offsets it commits worked out without three faults of Faust's (`commit_offsets`).

And one guard: under exactly_once a partition's transaction is committed only while the
worker loop is between records (`GatedTransactionManager`).

Registered with Faust under the URL scheme `loyalty-kafka://`."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import faust.transport.drivers
from aiokafka.errors import IllegalOperation, ProducerFenced
from faust.exceptions import ProducerSendError
from faust.transport.consumer import TransactionManager
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Transport
from faust.types import TP

from streams.worker.commit_offsets import SafeCommitOffsets
from streams.worker.fetch_time import stamp_fetches_when_sent

SCHEME = "loyalty-kafka"

# What sending into a partition's transaction raises once the partition's next owner has
# fenced it: aiokafka's own errors, and Faust's once it has dropped the fenced producer
TRANSACTION_GONE = (ProducerFenced, IllegalOperation, ProducerSendError)


# How long the broker may hold a fetch of partitions that have no new records. aiokafka
# leaves out of a fetch every partition whose records are still buffered, so under load the
# fetches ask for the quiet partitions alone, and the broker holds them for this long: that
# long the worker's view of a quiet input's end is old, and the event-time merge holds the
# other input's records back for it (Faust's fixed 1.5 s made a p99 of 600 ms at half load).
FETCH_MAX_WAIT_MS = 100


class BrokerEndOffsetsConsumerThread(AIOKafkaConsumerThread):
    async def on_start(self) -> None:
        await super().on_start()  # starts aiokafka's consumer: no partition assigned yet
        stamp_fetches_when_sent(self._consumer._fetcher)  # type: ignore[union-attr]

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when it starts its fetcher
        return consumer

    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        # read_committed: the last stable offset; read_uncommitted: the high watermark
        offsets: Mapping[TP, int] = await self._ensure_consumer().end_offsets(partitions)
        return offsets


class BrokerEndOffsetsConsumer(SafeCommitOffsets):
    def _new_consumer_thread(self) -> Any:
        return BrokerEndOffsetsConsumerThread(self, loop=self.loop, beacon=self.beacon)


class GatedTransactionManager(TransactionManager):
    """Commits the open transactions (with the offsets acked) only while `gate` is free: the
    worker loop holds it from a record's first output until the record's state write is in
    the transaction, so no commit holds one without the other (see `WorkerLoop.commit_gate`)."""

    gate: asyncio.Lock | None = None  # set by the worker once its loop exists

    async def commit(self, offsets: Mapping[TP, int], start_new_transaction: bool = True) -> bool:
        if self.gate is None:
            return bool(await super().commit(offsets, start_new_transaction))
        async with self.gate:
            return bool(await super().commit(offsets, start_new_transaction))


class LoyaltyTransport(Transport):
    Consumer = BrokerEndOffsetsConsumer
    TransactionManager = GatedTransactionManager


def register() -> str:
    """Makes `loyalty-kafka://` resolve to this transport; returns the scheme."""
    faust.transport.drivers.TRANSPORTS.aliases[SCHEME] = f"{__name__}:LoyaltyTransport"
    return SCHEME
