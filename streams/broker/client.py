"""The admin connection to a broker, shared by the readiness check, `status` and topic admin."""

from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING

from streams.broker.errors import BrokerUnreachableError
from streams.broker.security import KafkaTarget, librdkafka_config, unreachable_hint

if TYPE_CHECKING:
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.admin._metadata import ClusterMetadata

# librdkafka prints every refused connection to stderr; while we poll a broker that is still
# starting that is noise, so its log lines go to this logger instead (silent by default).
RDKAFKA_LOGGER = logging.getLogger("streams.broker.rdkafka")

# The consumer groups of our read-only tools (audit, tail, export, census, status, the demo's
# watcher): librdkafka wants a group id even for a consumer that only assigns partitions, and
# asks for its coordinator, which needs an ACL. One prefix, so that one prefixed ACL grants
# them all and nothing of the workers' group (streams/tools/acls.py).
READER_GROUP_PREFIX = "loyalty-reader-"


def reader_group(purpose: str) -> str:
    """A throwaway group id of one read-only consumer."""
    return f"{READER_GROUP_PREFIX}{purpose}-{uuid.uuid4().hex[:12]}"


def admin_client(kafka: KafkaTarget) -> AdminClient:
    from confluent_kafka.admin import AdminClient

    return AdminClient(librdkafka_config(kafka), logger=RDKAFKA_LOGGER)


def broker_answers(kafka: KafkaTarget, timeout: float = 2.0) -> bool:
    """True when a broker at `kafka` answers a metadata request within `timeout`."""
    return answers_metadata(admin_client(kafka), timeout)


def answers_metadata(admin: AdminClient, timeout: float) -> bool:
    from confluent_kafka import KafkaException

    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException:
        return False
    # A metadata answer that lists no broker comes from a broker not yet registered.
    return bool(metadata.brokers)


def cluster_metadata(
    client: AdminClient | Producer | Consumer,
    kafka: KafkaTarget,
    timeout: float,
    topic: str | None = None,
) -> ClusterMetadata:
    """The cluster's metadata (of one topic, if given) through any of our clients, or our
    error: KafkaAccessError when the broker refused the login or TLS failed (librdkafka
    reported it to the error callback, served here), else BrokerUnreachableError."""
    from confluent_kafka import KafkaException

    deadline = time.monotonic() + timeout
    while True:
        # short tries: a refused login reaches the error callback within a second, and is
        # served (raised) only between calls
        remaining = deadline - time.monotonic()
        try:
            return client.list_topics(topic, timeout=max(0.1, min(1.0, remaining)))
        except KafkaException as error:
            client.poll(0)  # raises KafkaAccessError if that was the cause
            if time.monotonic() >= deadline:
                raise BrokerUnreachableError(
                    f"no Kafka broker answers at {kafka} ({error.args[0].str()}); "
                    f"{unreachable_hint(kafka)}"
                ) from error
