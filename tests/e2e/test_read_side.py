"""The read side on the real broker: two workers over simulated traffic, their HTTP API (any
worker answers for any customer, pages cover every customer once), `loyalty export` against
the reference fold, `loyalty status`, `loyalty tail`, and `loyalty audit`, which passes on a
healthy run and fails when the live state is tampered with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from streams.broker import TopicNames, ensure_topics, free_port
from streams.contract import make_codec
from streams.core import advance
from streams.core.tally import tally_of
from streams.program import load_program
from streams.settings import DEFAULT_RULES, Settings
from streams.tools.audit import Reference, audit, default_as_of, read_input_log, reference_fold
from streams.tools.export import changelog_topic, read_customer_table
from streams.tools.lag import wait_idle
from streams.tools.publish import EventPublisher
from streams.tools.replay import state_line
from streams.tools.simulate import SimulationConfig, simulate
from streams.tools.worker_process import WorkerProcess
from streams.worker.envelope import StoredCustomer
from streams.worker.processor import expected_partition
from tests.conftest import TEST_PARTITIONS

pytestmark = pytest.mark.broker

PROGRAM = load_program(DEFAULT_RULES)


@dataclass
class Run:
    """Two idle workers after simulated traffic, and what a never-crashing worker would
    hold for the same log."""

    settings: Settings
    env: dict[str, str]
    workers: list[WorkerProcess]
    reference: Reference
    as_of: datetime
    work_dir: Path

    def url(self, worker: WorkerProcess, path: str, **query: str) -> str:
        tail = f"?{urllib.parse.urlencode(query)}" if query else ""
        return f"http://127.0.0.1:{worker.web_port}{path}{tail}"

    def get(self, worker: WorkerProcess, path: str, **query: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(self.url(worker, path, **query), timeout=20) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "streams.cli", *args],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )


@pytest.fixture(scope="module")
def run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    topics = TopicNames(f"t-read-side-{uuid.uuid4().hex[:8]}")
    ensure_topics(kafka_bootstrap, topics.all, TEST_PARTITIONS)
    env = {
        "LOYALTY_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "LOYALTY_TOPIC_PREFIX": topics.prefix,
        "LOYALTY_APP_ID": f"r-{uuid.uuid4().hex[:8]}",
        "LOYALTY_PARTITIONS": str(TEST_PARTITIONS),
        "LOYALTY_CLOCK": "event",
        "LOYALTY_LATE_GRACE_SECONDS": "0",
        "LOYALTY_TICK_SECONDS": "1",
    }
    settings = Settings(
        bootstrap_servers=kafka_bootstrap,
        topic_prefix=topics.prefix,
        app_id=env["LOYALTY_APP_ID"],
        partitions=TEST_PARTITIONS,
        clock="event",
        late_grace_seconds=0,
    )
    work_dir = tmp_path_factory.mktemp("read-side")
    workers = [WorkerProcess(f"worker-{i}", work_dir, free_port(), env) for i in range(2)]
    try:
        # the log first, then the workers: what is under test here is the read side, and a
        # log read as a backlog is merged in the reference's order however loaded the machine
        # (live, a producer held back longer than the merge delay can reorder the two topics)
        codec = make_codec(settings)
        with EventPublisher(kafka_bootstrap, topics, codec) as publisher:
            for schema_name, record in simulate(
                SimulationConfig(customers=300, events=4000, seed=31)
            ):
                publisher.write(schema_name, record)
        assert publisher.tally.failed == 0
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.wait_ready()
        wait_idle(kafka_bootstrap, settings.app_id, topics.inputs, 180)
        for worker in workers:
            worker.wait_ready()
        log = read_input_log(kafka_bootstrap, topics)
        reference = reference_fold(log, PROGRAM, codec, topics, TEST_PARTITIONS)
        as_of = default_as_of(settings, reference)
        yield Run(settings, env, workers, reference, as_of, work_dir)
    finally:
        for worker in workers:
            worker.kill()


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def expected_line(run: Run, key: bytes, as_of: datetime) -> dict[str, Any]:
    state, _ = advance(StoredCustomer.from_bytes(run.reference.table[key]).state, as_of, PROGRAM)
    return state_line(state, as_of, PROGRAM)


def test_any_worker_answers_for_any_customer(run: Run) -> None:
    as_of = run.as_of + timedelta(days=10)
    keys = sorted(run.reference.table)
    # a few customers of every partition, so that each worker owns some and not others
    sample = [
        next(k for k in keys if expected_partition(k, TEST_PARTITIONS) == p)
        for p in range(TEST_PARTITIONS)
    ]
    served_by: Counter[tuple[int, bool]] = Counter()
    for key in sample:
        for worker in run.workers:
            code, body = run.get(worker, f"/customers/{key.decode()}", as_of=iso(as_of))
            assert code == 200, body
            assert body["state"] == expected_line(run, key, as_of)
            assert body["partition"] == expected_partition(key, TEST_PARTITIONS)
            assert body["as_of_from"] == "query"
            forwarded = not body["served_by"].endswith(f":{worker.web_port}")
            served_by[(worker.web_port, forwarded)] += 1
    # both workers answered some themselves and forwarded others to the owner
    assert {forwarded for (_, forwarded) in served_by} == {True, False}
    assert len({port for (port, _) in served_by}) == 2


def test_without_as_of_a_customer_is_shown_at_its_partitions_clock(run: Run) -> None:
    key = sorted(run.reference.table)[0]
    code, body = run.get(run.workers[0], f"/customers/{key.decode()}")
    assert code == 200 and body["as_of_from"] == "partition_clock"
    shown_at = datetime.fromisoformat(body["state"]["as_of"])
    assert shown_at <= run.as_of  # no partition's clock is past the log's latest event
    assert body["state"] == expected_line(run, key, shown_at)


def test_the_customer_command_prints_what_any_worker_answers(run: Run) -> None:
    key = sorted(run.reference.table)[11]
    as_of = iso(run.as_of)
    for worker in run.workers:
        done = run.cli("customer", key.decode(), "--as-of", as_of, "--worker", run.url(worker, ""))
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["state"] == expected_line(run, key, run.as_of)
    by_port = run.cli("customer", key.decode(), "--web-port", str(run.workers[1].web_port))
    assert by_port.returncode == 0 and json.loads(by_port.stdout)["state"]["customer_id"] == (
        key.decode()
    )
    unknown = run.cli("customer", "c-unknown", "--worker", run.url(run.workers[0], ""))
    assert unknown.returncode == 1 and "c-unknown" in unknown.stderr
    nobody = run.cli("customer", key.decode(), "--worker", f"http://127.0.0.1:{free_port()}")
    assert nobody.returncode == 2 and "no worker answers" in nobody.stderr


def test_errors_are_json_with_a_message_from_either_worker(run: Run) -> None:
    for worker in run.workers:
        code, body = run.get(worker, "/customers/c-nobody-at-all")
        assert code == 404 and "c-nobody-at-all" in body["error"]
        code, body = run.get(worker, "/customers", limit="0")
        assert code == 400 and "1 to 1000" in body["error"]
        code, body = run.get(worker, "/customers/c-0000001", as_of="last tuesday")
        assert code == 400 and "as_of" in body["error"]


def test_pages_of_both_workers_hold_every_customer_exactly_once(run: Run) -> None:
    as_of = iso(run.as_of)
    seen: list[str] = []
    partitions_of: list[set[int]] = []
    for worker in run.workers:
        cursor = ""
        owned: set[int] = set()
        while True:
            code, page = run.get(worker, "/customers", limit="37", cursor=cursor, as_of=as_of)
            assert code == 200, page
            owned.update(page["partitions"])
            for line in page["customers"]:
                assert line["partition"] in page["partitions"]
                key = line["customer_id"].encode()
                assert {k: v for k, v in line.items() if k != "partition"} == expected_line(
                    run, key, run.as_of
                )
                seen.append(line["customer_id"])
            if page["next_cursor"] is None:
                break
            cursor = page["next_cursor"]
        partitions_of.append(owned)
    assert sorted(seen) == sorted(k.decode() for k in run.reference.table)
    assert len(seen) == len(set(seen)) == 300
    assert partitions_of[0].isdisjoint(partitions_of[1])
    assert partitions_of[0] | partitions_of[1] == set(range(TEST_PARTITIONS))


def test_stats_of_both_workers_add_up_to_every_customer(run: Run) -> None:
    as_of = run.as_of
    figures = [run.get(w, "/stats", as_of=iso(as_of))[1] for w in run.workers]
    lines = [expected_line(run, key, as_of) for key in run.reference.table]
    assert sum(f["customers"] for f in figures) == len(lines)
    for tier in PROGRAM.tier_names:
        assert sum(f["tiers"][tier] for f in figures) == sum(1 for x in lines if x["tier"] == tier)
    assert sum(f["points_liability"] for f in figures) == sum(x["points"] for x in lines)
    assert sum(f["at_risk_total"] for f in figures) == sum(
        1 for x in lines if x["churn_level"] != PROGRAM.churn_level_names[0]
    )


def test_the_live_report_reads_every_customer_from_both_workers(run: Run) -> None:
    """`loyalty report --live`: the pages of every worker at one moment, checked against their
    /stats, give the reference's figures; a worker left out is an error naming its partitions."""
    from streams.core import net_promoter_score
    from streams.report.build import report_from_workers

    as_of = run.as_of
    urls = [run.url(worker, "") for worker in run.workers]
    out = run.work_dir / "live-report.html"
    summary = report_from_workers(urls, TEST_PARTITIONS, PROGRAM, out, as_of=as_of)
    lines = [expected_line(run, key, as_of) for key in run.reference.table]
    figures = summary.figures
    assert summary.mismatches == []
    assert figures.customers == len(lines)
    assert figures.economics.liability_now == sum(x["points"] for x in lines)
    assert figures.activity.tiers_now.to_dict() == {
        tier: sum(1 for x in lines if x["tier"] == tier) for tier in PROGRAM.tier_names
    }
    scores = [x["nps_score"] for x in lines if x["nps_score"] is not None]
    assert figures.feedback.nps_now == pytest.approx(net_promoter_score(scores, PROGRAM))
    assert figures.pareto.revenue_minor == sum(x["lifetime_spend_minor"] for x in lines)
    assert figures.activity.monthly is None  # the live state has no history
    assert "shows the workers&#x27; current state only" in out.read_text()

    one_worker = run.cli("report", "--live", "--worker", urls[0], "--out", str(out))
    assert one_worker.returncode == 2
    assert "no worker given owns partition" in one_worker.stderr


