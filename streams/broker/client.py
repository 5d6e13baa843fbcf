"""The admin connection to a broker, shared by the readiness check, `status` and topic admin."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from confluent_kafka.admin import AdminClient

# librdkafka prints every refused connection to stderr; while we poll a broker that is still
# starting that is noise, so its log lines go to this logger instead (silent by default).
RDKAFKA_LOGGER = logging.getLogger("streams.broker.rdkafka")


def admin_client(bootstrap_servers: str) -> AdminClient:
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap_servers}, logger=RDKAFKA_LOGGER)


def broker_answers(bootstrap_servers: str, timeout: float = 2.0) -> bool:
    """True when a broker at `bootstrap_servers` answers a metadata request within `timeout`."""
    return answers_metadata(admin_client(bootstrap_servers), timeout)


def answers_metadata(admin: AdminClient, timeout: float) -> bool:
    from confluent_kafka import KafkaException

    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException:
        return False
    # A metadata answer that lists no broker comes from a broker not yet registered.
    return bool(metadata.brokers)
