"""End-to-end latency of a worker at a fixed offered load: from the moment an input event is
handed to the producer (the POS side's publish) to the moment an output event it caused is
read off an output topic by a consumer (downstream's view).

The events are the first ones of the benchmark's log (in the order they were published, raw
bytes as they are there), published again at `offered_eps` to fresh topics made as the
worker makes them: the broker stamps each record with its append time, which the worker's
merge orders the two inputs by. A
consumer thread reads the output topics meanwhile; an output is matched to its input by
`caused_by`, the causing event's id (outputs that time alone caused, `due:...`, are not).
Each input's latency is its first output's arrival; inputs that cause no output (most)
are not in the figures. The output record's own timestamp (set by the worker's producer)
splits the figure into the worker's part and the delivery to the consumer."""

from __future__ import annotations

import heapq
import json
import math
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, Producer, TopicPartition

from bench.harness import (
    RESULTS,
    BenchBroker,
    KafkaProbe,
    bench_broker,
    ensure_alive,
    keep_log,
    new_worker,
    produce,
    publish_simulated,
    scratch_dir,
    topics_of,
    unique_name,
    worker_env,
    worker_source,
)
from streams.broker import TopicNames
from streams.broker.security import librdkafka_config
from streams.contract import Codec, make_codec
from streams.settings import Settings
from streams.tools.publish import paced
from streams.tools.simulate import SimulationConfig
from streams.tools.topic_census import read_topic

PARTITIONS = 8
SETTLE_S = 3.0  # after lag zero: the last outputs' way to the consumer


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (the smallest value with at least `fraction` of the values
    at or below it): p99.9 of 1,000 values is the largest, not an interpolation."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = math.ceil(fraction * len(ordered) - 1e-9)  # 0.999 * 1000 is not quite 999.0
    return ordered[min(max(rank, 1), len(ordered)) - 1]


def latency_summary(
    published_at: dict[str, float], seen_at: dict[str, tuple[float, float]]
) -> dict[str, Any]:
    """p50, p99, p99.9 and max in milliseconds, end to end and to the output's timestamp, of
    the inputs that caused an output. `published_at`: event id -> wall time handed to the
    producer; `seen_at`: causing event id -> (wall time read, output record timestamp), s."""
    end_to_end, in_worker = [], []
    for cause, (read_s, produced_s) in seen_at.items():
        sent_s = published_at.get(cause)
        if sent_s is not None:
            end_to_end.append((read_s - sent_s) * 1000)
            in_worker.append((produced_s - sent_s) * 1000)
    if not end_to_end:
        return {"matched": 0}
    return {
        "matched": len(end_to_end),
        **{name: round(percentile(end_to_end, q), 1) for name, q in QUANTILES.items()},
        "max": round(max(end_to_end), 1),
        "to_output_timestamp": {
            name: round(percentile(in_worker, q), 1) for name, q in QUANTILES.items()
        },
    }


QUANTILES = {"p50": 0.50, "p99": 0.99, "p999": 0.999}


@dataclass
class OutputWatcher:
    """Reads the output topics from the beginning in a thread of its own, noting when each
    causing event's first output arrived."""

    bootstrap: str
    topics: Iterable[str]
    codec: Codec
    seen_at: dict[str, tuple[float, float]] = field(default_factory=dict)
    outputs: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> OutputWatcher:
        consumer = Consumer(
            librdkafka_config(
                self.bootstrap,
                {
                    "group.id": unique_name("latency-reader"),  # assign(): never joins
                    "enable.auto.commit": False,
                    "isolation.level": "read_committed",
                    "fetch.wait.max.ms": 20,
                },
            )
        )
        probe = KafkaProbe(self.bootstrap)
        try:
            consumer.assign(
                [
                    TopicPartition(topic, partition, OFFSET_BEGINNING)
                    for topic in self.topics
                    for partition in probe.partitions(topic)
                ]
            )
        finally:
            probe.close()
        self._thread = threading.Thread(target=self._read, args=(consumer,), daemon=True)
        self._thread.start()
        return self

    def _read(self, consumer: Consumer) -> None:
        try:
            while not self._stop.is_set():
                for message in consumer.consume(500, 0.05):
                    self._note(message, time.time())
        finally:
            consumer.close()

    def _note(self, message: Message, read_s: float) -> None:
        if message.error():
            return
        self.outputs += 1
        cause = self.codec.decode(message.value() or b"").record["caused_by"]
        if cause not in self.seen_at:
            self.seen_at[cause] = (read_s, message.timestamp()[1] / 1000)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)


def earliest_inputs(bootstrap: str, log: TopicNames, count: int) -> list[Message]:
    """The first `count` records of the log's inputs, in the order they were published."""
    messages = (m for topic in log.inputs for m in read_topic(bootstrap, topic))
    return heapq.nsmallest(
        count, messages, key=lambda m: (m.timestamp()[1], m.topic(), m.partition(), m.offset())
    )


