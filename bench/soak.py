"""Soak: a long run at a steady rate with a worker killed and restarted every few minutes,
watched from outside; at the end, the audit.

    .venv/bin/python -m bench.soak [--minutes 60] [--rate 150] [--restart-every 5]
    make soak            # the hour

Two workers on a broker of the run's own (or `LOYALTY_BOOTSTRAP_SERVERS`). `worker-0` stays
up the whole run: its RSS is the curve a leak would show in. `worker-1` is SIGKILLed and
restarted every `--restart-every` minutes, so the group rebalances and partitions move both
ways each time (worker-0 recovers and gives up customers again and again). Simulated POS
traffic (a fixed population, so the table fills and then stays at its size) is published at
`--rate` events/s the whole time. Every `--sample-every` seconds: each worker's RSS, the
customers in the table (the workers' /stats), the group's consumer lag. At the end, once the
lag is zero, `loyalty audit` folds the whole input log and compares it with the live state
and the output topics.

What a worker holds grows with its customers' states, and a state grows with its history
until that fills the rules' windows (a year of spend by visit day, 90 days of returnable
purchases): with the simulation's default 540 days, the hour's customers join over the first
120 days and their history fills through about 485, so memory rises for most of the hour
whatever the worker does. `--simulated-days 1800` spreads the same events over five years,
so that the states stop growing in the first fifth of the run and what follows is the steady
state a leak would show against.

Writes `bench/results/<name>.json` and `.txt` (the curve: start, middle and end); exits 1 if
the audit finds a mismatch or a worker died on its own. The worker runs with the event clock
(see `bench.harness.worker_env`)."""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from bench.harness import (
    REPO_ROOT,
    RESULTS,
    KafkaProbe,
    bench_broker,
    ensure_alive,
    new_worker,
    rss_mb,
    topics_of,
    unique_name,
    worker_env,
    worker_pid,
    worker_source,
)
from streams.broker import TopicNames
from streams.contract import Codec, make_codec
from streams.settings import Settings
from streams.tools.audit import audit
from streams.tools.publish import EventPublisher
from streams.tools.simulate import DEFAULT_HORIZON_DAYS, SimulationConfig, simulate
from streams.tools.worker_process import WorkerProcess

PARTITIONS = 8
STEADY_AFTER = 0.1  # the first tenth of the run is warm-up: the curve's "start" comes after it
# where simulated time ends, whatever its span: the default window's end, before the wall
# clock (the workers refuse events dated ahead of their receipt)
SIMULATION_ENDS = SimulationConfig(customers=1, events=0).start + timedelta(
    days=DEFAULT_HORIZON_DAYS
)


@dataclass
class Sample:
    at_s: float  # seconds since the traffic started
    rss_mb: dict[str, float]  # per worker running at the time
    store_mb: dict[str, float | None]  # of that, what RocksDB's budget holds (memtables too)
    customers: int | None  # in the table, summed over the workers' /stats (None: one down)
    lag: int


@dataclass
class SoakResult:
    minutes: float
    rate_eps: float
    restart_every_min: float
    worker_code: str  # the commit the workers ran (`+dirty`: the working tree, changed)
    worker_settings: dict[str, str] = field(default_factory=dict)  # beyond the defaults
    simulated_days: float = DEFAULT_HORIZON_DAYS  # the span of the events' time
    published: int = 0
    restarts: int = 0
    samples: list[Sample] = field(default_factory=list)
    audit_ok: bool = False
    audit_summary: str = ""
    audit_mismatches: list[str] = field(default_factory=list)  # the first few, in words
    # records the merge let go after max_idle_s without knowing the other input's end (out of
    # event-time order perhaps): summed over every worker life, read before each kill
    idle_releases: int = 0
    dead_letter_kinds: dict[str, int] = field(default_factory=dict)
    drain_s: float = 0.0
    died_on_their_own: list[str] = field(default_factory=list)

    def curve(self, worker: str = "worker-0", of: str = "rss_mb") -> dict[str, float | None]:
        """RSS (MB) of `worker` just after warm-up, at the middle and at the end of the run;
        with `of="store_mb"`, the RocksDB part of it."""
        points: list[tuple[float, float]] = [
            (s.at_s, mb) for s in self.samples if (mb := getattr(s, of).get(worker)) is not None
        ]
        if not points:
            return {"start": None, "middle": None, "end": None}
        total = points[-1][0]

        def at(fraction: float) -> float:
            return min(points, key=lambda point: abs(point[0] - fraction * total))[1]

        return {"start": at(STEADY_AFTER), "middle": at(0.5), "end": at(1.0)}

    def table_sizes(self) -> dict[str, int | None]:
        known = [(s.at_s, s.customers) for s in self.samples if s.customers is not None]
        if not known:
            return {"middle": None, "end": None}
        total = known[-1][0]
        middle = min(known, key=lambda point: abs(point[0] - total / 2))[1]
        return {"middle": middle, "end": known[-1][1]}


