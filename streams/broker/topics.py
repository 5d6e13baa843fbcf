"""Our topics: their names, derived in this one place from the prefix, and their creation.

Every topic is keyed by customer id and has the same partition count, so the inputs and
outputs are co-partitioned: partition p of each holds the same customers, and the worker
that owns p of the inputs owns their state and their output records."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from streams.broker.client import admin_client, cluster_metadata
from streams.broker.errors import BrokerError, TopicPartitionsMismatchError
from streams.broker.security import KafkaTarget

if TYPE_CHECKING:
    from confluent_kafka.admin import AdminClient

    from streams.settings import Settings

# Kafka's rule for topic names; 249 leaves room for the 6-digit partition suffix of a file.
_LEGAL_PREFIX = re.compile(r"[a-zA-Z0-9._-]+")
_LONGEST_SUFFIX = len(".tier-changes.v1")
MAX_TOPIC_NAME = 249
UNREACHABLE_AFTER = 10.0

# The inputs' record timestamps are set by the broker when it appends a record, not by the
# producer: the worker merges a partition's two inputs by timestamp, and can only know it has
# seen everything older than a record from the broker's side. A producer's timestamp is when
# it was asked to send, and a producer that held records back (a broker outage: the publisher
# buffers and retries for minutes) delivers them behind newer records of the other input;
# the worker had applied those already, the audit's replay of the log would not (the broker
# outage test saw churn-risk changes the replay did not make, and customers' remembered
# events in another order).
INPUT_TOPIC_CONFIG: Mapping[str, str] = {"message.timestamp.type": "LogAppendTime"}


@dataclass(frozen=True)
class TopicNames:
    """The names of loyalty-streams' topics under one prefix (`Settings.topic_prefix`)."""

    prefix: str = "loyalty"

    def __post_init__(self) -> None:
        if not _LEGAL_PREFIX.fullmatch(self.prefix) or self.prefix in (".", ".."):
            raise ValueError(
                f"topic prefix {self.prefix!r} is not a legal Kafka topic name part: "
                f"use letters, digits, '.', '_' and '-'"
            )
        if len(self.prefix) + _LONGEST_SUFFIX > MAX_TOPIC_NAME:
            raise ValueError(
                f"topic prefix {self.prefix[:20]!r}... is too long: topic names are at most "
                f"{MAX_TOPIC_NAME} characters"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> TopicNames:
        return cls(settings.topic_prefix)

    # inputs: what the POS side publishes
    @property
    def purchases(self) -> str:
        return f"{self.prefix}.purchases.v1"

    @property
    def feedback(self) -> str:
        return f"{self.prefix}.feedback.v1"

    # outputs: what the worker emits
    @property
    def tier_changes(self) -> str:
        return f"{self.prefix}.tier-changes.v1"

    @property
    def churn_risk(self) -> str:
        return f"{self.prefix}.churn-risk.v1"

    @property
    def rewards(self) -> str:
        return f"{self.prefix}.rewards.v1"

    # records the worker could not process, with the reason, for a person to look at
    @property
    def dead_letter(self) -> str:
        return f"{self.prefix}.dead-letter.v1"

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.purchases, self.feedback)

    @property
    def outputs(self) -> tuple[str, ...]:
        return (self.tier_changes, self.churn_risk, self.rewards)

    @property
    def all(self) -> tuple[str, ...]:
        return (*self.inputs, *self.outputs, self.dead_letter)

    @property
    def configs(self) -> dict[str, Mapping[str, str]]:
        """Topic configs to create our topics with (the rest take the broker's defaults)."""
        return dict.fromkeys(self.inputs, INPUT_TOPIC_CONFIG)


def topic_configs(
    kafka: KafkaTarget, names: Iterable[str], timeout: float = 30.0
) -> dict[str, dict[str, str]]:
    """The current configs (every key, defaults included) of the topics `names`."""
    # confluent-kafka re-exports these without declaring it for type checkers
    from confluent_kafka.admin import ConfigResource, ResourceType  # type: ignore[attr-defined]

    admin = admin_client(kafka)
    futures = admin.describe_configs(
        [ConfigResource(ResourceType.TOPIC, name) for name in names], request_timeout=timeout
    )
    return {
        resource.name: {key: entry.value for key, entry in future.result(timeout).items()}
        for resource, future in futures.items()
    }


