"""Reading topics back: every record from the beginning up to the end as it was when we
looked, decoded with the contract's codec and counted. The demo shows it; tests use it to
check that what was published is exactly what landed."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from streams.broker.client import cluster_metadata, reader_group
from streams.broker.security import KafkaTarget, librdkafka_config


class RecordDecoder(Protocol):
    def decode(self, data: bytes) -> Any: ...


@dataclass
class TopicCensus:
    topic: str
    records: int = 0
    by_schema: Counter[str] = field(default_factory=Counter)
    undecodable: int = 0
    event_ids: set[str] = field(default_factory=set)
    keyed_by_customer: int = 0  # records whose key is their customer_id
    sample: dict[str, Any] | None = None


def read_topic(kafka: KafkaTarget, topic: str, timeout_s: float = 30.0) -> Iterator[Message]:
    """Every record of every partition, from the beginning to the high watermark at the start.
    Raises TimeoutError if no progress is made for `timeout_s`."""
    consumer = Consumer(
        librdkafka_config(
            kafka,
            {
                "group.id": reader_group("census"),  # never joins or commits: assign()
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
            },
        )
    )
    try:
        metadata = cluster_metadata(consumer, kafka, timeout_s, topic)
        ends = {}
        for partition in sorted(metadata.topics[topic].partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout_s)
            if high > low:
                ends[partition] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        last_progress = time.monotonic()
        while ends:
            message = consumer.poll(0.5)
            if message is not None:
                if message.error():
                    raise RuntimeError(f"{topic}: {message.error()}")
                last_progress = time.monotonic()
                yield message
            # Positions, not the last offset seen: under transactions the last offsets of a
            # partition are commit markers that are never delivered as records.
            for position in consumer.position([TopicPartition(topic, p) for p in list(ends)]):
                if position.offset >= ends[position.partition]:
                    del ends[position.partition]
            if time.monotonic() - last_progress > timeout_s:
                raise TimeoutError(f"{topic}: no progress for {timeout_s}s; left: {ends}")
    finally:
        consumer.close()


def census_of(topic: str, messages: Iterable[Message], decoder: RecordDecoder) -> TopicCensus:
    census = TopicCensus(topic)
    for message in messages:
        census.records += 1
        try:
            decoded = decoder.decode(message.value() or b"")
        except Exception:  # any failure to decode is what we count here
            census.undecodable += 1
            continue
        schema_name, record = decoded.schema_name, decoded.record
        census.by_schema[schema_name] += 1
        census.event_ids.add(record["event_id"])
        key = message.key()
        if key is not None and key.decode() == record.get("customer_id"):
            census.keyed_by_customer += 1
        if census.sample is None:
            census.sample = record
    return census


def take_census(
    kafka: KafkaTarget, topics: Iterable[str], decoder: RecordDecoder
) -> list[TopicCensus]:
    return [census_of(t, read_topic(kafka, t), decoder) for t in topics]
