"""The worker's /metrics text, from a loop fed without Kafka: what docs/metrics.md promises."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.contract import Codec
from streams.tools.metrics_readback import parse_metrics
from streams.worker.metrics import WorkerFacts, WorkerMetrics
from streams.worker.processor import InputRecord
from tests.worker.test_loop import Harness, codec, log  # noqa: F401 - fixtures

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def facts() -> WorkerFacts:
    return WorkerFacts(
        lag=lambda: {("purchases", 0): 7},
        partitions_assigned=lambda: 3,
        table_customers=lambda: 0,
        recovery_in_progress=lambda: False,
        recovery_remaining=lambda: 0,
        recovery_duration_s=lambda: 1.5,
        ready=lambda: True,
        store_memory=lambda: {"budget": 128 * 2**20, "used": 5_000, "pinned": 1_000},
    )


def fed(codec: Codec, log: list[InputRecord]) -> tuple[Harness, WorkerMetrics]:  # noqa: F811
    """A loop with its metrics, after the log."""
    harness = Harness(codec)
    metrics = WorkerMetrics(harness.loop, facts())
    harness.loop.observe_latency = metrics.observe
    harness.feed(log)
    return harness, metrics


def samples(metrics: WorkerMetrics) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for sample in family.samples
    }


def test_every_documented_metric_is_exported_and_labelled_series_start_at_zero(
    codec: Codec,  # noqa: F811
) -> None:
    metrics = WorkerMetrics(Harness(codec).loop, facts())
    scraped = samples(metrics)
    names = set(re.findall(r"^# HELP (\S+)", metrics.exposition().decode(), re.MULTILINE))
    documented = set(re.findall(r"^\| `(loyalty_[a-z_]+)`", DOC.read_text(), re.MULTILINE))
    for name in documented:
        assert any(n == name or n.startswith(f"{name}_") for n in names), name
    # known label values are there before their first increment, so rate() sees it
    assert scraped["loyalty_events_rejected_total", (("reason", "STATE"),)] == 0
    assert scraped["loyalty_rewards_issued_total", (("kind", "SERVICE_RECOVERY"),)] == 0
    assert scraped["loyalty_customers_by_tier", (("tier", "platinum"),)] == 0
    assert scraped["loyalty_customers_at_churn_risk", (("level", "churned"),)] == 0
    assert ("loyalty_customers_at_churn_risk", (("level", "none"),)) not in scraped  # the base
    assert (
        scraped["loyalty_consumer_lag_records", (("partition", "0"), ("topic", "purchases"))] == 7
    )
    assert scraped["loyalty_recovery_duration_seconds", ()] == 1.5
    assert scraped["loyalty_store_memory_bytes", (("part", "budget"),)] == 128 * 2**20
    assert scraped["loyalty_store_memory_bytes", (("part", "used"),)] == 5_000
    # the process's own, for an alert on a worker that keeps growing
    assert scraped["process_resident_memory_bytes", ()] > 10 * 2**20


def test_after_a_log_the_counters_and_gauges_say_what_the_loop_did(
    codec: Codec,  # noqa: F811
    log: list[InputRecord],  # noqa: F811
) -> None:
    harness, metrics = fed(codec, log)
    scraped = samples(metrics)
    total = sum(v for (n, _), v in scraped.items() if n == "loyalty_events_consumed_total")
    assert total == len(log)
    assert scraped["loyalty_processing_latency_seconds_count", ()] == len(log)
    assert scraped["loyalty_event_time_lag_seconds_count", ()] == len(log)
    customers = scraped["loyalty_customers", ()]
    assert customers == len(harness.table)
    by_tier = sum(v for (n, _), v in scraped.items() if n == "loyalty_customers_by_tier")
    assert by_tier == customers
    outputs = sum(v for (n, _), v in scraped.items() if n == "loyalty_output_events_total")
    assert outputs == len([s for s in harness.sent if s.kind != "DeadLetter"])


@pytest.mark.parametrize("text", ["loyalty_customer_id", "customer_id="])
def test_no_metric_is_labelled_by_customer(codec: Codec, log: list[InputRecord], text: str) -> None:  # noqa: F811
    _, metrics = fed(codec, log[:300])
    assert text not in metrics.exposition().decode()


def test_the_read_back_sums_the_scrape_in_the_programs_words(
    codec: Codec,  # noqa: F811
    log: list[InputRecord],  # noqa: F811
) -> None:
    harness, metrics = fed(codec, log)
    figures = parse_metrics(metrics.exposition().decode())
    tally = harness.loop.tally()
    assert figures.consumed == len(log) == figures.applied + figures.rejected
    assert figures.customers == tally.customers
    assert dict(figures.by_tier) == {
        **dict.fromkeys(("member", "silver", "gold", "platinum"), 0),
        **tally.by_tier,
    }
    assert figures.points_liability == tally.points
    answers = tally.by_nps_class
    expected = 100 * (answers["promoter"] - answers["detractor"]) / answers.total()
    assert figures.nps == pytest.approx(expected)
    assert figures.outputs == harness.loop.counters.sent
