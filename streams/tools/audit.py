"""The test oracle and `loyalty audit`: read the input topics from the beginning, fold them
with the core in the order the worker applies them (per partition, the event-time merge of
the sources), and compare with what the workers produced.

The reference runs the worker's own loop over an in-memory table with every source caught up
only at the end of the log, so it sees exactly the complete-log merge; what it does not have
is Kafka, Faust, crashes and rebalances: which is what the comparison is about."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from streams.broker.topics import TopicNames
from streams.contract import Codec
from streams.core import Program
from streams.tools.topic_census import read_topic
from streams.worker.loop import WorkerLoop
from streams.worker.ordering import Source
from streams.worker.processor import InputRecord, Outbound, Processor


@dataclass
class Reference:
    table: dict[bytes, bytes] = field(default_factory=dict)
    outputs: list[Outbound] = field(default_factory=list)

    def output_ids(self, topic: str | None = None) -> Counter[str]:
        return Counter(
            sent.event_id
            for sent in self.outputs
            if sent.event_id is not None and (topic is None or sent.topic == topic)
        )

    def dead_letters(self) -> int:
        return sum(1 for sent in self.outputs if sent.kind == "DeadLetter")


def read_input_log(bootstrap_servers: str, topics: TopicNames) -> list[InputRecord]:
    records = []
    for source, topic in ((Source.PURCHASES, topics.purchases), (Source.FEEDBACK, topics.feedback)):
        for message in read_topic(bootstrap_servers, topic):
            partition, offset = message.partition(), message.offset()
            assert partition is not None and offset is not None
            timestamp_ms = message.timestamp()[1]
            records.append(
                InputRecord(
                    source, topic, partition, offset, timestamp_ms, message.key(), message.value()
                )
            )
    return records


def reference_fold(
    records: Iterable[InputRecord],
    program: Program,
    codec: Codec,
    topics: TopicNames,
    partitions: int,
    *,
    grace_ms: int = 0,
) -> Reference:
    """What a worker that never crashed would have stored and sent for this log (with the
    worker's grace, so that the time-driven work at the log's end matches too)."""
    reference = Reference()
    processor = Processor(program, codec, topics, partitions)
    at_end = False

    async def send(outbound: list[Outbound]) -> None:
        reference.outputs.extend(outbound)

    loop = WorkerLoop(
        processor,
        reference.table,
        send,
        lambda _source, _partition, _last: at_end,
        grace_ms=grace_ms,
        live_clock=False,
        merge_delay_ms=0,
        max_idle_s=float("inf"),
    )

    async def fold() -> None:
        nonlocal at_end
        seen_partitions = set()
        for record in records:
            seen_partitions.add(record.partition)
            await loop.on_record(record, lambda: None)
        at_end = True
        for partition in sorted(seen_partitions):
            await loop.on_tick(partition, 0)  # drains what waited for the log's end

    asyncio.run(fold())
    return reference


@dataclass
class OutputLog:
    ids: Counter[str] = field(default_factory=Counter)
    dead_letters: int = 0
    records: int = 0


def read_output_log(bootstrap_servers: str, topics: TopicNames, codec: Codec) -> OutputLog:
    log = OutputLog()
    for topic in (*topics.outputs, topics.dead_letter):
        for message in read_topic(bootstrap_servers, topic):
            log.records += 1
            record = codec.decode(message.value() or b"").record
            if topic == topics.dead_letter:
                log.dead_letters += 1
            else:
                log.ids[record["event_id"]] += 1
    return log