def scrape(run: Run, worker: WorkerProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """A worker's /metrics, parsed by prometheus_client: (sample name, labels) -> value."""
    with urllib.request.urlopen(run.url(worker, "/metrics"), timeout=20) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def summed(scrapes: list[dict[tuple[str, tuple[tuple[str, str], ...]], float]], name: str,
           **labels: str) -> float:  # fmt: skip
    """The sum over workers of every series of `name` whose labels include `labels`."""
    return sum(
        value
        for scrape in scrapes
        for (sample, sample_labels), value in scrape.items()
        if sample == name and set(labels.items()) <= set(sample_labels)
    )


def test_metrics_of_both_workers_add_up_to_the_reference(run: Run) -> None:
    scrapes = [scrape(run, worker) for worker in run.workers]
    states = [StoredCustomer.from_bytes(value).state for value in run.reference.table.values()]
    expected = tally_of(states, PROGRAM)
    log_size = len(
        read_input_log(run.settings.bootstrap_servers, TopicNames(run.settings.topic_prefix))
    )
    # the second worker joined while the first read the backlog: records redelivered after
    # that rebalance are read twice and skipped as duplicates (applied, written and handed
    # over, but their offsets not committed before the partitions moved)
    applied = summed(scrapes, "loyalty_events_applied_total")
    duplicates = summed(scrapes, "loyalty_events_duplicate_total")
    assert applied <= log_size <= applied + duplicates
    assert applied >= log_size - 10  # a few at a rebalance, not a lost backlog
    assert summed(scrapes, "loyalty_events_consumed_total") >= applied + duplicates
    assert summed(scrapes, "loyalty_partitions_assigned") == TEST_PARTITIONS
    assert summed(scrapes, "loyalty_worker_ready") == 2
    assert summed(scrapes, "loyalty_consumer_lag_records") == 0
    assert summed(scrapes, "loyalty_customers") == expected.customers == len(states)
    for tier in PROGRAM.tier_names:
        assert summed(scrapes, "loyalty_customers_by_tier", tier=tier) == expected.by_tier[tier]
    for stage, count in expected.by_stage.items():
        assert summed(scrapes, "loyalty_customers_by_stage", stage=stage) == count
    assert summed(scrapes, "loyalty_points_liability_points") == expected.points
    assert summed(scrapes, "loyalty_receipts") == expected.receipts
    assert summed(scrapes, "loyalty_complaints_open") == expected.complaints_open
    # an output whose partition moved while Kafka acknowledged it is sent again by the next
    # owner (same id): the counters count what was produced, so at least the reference's
    outputs = Counter(sent.kind for sent in run.reference.outputs if sent.kind != "DeadLetter")
    for kind, count in outputs.items():
        assert summed(scrapes, "loyalty_output_events_total", kind=kind) >= count
    assert summed(scrapes, "loyalty_processing_latency_seconds_count") == applied + duplicates
    assert summed(scrapes, "loyalty_event_time_lag_seconds_count") == applied + duplicates


def test_export_writes_the_reference_states(run: Run) -> None:
    out = run.work_dir / "states.jsonl"
    done = run.cli("export", "--as-of", iso(run.as_of), "--out", str(out))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    expected = [expected_line(run, key, run.as_of) for key in sorted(run.reference.table)]
    assert lines == expected


def test_status_reports_the_idle_group_and_its_workers(run: Run) -> None:
    done = run.cli("status", "--wait-idle", "--timeout", "30", "--json")
    assert done.returncode == 0, done.stderr
    group = json.loads(done.stdout)
    assert group["lag"] == 0 and len(group["members"]) == 2
    assert len(group["partitions"]) == 2 * TEST_PARTITIONS
    assert all(p["committed"] == p["end"] for p in group["partitions"])
    assert {p["owner"] for p in group["partitions"]} == {m["member_id"] for m in group["members"]}


def test_tail_prints_the_last_output_events_decoded(run: Run) -> None:
    done = run.cli("tail", "tier-changes", "-n", "3")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(events) == 3
    ids = run.reference.output_ids(f"{run.settings.topic_prefix}.tier-changes.v1")
    for event in events:
        assert event["schema"] == "loyalty.v1.TierChanged"
        assert event["event"]["event_id"] in ids
        assert event["key"] == event["event"]["customer_id"]


def test_the_audit_passes_on_a_healthy_run(run: Run) -> None:
    done = run.cli("audit")
    assert done.returncode == 0, done.stdout + done.stderr
    assert ": OK" in done.stdout
    assert "customers: 300 expected, 300 live, 0 differing" in done.stdout
    assert "warning" not in done.stdout  # the workers were idle


def test_the_audit_fails_when_the_live_state_is_tampered_with(run: Run) -> None:
    """One customer's points changed in the table's changelog (what every worker recovers
    from, and what export reads): the audit names the customer and the field, and exits 1.
    Then the true value is written back and the audit passes again."""
    live = read_customer_table(run.settings.bootstrap_servers, run.settings.app_id).customers
    key = sorted(live)[7]
    stored = StoredCustomer.from_bytes(live[key])
    from streams.core import state_to_bytes

    tampered = StoredCustomer(
        stored.partition,
        stored.next_offsets,
        stored.next_due_ms,
        state_to_bytes(stored.state._replace(points=stored.state.points + 1234)),
    ).to_bytes()
    producer = Producer({"bootstrap.servers": run.settings.bootstrap_servers})
    changelog = changelog_topic(run.settings.app_id)
    partition = stored.partition
    try:
        producer.produce(changelog, key=key, value=tampered, partition=partition)
        producer.flush(10)
        report = audit(run.settings)
        assert not report.ok
        assert [(m.customer, m.field) for m in report.mismatches] == [(key.decode(), "points")]
        assert report.mismatches[0].actual == report.mismatches[0].expected + 1234
        done = run.cli("audit")
        assert done.returncode == 1
        assert key.decode() in done.stdout and "points" in done.stdout
    finally:
        producer.produce(changelog, key=key, value=live[key], partition=partition)
        producer.flush(10)
    assert audit(run.settings).ok


def test_tail_follows_new_records(run: Run) -> None:
    from streams.tools.tail import tail

    topic = f"{run.settings.topic_prefix}.rewards.v1"
    records = tail(run.settings.bootstrap_servers, topic, last=2, from_beginning=False,
                   follow=True, poll_s=0.2)  # fmt: skip
    backlog = [next(records), next(records)]
    assert all(m.topic() == topic for m in backlog)
    producer = Producer({"bootstrap.servers": run.settings.bootstrap_servers})
    producer.produce(topic, key=b"c-followed", value=b"not even avro")
    producer.flush(10)
    followed = next(records)
    records.close()
    assert (followed.key(), followed.value()) == (b"c-followed", b"not even avro")


def test_after_a_third_worker_joins_every_worker_still_answers_for_all(run: Run) -> None:
    """Last in this module: it changes who owns what. The routing follows the new
    assignment: every worker answers for every customer, pages still cover each once."""
    third = WorkerProcess("worker-2", run.work_dir, free_port(), run.env)
    run.workers.append(third)
    third.start()
    # the newcomer first: once it is ready the group has rebalanced, and the others are
    # rebalancing or done (before it joined they were ready with the old assignment)
    for worker in reversed(run.workers):
        worker.wait_ready(120)
    as_of = iso(run.as_of)
    keys = sorted(run.reference.table)[::25]
    for worker in run.workers:
        for key in keys:
            code, body = run.get(worker, f"/customers/{key.decode()}", as_of=as_of)
            assert code == 200, body
            assert body["state"] == expected_line(run, key, run.as_of)
    seen: list[str] = []
    for worker in run.workers:
        cursor = ""
        while True:
            code, page = run.get(worker, "/customers", limit="1000", cursor=cursor, as_of=as_of)
            assert code == 200, page
            seen.extend(line["customer_id"] for line in page["customers"])
            if page["next_cursor"] is None:
                break
            cursor = page["next_cursor"]
    assert sorted(seen) == sorted(k.decode() for k in run.reference.table)


def test_a_dead_owner_is_a_json_error_not_a_stack_trace(run: Run) -> None:
    """Right after a SIGKILL the group still names the dead worker as the owner of its
    partitions (until its session times out): asking another worker for one of its customers
    gives a JSON 502 (or 503 once the group rebalances), with a message."""
    victim, survivor = run.workers[-1], run.workers[0]
    _, page = run.get(victim, "/customers", limit="1")
    assert page["customers"], "the victim owns customers"
    customer_id = page["customers"][0]["customer_id"]
    victim.kill()
    code, body = run.get(survivor, f"/customers/{customer_id}")
    assert code in (502, 503)
    assert set(body) == {"error", "status"} and body["status"] == code
    assert "Traceback" not in body["error"]