class TopicOutcome(Enum):
    CREATED = "created"
    EXISTED = "exists"


def ensure_topics(
    kafka: KafkaTarget,
    names: Iterable[str],
    partitions: int,
    replication_factor: int = 1,
    timeout: float = 30.0,
    configs: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, TopicOutcome]:
    """Creates the topics that are missing, each with `partitions` partitions and its entry in
    `configs` (`TopicNames.configs` for ours); topics that exist with that count are fine
    (their configs are not changed). If any exists with another count, raises
    TopicPartitionsMismatchError naming them all, before creating anything. Returns once every
    topic has a leader for each partition, so a producer can use them at once."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.cimpl import NewTopic

    wanted = list(dict.fromkeys(names))
    configs = configs or {}
    admin = admin_client(kafka)
    # A broker that is up answers metadata in milliseconds; no need to make a user with no
    # broker wait the whole creation timeout to hear so.
    existing = _partition_counts(admin, kafka, min(timeout, UNREACHABLE_AFTER))
    mismatches = {
        name: existing[name] for name in wanted if name in existing and existing[name] != partitions
    }
    if mismatches:
        raise TopicPartitionsMismatchError(mismatches, partitions)
    outcomes = {name: TopicOutcome.EXISTED for name in wanted if name in existing}
    missing = [name for name in wanted if name not in existing]
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(name, partitions, replication_factor, config=dict(configs.get(name, {})))
                for name in missing
            ],
            request_timeout=timeout,
        )
        for name, future in futures.items():
            try:
                future.result()
                outcomes[name] = TopicOutcome.CREATED
            except KafkaException as error:
                if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise BrokerError(
                        f"creating topic {name} failed: {error.args[0].str()}"
                    ) from error
                # Someone else created it between our look and our create: check its count.
                outcomes[name] = TopicOutcome.EXISTED
        _wait_for_leaders(admin, kafka, missing, timeout)
    counts = _partition_counts(admin, kafka, timeout)
    raced = {name: counts[name] for name in wanted if counts.get(name, partitions) != partitions}
    if raced:
        raise TopicPartitionsMismatchError(raced, partitions)
    return {name: outcomes[name] for name in wanted}


def list_topics(kafka: KafkaTarget, timeout: float = 10.0) -> dict[str, int]:
    """Every topic but Kafka's internal ones (`__consumer_offsets`, ...) with its partition
    count, by name."""
    counts = _partition_counts(admin_client(kafka), kafka, timeout)
    return {name: count for name, count in sorted(counts.items()) if not name.startswith("__")}


def delete_topics(kafka: KafkaTarget, names: Iterable[str], timeout: float = 30.0) -> None:
    """Deletes the topics that exist among `names`; the others are ignored."""
    admin = admin_client(kafka)
    existing = _partition_counts(admin, kafka, timeout)
    present = [name for name in names if name in existing]
    if not present:
        return
    for future in admin.delete_topics(present, request_timeout=timeout).values():
        future.result()


def _partition_counts(admin: AdminClient, kafka: KafkaTarget, timeout: float) -> dict[str, int]:
    metadata = cluster_metadata(admin, kafka, timeout)
    return {name: len(topic.partitions) for name, topic in metadata.topics.items()}


def _wait_for_leaders(
    admin: AdminClient, kafka: KafkaTarget, names: list[str], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        topics = admin.list_topics(timeout=timeout).topics
        if all(
            name in topics
            and topics[name].partitions
            and all(partition.leader >= 0 for partition in topics[name].partitions.values())
            for name in names
        ):
            return
        time.sleep(0.05)
    raise BrokerError(f"topics {', '.join(names)} have no leader after {timeout:.0f} s at {kafka}")
