"""The stream processor on the real broker: what the workers produce equals the reference
fold of the input log, also when workers are SIGKILLed mid-stream."""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from streams.broker import TopicNames, ensure_topics
from streams.broker.embedded import EmbeddedKafka
from streams.contract import Codec, make_codec
from streams.program import load_program
from streams.settings import DEFAULT_RULES, Settings
from streams.tools.audit import (
    AuditReport,
    Reference,
    audit,
    read_input_log,
    read_output_log,
    reference_fold,
)
from streams.tools.lag import group_lag
from streams.tools.publish import EventPublisher
from streams.tools.simulate import SimulationConfig, simulate
from streams.tools.topic_census import read_topic
from streams.tools.worker_process import WorkerProcess
from tests.conftest import TEST_PARTITIONS
from tests.e2e.cluster import Cluster, settings_of

pytestmark = pytest.mark.broker

# The crash tests' size: modest by default so that `make test` stays short; the issue's full
# size (200k events over 20k customers) with LOYALTY_TEST_FULL=1.
FULL = os.environ.get("LOYALTY_TEST_FULL") == "1"
CRASH_EVENTS, CRASH_CUSTOMERS = (200_000, 20_000) if FULL else (30_000, 3_000)
# pytest's per-test limit for those tests: the full size takes longer than the default's 600 s
crash_timeout = pytest.mark.timeout(3600 if FULL else 600)


@pytest.fixture(params=["at_least_once"])
def cluster(
    kafka_bootstrap: str, loyalty_topics: TopicNames, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Cluster]:
    cluster = Cluster(kafka_bootstrap, loyalty_topics, tmp_path, request.param)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def codec() -> Codec:
    return make_codec(Settings())


def publish(cluster: Cluster, codec: Codec, config: SimulationConfig) -> int:
    with EventPublisher(cluster.bootstrap, cluster.topics, codec) as publisher:
        for schema_name, record in simulate(config):
            publisher.write(schema_name, record)
    assert publisher.tally.failed == 0
    return publisher.tally.acknowledged


def assert_matches_reference(
    cluster: Cluster, codec: Codec, states: AuditReport | None = None
) -> None:
    log = read_input_log(cluster.bootstrap, cluster.topics)
    reference = reference_fold(log, load_program(DEFAULT_RULES), codec, cluster.topics,
                               TEST_PARTITIONS)  # fmt: skip
    produced = read_output_log(cluster.bootstrap, cluster.topics, codec)
    expected = reference.output_ids()
    missing = set(expected) - set(produced.ids)
    unexpected = set(produced.ids) - set(expected)
    by_id = {sent.event_id: sent for sent in reference.outputs}
    missing_kinds = [
        (by_id[i].kind, by_id[i].key, codec.decode(by_id[i].value).record.get("caused_by"))
        for i in missing
    ]
    differing = [] if states is None else [str(m) for m in states.mismatches[:15]]
    assert not missing, (
        f"{len(missing)} output events never produced: {missing_kinds[:10]}; "
        f"states differing: {differing}"
    )
    assert not unexpected, (
        f"{len(unexpected)} output events the reference does not have: "
        f"{describe_outputs(cluster, codec, reference, unexpected)}"
    )
    assert produced.dead_letters >= reference.dead_letters()


def describe_outputs(
    cluster: Cluster, codec: Codec, reference: Reference, event_ids: set[str], limit: int = 5
) -> list[str]:
    """The first few of `event_ids` as produced, each with what the reference sent for the
    same customer and kind, so that a failure says how the two differ."""
    lines: list[str] = []
    for topic in cluster.topics.outputs:
        for message in read_topic(cluster.bootstrap, topic):
            record = codec.decode(message.value() or b"").record
            if record["event_id"] not in event_ids or len(lines) >= limit:
                continue
            same = [
                (r["occurred_at"].isoformat(), r["caused_by"])
                for sent in reference.outputs
                if sent.topic == topic and sent.key == message.key()
                for r in [codec.decode(sent.value).record]
            ]
            lines.append(
                f"{topic} {record['customer_id']} at {record['occurred_at'].isoformat()} "
                f"caused by {record['caused_by']} (partition {message.partition()} offset "
                f"{message.offset()}); the reference sent {same}"
            )
    return lines


def audit_states(cluster: Cluster) -> AuditReport:
    """The live table (its changelog) against the reference, customer by customer."""
    return audit(settings_of(cluster), view_only=True)


