"""Schema evolution in flight, on the real broker: producers and workers on different minor
versions of the input schemas keep working, in the orders the contract allows, and a record
of a version the worker cannot know is dead-lettered with its reason, not lost.

The next minor version here is the committed schemas plus an optional field on Purchase
(`channel`), recorded in the schema history as `history.record` does for a real change."""

from __future__ import annotations

import copy
import uuid
from pathlib import Path
from typing import Any

import pytest

from streams.broker import TopicNames, ensure_topics, free_port
from streams.contract import Codec, history
from streams.contract.catalog import SchemaCatalog
from streams.contract.registry import RegistryFraming
from streams.settings import Settings
from streams.tools.audit import audit
from streams.tools.lag import wait_idle
from streams.tools.publish import EventPublisher
from streams.tools.simulate import SimulationConfig, simulate
from streams.tools.worker_process import WorkerProcess
from tests.conftest import TEST_PARTITIONS
from tests.contract.conftest import copy_schemas, edit_schema
from tests.contract.fake_registry import fake_registry

pytestmark = pytest.mark.broker

CHANNEL = {"name": "channel", "type": ["null", "string"], "default": None,
           "doc": "Where the sale happened (store, web, app); null when unknown."}  # fmt: skip


@pytest.fixture(scope="module")
def next_minor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A schema folder one compatible version ahead: Purchase gains an optional field."""
    folder = copy_schemas(tmp_path_factory.mktemp("next-minor"))
    edit_schema(folder, "loyalty.v1.Purchase", lambda d: d["fields"].append(copy.deepcopy(CHANNEL)))
    written = history.record(SchemaCatalog.load(folder))
    assert [path.parent.name for path in written] == ["Purchase"]
    return folder


def traffic(seed: int) -> list[tuple[str, dict[str, Any]]]:
    return list(simulate(SimulationConfig(customers=40, events=600, seed=seed)))


def with_channel(name: str, record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "channel": "app"} if name.endswith("Purchase") else record


class Rollout:
    def __init__(self, kafka: str, work_dir: Path, **settings: Any) -> None:
        self.topics = TopicNames(f"t-rollout-{uuid.uuid4().hex[:8]}")
        ensure_topics(kafka, self.topics.all, TEST_PARTITIONS)
        self.settings = Settings(bootstrap_servers=kafka, topic_prefix=self.topics.prefix,
                                 app_id=f"r-{uuid.uuid4().hex[:8]}", partitions=TEST_PARTITIONS,
                                 clock="event", **settings)  # fmt: skip
        env = {
            "LOYALTY_BOOTSTRAP_SERVERS": kafka,
            "LOYALTY_TOPIC_PREFIX": self.topics.prefix,
            "LOYALTY_APP_ID": self.settings.app_id,
            "LOYALTY_PARTITIONS": str(TEST_PARTITIONS),
            "LOYALTY_CLOCK": "event",
        }
        if self.settings.schema_dir is not None:
            env["LOYALTY_SCHEMA_DIR"] = str(self.settings.schema_dir)
        if self.settings.schema_registry_url is not None:
            env["SCHEMA_REGISTRY_URL"] = self.settings.schema_registry_url
        self.worker = WorkerProcess("worker", work_dir, free_port(), env)

    def publish(self, codec: Codec, events: list[tuple[str, dict[str, Any]]]) -> None:
        with EventPublisher(self.settings.bootstrap_servers, self.topics, codec) as publisher:
            for name, record in events:
                publisher.write(name, record)
        assert publisher.tally.failed == 0

    def settle(self) -> None:
        wait_idle(self.settings.bootstrap_servers, self.settings.app_id, self.topics.inputs, 180)


def run(rollout: Rollout, batches: list[tuple[Codec, list[tuple[str, dict[str, Any]]]]]) -> None:
    rollout.worker.start().wait_ready()
    try:
        for codec, events in batches:
            rollout.publish(codec, events)
        rollout.settle()
    finally:
        rollout.worker.kill()


def assert_every_event_applied(rollout: Rollout, events: list[tuple[str, Any]]) -> None:
    """The audit finds the live state and outputs those of a fold of the log, every event
    applied and none dead-lettered."""
    report = audit(rollout.settings)
    assert report.ok, report.summary()
    assert report.dead_letters_live == 0 and report.customers_live == 40
    assert report.input_records == len(events)


def test_with_a_registry_a_worker_reads_a_producer_a_version_ahead(
    kafka_bootstrap: str, next_minor: Path, tmp_path: Path
) -> None:
    """The producer moved first: the worker, on the current schemas, fetches the newer writer
    schema by id and resolves it (the new field skipped); every event is applied."""
    with fake_registry() as (url, _state):
        rollout = Rollout(kafka_bootstrap, tmp_path, schema_registry_url=url)
        prefix = rollout.topics.prefix
        shipped = SchemaCatalog.load()
        current = Codec(shipped, RegistryFraming.connect(url, shipped, topic_prefix=prefix))
        catalog = SchemaCatalog.load(next_minor)
        ahead = Codec(catalog, RegistryFraming.connect(url, catalog, topic_prefix=prefix))
        events = traffic(seed=3)
        half = len(events) // 2
        run(rollout, [(current, events[:half]),
                      (ahead, [(n, with_channel(n, r)) for n, r in events[half:]])])  # fmt: skip
        assert_every_event_applied(rollout, events)


def test_a_worker_a_version_ahead_reads_producers_on_both_versions(
    kafka_bootstrap: str, next_minor: Path, tmp_path: Path
) -> None:
    """Without a registry the worker moves first (LOYALTY_SCHEMA_DIR): it reads the records
    of producers still on the current version and of those already on the next, interleaved."""
    rollout = Rollout(kafka_bootstrap, tmp_path, schema_dir=next_minor)
    current, ahead = Codec(SchemaCatalog.load()), Codec(SchemaCatalog.load(next_minor))
    events = traffic(seed=4)
    batches = [
        (ahead, [(n, with_channel(n, r)) for n, r in events[i : i + 50]])
        if (i // 50) % 2
        else (current, events[i : i + 50])
        for i in range(0, len(events), 50)
    ]
    run(rollout, batches)
    assert_every_event_applied(rollout, events)


def test_a_record_of_a_version_the_worker_cannot_know_is_dead_lettered_not_lost(
    kafka_bootstrap: str, next_minor: Path, tmp_path: Path
) -> None:
    """Without a registry, a producer that moved before the worker: its records carry a
    fingerprint the worker does not know. Each goes to the dead-letter topic as
    UNKNOWN_SCHEMA with its bytes, and the worker carries on with the rest."""
    rollout = Rollout(kafka_bootstrap, tmp_path)
    current, ahead = Codec(SchemaCatalog.load()), Codec(SchemaCatalog.load(next_minor))
    events = traffic(seed=5)
    early = [(n, with_channel(n, r)) for n, r in events[:60] if n.endswith("Purchase")]
    run(rollout, [(ahead, early), (current, events[60:])])
    report = audit(rollout.settings)  # the audit reads with the worker's schemas, as it does
    assert report.ok, report.summary()
    assert report.dead_letters_live == report.dead_letters_expected >= len(early) > 0
    from streams.tools.tail import tail

    messages = tail(kafka_bootstrap, rollout.topics.dead_letter, last=report.dead_letters_live,
                    from_beginning=True, follow=False)  # fmt: skip
    every = [current.decode(message.value() or b"").record for message in messages]
    dead = [d for d in every if d["error_kind"] == "UNKNOWN_SCHEMA"]
    assert len(dead) == len(early)
    assert all("unknown schema fingerprint" in d["message"] for d in dead)
    # the rest follow from those: a return of a purchase the worker could not read
    unreadable_ids = {r["event_id"] for _, r in early}
    assert all(
        "is unknown" in d["message"] and d["message"].split()[1] in unreadable_ids
        for d in every
        if d not in dead
    ), every
    # the raw bytes are kept: once the worker knows the version they read as published
    assert sorted(ahead.decode(d["raw_value"]).record["event_id"] for d in dead) == sorted(
        r["event_id"] for _, r in early
    )
