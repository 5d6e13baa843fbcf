"""The embedded Apache Kafka broker (fetch its jars, format, start, stop) and topic admin.

from streams.broker import EmbeddedKafka, TopicNames, ensure_topics

kafka = EmbeddedKafka(data_dir, port=9092)
bootstrap = kafka.start()
ensure_topics(bootstrap, TopicNames("loyalty").all, partitions=8)
kafka.stop()
"""

from __future__ import annotations

from streams.broker.embedded import BrokerStatus, EmbeddedKafka, free_port
from streams.broker.errors import (
    BrokerAlreadyRunningError,
    BrokerError,
    BrokerStartError,
    BrokerUnreachableError,
    KafkaFetchError,
    PortInUseError,
    TopicPartitionsMismatchError,
)
from streams.broker.fetch import KAFKA_VERSION, fetch_kafka
from streams.broker.topics import (
    TopicNames,
    TopicOutcome,
    delete_topics,
    ensure_topics,
    list_topics,
)

__all__ = [
    "KAFKA_VERSION",
    "BrokerAlreadyRunningError",
    "BrokerError",
    "BrokerStartError",
    "BrokerStatus",
    "BrokerUnreachableError",
    "EmbeddedKafka",
    "KafkaFetchError",
    "PortInUseError",
    "TopicNames",
    "TopicOutcome",
    "TopicPartitionsMismatchError",
    "delete_topics",
    "ensure_topics",
    "fetch_kafka",
    "free_port",
    "list_topics",
]