def scraped(worker: WorkerProcess, prefix: str) -> float | None:
    """The sum of the worker's /metrics samples whose line starts with `prefix` (a name, or
    a name and the start of its labels); None if it does not answer."""
    try:
        with urllib.request.urlopen(  # nosec B310: a literal http:// URL
            f"http://127.0.0.1:{worker.web_port}/metrics", timeout=5
        ) as response:
            text = response.read().decode()
    except OSError:
        return None
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    )


def idle_releases(worker: WorkerProcess) -> int:
    """The worker's `loyalty_merge_idle_releases_total` (0 if it does not answer)."""
    return int(scraped(worker, "loyalty_merge_idle_releases_total") or 0)


def store_mb(worker: WorkerProcess) -> float | None:
    """What RocksDB's shared budget holds (memtables included), in MB: the part of the RSS
    RocksDB accounts for."""
    used = scraped(worker, 'loyalty_store_memory_bytes{part="used"}')
    return None if used is None else round(used / 2**20, 1)


def dead_letter_kinds(bootstrap: str, topic: str, codec: Codec) -> dict[str, int]:
    from collections import Counter

    from streams.tools.topic_census import read_topic

    kinds = Counter(codec.decode(m.value() or b"").record["error_kind"]
                    for m in read_topic(bootstrap, topic))  # fmt: skip
    return dict(kinds)


def table_customers(workers: Sequence[WorkerProcess]) -> int | None:
    total = 0
    for worker in workers:
        try:
            with urllib.request.urlopen(  # nosec B310: a literal http:// URL
                f"http://127.0.0.1:{worker.web_port}/stats", timeout=5
            ) as response:
                total += int(json.load(response)["customers"])
        except (OSError, ValueError, KeyError):
            return None
    return total


class SteadyTraffic(threading.Thread):
    """Publishes simulated events at `rate` per second until stopped."""

    def __init__(self, bootstrap: str, topics: TopicNames, codec: Codec, rate: float,
                 customers: int, events: int, simulated_days: float) -> None:  # fmt: skip
        super().__init__(name="soak-traffic", daemon=True)
        self.bootstrap, self.topics, self.codec, self.rate = bootstrap, topics, codec, rate
        self.config = SimulationConfig(
            customers=customers,
            events=events,
            seed=11,
            start=SIMULATION_ENDS - timedelta(days=simulated_days),
            horizon_days=simulated_days,
        )
        self.stopped = threading.Event()
        self.published = 0
        self.failed = 0

    def run(self) -> None:
        started: float | None = None
        with EventPublisher(self.bootstrap, self.topics, self.codec) as publisher:
            for schema_name, record in simulate(self.config):
                if self.stopped.is_set():
                    break
                # from the first event: the simulation first passes over its events to find
                # the pace its window holds them at (half a minute for the hour's), and the
                # traffic must not then catch up on that half minute in a burst
                started = time.monotonic() if started is None else started
                publisher.write(schema_name, record)
                self.published += 1
                ahead = self.published / self.rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
        self.failed = publisher.tally.failed


