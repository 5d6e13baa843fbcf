"""Consumer lag of the workers' group: how far its committed offsets are behind the end of
each input partition. Zero lag on every partition means the workers are idle."""

from __future__ import annotations

import time
from collections.abc import Iterable

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from streams.broker.client import admin_client
from streams.broker.security import KafkaTarget, librdkafka_config


class LagProbe:
    """An admin client and a consumer with the group's id (it never subscribes, so it never
    joins the group), kept for as many readings as needed. The committed offsets come from
    the consumer, not from AdminClient.list_consumer_group_offsets: librdkafka 2.x handles a
    "coordinator load in progress" answer to that admin request through the consumer-group
    code an AdminClient does not have, and segfaults (rd_kafka_handle_OffsetFetch ->
    rd_kafka_cgrp_op in a core of the broker-restart test, waiting while the broker came
    back)."""

    def __init__(self, kafka: KafkaTarget, group: str) -> None:
        self.group = group
        self.admin = admin_client(kafka)
        self.consumer = Consumer(
            librdkafka_config(
                kafka,
                {
                    "group.id": group,
                    "enable.auto.commit": False,  # it reads the group's offsets, never writes
                },
            )
        )

    def lag(self, topics: Iterable[str]) -> dict[tuple[str, int], int]:
        """(topic, partition) -> records not yet committed by the group (the whole partition
        when the group has committed nothing there)."""
        metadata = self.admin.list_topics(timeout=10)
        partitions = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in sorted(metadata.topics[topic].partitions)
        ]
        answer = self.consumer.committed(partitions, timeout=10)
        committed = {(tp.topic, tp.partition): tp.offset for tp in answer}
        lag = {}
        for tp in partitions:
            low, high = self.consumer.get_watermark_offsets(tp, timeout=10)
            done = committed.get((tp.topic, tp.partition), -1)
            lag[(tp.topic, tp.partition)] = high - (done if done >= 0 else low)
        return lag

    def close(self) -> None:
        self.consumer.close()


def group_lag(kafka: KafkaTarget, group: str, topics: Iterable[str]) -> dict[tuple[str, int], int]:
    """One reading of the group's lag (see LagProbe.lag)."""
    probe = LagProbe(kafka, group)
    try:
        return probe.lag(topics)
    finally:
        probe.close()


# what a broker answers while it starts or moves a group's coordinator
TRANSIENT = frozenset(
    {
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
        KafkaError._ALL_BROKERS_DOWN,
    }
)


def wait_idle(
    kafka: KafkaTarget, group: str, topics: Iterable[str], timeout_s: float = 120.0
) -> None:
    """Returns once the group's lag is zero everywhere; TimeoutError naming what is left."""
    topics = list(topics)
    deadline = time.monotonic() + timeout_s
    behind: dict[tuple[str, int], int] | str = "not asked yet"
    probe = LagProbe(kafka, group)
    try:
        while True:
            try:
                behind = {tp: n for tp, n in probe.lag(topics).items() if n > 0}
                if not behind:
                    return
            except KafkaException as error:
                # a broker that is (re)starting answers "coordinator load in progress" and the
                # like for a while: not idle yet, ask again; anything else is a real error
                if not (error.args[0].retriable() or error.args[0].code() in TRANSIENT):
                    raise
                probe.admin.poll(0)  # a refused login raises KafkaAccessError here: no retry
                behind = f"the broker answered {error.args[0].str()}"
            if time.monotonic() > deadline:
                raise TimeoutError(f"group {group} still behind after {timeout_s}s: {behind}")
            time.sleep(0.5)
    finally:
        probe.close()
