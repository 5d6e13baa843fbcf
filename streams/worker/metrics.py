"""The worker's Prometheus metrics (docs/metrics.md lists them). Counters and gauges are read
at scrape time from what the loop already keeps (its counters, its per-partition tallies, its
due index) and from the consumer; only the two latency histograms are observed as records
finish. Each worker has a registry of its own, served at `/metrics` by the web server."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streams.core import (
    ChurnRiskChanged,
    PointsExpired,
    RewardEarned,
    TierChanged,
    TierDowngradeWarning,
)
from streams.worker.loop import WorkerLoop

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# consume-to-produce: milliseconds normally, seconds while the merge holds records back
PROCESSING_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# event time to produce: seconds live, up to days when a backlog or a replay is read
EVENT_LAG_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400, 604800)


@dataclass(frozen=True)
class WorkerFacts:
    """What the worker (Faust, the consumer) knows at scrape time, beyond the loop."""

    lag: Callable[[], dict[tuple[str, int], int]]  # (topic, partition) -> records behind
    partitions_assigned: Callable[[], int]
    table_customers: Callable[[], int]
    recovery_in_progress: Callable[[], bool]
    recovery_remaining: Callable[[], int]
    recovery_duration_s: Callable[[], float | None]
    ready: Callable[[], bool]
    # RocksDB's shared memory budget: "budget", "used", "pinned" bytes (empty: no RocksDB)
    store_memory: Callable[[], Mapping[str, int]] = dict


class WorkerMetrics:
    def __init__(self, loop: WorkerLoop, facts: WorkerFacts) -> None:
        self.registry = CollectorRegistry()  # no auto-describe: the consumer may not run yet
        self.processing = Histogram(
            "loyalty_processing_latency_seconds",
            "From an input record reaching the worker to its outputs acknowledged by Kafka.",
            buckets=PROCESSING_BUCKETS,
            registry=self.registry,
        )
        self.event_lag = Histogram(
            "loyalty_event_time_lag_seconds",
            "From an input event's own time to its outputs acknowledged by Kafka.",
            buckets=EVENT_LAG_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_LoopCollector(loop, facts))
        # process_resident_memory_bytes, CPU seconds, open fds; python_gc_*: what an alert on
        # a growing worker watches, beside what RocksDB's budget holds of it
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def observe(self, processing_s: float, event_lag_s: float | None) -> None:
        self.processing.observe(max(0.0, processing_s))
        if event_lag_s is not None:
            self.event_lag.observe(max(0.0, event_lag_s))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


LabelledValues = Mapping[Any, float]  # label values (a tuple, in label order) -> value


# Label values known in advance are exported from the start, at 0: a series that appears only
# with its first increment hides that increment from rate() and increase().
INPUT_KINDS = (
    ("purchases", "Purchase"),
    ("purchases", "Return"),
    ("purchases", "unreadable"),
    ("feedback", "NpsResponse"),
    ("feedback", "ComplaintOpened"),
    ("feedback", "ComplaintResolved"),
    ("feedback", "unreadable"),
)
TOPICS = (("purchases",), ("feedback",))
REJECTION_REASONS = tuple(
    (reason,)
    for reason in ("DECODE", "UNKNOWN_SCHEMA", "CONTRACT", "WRONG_TOPIC", "KEY_MISMATCH",
                   "MISPARTITIONED", "EVENT_TIME_AHEAD", "STATE", "INTERNAL")
)  # fmt: skip
OUTPUT_KINDS = tuple(
    (kind.SCHEMA.rpartition(".")[2],)
    for kind in (TierChanged, TierDowngradeWarning, ChurnRiskChanged, RewardEarned, PointsExpired)
)
REWARD_KINDS = (("PUNCH_CARD",), ("SERVICE_RECOVERY",))
STAGES = ("prospect", "first_purchase", "repeat", "attached", "loyal")
LOYALTY_TYPES = ("true", "latent", "spurious", "none", "unknown")
NPS_CLASSES = ("promoter", "passive", "detractor")


def _with_zeros(values: LabelledValues, known: Iterable[tuple[str, ...]]) -> dict[Any, float]:
    return {**dict.fromkeys(known, 0), **values}


def _counter(
    name: str,
    doc: str,
    labels: Iterable[str],
    values: LabelledValues,
    known: Iterable[tuple[str, ...]] = (),
) -> Metric:
    family = CounterMetricFamily(name, doc, labels=list(labels))
    for label_values, value in sorted(_with_zeros(values, known).items()):
        family.add_metric(list(label_values), value)
    return family


def _gauge(
    name: str,
    doc: str,
    value: float | None = None,
    labels: Iterable[str] = (),
    values: LabelledValues | None = None,
) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=list(labels))
    if values is None:
        family.add_metric([], 0.0 if value is None else value)
    else:
        for label_values, item in sorted(values.items()):
            family.add_metric(list(label_values), item)
    return family


class _LoopCollector(Collector):
    def __init__(self, loop: WorkerLoop, facts: WorkerFacts) -> None:
        self.loop = loop
        self.facts = facts

    def collect(self) -> Iterator[Metric]:
        yield from self._processor()
        yield from self._program()

    def _processor(self) -> Iterator[Metric]:
        counters = self.loop.counters
        facts = self.facts
        yield _counter(
            "loyalty_events_consumed",
            "Input records read, by topic and kind.",
            ("topic", "kind"),
            counters.consumed,
            INPUT_KINDS,
        )
        yield _counter(
            "loyalty_events_applied",
            "Input events applied to a customer's state.",
            ("topic",),
            {(t,): n for t, n in counters.applied.items()},
            TOPICS,
        )
        yield _counter(
            "loyalty_events_duplicate",
            "Input records skipped as applied already (redelivered after a crash or rebalance).",
            ("topic",),
            {(t,): n for t, n in counters.duplicates.items()},
            TOPICS,
        )
        yield _counter(
            "loyalty_events_rejected",
            "Input records dead-lettered, by reason.",
            ("reason",),
            {(r,): n for r, n in counters.rejected.items()},
            REJECTION_REASONS,
        )
        dead = CounterMetricFamily(
            "loyalty_dead_letters", "Records written to the dead-letter topic."
        )
        dead.add_metric([], counters.dead_letters)
        yield dead
        yield _counter(
            "loyalty_output_events",
            "Output events produced, by kind.",
            ("kind",),
            {(k,): n for k, n in counters.sent.items()},
            OUTPUT_KINDS,
        )
        yield _gauge(
            "loyalty_consumer_lag_records",
            "Records not yet read, per assigned input partition.",
            labels=("topic", "partition"),
            values={(topic, str(p)): float(n) for (topic, p), n in facts.lag().items()},
        )
        yield _gauge(
            "loyalty_partitions_assigned",
            "Input partitions this worker owns.",
            facts.partitions_assigned(),
        )
        yield _gauge(
            "loyalty_table_customers",
            "Customers stored in this worker's partitions.",
            facts.table_customers(),
        )
        yield _gauge(
            "loyalty_due_index_entries",
            "Customers with time-driven work scheduled.",
            self.loop.due_entries(),
        )
        idle = CounterMetricFamily(
            "loyalty_merge_idle_releases",
            "Records the event-time merge let go after waiting its longest (max idle) without "
            "knowing the other source's end: their order may differ from a replay's.",
        )
        idle.add_metric([], counters.idle_releases)
        yield idle
        rebalances = CounterMetricFamily(
            "loyalty_rebalances",
            "Partition assignments this worker received: one per rebalance it took part in.",
        )
        rebalances.add_metric([], counters.assignments)
        yield rebalances
        yield _gauge(
            "loyalty_merge_buffered_records",
            "Records held back by the event-time merge.",
            self.loop.buffered(),
        )
        yield _gauge(
            "loyalty_partition_event_time_seconds",
            "Each owned partition's clock: the latest event time applied (Unix seconds).",
            labels=("partition",),
            values={(str(p),): ms / 1000 for p, ms in self.loop.clocks_ms().items()},
        )
        yield _gauge(
            "loyalty_recovery_in_progress",
            "1 while the table is recovered from its changelog.",
            float(facts.recovery_in_progress()),
        )
        yield _gauge(
            "loyalty_recovery_remaining_records",
            "Changelog records still to read in the current recovery.",
            facts.recovery_remaining(),
        )
        yield _gauge(
            "loyalty_recovery_duration_seconds",
            "How long the latest completed recovery took.",
            facts.recovery_duration_s(),
        )
        yield _gauge(
            "loyalty_store_memory_bytes",
            "RocksDB's memory budget shared by the worker's table partitions ('budget'), what "
            "its cache holds, memtables included ('used'), the part of that not evictable "
            "('pinned').",
            labels=("part",),
            values={(part,): float(n) for part, n in facts.store_memory().items()},
        )
        yield _gauge(
            "loyalty_worker_ready",
            "1 when recovery is done and partitions are assigned (as /readyz).",
            float(facts.ready()),
        )

    def _program(self) -> Iterator[Metric]:
        tally = self.loop.tally()
        counters = self.loop.counters
        program = self.loop.processor.program
        levels = program.churn.levels.names
        yield _gauge("loyalty_customers", "Customers of this worker's partitions.", tally.customers)
        yield _gauge(
            "loyalty_customers_by_tier",
            "Customers per tier.",
            labels=("tier",),
            values=_with_zeros(
                {(k,): v for k, v in tally.by_tier.items()}, [(t,) for t in program.tier_names]
            ),
        )
        yield _gauge(
            "loyalty_customers_by_stage",
            "Customers per stage.",
            labels=("stage",),
            values=_with_zeros(
                {(k,): v for k, v in tally.by_stage.items()}, [(x,) for x in STAGES]
            ),
        )
        yield _gauge(
            "loyalty_customers_by_loyalty_type",
            "Customers per loyalty type.",
            labels=("loyalty_type",),
            values=_with_zeros(
                {(k,): v for k, v in tally.by_loyalty_type.items()}, [(x,) for x in LOYALTY_TYPES]
            ),
        )
        yield _gauge(
            "loyalty_customers_at_churn_risk",
            "Customers per churn level above the base level.",
            labels=("level",),
            values=_with_zeros(
                {(k,): v for k, v in tally.by_churn_level.items() if k != levels[0]},
                [(level,) for level in levels[1:]],
            ),
        )
        yield _gauge(
            "loyalty_customers_by_nps_class",
            "Customers by the class of their latest NPS answer.",
            labels=("nps_class",),
            values=_with_zeros(
                {(k,): v for k, v in tally.by_nps_class.items()}, [(c,) for c in NPS_CLASSES]
            ),
        )
        yield _counter(
            "loyalty_nps_responses",
            "NPS answers applied, by store and class.",
            ("store", "nps_class"),
            counters.nps_responses,
        )
        yield _gauge(
            "loyalty_customers_with_visit", "Customers with at least one visit.", tally.with_visit
        )
        yield _gauge(
            "loyalty_customers_with_repeat_purchase",
            "Customers with two visits or more.",
            tally.with_repeat,
        )
        yield _gauge("loyalty_complaints_open", "Complaints not resolved.", tally.complaints_open)
        yield _gauge(
            "loyalty_complaints_overdue", "Open complaints past the SLA.", tally.complaints_overdue
        )
        yield _gauge("loyalty_points_liability_points", "Points held by customers.", tally.points)
        yield _gauge(
            "loyalty_net_spend",
            "Lifetime net spend of the customers, in the currency's major unit.",
            labels=("currency",),
            values={(program.currency,): tally.net_spend_minor / 10**program.currency_exponent},
        )
        yield _gauge("loyalty_receipts", "Purchases of the customers.", tally.receipts)
        yield _counter(
            "loyalty_rewards_issued",
            "Rewards issued, by reward kind.",
            ("kind",),
            {(k,): n for k, n in counters.rewards.items()},
            REWARD_KINDS,
        )