def publish_paced(
    bootstrap: str,
    log: TopicNames,
    target: TopicNames,
    records: Iterable[Message],
    codec: Codec,
    offered_eps: float,
) -> tuple[dict[str, float], float]:
    """Publishes the records to `target` (same topic role, partition, key, value and headers,
    the timestamp now) at `offered_eps`; returns event id -> wall time each was handed to the
    producer, and the seconds publishing took."""
    producer = Producer(librdkafka_config(bootstrap, {"linger.ms": 1}))
    copy_of: dict[str | None, str] = {
        log.purchases: target.purchases,
        log.feedback: target.feedback,
    }
    prepared = [
        (copy_of[m.topic()], m.partition(), m.key(), m.value(), m.headers(),
         codec.decode(m.value() or b"").record["event_id"])
        for m in records
    ]  # fmt: skip
    published_at: dict[str, float] = {}
    started = time.monotonic()
    for topic, partition, key, value, headers, event_id in paced(prepared, offered_eps):
        published_at[event_id] = time.time()
        produce(producer, topic, key=key, value=value, headers=headers, partition=partition or 0)
    elapsed = time.monotonic() - started
    if producer.flush(60) > 0:
        raise RuntimeError("the paced inputs were not all acknowledged")
    return published_at, elapsed


def measure(
    broker: BenchBroker,
    scratch: Path,
    source: Path | None,
    log: TopicNames,
    partitions: int,
    offered_eps: float,
    seconds: float,
    timeout_s: float,
    settings: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A worker (shipped defaults but `settings`, event clock) on fresh topics, ready before
    the first event; `offered_eps` for `seconds`, then until the group has committed
    everything."""
    bootstrap = broker.bootstrap_servers
    codec = make_codec(Settings())
    records = earliest_inputs(bootstrap, log, round(offered_eps * seconds))
    name = unique_name("latency")
    # as a worker would make them, the inputs stamped by the broker (what production runs)
    topics = topics_of(name, partitions, bootstrap, as_the_worker_makes_them=True)
    env = worker_env(bootstrap, name, name, partitions, **(settings or {}))
    worker = new_worker(scratch, name, env, source)
    probe = KafkaProbe(bootstrap)
    watcher = OutputWatcher(bootstrap, topics.outputs, make_codec(Settings()))
    try:
        worker.start().wait_ready(timeout_s)
        watcher.start()
        published_at, publish_s = publish_paced(bootstrap, log, topics, records, codec,
                                                offered_eps)  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while probe.lag(name, topics.inputs) > 0:
            ensure_alive(worker)
            if time.monotonic() > deadline:
                raise TimeoutError(f"latency run: lag left after {timeout_s}s: {keep_log(worker)}")
            time.sleep(0.25)
        time.sleep(SETTLE_S)
    finally:
        watcher.stop()
        worker.stop()
        probe.close()
    return {
        "offered_eps": round(offered_eps),
        "achieved_eps": round(len(published_at) / publish_s),
        "events": len(published_at),
        "seconds": round(publish_s, 1),
        "outputs": watcher.outputs,
        "settings": settings or {},
        **latency_summary(published_at, watcher.seen_at),
    }


def main(
    offered_eps: Annotated[float, typer.Option(help="events per second published")] = 600.0,
    seconds: Annotated[float, typer.Option(help="of offered load, per run")] = 60.0,
    merge_delay: Annotated[
        list[float] | None,
        typer.Option(help="LOYALTY_MERGE_DELAY_SECONDS of a run; repeatable (default: 2)"),
    ] = None,
    commit: Annotated[
        str | None,
        typer.Option(help="run the worker of this commit (e.g. HEAD) instead of the tree's"),
    ] = None,
    timeout: Annotated[float, typer.Option(help="seconds one run may take")] = 1800.0,
    results: Annotated[str, typer.Option(help="name of the result file")] = "latency-latest",
) -> None:
    """End-to-end latency runs side by side on one simulated log, one per merge delay (the
    wait for the other input that orders a partition's two topics), in the order given."""
    delays = merge_delay or [2.0]
    config = SimulationConfig(customers=10_000, events=round(offered_eps * seconds) + 1000,
                              seed=7)  # fmt: skip
    with scratch_dir() as scratch_name, bench_broker(Path(scratch_name)) as broker:
        scratch = Path(scratch_name)
        source, version = worker_source(scratch, commit)
        log = topics_of(unique_name("log"), PARTITIONS, broker.bootstrap_servers)
        publish_simulated(broker.bootstrap_servers, log, make_codec(Settings()), config)
        runs = []
        for delay in delays:
            run = measure(broker, scratch, source, log, PARTITIONS, offered_eps, seconds,
                          timeout, {"merge_delay_seconds": f"{delay:g}"})  # fmt: skip
            typer.echo(json.dumps(run), err=True)
            runs.append(run)
    lines = [f"end-to-end latency at {offered_eps:,.0f} events/s for {seconds:g} s per run, "
             f"worker {version} (POS publish to output read; ms)",
             "merge delay s   p50     p99    p99.9   inputs with an output"]  # fmt: skip
    for delay, run in zip(delays, runs, strict=True):
        lines.append(f"{delay:>12g} {run['p50']:>6,.0f} {run['p99']:>7,.0f} {run['p999']:>8,.0f}"
                     f"   {run['matched']:,}")  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    payload = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "worker_version": version,
               "offered_eps": offered_eps, "runs": runs}  # fmt: skip
    (RESULTS / f"{results}.json").write_text(json.dumps(payload, indent=2) + "\n")
    (RESULTS / f"{results}.txt").write_text("\n".join(lines) + "\n")
    typer.echo("\n".join(lines))


if __name__ == "__main__":
    typer.run(main)
