"""Faults on the real broker: the broker down for a while mid-stream, and a state directory
the worker cannot write. Workers ride out the first and resume where they were; the second
stops them at once with a clear error and exit status 74, having acked nothing it could not
store."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from streams.broker import TopicNames, ensure_topics, free_port
from streams.broker.embedded import EmbeddedKafka
from streams.contract import Codec, make_codec
from streams.settings import Settings
from streams.tools.audit import audit
from streams.tools.lag import LagProbe
from streams.tools.publish import EventPublisher, paced
from streams.tools.simulate import SimulationConfig, simulate
from streams.tools.worker_process import WorkerProcess
from streams.worker.state_dir import EX_IOERR
from tests.conftest import TEST_PARTITIONS
from tests.e2e.cluster import Cluster, settings_of
from tests.tmpfs import Mount, tmpfs_fixture  # noqa: F401  (the `tmpfs` fixture)

pytestmark = pytest.mark.broker

FULL = os.environ.get("LOYALTY_TEST_FULL") == "1"
# How long the broker stays down: the minute at the full size, less by default so
# that `make test` stays short (the publisher and workers see the same kind of outage)
OUTAGE_S = 60.0 if FULL else 25.0
# Traffic published at a steady rate from before the outage to after it
OUTAGE_RATE_PER_S = 100.0
OUTAGE_EVENTS = int(OUTAGE_RATE_PER_S * (OUTAGE_S + 40.0))
OUTAGE_CUSTOMERS = 1500
BEFORE_OUTAGE_S = 12.0


@pytest.fixture(scope="module")
def codec() -> Codec:
    return make_codec(Settings())


def committed_total(probe: LagProbe, topics: Iterable[str]) -> int:
    """The sum of the group's committed offsets over the input partitions (-1: none)."""
    from confluent_kafka import TopicPartition

    partitions = [TopicPartition(t, p) for t in topics for p in range(TEST_PARTITIONS)]
    return sum(max(tp.offset, 0) for tp in probe.consumer.committed(partitions, timeout=10))


@pytest.mark.timeout(3600 if FULL else 900)
def test_workers_ride_out_a_broker_outage_with_traffic_flowing(
    kafka_factory: Callable[[], EmbeddedKafka], tmp_path: Path, codec: Codec
) -> None:
    """Two workers and a steady publisher; the broker is SIGKILLed mid-stream, stays down for
    OUTAGE_S and is started again on the same data and ports. The publisher buffers through
    the outage (librdkafka's queue, message.timeout.ms above the outage), the workers wait
    (no exit, no restart) and resume; the audit then finds every input applied once and
    every output present, byte for byte."""
    broker = kafka_factory()  # a broker of this test alone: the session's is shared
    topics = TopicNames(f"t-outage-{uuid.uuid4().hex[:8]}")
    ensure_topics(broker.bootstrap_servers, topics.all, TEST_PARTITIONS, configs=topics.configs)
    cluster = Cluster(broker.bootstrap_servers, topics, tmp_path)
    config = SimulationConfig(customers=OUTAGE_CUSTOMERS, events=OUTAGE_EVENTS, seed=23)
    tallies: list[EventPublisher] = []

    def publish_steadily() -> None:
        # flush_timeout above the outage: leaving the block waits for every delivery
        with EventPublisher(broker.bootstrap_servers, topics, codec,
                            flush_timeout_s=OUTAGE_S + 240) as publisher:  # fmt: skip
            tallies.append(publisher)
            for schema_name, record in paced(simulate(config), OUTAGE_RATE_PER_S):
                publisher.write(schema_name, record)

    try:
        first, second = cluster.add(), cluster.add()
        first.wait_ready()
        second.wait_ready()
        publisher = threading.Thread(target=publish_steadily)
        publisher.start()
        time.sleep(BEFORE_OUTAGE_S)
        probe = LagProbe(broker.bootstrap_servers, cluster.app_id)
        before = committed_total(probe, topics.inputs)
        probe.close()
        assert before > 0, "the workers committed nothing before the outage"
        broker.kill()  # harsher than a stop: no controlled shutdown
        down_at = time.monotonic()
        time.sleep(OUTAGE_S)
        assert first.alive() and second.alive(), "a worker exited during the outage"
        broker.start(timeout=180)
        up_at = time.monotonic()
        probe = LagProbe(broker.bootstrap_servers, cluster.app_id)
        try:
            resumed_at = None
            while resumed_at is None and time.monotonic() - up_at < 300:
                try:
                    if committed_total(probe, topics.inputs) > before:
                        resumed_at = time.monotonic()
                except Exception:  # the coordinator is still loading: ask again
                    pass
                time.sleep(0.5)
        finally:
            probe.close()
        assert resumed_at is not None, "no commit in 300 s after the broker came back"
        publisher.join(OUTAGE_S + 600)
        assert not publisher.is_alive()
        tally = tallies[0].tally
        assert tally.failed == 0, tally.failures[:5]
        assert tally.acknowledged == OUTAGE_EVENTS
        cluster.wait_idle()
        assert first.alive() and second.alive()
        assert first.starts == second.starts == 1  # rode it out: never restarted
        report = audit(settings_of(cluster))
        print(
            f"\noutage {up_at - down_at:.1f} s (down {OUTAGE_S:.0f} s + broker start), "
            f"first commit {resumed_at - up_at:.1f} s after the broker was back, "
            f"{tally.acknowledged} events\n{report.summary()}"
        )
        assert report.ok, [report.summary(), *map(str, report.mismatches[:10])]
        assert report.input_records == OUTAGE_EVENTS
        assert report.outputs_missing == 0 and report.outputs_expected > 0
    finally:
        cluster.stop()


