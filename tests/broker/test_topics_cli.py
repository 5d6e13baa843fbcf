"""`loyalty topics create | list` against the session broker."""

from __future__ import annotations

import time

import pytest
from typer.testing import CliRunner

from streams.broker import BrokerUnreachableError, TopicNames, ensure_topics, free_port, list_topics
from streams.cli import app

runner = CliRunner()


@pytest.mark.broker
def test_create_is_idempotent_and_refuses_a_wrong_partition_count(
    kafka_bootstrap: str, topic_names: TopicNames
) -> None:
    flags = ["-b", kafka_bootstrap, "--topic-prefix", topic_names.prefix]

    first = runner.invoke(app, ["topics", "create", *flags, "--partitions", "3"])
    assert first.exit_code == 0, first.output
    assert [line.split()[:2] for line in first.stdout.splitlines()] == [
        ["created", name] for name in topic_names.all
    ]
    assert {
        name: count
        for name, count in list_topics(kafka_bootstrap).items()
        if name in topic_names.all
    } == {name: 3 for name in topic_names.all}

    second = runner.invoke(app, ["topics", "create", *flags, "--partitions", "3"])
    assert second.exit_code == 0, second.output
    assert [line.split()[:2] for line in second.stdout.splitlines()] == [
        ["exists", name] for name in topic_names.all
    ]

    wrong = runner.invoke(app, ["topics", "create", *flags, "--partitions", "5"])
    assert wrong.exit_code == 1
    assert f"topic {topic_names.purchases} has 3 partitions, wanted 5" in wrong.stderr

    listed = runner.invoke(app, ["topics", "list", "-b", kafka_bootstrap])
    assert f"{topic_names.dead_letter}\t3" in listed.stdout


@pytest.mark.broker
def test_a_mismatch_creates_none_of_the_missing_topics(
    kafka_bootstrap: str, topic_names: TopicNames
) -> None:
    ensure_topics(kafka_bootstrap, [topic_names.purchases], partitions=2)
    result = runner.invoke(
        app,
        ["topics", "create", "-b", kafka_bootstrap, "--topic-prefix", topic_names.prefix],
        env={"LOYALTY_PARTITIONS": "4"},
    )
    assert result.exit_code == 1
    assert f"topic {topic_names.purchases} has 2 partitions, wanted 4" in result.stderr
    present = set(list_topics(kafka_bootstrap)) & set(topic_names.all)
    assert present == {topic_names.purchases}


def test_no_broker_is_a_clear_error() -> None:
    nobody = f"127.0.0.1:{free_port()}"
    with pytest.raises(BrokerUnreachableError, match=f"no Kafka broker answers at {nobody}"):
        ensure_topics(nobody, TopicNames().all, partitions=1, timeout=1)


@pytest.mark.broker
def test_inputs_take_the_brokers_append_time_as_their_record_timestamps(
    kafka_bootstrap: str, topic_names: TopicNames
) -> None:
    """The worker merges a partition's inputs by record timestamp: it must be when the broker
    took the record, whatever time the producer put on it (a producer that buffered through
    a broker outage stamps records with the time it was asked to send them)."""
    from confluent_kafka import OFFSET_BEGINNING, TIMESTAMP_LOG_APPEND_TIME, Consumer, Producer
    from confluent_kafka import TopicPartition as Partition

    from streams.broker.topics import topic_configs

    flags = ["-b", kafka_bootstrap, "--topic-prefix", topic_names.prefix, "--partitions", "1"]
    result = runner.invoke(app, ["topics", "create", *flags])
    assert result.exit_code == 0, result.output
    configs = topic_configs(kafka_bootstrap, topic_names.all)
    stamped = {name: c["message.timestamp.type"] for name, c in configs.items()}
    assert stamped == {
        **dict.fromkeys(topic_names.all, "CreateTime"),
        **dict.fromkeys(topic_names.inputs, "LogAppendTime"),
    }
    held_back_ms = int(time.time() * 1000) - 120_000  # as a producer's buffered record
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(topic_names.feedback, key=b"c-1", value=b"x", timestamp=held_back_ms)
    assert producer.flush(10) == 0
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": "append-time"})
    consumer.assign([Partition(topic_names.feedback, 0, OFFSET_BEGINNING)])
    try:
        record = None
        deadline = time.monotonic() + 30
        while record is None and time.monotonic() < deadline:
            record = consumer.poll(1.0)
    finally:
        consumer.close()
    assert record is not None and record.error() is None
    kind, timestamp_ms = record.timestamp()
    assert kind == TIMESTAMP_LOG_APPEND_TIME
    assert timestamp_ms >= held_back_ms + 110_000
