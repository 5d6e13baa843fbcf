"""The main job in one command: a broker (ours, if none answers), the topics, a worker,
simulated POS traffic with a live view of what goes in and what comes out, then a summary of
what landed in Kafka, read back and decoded. Stops what it started.

Each run uses topics and a consumer group of its own (`demo-<time>`), so a second run does
not replay the first one's traffic into the same customers."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from streams.broker.client import broker_answers
from streams.broker.embedded import EmbeddedKafka, default_data_dir, free_port, port_is_free
from streams.broker.topics import TopicNames
from streams.contract import Codec, make_codec
from streams.program import load_program
from streams.settings import Settings
from streams.tools.lag import wait_idle
from streams.tools.metrics_readback import MetricsFigures, read_metrics
from streams.tools.output_watch import OutputWatcher
from streams.tools.publish import EventPublisher
from streams.tools.simulate import SimulationConfig, simulate
from streams.tools.topic_census import TopicCensus, take_census
from streams.tools.traffic import TrafficSummary, send_traffic
from streams.tools.worker_process import WorkerProcess
from streams.worker.app import prepare_topics


@dataclass(frozen=True)
class DemoOptions:
    duration_s: float = 60.0  # 0: until Ctrl-C
    rate: float = 500.0
    customers: int = 2000
    seed: int = 7
    keep_broker: bool = False


@dataclass
class DemoResult:
    traffic: TrafficSummary
    census: list[TopicCensus] = field(default_factory=list)
    outputs: Counter[str] = field(default_factory=Counter)
    broker_started_here: bool = False
    topic_prefix: str = ""
    metrics: MetricsFigures | None = None


@contextmanager
def broker_for(settings: Settings, console: Console, keep: bool) -> Iterator[bool]:
    """Uses the broker at the bootstrap address if one answers, else starts ours there.
    Yields whether we started it; stops it afterwards unless `keep`."""
    if broker_answers(settings.kafka):
        console.print(f"using the Kafka broker at {settings.kafka}")
        yield False
        return
    host, _, port = settings.bootstrap_servers.split(",")[0].rpartition(":")
    if host not in {"127.0.0.1", "localhost"}:
        raise SystemExit(f"no Kafka answers at {settings.bootstrap_servers}, and it is not local")
    broker = EmbeddedKafka(default_data_dir(settings.cache_dir), int(port))
    started = time.perf_counter()
    with console.status("starting Apache Kafka (KRaft, one node)..."):
        broker.start()
    console.print(
        f"started Kafka at {broker.bootstrap_servers} in {time.perf_counter() - started:.1f}s "
        f"(data and logs in {broker.data_dir})"
    )
    try:
        yield True
    finally:
        if keep:
            console.print(f"Kafka keeps running: loyalty kafka stop --data-dir {broker.data_dir}")
        else:
            broker.stop()
            console.print("stopped the Kafka broker the demo started")


def _live_view(
    summary: TrafficSummary, started: float, target: int | None, watcher: OutputWatcher
) -> Table:
    table = Table(title="loyalty-streams demo: POS traffic in, loyalty events out",
                  show_header=False, min_width=70)  # fmt: skip
    elapsed = max(time.perf_counter() - started, 1e-9)
    tally = summary.tally
    of = f"of {target:,}" if target is not None else "until Ctrl-C or the simulated window's end"
    table.add_row("events sent", f"{summary.events:,} {of}")
    table.add_row("rate", f"{summary.events / elapsed:,.0f} events/s")
    if tally is not None:
        table.add_row("acknowledged by Kafka", f"{tally.acknowledged:,}")
    table.add_row("customers seen", f"{len(summary.customers):,}")
    for kind, count in sorted(summary.by_kind.items()):
        table.add_row(f"  {kind}", f"{count:,}")
    if summary.last_at is not None:
        table.add_row("event time", f"{summary.last_at:%Y-%m-%d %H:%M}")
    table.add_row("worker output events", f"{sum(watcher.counts.values()):,}")
    for kind, count in sorted(watcher.counts.items()):
        table.add_row(f"  {kind}", f"{count:,}")
    for kind, record in list(watcher.latest)[-4:]:
        table.add_row(f"  latest {kind}", _short(record))
    return table


def run_demo(settings: Settings, options: DemoOptions, console: Console) -> DemoResult:
    program = load_program(settings.rules)
    run = f"demo-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    settings = settings.model_copy(update={"topic_prefix": run, "app_id": run, "clock": "event",
                                           "late_grace_seconds": 0.0})  # fmt: skip
    topics = TopicNames(settings.topic_prefix)
    with broker_for(settings, console, options.keep_broker) as started_here:
        prepare_topics(settings)
        console.print(f"topics: {', '.join(topics.all)} ({settings.partitions} partitions each)")
        codec = make_codec(settings)
        with _worker(settings, console) as worker:
            watcher = OutputWatcher(
                settings.kafka, [*topics.outputs, topics.dead_letter], codec
            ).start()
            try:
                summary = _send_with_live_view(
                    settings, topics, codec, program.currency, options, console, watcher
                )
                with console.status("waiting for the worker to catch up..."):
                    wait_idle(settings.kafka, settings.app_id, topics.inputs, 120)
                    time.sleep(1.0)  # the last outputs reach the watcher
            finally:
                watcher.stop()
            figures = read_metrics(
                f"http://127.0.0.1:{worker.web_port}/metrics",
                token=settings.api_token.get_secret_value() if settings.api_token else None,
            )
            console.print(f"\nread back from {figures.url}:", soft_wrap=True)
            console.print(_metrics_table(figures, program.tier_names))
            console.print(f"\nworker log: {worker.log_path}")
        census = take_census(settings.kafka, topics.all, codec)
        console.print()
        console.print(_census_table(census, run))
        outputs: Counter[str] = Counter()
        for topic in census:
            if topic.topic in topics.outputs:
                outputs.update({name.rpartition(".")[2]: n for name, n in topic.by_schema.items()})
        return DemoResult(
            traffic=summary,
            census=census,
            outputs=outputs,
            broker_started_here=started_here,
            topic_prefix=run,
            metrics=figures,
        )


@contextmanager
def _worker(settings: Settings, console: Console) -> Iterator[WorkerProcess]:
    port = settings.web_port if port_is_free(settings.web_port) else free_port()
    env = {
        "LOYALTY_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "LOYALTY_RULES": str(settings.rules),
        "LOYALTY_PARTITIONS": str(settings.partitions),
        "LOYALTY_TOPIC_PREFIX": settings.topic_prefix,
        "LOYALTY_APP_ID": settings.app_id,
        "LOYALTY_CLOCK": settings.clock,
        "LOYALTY_LATE_GRACE_SECONDS": str(settings.late_grace_seconds),
    }
    work_dir = settings.data_dir / settings.app_id
    worker = WorkerProcess("worker", work_dir, port, env)
    work_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with console.status("starting a worker (loyalty worker)..."):
        worker.start().wait_ready(120)
    console.print(
        f"worker ready in {time.perf_counter() - started:.1f}s, state in {worker.data_dir}\n"
        f"  API      http://127.0.0.1:{port}/customers/<id>  /customers  /stats\n"
        f"  metrics  http://127.0.0.1:{port}/metrics  (Prometheus text format)"
    )
    try:
        yield worker
    finally:
        worker.stop()
        console.print("stopped the worker")


def _send_with_live_view(
    settings: Settings,
    topics: TopicNames,
    codec: Codec,
    currency: str,
    options: DemoOptions,
    console: Console,
    watcher: OutputWatcher,
) -> TrafficSummary:
    """Simulated traffic to Kafka at the demo's rate, with a live table. The producer lives
    only inside this call, so it is gone before the broker is stopped."""
    publisher = EventPublisher(settings.kafka, topics, codec)
    # until stopped: as many events as the simulated window holds at the population's own
    # pace (no end asked for, so none to make the customers busier for)
    target = int(options.duration_s * options.rate) if options.duration_s else None
    config = SimulationConfig(
        customers=options.customers, events=target, seed=options.seed, currency=currency
    )
    summary = TrafficSummary(f"Kafka at {settings.kafka}", tally=publisher.tally)
    started = time.perf_counter()
    with Live(console=console, refresh_per_second=4) as live:
        last_draw = 0.0

        def redraw(_: int) -> None:
            nonlocal last_draw
            now = time.perf_counter()
            if now - last_draw > 0.25:
                live.update(_live_view(summary, started, target, watcher))
                last_draw = now

        try:
            send_traffic(
                simulate(config), publisher, summary, rate_per_s=options.rate, advance=redraw
            )
        except KeyboardInterrupt:  # the way to end `--duration 0`: wrap up as if it were due
            publisher.flush()
            summary.elapsed_s = time.perf_counter() - started
        live.update(_live_view(summary, started, target, watcher))
    return summary


def _metrics_table(figures: MetricsFigures, tiers: tuple[str, ...]) -> Table:
    table = Table(title="the worker's metrics", show_header=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("input records read", f"{figures.consumed:,.0f}")
    table.add_row("  applied", f"{figures.applied:,.0f}")
    table.add_row("  dead-lettered", f"{figures.rejected:,.0f}")
    table.add_row("output events", f"{sum(figures.outputs.values()):,}")
    for kind, count in sorted(figures.outputs.items()):
        table.add_row(f"  {kind}", f"{count:,}")
    table.add_row("customers", f"{figures.customers:,.0f}")
    for tier in tiers:
        table.add_row(f"  {tier}", f"{figures.by_tier[tier]:,}")
    table.add_row("at churn risk", f"{sum(figures.at_churn_risk.values()):,}")
    nps = figures.nps
    table.add_row("NPS", "no answers" if nps is None else f"{nps:+.0f}")
    table.add_row("points liability", f"{figures.points_liability:,.0f}")
    mean = figures.mean_processing_ms
    table.add_row("mean processing latency", "-" if mean is None else f"{mean:,.1f} ms")
    return table


def _census_table(census: list[TopicCensus], prefix: str) -> Table:
    table = Table(title=f"what the topics {prefix}.* hold, read back and decoded")
    table.add_column("topic")
    table.add_column("records", justify="right")
    table.add_column("distinct event ids", justify="right")
    table.add_column("by schema")
    table.add_column("a decoded sample")
    for topic in census:
        kinds = ", ".join(
            f"{count} {name.rsplit('.', 1)[-1]}" for name, count in sorted(topic.by_schema.items())
        )
        table.add_row(
            topic.topic.removeprefix(f"{prefix}."),
            f"{topic.records:,}",
            f"{len(topic.event_ids):,}",
            kinds,
            _short(topic.sample),
        )
    return table


def _short(record: dict[str, Any] | None) -> str:
    if record is None:
        return "-"
    keys = ("customer_id", "total_minor", "score", "complaint_id")
    shown = [f"{key}={record[key]}" for key in keys if record.get(key) is not None]
    return ", ".join([*shown, f"at {record['occurred_at']:%Y-%m-%d %H:%M}"])
