"""Workers of one app id on a real broker, as the end-to-end tests run them (test_worker,
test_faults), and the settings they run with."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, TopicPartition

from streams.broker import TopicNames, free_port
from streams.settings import Settings
from streams.tools.lag import group_lag, wait_idle
from streams.tools.worker_process import WorkerProcess
from tests.conftest import TEST_PARTITIONS


class Cluster:
    """Workers sharing one app id, topic prefix and broker."""

    def __init__(
        self,
        bootstrap: str,
        topics: TopicNames,
        work_dir: Path,
        guarantee: str = "at_least_once",
    ) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.app_id = f"w-{uuid.uuid4().hex[:8]}"
        self.work_dir = work_dir
        self.env = {
            "LOYALTY_BOOTSTRAP_SERVERS": bootstrap,
            "LOYALTY_TOPIC_PREFIX": topics.prefix,
            "LOYALTY_APP_ID": self.app_id,
            "LOYALTY_PARTITIONS": str(TEST_PARTITIONS),
            "LOYALTY_CLOCK": "event",
            "LOYALTY_LATE_GRACE_SECONDS": "0",
            "LOYALTY_TICK_SECONDS": "1",
            "LOYALTY_PROCESSING_GUARANTEE": guarantee,
        }
        self.workers: list[WorkerProcess] = []

    def add(self, **settings: str) -> WorkerProcess:
        """A worker more, started; `settings` (`group_instance_id="w0"`, say) its own LOYALTY_*
        settings beside the cluster's."""
        env = {**self.env, **{f"LOYALTY_{name.upper()}": v for name, v in settings.items()}}
        worker = WorkerProcess(f"worker-{len(self.workers)}", self.work_dir, free_port(), env)
        self.workers.append(worker)
        return worker.start()

    def wait_idle(self, stall_s: float = 180.0) -> None:
        """Until the group has no lag and the outputs stopped growing; fails at once if a
        worker died meanwhile, and when the lag has not gone down for stall_s seconds (a
        stalled recovery or a lost assignment), not after a fixed time: a loaded machine is
        slow, not wrong."""
        deadline = time.monotonic() + stall_s
        least_behind: int | None = None
        while True:
            dead = [w.name for w in self.workers if w.process is not None and not w.alive()]
            assert not dead, f"worker(s) {dead} died: see {self.work_dir}/<name>.log"
            try:
                wait_idle(self.bootstrap, self.app_id, self.topics.inputs, timeout_s=5)
                break
            except TimeoutError:
                try:
                    behind = sum(
                        group_lag(self.bootstrap, self.app_id, self.topics.inputs).values()
                    )
                except KafkaException:  # a restarting broker: no progress to read
                    behind = least_behind if least_behind is not None else 1 << 62
                if least_behind is None or behind < least_behind:
                    least_behind, deadline = behind, time.monotonic() + stall_s
                elif time.monotonic() > deadline:
                    raise
        # every input record is committed, but a partition that moved last runs its due work
        # (at its restored clock) on the next tick: wait until the outputs stop growing
        self.wait_outputs_settled(time.monotonic() + stall_s)

    def wait_outputs_settled(self, deadline: float, quiet_s: float = 4.0) -> None:
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "settle-probe"})
        try:
            partitions = [
                TopicPartition(topic, partition)
                for topic in self.topics.outputs
                for partition in range(TEST_PARTITIONS)
            ]
            last, quiet_since = -1, time.monotonic()
            while time.monotonic() - quiet_since < quiet_s:
                assert time.monotonic() < deadline, "the outputs kept growing"
                ends = sum(consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions)
                if ends != last:
                    last, quiet_since = ends, time.monotonic()
                time.sleep(0.5)
        finally:
            consumer.close()

    def stop(self) -> None:
        for worker in self.workers:
            worker.kill()


def settings_of(cluster: Cluster) -> Settings:
    """The settings the cluster's workers run with, for the audit."""
    return Settings.load(
        bootstrap_servers=cluster.bootstrap,
        topic_prefix=cluster.topics.prefix,
        app_id=cluster.app_id,
        partitions=TEST_PARTITIONS,
        clock="event",
        late_grace_seconds=0,
        processing_guarantee=cluster.env["LOYALTY_PROCESSING_GUARANTEE"],
    )