def test_one_worker_produces_exactly_the_reference_outputs(cluster: Cluster, codec: Codec) -> None:
    worker = cluster.add().wait_ready()
    sent = publish(cluster, codec, SimulationConfig(customers=400, events=6000, seed=21))
    cluster.wait_idle()
    assert worker.alive()
    assert_matches_reference(cluster, codec)
    produced = read_output_log(cluster.bootstrap, cluster.topics, codec)
    assert sent == 6000 and produced.dead_letters == 0
    # one worker, no crash: not a single output sent twice
    assert max(produced.ids.values()) == 1
    assert sum(produced.ids.values()) > 500


def test_bad_input_is_dead_lettered_and_good_input_applied(cluster: Cluster, codec: Codec) -> None:
    cluster.add().wait_ready()
    producer = Producer({"bootstrap.servers": cluster.bootstrap, "partitioner": "murmur2_random"})
    for garbage in (b"\x00\x01garbage", b'{"customer_id": "c-1"}', b""):
        producer.produce(cluster.topics.purchases, key=b"c-0000001", value=garbage)
    producer.flush(10)
    sent = publish(cluster, codec, SimulationConfig(customers=50, events=800, seed=3))
    cluster.wait_idle()
    produced = read_output_log(cluster.bootstrap, cluster.topics, codec)
    assert produced.dead_letters == 3
    assert_matches_reference(cluster, codec)
    assert sent == 800


@crash_timeout
@pytest.mark.parametrize("cluster", ["at_least_once", "exactly_once"], indirect=True)
def test_sigkilled_workers_lose_and_double_nothing(cluster: Cluster, codec: Codec) -> None:
    first, second = cluster.add(), cluster.add()
    first.wait_ready()
    second.wait_ready()
    rnd = random.Random(11)
    done = threading.Event()
    config = SimulationConfig(customers=CRASH_CUSTOMERS, events=CRASH_EVENTS, seed=8)

    def publish_in_background() -> None:
        publish(cluster, codec, config)
        done.set()

    publisher = threading.Thread(target=publish_in_background)
    publisher.start()
    kills = 0
    while not done.is_set() or kills < 3:
        time.sleep(rnd.uniform(2.0, 5.0))
        victim = rnd.choice(cluster.workers)
        victim.kill()
        kills += 1
        victim.start()
    publisher.join()
    for worker in cluster.workers:
        if not worker.alive():
            worker.start()
    cluster.wait_idle()
    assert kills >= 3
    report = audit_states(cluster)  # first, so that a failure below shows the states too
    assert_matches_reference(cluster, codec, report)
    assert report.customers_differing == 0, [str(m) for m in report.mismatches[:10]]
    produced = read_output_log(cluster.bootstrap, cluster.topics, codec)
    if cluster.env["LOYALTY_PROCESSING_GUARANTEE"] == "exactly_once":
        doubled = {event_id: n for event_id, n in produced.ids.items() if n > 1}
        assert not doubled, f"{len(doubled)} outputs seen twice by a read_committed consumer"


def publish_while(cluster: Cluster, codec: Codec, config: SimulationConfig) -> threading.Thread:
    thread = threading.Thread(target=publish, args=(cluster, codec, config))
    thread.start()
    return thread


@crash_timeout
def test_a_worker_joining_and_leaving_mid_stream_changes_nothing(
    cluster: Cluster, codec: Codec
) -> None:
    first, second = cluster.add(), cluster.add()
    first.wait_ready()
    second.wait_ready()
    config = SimulationConfig(customers=CRASH_CUSTOMERS, events=CRASH_EVENTS, seed=13)
    publisher = publish_while(cluster, codec, config)
    time.sleep(3)
    third = cluster.add()  # joins: partitions move to it
    third.wait_ready()
    time.sleep(3)
    third.stop()  # leaves cleanly: they move back
    publisher.join()
    cluster.wait_idle()
    assert_matches_reference(cluster, codec)


