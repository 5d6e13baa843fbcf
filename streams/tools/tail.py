"""`loyalty tail`: records of one of our topics, decoded with the contract's codec, as JSON
lines: the last few, every one from the beginning, and (following) new ones as they come."""

from __future__ import annotations

import base64
from collections.abc import Generator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from confluent_kafka import Consumer, Message, TopicPartition

from streams.broker.client import cluster_metadata, reader_group
from streams.broker.security import KafkaTarget, librdkafka_config
from streams.broker.topics import TopicNames
from streams.contract import Codec

SHORT_NAMES = (
    "purchases",
    "feedback",
    "tier-changes",
    "churn-risk",
    "rewards",
    "dead-letter",
)


def resolve_topic(name: str, topics: TopicNames) -> str:
    """A short name (tier-changes) under the configured prefix, or a full topic name."""
    if name in SHORT_NAMES:
        return f"{topics.prefix}.{name}.v1"
    return name


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(value).decode()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value


def decoded_line(message: Message, codec: Codec) -> dict[str, Any]:
    """A record as a JSON-ready dict: where it is, then its schema and fields (or why it
    cannot be decoded: input topics may hold garbage, which is what dead letters are for)."""
    line: dict[str, Any] = {
        "topic": message.topic(),
        "partition": message.partition(),
        "offset": message.offset(),
        "timestamp_ms": message.timestamp()[1],
        "key": _json_value(message.key()),
    }
    try:
        decoded = codec.decode(message.value() or b"")
    except Exception as error:  # show what is there, whatever it is
        line["error"] = f"undecodable: {error}"
        line["raw"] = _json_value(message.value())
        return line
    line["schema"] = decoded.schema_name
    line["event"] = _json_value(decoded.record)
    return line


def tail(
    kafka: KafkaTarget,
    topic: str,
    *,
    last: int,
    from_beginning: bool,
    follow: bool,
    poll_s: float = 0.5,
) -> Generator[Message, None, None]:
    """The topic's last `last` records by timestamp (or all of them, in partition order, with
    `from_beginning`), then, with `follow`, every new record until the caller stops."""
    consumer = Consumer(
        librdkafka_config(
            kafka,
            {
                "group.id": reader_group("tail"),  # assign(), never commits
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            },
        )
    )
    try:
        metadata = cluster_metadata(consumer, kafka, 10, topic)
        if topic not in metadata.topics or metadata.topics[topic].error is not None:
            raise LookupError(f"no topic {topic} at {kafka}")
        ends: dict[int, int] = {}
        starts = []
        for partition in sorted(metadata.topics[topic].partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
            start = low if from_beginning else max(low, high - last)
            starts.append(TopicPartition(topic, partition, start))
            if high > start:
                ends[partition] = high
        consumer.assign(starts)
        backlog: list[Message] = []
        while ends:
            message = consumer.poll(poll_s)
            if message is not None and not message.error():
                if from_beginning:
                    yield message
                else:
                    backlog.append(message)
            positions = consumer.position([TopicPartition(topic, p) for p in list(ends)])
            for position in positions:
                if position.offset >= ends[position.partition]:
                    del ends[position.partition]
        backlog.sort(key=lambda m: (m.timestamp()[1], m.partition(), m.offset()))
        yield from backlog[-last:] if last > 0 else []
        while follow:
            message = consumer.poll(poll_s)
            if message is not None and not message.error():
                yield message
    finally:
        consumer.close()
