"""The clients we build on talk to our Kafka: confluent-kafka (publisher, tools) with
transactions, and aiokafka, the client under faust-streaming (the worker)."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaClient, AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.protocol.admin import CreateTopicsRequest
from aiokafka.protocol.metadata import MetadataRequest
from confluent_kafka import Producer

from streams.broker import TopicNames, list_topics
from tests.broker.records import PATIENCE_SECONDS, consume, rows

CUSTOMERS = [f"c-{n:04d}" for n in range(12)]


@pytest.mark.broker
def test_confluent_round_trip_keeps_each_customer_on_one_partition(
    kafka_bootstrap: str, loyalty_topics: TopicNames
) -> None:
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    sent = [(customer, f"{customer}:{visit}") for visit in range(3) for customer in CUSTOMERS]
    for customer, value in sent:
        producer.produce(loyalty_topics.purchases, key=customer, value=value)
    assert producer.flush(PATIENCE_SECONDS) == 0

    read = rows(consume(kafka_bootstrap, loyalty_topics.purchases, len(sent)))
    assert sorted((key, value) for key, _, value in read) == sorted(sent)
    partitions_of: dict[str, set[int]] = defaultdict(set)
    for key, partition, _ in read:
        partitions_of[key].add(partition)
    assert all(len(partitions) == 1 for partitions in partitions_of.values())
    # and the customers do spread: keying by customer id is what parallelises the worker
    assert len(set().union(*partitions_of.values())) > 1
    # a customer's visits keep their order
    for customer in CUSTOMERS:
        visits = [value for key, _, value in read if key == customer]
        assert visits == [f"{customer}:{visit}" for visit in range(3)]


@pytest.mark.broker
def test_read_committed_sees_committed_transactions_only(
    kafka_bootstrap: str, loyalty_topics: TopicNames
) -> None:
    topic = loyalty_topics.tier_changes
    producer = Producer(
        {"bootstrap.servers": kafka_bootstrap, "transactional.id": f"tx-{uuid.uuid4().hex}"}
    )
    producer.init_transactions(PATIENCE_SECONDS)
    for value, commit in (("gold-1", True), ("aborted-1", False), ("gold-2", True)):
        producer.begin_transaction()
        producer.produce(topic, key="c-0001", value=value)
        if commit:
            producer.commit_transaction(PATIENCE_SECONDS)
        else:
            producer.flush(PATIENCE_SECONDS)
            producer.abort_transaction(PATIENCE_SECONDS)

    committed = consume(kafka_bootstrap, topic, 2, **{"isolation.level": "read_committed"})
    assert [r.value() for r in committed] == [b"gold-1", b"gold-2"]
    # the aborted record is in the log: a read_uncommitted reader sees it, so the check
    # above is the isolation level's doing
    everything = consume(kafka_bootstrap, topic, 3, **{"isolation.level": "read_uncommitted"})
    assert [r.value() for r in everything] == [b"gold-1", b"aborted-1", b"gold-2"]


async def _aiokafka_group_round_trip(bootstrap: str, topic: str, group: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for customer in CUSTOMERS:
            await producer.send_and_wait(topic, key=customer.encode(), value=b"visit")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        keys: list[bytes] = []
        async with asyncio.timeout(PATIENCE_SECONDS):
            while len(keys) < len(CUSTOMERS):
                batches = await consumer.getmany(timeout_ms=500)
                keys += [record.key for records in batches.values() for record in records]
        assert sorted(keys) == sorted(customer.encode() for customer in CUSTOMERS)
        await consumer.commit()
        assignment = consumer.assignment()
        ends = await consumer.end_offsets(list(assignment))
        committed = {tp: await consumer.committed(tp) for tp in assignment}
    finally:
        await consumer.stop()
    assert committed == ends
    assert sum(ends.values()) == len(CUSTOMERS)

    # A new member of the group resumes after the commit: nothing left to read.
    resumed = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest"
    )
    await resumed.start()
    try:
        batches = await resumed.getmany(timeout_ms=2000)
        positions = {tp: await resumed.position(tp) for tp in resumed.assignment()}
    finally:
        await resumed.stop()
    assert batches == {}
    assert positions == ends


@pytest.mark.broker
def test_aiokafka_produce_consume_and_group_commit(
    kafka_bootstrap: str, loyalty_topics: TopicNames
) -> None:
    asyncio.run(
        _aiokafka_group_round_trip(
            kafka_bootstrap, loyalty_topics.purchases, f"g-{uuid.uuid4().hex}"
        )
    )


async def _aiokafka_transactions(bootstrap: str, topic: str) -> list[bytes]:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=f"tx-{uuid.uuid4().hex}"
    )
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send_and_wait(topic, key=b"c-0001", value=b"reward-1")
        await producer.begin_transaction()
        await producer.send_and_wait(topic, key=b"c-0001", value=b"aborted")
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send_and_wait(topic, key=b"c-0001", value=b"reward-2")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"g-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        async with asyncio.timeout(PATIENCE_SECONDS):
            while b"reward-2" not in values:
                batches = await consumer.getmany(timeout_ms=500)
                values += [record.value for records in batches.values() for record in records]
    finally:
        await consumer.stop()
    return values


@pytest.mark.broker
def test_aiokafka_transactions_commit_and_abort(
    kafka_bootstrap: str, loyalty_topics: TopicNames
) -> None:
    # faust's exactly-once processing runs on aiokafka's transactional producer
    values = asyncio.run(_aiokafka_transactions(kafka_bootstrap, loyalty_topics.rewards))
    assert values == [b"reward-1", b"reward-2"]


async def _create_topic_as_faust_does(bootstrap: str, topic: str) -> tuple[str, int]:
    # faust makes its changelog and repartition topics itself (auto-creation is off on our
    # broker): a Metadata request for the "controller" id, then CreateTopics sent to it.
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        node = next(broker.nodeId for broker in client.cluster.brokers())
        metadata = await client.send(node, MetadataRequest([]))
        response = await client.send(
            metadata.controller_id,
            CreateTopicsRequest(
                [(topic, 3, 1, [], [("cleanup.policy", "compact")])], 30_000, False
            ),
        )
    finally:
        await client.close()
    (name, error_code, *_), *_ = response.topic_errors
    return name, error_code


@pytest.mark.broker
def test_faust_topic_creation_request_works(kafka_bootstrap: str, topic_names: TopicNames) -> None:
    changelog = f"{topic_names.prefix}.worker-customers-changelog"
    assert asyncio.run(_create_topic_as_faust_does(kafka_bootstrap, changelog)) == (changelog, 0)
    assert list_topics(kafka_bootstrap)[changelog] == 3
