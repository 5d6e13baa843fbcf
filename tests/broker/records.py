"""Reading and writing records in broker tests, with bounded waits instead of sleeps."""

from __future__ import annotations

import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, Producer, TopicPartition

# Bounds on waiting for records that should come; not timing assertions.
PATIENCE_SECONDS = 30.0


def produce(bootstrap: str, topic: str, values: list[str], key: str = "c-0001") -> None:
    """Sends `values` under one key and waits until the broker has acknowledged them all."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for value in values:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(PATIENCE_SECONDS) == 0


def consume(bootstrap: str, topic: str, count: int, **config: str) -> list[Message]:
    """Reads `count` records of `topic` from the start of every partition, or fails after
    PATIENCE_SECONDS naming how many came. No consumer group: joining one costs seconds on a
    fresh broker, and tests of groups say so."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "unused",
            "enable.auto.commit": False,
            **config,
        }
    )
    partitions = consumer.list_topics(topic, timeout=PATIENCE_SECONDS).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    records: list[Message] = []
    deadline = time.monotonic() + PATIENCE_SECONDS
    try:
        while len(records) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            records.append(message)
    finally:
        consumer.close()
    assert len(records) == count, f"read {len(records)} of {count} records of {topic}"
    return records


def rows(records: list[Message]) -> list[tuple[str, int, str]]:
    """(key, partition, value) of each record, decoded, in the order read."""
    decoded = []
    for record in records:
        key, partition, value = record.key(), record.partition(), record.value()
        assert isinstance(key, bytes) and isinstance(value, bytes) and partition is not None
        decoded.append((key.decode(), partition, value.decode()))
    return decoded
