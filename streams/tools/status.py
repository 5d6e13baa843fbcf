"""`loyalty status`: the workers' consumer group as Kafka sees it: its members (the workers)
and, per input partition, the offset the group has committed, the partition's end and the lag
between them. `streams.tools.lag` waits for the lag to reach zero."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition

from streams.broker.client import admin_client, cluster_metadata, reader_group
from streams.broker.security import KafkaTarget, librdkafka_config


@dataclass(frozen=True, slots=True)
class PartitionProgress:
    topic: str
    partition: int
    committed: int | None  # None: the group has committed nothing here yet
    end: int
    lag: int
    owner: str | None  # the member (worker) it is assigned to now


@dataclass(frozen=True, slots=True)
class Member:
    member_id: str
    client_id: str
    host: str
    partitions: int  # input partitions assigned


@dataclass
class GroupStatus:
    group: str
    state: str
    members: list[Member] = field(default_factory=list)
    partitions: list[PartitionProgress] = field(default_factory=list)

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions)

    def as_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "state": self.state,
            "lag": self.lag,
            "members": [vars_of(m) for m in self.members],
            "partitions": [vars_of(p) for p in self.partitions],
        }


def vars_of(item: Any) -> dict[str, Any]:
    return {name: getattr(item, name) for name in item.__slots__}


def group_status(kafka: KafkaTarget, group: str, topics: list[str]) -> GroupStatus:
    admin = admin_client(kafka)
    metadata = cluster_metadata(admin, kafka, 10)
    missing = [topic for topic in topics if topic not in metadata.topics]
    if missing:
        raise LookupError(f"no topic {', '.join(missing)} at {kafka}")
    partitions = [
        TopicPartition(topic, partition)
        for topic in topics
        for partition in sorted(metadata.topics[topic].partitions)
    ]
    described = admin.describe_consumer_groups([group])[group].result()
    owners: dict[tuple[str, int], str] = {}
    members = []
    for member in described.members:
        assigned = member.assignment.topic_partitions if member.assignment else []
        mine = [tp for tp in assigned if tp.topic in topics]
        for tp in mine:
            owners[(tp.topic, tp.partition)] = member.member_id
        members.append(Member(member.member_id, member.client_id, member.host, len(mine)))
    request = [ConsumerGroupTopicPartitions(group, partitions)]
    committed = {
        (tp.topic, tp.partition): tp.offset
        for tp in admin.list_consumer_group_offsets(request)[group].result().topic_partitions
    }
    consumer = Consumer(librdkafka_config(kafka, {"group.id": reader_group("status")}))
    status = GroupStatus(group, str(described.state).rsplit(".", 1)[-1], members)
    try:
        for tp in partitions:
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            done = committed.get((tp.topic, tp.partition), -1)
            status.partitions.append(
                PartitionProgress(
                    tp.topic,
                    tp.partition,
                    done if done >= 0 else None,
                    high,
                    high - (done if done >= 0 else low),
                    owners.get((tp.topic, tp.partition)),
                )
            )
    finally:
        consumer.close()
    return status
