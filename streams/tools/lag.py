"""Consumer lag of the workers' group: how far its committed offsets are behind the end of
each input partition. Zero lag on every partition means the workers are idle."""

from __future__ import annotations

import time
from collections.abc import Iterable

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition

from streams.broker.client import admin_client


def group_lag(
    bootstrap_servers: str, group: str, topics: Iterable[str]
) -> dict[tuple[str, int], int]:
    """(topic, partition) -> records not yet committed by the group (the whole partition when
    the group has committed nothing there)."""
    topics = list(topics)
    admin = admin_client(bootstrap_servers)
    metadata = admin.list_topics(timeout=10)
    partitions = [
        TopicPartition(topic, partition)
        for topic in topics
        for partition in sorted(metadata.topics[topic].partitions)
    ]
    request = [ConsumerGroupTopicPartitions(group, partitions)]
    committed = {
        (tp.topic, tp.partition): tp.offset
        for tp in admin.list_consumer_group_offsets(request)[group].result().topic_partitions
    }
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": f"{group}-lag-probe"})
    try:
        lag = {}
        for tp in partitions:
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            done = committed.get((tp.topic, tp.partition), -1)
            lag[(tp.topic, tp.partition)] = high - (done if done >= 0 else low)
        return lag
    finally:
        consumer.close()


def wait_idle(
    bootstrap_servers: str, group: str, topics: Iterable[str], timeout_s: float = 120.0
) -> None:
    """Returns once the group's lag is zero everywhere; TimeoutError naming what is left."""
    topics = list(topics)
    deadline = time.monotonic() + timeout_s
    while True:
        lag = group_lag(bootstrap_servers, group, topics)
        behind = {tp: n for tp, n in lag.items() if n > 0}
        if not behind:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"group {group} still behind after {timeout_s}s: {behind}")
        time.sleep(0.5)
