"""A simulated input log as the worker would read it: records with their partition and
offset, in publish order, for tests that fold it without a broker. Each is stamped as the
broker would stamp it: received as it happened, one millisecond after the record before at
the least (the merge orders the two inputs by these stamps: publish order, as before)."""

from __future__ import annotations

from collections import Counter

from streams.broker import TopicNames
from streams.contract import Codec
from streams.core.events import to_ms
from streams.tools.simulate import SimulationConfig, simulate
from streams.worker.ordering import Source
from streams.worker.processor import InputRecord, expected_partition


def simulated_log(
    codec: Codec, topics: TopicNames, partitions: int, config: SimulationConfig
) -> list[InputRecord]:
    offsets: Counter[tuple[Source, int]] = Counter()
    records = []
    received_ms = -1
    for schema, body in simulate(config):
        received_ms = max(received_ms + 1, to_ms(body["occurred_at"]))
        key = body["customer_id"].encode()
        partition = expected_partition(key, partitions)
        source = Source.PURCHASES if schema.endswith(("Purchase", "Return")) else Source.FEEDBACK
        topic = topics.purchases if source is Source.PURCHASES else topics.feedback
        offset = offsets[(source, partition)]
        offsets[(source, partition)] += 1
        value = codec.encode(schema, body)
        records.append(InputRecord(source, topic, partition, offset, received_ms, key, value))
    return records