def soak(minutes: float, rate: float, restart_every: float, sample_every: float,
         customers: int, scratch: Path, commit: str | None, worker_settings: dict[str, str],
         heap_trace: Path | None = None,
         simulated_days: float = DEFAULT_HORIZON_DAYS) -> SoakResult:  # fmt: skip
    source, revision = worker_source(scratch, commit)
    result = SoakResult(minutes, rate, restart_every, revision, worker_settings, simulated_days)
    with bench_broker(scratch) as broker:
        bootstrap = broker.bootstrap_servers
        prefix, app_id = unique_name("soak"), unique_name("soak-app")
        topics = topics_of(prefix, PARTITIONS, bootstrap)
        env = {**worker_env(bootstrap, prefix, app_id, PARTITIONS), **worker_settings}
        settings = Settings(bootstrap_servers=bootstrap, topic_prefix=prefix, app_id=app_id,
                            partitions=PARTITIONS, clock="event")  # fmt: skip
        codec = make_codec(settings)
        if heap_trace is None:
            first = new_worker(scratch, "worker-0", env, source)
        else:
            # worker-0, never killed, watched for heap growth (bench.heap_trace: of the tree's
            # bench/, whichever commit's streams/ it runs)
            heap_trace.unlink(missing_ok=True)
            paths = [str(p) for p in (source, REPO_ROOT) if p is not None]
            traced = {**env, "LOYALTY_HEAP_TRACE": str(heap_trace),
                      "PYTHONPATH": os.pathsep.join(paths)}  # fmt: skip
            first = new_worker(scratch, "worker-0", traced, source, "bench.heap_trace")
        workers = [first, new_worker(scratch, "worker-1", env, source)]
        probe = KafkaProbe(bootstrap)
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.wait_ready(timeout_s=180)
        events = int(rate * minutes * 60 * 1.2) + 1000  # more than the run can publish
        traffic = SteadyTraffic(bootstrap, topics, codec, rate, customers, events,
                                simulated_days)  # fmt: skip
        started = time.monotonic()
        traffic.start()
        next_restart = started + restart_every * 60
        next_sample = started
        end = started + minutes * 60
        try:
            while time.monotonic() < end:
                now = time.monotonic()
                if now >= next_restart:
                    result.idle_releases += idle_releases(workers[1])
                    workers[1].kill()
                    time.sleep(2)
                    workers[1].start()
                    result.restarts += 1
                    next_restart = now + restart_every * 60
                if now >= next_sample:
                    sample = Sample(
                        at_s=round(now - started, 1),
                        rss_mb={
                            w.name: round(rss_mb(worker_pid(w))[0], 1) for w in workers if w.alive()
                        },
                        store_mb={w.name: store_mb(w) for w in workers if w.alive()},
                        customers=table_customers(workers),
                        lag=probe.lag(app_id, topics.inputs),
                    )
                    result.samples.append(sample)
                    print(f"{sample.at_s:7.0f} s  rss {sample.rss_mb}  rocksdb "
                          f"{sample.store_mb}  customers "
                          f"{sample.customers}  lag {sample.lag}", flush=True)  # fmt: skip
                    next_sample = now + sample_every
                for worker in workers:
                    ensure_alive(worker)
                time.sleep(0.5)
        except RuntimeError as error:  # a worker exited without being killed
            result.died_on_their_own.append(str(error))
        finally:
            traffic.stopped.set()
            traffic.join(timeout=120)
        result.published = traffic.published
        drain_started = time.monotonic()
        while probe.lag(app_id, topics.inputs) > 0:
            if time.monotonic() - drain_started > 1800:
                break
            time.sleep(2)
        result.drain_s = round(time.monotonic() - drain_started, 1)
        time.sleep(5)  # the due work of the last records' clocks (one tick)
        result.idle_releases += sum(idle_releases(worker) for worker in workers)
        report = audit(settings)
        result.audit_ok = report.ok and traffic.failed == 0
        result.audit_summary = report.summary()
        result.audit_mismatches = [str(mismatch) for mismatch in report.mismatches[:30]]
        result.dead_letter_kinds = dead_letter_kinds(bootstrap, topics.dead_letter, codec)
        probe.close()
        for worker in workers:
            worker.kill()
    return result


