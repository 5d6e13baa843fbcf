"""Every query of the Grafana dashboard, and every recording rule, returns data from a real
Prometheus (Debian's) scraping a real worker while simulated POS traffic flows through it.

The run is short (a minute), so two things differ from Grafana's view: Prometheus scrapes
and evaluates rules every second, and `$__rate_interval` (at least four scrape intervals in
Grafana, a minute or more in production) is replaced by `15s` (TEST_RATE_INTERVAL). The
recording rules keep their production windows (5m, 1d): a window longer than the data it
covers is fine for rate() and increase().

The traffic has what every panel needs in a short run: a year of simulated shop life
(tiers, churn levels, NPS answers in several stores, complaints past their SLA, punch-card
rewards), records that cannot be read (dead letters, twice) and events resent."""

from __future__ import annotations

import math
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from streams.broker import TopicNames
from streams.contract import make_codec
from streams.settings import Settings
from streams.tools.publish import EventPublisher
from streams.tools.simulate import SimulationConfig, simulate
from streams.tools.worker_process import WorkerProcess
from tests.e2e.cluster import Cluster
from tests.ops.observability import (
    RULES_DIR,
    WORKER_JOB,
    PanelQuery,
    documented_metrics,
    load_dashboard,
    load_rules,
    panel_queries,
    series_names,
    substitute,
)
from tests.ops.prometheus_server import PrometheusServer
from tests.ops.prometheus_tools import PrometheusTools

pytestmark = pytest.mark.broker

TRAFFIC = SimulationConfig(customers=300, events=5000, seed=5)
GARBAGE = (b"\x00\x01garbage", b'{"customer_id": "c-0000001"}', b"")
RESENT = 40  # the first simulated events published a second time, as a POS resend would

# Queries that may legitimately return an empty vector after a short run, with why. The
# test still proves each of them right: every metric it reads is in the worker's scrape.
MAY_BE_EMPTY: dict[str, str] = {
    "Processor health / Applied and duplicate input / B": (
        "the worker counts a duplicate only for a record redelivered at an offset it already "
        "applied (after a crash or a rebalance, neither of which this run has); an event "
        "resent by the POS side at a new offset is counted as applied"
    ),
}

# How long to wait, after the worker is idle, for the last scrapes and rule evaluations.
SETTLE_TIMEOUT_S = 30.0


def prometheus_config(worker: WorkerProcess) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES_DIR / "*.yml")],
        "scrape_configs": [
            {
                "job_name": WORKER_JOB,
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [f"127.0.0.1:{worker.web_port}"]}],
            }
        ],
    }


def publish_garbage(cluster: Cluster) -> None:
    producer = Producer({"bootstrap.servers": cluster.bootstrap, "partitioner": "murmur2_random"})
    for garbage in GARBAGE:
        producer.produce(cluster.topics.purchases, key=b"c-0000001", value=garbage)
    producer.flush(10)


def publish_traffic(cluster: Cluster) -> None:
    publish_garbage(cluster)
    codec = make_codec(Settings())
    resend: list[tuple[str, dict[str, Any]]] = []
    with EventPublisher(cluster.bootstrap, cluster.topics, codec) as publisher:
        for schema_name, record in simulate(TRAFFIC):
            publisher.write(schema_name, record)
            if len(resend) < RESENT:
                resend.append((schema_name, record))
        for schema_name, record in resend:
            publisher.write(schema_name, record)
    assert publisher.tally.failed == 0


def publish_nps_again(cluster: Cluster) -> None:
    """The traffic's NPS answers once more, as new answers (new event ids): a store's
    answers counted before Prometheus first scraped their series show no increase, and a
    fast worker counts all of a short run's before that (CI once found every store's NPS
    empty that way)."""
    codec = make_codec(Settings())
    with EventPublisher(cluster.bootstrap, cluster.topics, codec) as publisher:
        for schema_name, record in simulate(TRAFFIC):
            if schema_name == "loyalty.v1.NpsResponse":
                publisher.write(schema_name, {**record, "event_id": f"{record['event_id']}-again"})
    assert publisher.tally.failed == 0


def wait_for_series(prometheus: PrometheusServer, selector: str) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while not prometheus.query(selector):
        assert time.monotonic() < deadline, f"{selector} never scraped"
        time.sleep(0.5)


def scraped_names(worker: WorkerProcess) -> set[str]:
    """Every metric the worker exports, by family and by sample name (a labelled family
    with no sample yet still announces itself)."""
    url = f"http://127.0.0.1:{worker.web_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        if family.type == "counter":
            names.add(f"{family.name}_total")
        names.update(sample.name for sample in family.samples)
    return names


