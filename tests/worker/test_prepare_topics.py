"""The worker tells whether its input topics carry the broker's append time (the order a
replay gives): those it creates do, those made with the producers' time do not."""

from __future__ import annotations

from streams.broker import TopicNames
from streams.broker.topics import ensure_topics
from streams.settings import Settings
from streams.worker.app import prepare_topics


def test_topics_the_worker_creates_carry_the_brokers_time(
    kafka_bootstrap: str, topic_names: TopicNames
) -> None:
    settings = Settings(bootstrap_servers=kafka_bootstrap, topic_prefix=topic_names.prefix)
    assert prepare_topics(settings) is True


def test_inputs_made_with_the_producers_time_are_told_apart(
    kafka_bootstrap: str, topic_names: TopicNames
) -> None:
    settings = Settings(bootstrap_servers=kafka_bootstrap, topic_prefix=topic_names.prefix)
    ensure_topics(settings.kafka, topic_names.inputs, settings.partitions)  # CreateTime
    assert prepare_topics(settings) is False
