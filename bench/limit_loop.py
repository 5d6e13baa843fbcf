"""The limit: how fast Python can do our work with nothing around it. A plain confluent-kafka
loop: consume, Avro decode, `apply` the pure core to a dict in memory, Avro encode the outputs,
produce. No table, no changelog, no dedupe of redelivered records, no event-time merge of the
two inputs, no due index, no dead letters (a record that cannot be applied is skipped): what
loyalty-streams adds on top is what `bench.compare` weighs against this.

    LOYALTY_BOOTSTRAP_SERVERS=... LOYALTY_TOPIC_PREFIX=... LOYALTY_APP_ID=... \\
        python -m bench.limit_loop

Reads the same LOYALTY_* settings as the worker (topics, consumer group, rules). Offsets are
committed about once a second, after the producer is flushed, so that a group with nothing
left to commit has its outputs on their topics: what the benchmark watches from outside.
Runs until SIGTERM or SIGINT."""

from __future__ import annotations

import signal
import time
from typing import Any

from confluent_kafka import Consumer, Producer

from bench.harness import produce
from streams.broker.security import librdkafka_config
from streams.broker.topics import TopicNames
from streams.contract import Codec, ContractError, make_codec
from streams.core import (
    INPUT_EVENTS,
    CustomerState,
    Program,
    RuleViolation,
    apply,
    new_customer,
)
from streams.program import load_program
from streams.settings import Settings

BATCH = 500
COMMIT_EVERY_S = 1.0  # as the worker's Faust commit interval


class LimitLoop:
    """The work on one record, without Kafka: bytes in, (topic, key, bytes) out."""

    def __init__(self, program: Program, codec: Codec, topics: TopicNames) -> None:
        self.program = program
        self.codec = codec
        self.customers: dict[str, CustomerState] = {}
        self._topic_of_role = {
            "tier_changes": topics.tier_changes,
            "churn_risk": topics.churn_risk,
            "rewards": topics.rewards,
        }

    def handle(self, value: bytes | None) -> list[tuple[str, bytes, bytes]]:
        try:
            decoded = self.codec.decode(value or b"")
            event = INPUT_EVENTS[decoded.schema_name](decoded.record)
        except (ContractError, KeyError):
            return []  # not an input event we can apply: no dead letters here
        customer_id = event.customer_id
        state = self.customers.get(customer_id) or new_customer(customer_id)
        try:
            state, outputs = apply(state, event, self.program)
        except RuleViolation:
            return []
        self.customers[customer_id] = state
        return [
            (
                self._topic_of_role[output.TOPIC_ROLE],
                customer_id.encode(),
                self.codec.encode(output.SCHEMA, output.to_record()),
            )
            for output in outputs
        ]


def run(settings: Settings) -> None:
    topics = TopicNames(settings.topic_prefix)
    loop = LimitLoop(load_program(settings.rules), make_codec(settings), topics)
    consumer = Consumer(
        librdkafka_config(
            settings.kafka,
            {
                "group.id": settings.app_id,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,  # committed below, after the producer's flush
            },
        )
    )
    # murmur2 as every producer of ours: an output lands on its customer's partition number
    producer = Producer(librdkafka_config(settings.kafka, {"partitioner": "murmur2_random"}))
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    consumer.subscribe(list(topics.inputs))
    uncommitted, next_commit = False, time.monotonic() + COMMIT_EVERY_S
    try:
        while not stopping:
            for message in consumer.consume(BATCH, 0.1):
                if message.error():
                    continue
                uncommitted = True
                for topic, key, value in loop.handle(message.value()):
                    produce(producer, topic, key=key, value=value)
            producer.poll(0)
            if uncommitted and time.monotonic() >= next_commit:
                producer.flush()
                consumer.commit(asynchronous=False)
                uncommitted, next_commit = False, time.monotonic() + COMMIT_EVERY_S
    finally:
        producer.flush(30)
        consumer.close()


if __name__ == "__main__":
    run(Settings())