def write_results(result: SoakResult, name: str) -> Path:
    RESULTS.mkdir(exist_ok=True)
    payload: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        **asdict(result),
        "rss_curve_mb": result.curve(),
        "rocksdb_curve_mb": result.curve(of="store_mb"),
        "table_customers": result.table_sizes(),
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    curve = result.curve()
    lines = [
        f"soak: {result.minutes:g} min at {result.rate_eps:g} events/s, "
        f"worker-1 SIGKILLed and restarted {result.restarts} times (workers of "
        f"{result.worker_code})",
        f"simulated time: {result.simulated_days:g} days up to {SIMULATION_ENDS:%Y-%m-%d}",
        f"published {result.published:,} events; drained in {result.drain_s} s after the traffic",
        f"worker-0 RSS (MB): start {curve['start']}, middle {curve['middle']}, end {curve['end']}",
        "  of which RocksDB's budget holds (MB): start {start}, middle {middle}, end {end}".format(
            **result.curve(of="store_mb")
        ),
        f"worker settings beyond the defaults: {result.worker_settings or 'none'}",
        f"customers in the table: middle {result.table_sizes()['middle']}, "
        f"end {result.table_sizes()['end']}",
        f"max lag during the run: {max((s.lag for s in result.samples), default=0):,}",
        f"records let go by the merge after max_idle_s: {result.idle_releases:,}",
        f"dead letters by kind: {result.dead_letter_kinds or 'none'}",
        f"audit: {'OK' if result.audit_ok else 'FAILED'}",
        result.audit_summary,
        *result.audit_mismatches,
        *result.died_on_their_own,
    ]
    (RESULTS / f"{name}.txt").write_text("\n".join(lines) + "\n")
    return path


def main(
    minutes: Annotated[float, typer.Option(help="length of the steady traffic")] = 60.0,
    rate: Annotated[float, typer.Option(help="events per second published")] = 150.0,
    restart_every: Annotated[float, typer.Option(help="minutes between worker-1's kills")] = 5.0,
    sample_every: Annotated[float, typer.Option(help="seconds between samples")] = 30.0,
    customers: Annotated[int, typer.Option(help="the simulated population")] = 5000,
    simulated_days: Annotated[
        float,
        typer.Option(
            help="days of shop history the events span: 1800 lets the customers' states "
            "reach their full size early in the run (see the module's doc)"
        ),
    ] = DEFAULT_HORIZON_DAYS,
    commit: Annotated[
        str | None,
        typer.Option(help="run the worker of this commit (e.g. HEAD) instead of the tree's"),
    ] = None,
    results: Annotated[str, typer.Option(help="name of the result files")] = "soak-latest",
    env: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=VALUE for the workers' environment, e.g. "
            "LOYALTY_STORE_MEMORY_MB=32 or MALLOC_ARENA_MAX=2; repeatable"
        ),
    ] = None,
    trace_heap: Annotated[
        bool,
        typer.Option(
            help="worker-0 under tracemalloc: what grew, every 5 min, in "
            "bench/results/<results>-heap.txt (bench.heap_trace)"
        ),
    ] = False,
) -> None:
    worker_settings = dict(item.split("=", 1) for item in env or [])
    heap_trace = RESULTS / f"{results}-heap.txt" if trace_heap else None
    with tempfile.TemporaryDirectory(prefix="soak-") as scratch:
        result = soak(minutes, rate, restart_every, sample_every, customers, Path(scratch), commit,
                      worker_settings, heap_trace, simulated_days)  # fmt: skip
    path = write_results(result, results)
    typer.echo((RESULTS / f"{results}.txt").read_text())
    typer.echo(f"wrote {path}")
    if not result.audit_ok or result.died_on_their_own:
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(main)
