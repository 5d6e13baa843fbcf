"""A worker's /metrics read back and summed up in the program's words: what `loyalty demo`
shows at the end, and a quick look for anyone without a Prometheus."""

from __future__ import annotations

import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families


@dataclass
class MetricsFigures:
    url: str
    consumed: float = 0
    applied: float = 0
    duplicates: float = 0
    rejected: float = 0
    outputs: Counter[str] = field(default_factory=Counter)
    customers: float = 0
    by_tier: Counter[str] = field(default_factory=Counter)
    at_churn_risk: Counter[str] = field(default_factory=Counter)
    nps_classes: Counter[str] = field(default_factory=Counter)
    points_liability: float = 0
    processing_seconds_sum: float = 0
    processing_count: float = 0

    @property
    def nps(self) -> float | None:
        answers = sum(self.nps_classes.values())
        if not answers:
            return None
        return 100 * (self.nps_classes["promoter"] - self.nps_classes["detractor"]) / answers

    @property
    def mean_processing_ms(self) -> float | None:
        if not self.processing_count:
            return None
        return 1000 * self.processing_seconds_sum / self.processing_count


def parse_metrics(text: str, url: str = "") -> MetricsFigures:
    figures = MetricsFigures(url)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            if name == "loyalty_events_consumed_total":
                figures.consumed += value
            elif name == "loyalty_events_applied_total":
                figures.applied += value
            elif name == "loyalty_events_duplicate_total":
                figures.duplicates += value
            elif name == "loyalty_events_rejected_total":
                figures.rejected += value
            elif name == "loyalty_output_events_total" and value:
                figures.outputs[labels["kind"]] += int(value)
            elif name == "loyalty_customers":
                figures.customers += value
            elif name == "loyalty_customers_by_tier":
                figures.by_tier[labels["tier"]] += int(value)
            elif name == "loyalty_customers_at_churn_risk":
                figures.at_churn_risk[labels["level"]] += int(value)
            elif name == "loyalty_customers_by_nps_class":
                figures.nps_classes[labels["nps_class"]] += int(value)
            elif name == "loyalty_points_liability_points":
                figures.points_liability += value
            elif name == "loyalty_processing_latency_seconds_sum":
                figures.processing_seconds_sum += value
            elif name == "loyalty_processing_latency_seconds_count":
                figures.processing_count += value
    return figures


def read_metrics(url: str, timeout_s: float = 10.0, token: str | None = None) -> MetricsFigures:
    """The figures of a worker's /metrics (`token`: its LOYALTY_API_TOKEN, if it has one)."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"{url}: a worker's metrics are at an http:// or https:// URL")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    # bandit B310 (file:// and custom schemes): the scheme is checked just above
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # nosec B310
        return parse_metrics(response.read().decode(), url)