@pytest.mark.timeout(900)
def test_a_full_disk_stops_the_worker_at_once_and_loses_nothing(
    kafka_bootstrap: str, tmp_path: Path, tmpfs: Mount, codec: Codec
) -> None:
    """A worker whose state directory is a tmpfs too small for its customers: at the first
    state write RocksDB refuses (No space left on device), it logs one error naming the
    directory and the cause and exits 74, in seconds. Nothing it could not store was acked:
    a worker on a good disk takes over, and the audit finds every input applied once and
    every output present."""
    topics = TopicNames(f"t-full-{uuid.uuid4().hex[:8]}")
    ensure_topics(kafka_bootstrap, topics.all, TEST_PARTITIONS, configs=topics.configs)
    cluster = Cluster(kafka_bootstrap, topics, tmp_path)
    small = tmpfs(size="1m")
    doomed = WorkerProcess("disk", small.parent, free_port(), cluster.env)
    doomed.data_dir = small  # the worker's state on the small filesystem, its log beside
    doomed.env["LOYALTY_DATA_DIR"] = str(small)
    try:
        doomed.start().wait_ready()
        config = SimulationConfig(customers=600, events=6000, seed=31)
        with EventPublisher(kafka_bootstrap, topics, codec) as publisher:
            for schema_name, record in simulate(config):
                publisher.write(schema_name, record)
        full_at = None
        deadline = time.monotonic() + 300
        while doomed.alive() and time.monotonic() < deadline:
            stats = os.statvfs(small)
            if full_at is None and stats.f_bavail * stats.f_frsize < 64 * 1024:
                full_at = time.monotonic()
            time.sleep(0.2)
        assert doomed.process is not None
        code = doomed.process.wait(10)
        exited_at = time.monotonic()
        log = doomed.log_path.read_text()
        assert code == EX_IOERR, log[-3000:]
        failures = [line for line in log.splitlines() if "state_dir_failed" in line]
        assert len(failures) == 1, log[-3000:]
        assert str(small) in failures[0] and "No space left on device" in failures[0]
        doomed.process = None
        probe = LagProbe(kafka_bootstrap, cluster.app_id)
        try:
            behind = sum(probe.lag(topics.inputs).values())
        finally:
            probe.close()
        assert behind > 0, "the worker stored everything: make the filesystem smaller"
        cluster.add().wait_ready()  # a good disk
        cluster.wait_idle()
        report = audit(settings_of(cluster))
        print(
            f"\nexit {code} {exited_at - full_at if full_at else float('nan'):.1f} s after the "
            f"filesystem was full, {behind} records left for the next worker\n{report.summary()}"
        )
        assert report.ok, [report.summary(), *map(str, report.mismatches[:10])]
        assert report.input_records == 6000 and report.outputs_missing == 0
    finally:
        doomed.kill()
        cluster.stop()
