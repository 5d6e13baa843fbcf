"""The merge delay's default follows how the input topics are timestamped: the broker's
append time lets a record wait a moment for the other topic, a POS's own time seconds."""

from __future__ import annotations

from streams.broker import TopicNames
from streams.broker.topics import ensure_topics
from streams.settings import Settings
from streams.worker.app import (
    MERGE_DELAY_BROKER_TIME_S,
    MERGE_DELAY_PRODUCER_TIME_S,
    merge_delay_s,
    prepare_topics,
)


def test_the_default_merge_delay_is_short_only_with_the_brokers_time() -> None:
    assert merge_delay_s(Settings(), broker_time=True) == MERGE_DELAY_BROKER_TIME_S
    assert merge_delay_s(Settings(), broker_time=False) == MERGE_DELAY_PRODUCER_TIME_S
    assert MERGE_DELAY_BROKER_TIME_S < 0.1 < MERGE_DELAY_PRODUCER_TIME_S
    configured = Settings(merge_delay_seconds=0.5)
    assert merge_delay_s(configured, broker_time=True) == 0.5
    assert merge_delay_s(configured, broker_time=False) == 0.5


def test_topics_the_worker_creates_carry_the_brokers_time(
    kafka_bootstrap: str, topic_names: TopicNames
) -> None:
    settings = Settings(bootstrap_servers=kafka_bootstrap, topic_prefix=topic_names.prefix)
    assert prepare_topics(settings) is True


def test_inputs_made_with_the_producers_time_keep_the_long_wait(
    kafka_bootstrap: str, topic_names: TopicNames
) -> None:
    settings = Settings(bootstrap_servers=kafka_bootstrap, topic_prefix=topic_names.prefix)
    ensure_topics(settings.kafka, topic_names.inputs, settings.partitions)  # CreateTime
    assert prepare_topics(settings) is False
