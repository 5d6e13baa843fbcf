"""A rules file change while running, on the real broker: the documented path (restart the
workers with the new file) gives what a fold of the log gives with the rules switched where
the restarted worker took over: per partition, at the first record after the offsets the
stopped worker committed (docs/production.md, "Upgrade and roll back the rules file")."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from streams.broker import TopicNames, ensure_topics, free_port
from streams.contract import make_codec
from streams.program import load_program
from streams.settings import DEFAULT_RULES, Settings
from streams.tools.audit import read_input_log, read_produced, reference_fold
from streams.tools.export import read_customer_table
from streams.tools.lag import wait_idle
from streams.tools.publish import EventPublisher
from streams.tools.simulate import SimulationConfig, simulate
from streams.tools.worker_process import WorkerProcess
from streams.worker.envelope import StoredCustomer
from tests.conftest import TEST_PARTITIONS

pytestmark = pytest.mark.broker


def new_rules(folder: Path) -> Path:
    """The shipped program with gold reached at 1,000 instead of 1,500 and points lapsing
    after 120 days without a purchase instead of 365: changes to what a purchase does and to
    what time alone does."""
    text = DEFAULT_RULES.read_text()
    for old, new in (('version = "2026.11"', 'version = "2026.12"'),
                     ("threshold = 1500", "threshold = 1000"),
                     ("expiry_days = 365", "expiry_days = 120")):  # fmt: skip
        assert old in text
        text = text.replace(old, new, 1)
    path = folder / "loyalty-program-2026.12.toml"
    path.write_text(text)
    return path


def test_a_rules_change_by_restart_equals_a_fold_with_the_rules_switched_there(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topics = TopicNames(f"t-rules-{uuid.uuid4().hex[:8]}")
    ensure_topics(kafka_bootstrap, topics.all, TEST_PARTITIONS)
    settings = Settings(bootstrap_servers=kafka_bootstrap, topic_prefix=topics.prefix,
                        app_id=f"r-{uuid.uuid4().hex[:8]}", partitions=TEST_PARTITIONS,
                        clock="event", late_grace_seconds=0)  # fmt: skip
    env = {
        "LOYALTY_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "LOYALTY_TOPIC_PREFIX": topics.prefix,
        "LOYALTY_APP_ID": settings.app_id,
        "LOYALTY_PARTITIONS": str(TEST_PARTITIONS),
        "LOYALTY_CLOCK": "event",
        "LOYALTY_LATE_GRACE_SECONDS": "0",
    }
    old_program = load_program(DEFAULT_RULES)
    rules = new_rules(tmp_path)
    new_program = load_program(rules)
    codec = make_codec(settings)
    events = list(simulate(SimulationConfig(customers=150, events=3000, seed=23)))
    switch = len(events) // 2

    def publish(batch: list[tuple[str, dict[str, object]]]) -> None:
        with EventPublisher(kafka_bootstrap, topics, codec) as publisher:
            for name, record in batch:
                publisher.write(name, record)
        assert publisher.tally.failed == 0

    def settle() -> None:
        wait_idle(kafka_bootstrap, settings.app_id, topics.inputs, 300)

    old = WorkerProcess(
        "worker", tmp_path, free_port(), {**env, "LOYALTY_RULES": str(DEFAULT_RULES)}
    )
    try:
        old.start().wait_ready()
        publish(events[:switch])
        settle()
    finally:
        old.stop()  # SIGTERM: a rolling restart's stop, offsets committed
    before_switch = read_input_log(kafka_bootstrap, topics)
    new = WorkerProcess("worker", tmp_path, free_port(), {**env, "LOYALTY_RULES": str(rules)})
    try:
        new.start().wait_ready()
        publish(events[switch:])
        settle()
    finally:
        new.kill()

    log = read_input_log(kafka_bootstrap, topics)
    seen = {(r.topic, r.partition, r.offset) for r in before_switch}
    after_switch = [r for r in log if (r.topic, r.partition, r.offset) not in seen]
    assert len(before_switch) == switch and len(after_switch) == len(events) - switch
    under_old = reference_fold(before_switch, old_program, codec, topics, TEST_PARTITIONS)
    switched = reference_fold(after_switch, new_program, codec, topics, TEST_PARTITIONS,
                              restarted_from=under_old)  # fmt: skip

    live = read_customer_table(kafka_bootstrap, settings.app_id).customers
    assert sorted(live) == sorted(switched.table)
    differing = [
        key.decode()
        for key, value in switched.table.items()
        if StoredCustomer.from_bytes(live[key]) != StoredCustomer.from_bytes(value)
    ]
    assert differing == []

    def decoded(values: list[bytes]) -> dict[str, dict[str, object]]:
        records = [codec.decode(value).record for value in values]
        return {r["event_id"]: r for r in records if "event_id" in r and "error_kind" not in r}

    produced = read_produced(kafka_bootstrap, topics.outputs)
    live_outputs = decoded([record.value for record in produced])
    expected_outputs = decoded([sent.value for sent in switched.outputs])
    assert live_outputs == expected_outputs
    versions = {record["rules_version"] for record in live_outputs.values()}
    assert versions == {old_program.version, new_program.version}

    # and the switch mattered: one set of rules throughout gives another result
    unchanged = reference_fold(log, old_program, codec, topics, TEST_PARTITIONS)
    assert any(
        StoredCustomer.from_bytes(unchanged.table[key]).state
        != StoredCustomer.from_bytes(value).state
        for key, value in switched.table.items()
    )