def test_live_clock_flags_a_silent_customer_from_the_passing_of_time_alone(
    kafka_bootstrap: str, loyalty_topics: TopicNames, tmp_path: Path, codec: Codec
) -> None:
    cluster = Cluster(kafka_bootstrap, loyalty_topics, tmp_path)
    cluster.env["LOYALTY_CLOCK"] = "live"
    try:
        cluster.add().wait_ready()
        # a weekly regular who stopped coming 300 days ago: nothing of theirs arrives after
        last_visit = datetime.now(UTC) - timedelta(days=300)
        with EventPublisher(cluster.bootstrap, cluster.topics, codec) as publisher:
            for week in range(10, -1, -1):
                at = last_visit - timedelta(weeks=week)
                publisher.write(
                    "loyalty.v1.Purchase",
                    {"event_id": f"weekly-{week}", "customer_id": "c-silent", "store_id": None,
                     "occurred_at": at.replace(microsecond=0), "currency": "EUR",
                     "total_minor": 1250, "items": []},
                )  # fmt: skip
        deadline = time.monotonic() + 60
        changes: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not changes:
            time.sleep(1)
            changes = [
                record
                for message in read_topic(cluster.bootstrap, cluster.topics.churn_risk)
                for record in [codec.decode(message.value() or b"").record]
                if str(record["caused_by"]).startswith("due:churn:")
            ]
        assert changes, "no churn-risk change from time alone"
        assert all(record["customer_id"] == "c-silent" for record in changes)
        assert changes[-1]["level"] != "none"
        assert changes[-1]["occurred_at"] > last_visit  # stamped when due, after the last visit
    finally:
        cluster.stop()


@crash_timeout
def test_a_broker_restart_mid_stream_changes_nothing(
    kafka_factory: Callable[[], EmbeddedKafka], tmp_path: Path, codec: Codec
) -> None:
    """The broker goes down and comes back while two workers work through a backlog: they
    ride it out (no restart of theirs), and the outputs and states are the reference's. The
    backlog is published first, so that the only clients during the outage are the workers."""
    broker = kafka_factory()
    topics = TopicNames(f"t-restart-{uuid.uuid4().hex[:8]}")
    ensure_topics(broker.bootstrap_servers, topics.all, TEST_PARTITIONS)
    cluster = Cluster(broker.bootstrap_servers, topics, tmp_path)
    try:
        publish(
            cluster,
            codec,
            SimulationConfig(customers=CRASH_CUSTOMERS, events=CRASH_EVENTS, seed=17),
        )
        first, second = cluster.add(), cluster.add()
        first.wait_ready()
        second.wait_ready()
        time.sleep(3)
        behind = group_lag(broker.bootstrap_servers, cluster.app_id, topics.inputs)
        assert sum(behind.values()) > 0, (
            "the workers finished before the restart: make the backlog bigger"
        )
        broker.restart()
        cluster.wait_idle()
        assert first.alive() and second.alive()
        assert_matches_reference(cluster, codec)
        report = audit_states(cluster)
        assert report.customers_differing == 0, [str(m) for m in report.mismatches[:10]]
    finally:
        cluster.stop()


def rebalances_seen(worker: WorkerProcess) -> int:
    """The assignments the worker logged (`partitions_assigned`), over all its lives."""
    return worker.log_path.read_text(errors="replace").count("partitions_assigned")


@crash_timeout
def test_static_members_restarted_at_once_take_their_partitions_back_without_a_rebalance(
    cluster: Cluster, codec: Codec
) -> None:
    """With LOYALTY_GROUP_INSTANCE_ID, a SIGKILLed worker restarted within the session
    timeout rejoins as the member it was: the broker hands it its partitions again, its
    RocksDB holds them already, and the other worker goes on without a rebalance. Each of
    the two is killed in turn (one of them leads the group), with traffic flowing; the
    outputs still equal the reference fold's."""
    first = cluster.add(group_instance_id=f"{cluster.app_id}-0")
    second = cluster.add(group_instance_id=f"{cluster.app_id}-1")
    first.wait_ready()
    second.wait_ready()
    # both are in the group with their final assignment once neither logs a new one
    settled = time.monotonic() + 60
    counts = (rebalances_seen(first), rebalances_seen(second))
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < 8:
        assert time.monotonic() < settled, "the group did not settle"
        time.sleep(1)
        now = (rebalances_seen(first), rebalances_seen(second))
        if now != counts:
            counts, quiet_since = now, time.monotonic()
    config = SimulationConfig(customers=CRASH_CUSTOMERS, events=CRASH_EVENTS, seed=17)
    publisher = publish_while(cluster, codec, config)
    for victim, bystander in ((second, first), (first, second), (second, first)):
        time.sleep(3)
        before = rebalances_seen(bystander)
        victim.kill()
        victim.start()
        victim.wait_ready()
        time.sleep(2)  # a rebalance the restart started would reach the bystander by now
        assert rebalances_seen(bystander) == before, (
            f"{bystander.name} was rebalanced when {victim.name} restarted: see "
            f"{bystander.log_path}"
        )
    publisher.join()
    cluster.wait_idle()
    assert_matches_reference(cluster, codec)
