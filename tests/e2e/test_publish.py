"""`loyalty publish` against the real broker: every row lands once per publish, decodable,
keyed by customer id and co-partitioned; bad rows are refused with their line and reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.broker import TopicNames, list_topics
from streams.contract import make_codec
from streams.contract.event_files import EventFileWriter
from streams.settings import Settings
from streams.tools.publish import EventPublisher
from streams.tools.simulate import SimulationConfig, simulate
from streams.tools.topic_census import census_of, read_topic

pytestmark = pytest.mark.broker

LOYALTY = [sys.executable, "-m", "streams.cli"]


def loyalty(
    args: list[str], bootstrap: str, topics: TopicNames
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LOYALTY_BOOTSTRAP_SERVERS": bootstrap,
        "LOYALTY_TOPIC_PREFIX": topics.prefix,
    }
    return subprocess.run(
        [*LOYALTY, *args], env=env, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.fixture(scope="module")
def simulated_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("publish") / "traffic-100k.jsonl"
    with EventFileWriter(path) as writer:
        for schema_name, record in simulate(SimulationConfig(customers=10_000, events=100_000)):
            writer.write(schema_name, record)
    return path


def test_publishing_100k_rows_twice_lands_every_record_twice_with_the_same_ids(
    kafka_bootstrap: str, loyalty_topics: TopicNames, simulated_file: Path
) -> None:
    first = loyalty(["publish", str(simulated_file)], kafka_bootstrap, loyalty_topics)
    assert first.returncode == 0, first.stderr
    assert "100000 published and acknowledged" in first.stderr

    codec = make_codec(Settings())
    censuses = {
        topic: census_of(topic, read_topic(kafka_bootstrap, topic), codec)
        for topic in loyalty_topics.inputs
    }
    purchases = censuses[loyalty_topics.purchases]
    feedback = censuses[loyalty_topics.feedback]
    assert purchases.records + feedback.records == 100_000
    assert purchases.undecodable == feedback.undecodable == 0
    assert set(purchases.by_schema) == {"loyalty.v1.Purchase", "loyalty.v1.Return"}
    assert set(feedback.by_schema) == {
        "loyalty.v1.NpsResponse",
        "loyalty.v1.ComplaintOpened",
        "loyalty.v1.ComplaintResolved",
    }
    assert purchases.keyed_by_customer == purchases.records
    assert feedback.keyed_by_customer == feedback.records
    first_ids = purchases.event_ids | feedback.event_ids
    assert len(first_ids) == 100_000

    second = loyalty(["publish", str(simulated_file)], kafka_bootstrap, loyalty_topics)
    assert second.returncode == 0, second.stderr
    again = [census_of(t, read_topic(kafka_bootstrap, t), codec) for t in loyalty_topics.inputs]
    assert sum(census.records for census in again) == 200_000
    assert set().union(*(census.event_ids for census in again)) == first_ids


def test_a_customer_lands_on_the_same_partition_of_every_input_topic(
    kafka_bootstrap: str, loyalty_topics: TopicNames, tmp_path: Path
) -> None:
    path = tmp_path / "few.jsonl"
    with EventFileWriter(path) as writer:
        for schema_name, record in simulate(SimulationConfig(customers=50, events=3000)):
            writer.write(schema_name, record)
    result = loyalty(["publish", str(path)], kafka_bootstrap, loyalty_topics)
    assert result.returncode == 0, result.stderr
    partitions_of: dict[str, set[tuple[str, int | None]]] = {}
    for topic in loyalty_topics.inputs:
        for message in read_topic(kafka_bootstrap, topic):
            key = (message.key() or b"").decode()
            partitions_of.setdefault(key, set()).add((topic, message.partition()))
    both_topics = [places for places in partitions_of.values() if len(places) > 1]
    assert both_topics, "some customers should have both purchases and feedback"
    for places in partitions_of.values():
        assert len({partition for _, partition in places}) == 1
    # and the murmur2 partitioner spreads customers over every partition
    assert len({p for places in partitions_of.values() for _, p in places}) > 1


def test_bad_rows_are_reported_with_line_and_reason_and_not_sent(
    kafka_bootstrap: str, loyalty_topics: TopicNames, tmp_path: Path
) -> None:
    path = tmp_path / "pos.csv"
    path.write_text(
        "type,customer_id,occurred_at,total,score\n"
        "purchase,c1,20250301,11.77,\n"
        "purchase,c2,20250301,-3.00,\n"
        "nps,c1,20250302,,11\n"
        "purchase,,20250301,1.00,\n"
        "nps,c3,20250302,,10\n"
    )
    strict = loyalty(["publish", "--strict", str(path)], kafka_bootstrap, loyalty_topics)
    assert strict.returncode == 1
    assert "line 3" in strict.stderr and "nothing sent" in strict.stderr
    assert _records(kafka_bootstrap, loyalty_topics) == 0

    result = loyalty(["publish", str(path)], kafka_bootstrap, loyalty_topics)
    assert result.returncode == 1
    stderr = " ".join(result.stderr.split())
    assert "line 3" in stderr and "negative" in stderr
    assert "line 4" in stderr and "score" in stderr
    assert "line 5" in stderr and "customer_id is missing" in stderr
    assert "2 published and acknowledged, 3 rejected" in stderr
    assert _records(kafka_bootstrap, loyalty_topics) == 2


def _records(bootstrap: str, topics: TopicNames) -> int:
    return sum(1 for topic in topics.inputs for _ in read_topic(bootstrap, topic))


def test_type_flag_and_renamed_columns_from_a_foreign_export(
    kafka_bootstrap: str, loyalty_topics: TopicNames, tmp_path: Path
) -> None:
    path = tmp_path / "export.csv"
    path.write_text("Kunde,Datum,Betrag\nk-1,20250301,19.99\nk-2,20250302,5\n")
    args = ["publish", "--type", "purchase", "--map", "customer_id=Kunde", "--map",
            "occurred_at=Datum", "--map", "total=Betrag", str(path)]  # fmt: skip
    result = loyalty(args, kafka_bootstrap, loyalty_topics)
    assert result.returncode == 0, result.stderr
    codec = make_codec(Settings())
    totals = {
        decoded.record["customer_id"]: decoded.record["total_minor"]
        for decoded in (
            codec.decode(m.value() or b"")
            for m in read_topic(kafka_bootstrap, loyalty_topics.purchases)
        )
    }
    assert totals == {"k-1": 1999, "k-2": 500}


def test_unacknowledged_events_are_counted_as_failed() -> None:
    # Nothing listens on this port: every delivery times out and must be reported, not lost.
    publisher = EventPublisher(
        "127.0.0.1:1", TopicNames("nowhere"), make_codec(Settings()), **{"message.timeout.ms": 1500}
    )
    for schema_name, record in simulate(SimulationConfig(customers=5, events=20)):
        publisher.write(schema_name, record)
    tally = publisher.flush()
    assert tally.sent == 20
    assert tally.failed == 20
    assert tally.acknowledged == 0
    assert tally.failures and "timed out" in tally.failures[0].lower()


def test_dry_run_checks_every_row_and_sends_nothing(
    kafka_bootstrap: str, loyalty_topics: TopicNames, tmp_path: Path
) -> None:
    path = tmp_path / "mixed.jsonl"
    common = {"customer_id": "c", "occurred_at": "20250301"}
    rows = [{"type": "purchase", **common, "total": "1.5"},
            {"type": "purchase", **common, "total": "x"},
            {"type": "nps", **common, "score": -1}]  # fmt: skip
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = loyalty(["publish", "--dry-run", str(path)], kafka_bootstrap, loyalty_topics)
    assert result.returncode == 1
    assert "line 2" in result.stderr and "line 3" in result.stderr
    assert _records(kafka_bootstrap, loyalty_topics) == 0


def test_aiokafka_under_the_worker_reads_the_publishers_lz4_batches(
    kafka_bootstrap: str, loyalty_topics: TopicNames
) -> None:
    # aiokafka needs cramjam for lz4; without it its fetcher crashes on our batches
    import asyncio

    from aiokafka import AIOKafkaConsumer, TopicPartition

    codec = make_codec(Settings())
    with EventPublisher(kafka_bootstrap, loyalty_topics, codec) as publisher:
        for schema_name, record in simulate(SimulationConfig(customers=20, events=200)):
            if schema_name == "loyalty.v1.Purchase":
                publisher.write(schema_name, record)
    sent = publisher.tally.acknowledged

    async def consume_all() -> list[bytes]:
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            count = list_topics(kafka_bootstrap)[loyalty_topics.purchases]
            partitions = [TopicPartition(loyalty_topics.purchases, p) for p in range(count)]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            values: list[bytes] = []
            while len(values) < sent:
                batches = await consumer.getmany(timeout_ms=5000)
                assert batches, f"only {len(values)} of {sent} records arrived"
                values += [m.value for batch in batches.values() for m in batch if m.value]
            return values
        finally:
            await consumer.stop()

    values = asyncio.run(consume_all())
    assert len(values) == sent > 100
    assert {codec.decode(value).schema_name for value in values} == {"loyalty.v1.Purchase"}