@pytest.fixture
def cluster(kafka_bootstrap: str, loyalty_topics: TopicNames, tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(kafka_bootstrap, loyalty_topics, tmp_path / "workers")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def scraped_worker(
    cluster: Cluster, prometheus_tools: PrometheusTools, tmp_path: Path
) -> Iterator[tuple[WorkerProcess, PrometheusServer]]:
    """One worker, scraped every second by a Prometheus that loads our rules."""
    worker = cluster.add()
    work_dir = tmp_path / "prometheus"
    work_dir.mkdir()
    prometheus = PrometheusServer(prometheus_tools, work_dir, prometheus_config(worker))
    try:
        prometheus.start()
        worker.wait_ready()
        yield worker, prometheus
    finally:
        prometheus.stop()


def run_queries(
    prometheus: PrometheusServer, queries: dict[str, str]
) -> dict[str, list[dict[str, Any]]]:
    return {name: prometheus.query(expr) for name, expr in queries.items()}


def wait_for_data(
    prometheus: PrometheusServer, queries: dict[str, str]
) -> dict[str, list[dict[str, Any]]]:
    """Until every query that must return data does and the latest scrape succeeded (a
    scrape can time out while the worker is busy), or the timeout: the answers then."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        answers = run_queries(prometheus, queries)
        missing = {name for name, result in answers.items() if not result}
        settled = missing <= set(MAY_BE_EMPTY) and prometheus.targets_up()
        if settled or time.monotonic() > deadline:
            return answers
        time.sleep(1)


def test_every_dashboard_query_and_recording_rule_returns_data(
    cluster: Cluster, scraped_worker: tuple[WorkerProcess, PrometheusServer]
) -> None:
    worker, prometheus = scraped_worker
    publish_traffic(cluster)
    cluster.wait_idle()
    # A labelled counter's series appears with its first increment, which rate() cannot
    # see: bad records once more, after Prometheus has the series, make the rejected rate
    # positive, as a steady trickle of them would in production.
    wait_for_series(prometheus, 'loyalty_events_rejected_total{reason="DECODE"}')
    wait_for_series(prometheus, "loyalty_nps_responses_total")
    publish_garbage(cluster)
    publish_nps_again(cluster)
    cluster.wait_idle()
    # scraped since, and the recording rules evaluated on that scrape
    wait_for_series(prometheus, f"loyalty_dead_letters_total == {2 * len(GARBAGE)}")
    wait_for_series(prometheus, 'job_reason:loyalty_events_rejected:rate5m{reason="DECODE"} > 0')

    dashboard = load_dashboard()
    panels: list[PanelQuery] = panel_queries(dashboard)
    rules = load_rules()
    queries = {query.name: substitute(query.expr) for query in panels}
    queries |= {f"recording rule {r.name}": r.name for r in rules if r.kind == "record"}
    answers = wait_for_data(prometheus, queries)

    assert prometheus.targets_up() == [f"http://127.0.0.1:{worker.web_port}/metrics"]
    # every rule evaluates without error (a many-to-many match fails only on real data)
    health = prometheus.rule_health()
    assert {rule.name for rule in rules} <= set(health)
    assert {name: state for name, state in health.items() if state != "ok"} == {}

    empty = sorted(name for name, result in answers.items() if not result)
    assert set(empty) <= set(MAY_BE_EMPTY), f"queries without data: {empty}"
    not_a_number = sorted(
        name
        for name, result in answers.items()
        if any(math.isnan(float(sample["value"][1])) for sample in result)
    )
    assert not_a_number == [], "queries answering NaN (0/0: nothing in their window)"

    # the worker exports what docs/metrics.md says, which the dashboard is written against,
    # so the empty ones are still right: every metric they read is exported
    exported = scraped_names(worker)
    assert set(documented_metrics()) - exported == set()
    for query in panels:
        if query.name in MAY_BE_EMPTY:
            assert series_names(query.expr) <= exported, query.name

    # the job variable lists the scraped job, as Grafana's label_values() would
    assert prometheus.label_values("job", "loyalty_worker_ready") == [WORKER_JOB]

    # and the panels show what the traffic held
    def by_label(name: str, label: str) -> dict[str, float]:
        return {s["metric"].get(label, ""): float(s["value"][1]) for s in answers[name]}

    reasons = by_label("Processor health / Rejected by reason / A", "reason")
    assert reasons.get("DECODE", 0) > 0
    tiers = by_label("Loyalty program / Customers by tier / A", "tier")
    assert sum(tiers.values()) == by_label("Loyalty program / Customers / A", "")[""]
    nps = by_label("Feedback / NPS / A", "job")[WORKER_JOB]
    assert -100 <= nps <= 100
