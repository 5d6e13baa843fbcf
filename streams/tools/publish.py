"""Publishing POS events to Kafka: encode with the contract's codec, key by customer id, route
each kind to its topic, and account for every delivery.

The producer is idempotent (no duplicates from its own retries) and partitions with murmur2,
the Java client's partitioner that aiokafka (under our Faust workers) also uses: a customer's
events and our outputs for that customer must land on the same partition number of every topic
(co-partitioning), which librdkafka's default CRC32 partitioner would break."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import KafkaError, Message, Producer

from streams.broker.client import cluster_metadata
from streams.broker.security import KafkaTarget, librdkafka_config
from streams.broker.topics import UNREACHABLE_AFTER
from streams.contract.event_files import ParsedRow, RowError
from streams.contract.topics import INPUT_SCHEMAS, topic_of

SCHEMA_HEADER = "loyalty.schema"
MAX_KEPT_PROBLEMS = 1000


class RecordEncoder(Protocol):
    """What the publisher needs of the codec (streams.contract)."""

    def encode(self, schema_name: str, record: Mapping[str, Any]) -> bytes: ...


class TopicPrefix(Protocol):
    """What the publisher needs of the topic names (streams.broker.topics.TopicNames)."""

    @property
    def prefix(self) -> str: ...


def producer_config(kafka: KafkaTarget, **overrides: Any) -> dict[str, Any]:
    own: dict[str, Any] = {
        "client.id": "loyalty-publish",
        "enable.idempotence": True,  # implies acks=all and ordered, de-duplicated retries
        "partitioner": "murmur2_random",  # Java/aiokafka compatible: see the module docstring
        "compression.type": "lz4",
        "linger.ms": 10,
        "queue.buffering.max.messages": 500_000,
        "message.timeout.ms": 180_000,  # ride out a broker restart of a minute or two
        # errors only: librdkafka's warnings are retries it handles itself ("coordinator load
        # in progress" on a fresh broker); what is not delivered is counted in the tally
        "log_level": 3,
    }
    return librdkafka_config(kafka, own | overrides)


@dataclass
class DeliveryTally:
    """Counts of what the broker acknowledged or refused, with the first reasons."""

    sent: int = 0
    acknowledged: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def outstanding(self) -> int:
        return self.sent - self.acknowledged - self.failed

    def on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            self.acknowledged += 1
            return
        self.failed += 1
        if len(self.failures) < MAX_KEPT_PROBLEMS:
            self.failures.append(f"{message.topic()}: {error.str()}")


class EventPublisher:
    """Sends contract records to their topics. Use as a context manager: leaving it flushes."""

    def __init__(
        self,
        kafka: KafkaTarget,
        topics: TopicPrefix,
        encoder: RecordEncoder,
        *,
        flush_timeout_s: float = 120.0,
        **producer_overrides: Any,
    ) -> None:
        self._kafka = kafka
        self._producer = Producer(producer_config(kafka, **producer_overrides))
        self._encoder = encoder
        self._topic_by_schema = {
            schema: topic_of(schema).name(topics.prefix) for schema in INPUT_SCHEMAS
        }
        self._flush_timeout_s = flush_timeout_s
        self.tally = DeliveryTally()

    def check_access(self, timeout_s: float = UNREACHABLE_AFTER) -> None:
        """Raises our error now, before anything is read or sent, if no broker answers or it
        refuses us (credentials, TLS), rather than counting every event as not delivered
        after the delivery timeout."""
        cluster_metadata(self._producer, self._kafka, timeout_s)

    def encode(self, schema_name: str, record: Mapping[str, Any]) -> bytes:
        """The record's wire bytes; raises the codec's ContractError for a bad record."""
        return self._encoder.encode(schema_name, record)

    def send_encoded(self, schema_name: str, customer_id: str, value: bytes) -> None:
        topic = self._topic_by_schema[schema_name]
        headers: list[tuple[str, str | bytes | None]] = [(SCHEMA_HEADER, schema_name.encode())]
        while True:
            try:
                self._producer.produce(
                    topic,
                    key=customer_id.encode(),
                    value=value,
                    headers=headers,
                    on_delivery=self.tally.on_delivery,
                )
                break
            except BufferError:
                # the local queue is full: let deliveries drain, then try again
                self._producer.poll(0.05)
        self.tally.sent += 1
        self._producer.poll(0)

    def write(self, schema_name: str, record: Mapping[str, Any]) -> None:
        """Encodes and sends one record (the same call as EventFileWriter.write)."""
        self.send_encoded(schema_name, record["customer_id"], self.encode(schema_name, record))

    def flush(self) -> DeliveryTally:
        """Waits for every outstanding delivery (or the timeout) and returns the tally."""
        deadline = time.monotonic() + self._flush_timeout_s
        while self.tally.outstanding > 0 and time.monotonic() < deadline:
            self._producer.flush(min(1.0, max(0.0, deadline - time.monotonic())))
        return self.tally

    def __enter__(self) -> EventPublisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.flush()


# ---- files ------------------------------------------------------------------------------------


@dataclass
class PublishReport:
    """What `loyalty publish` did with a file."""

    rows: int = 0
    rejected: list[RowError] = field(default_factory=list)
    rejected_count: int = 0
    elapsed_s: float = 0.0
    tally: DeliveryTally = field(default_factory=DeliveryTally)

    def reject(self, error: RowError) -> None:
        self.rejected_count += 1
        if len(self.rejected) < MAX_KEPT_PROBLEMS:
            self.rejected.append(error)

    @property
    def all_acknowledged(self) -> bool:
        return self.tally.acknowledged == self.tally.sent and self.tally.failed == 0

    @property
    def events_per_second(self) -> float:
        return self.tally.acknowledged / self.elapsed_s if self.elapsed_s > 0 else 0.0


def encoded_rows(
    rows: Iterable[ParsedRow | RowError], encode: Callable[[str, Mapping[str, Any]], bytes]
) -> Iterator[tuple[ParsedRow, bytes] | RowError]:
    """Each parsed row with its wire bytes, or the reason it cannot be sent."""
    from streams.contract.errors import ContractError

    for row in rows:
        if isinstance(row, RowError):
            yield row
            continue
        try:
            yield row, encode(row.schema_name, row.record)
        except ContractError as error:
            yield RowError(row.line, str(error))


def publish_rows(
    rows: Iterable[ParsedRow | RowError],
    publisher: EventPublisher,
    *,
    on_row: Callable[[], None] | None = None,
) -> PublishReport:
    """Sends every good row; a bad one is kept in the report with its line and reason.
    (`--strict` runs `first_problems` over the file first, so that nothing is sent.)"""
    report = PublishReport(tally=publisher.tally)
    started = time.perf_counter()
    for item in encoded_rows(rows, publisher.encode):
        report.rows += 1
        if isinstance(item, RowError):
            report.reject(item)
        else:
            row, value = item
            publisher.send_encoded(row.schema_name, row.record["customer_id"], value)
        if on_row is not None:
            on_row()
    publisher.flush()
    report.elapsed_s = time.perf_counter() - started
    return report


def first_problems(
    rows: Iterable[ParsedRow | RowError],
    encode: Callable[[str, Mapping[str, Any]], bytes],
    *,
    limit: int = 1,
) -> list[RowError]:
    """A dry run: the first `limit` rows that would be rejected (for --strict and --dry-run)."""
    problems: list[RowError] = []
    for item in encoded_rows(rows, encode):
        if isinstance(item, RowError):
            problems.append(item)
            if len(problems) >= limit:
                break
    return problems


def paced(items: Iterable[Any], rate_per_s: float | None) -> Iterator[Any]:
    """Yields items no faster than `rate_per_s` (None or 0: as fast as possible)."""
    if not rate_per_s:
        yield from items
        return
    started: float | None = None
    for count, item in enumerate(items):
        # timed from the first item, not from the call: a simulation takes a while to find
        # its pace before its first event, and must not then send that while's worth at once
        started = time.monotonic() if started is None else started
        ahead = started + count / rate_per_s - time.monotonic()
        if ahead > 0.005:
            time.sleep(ahead)
        yield item
