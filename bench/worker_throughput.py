"""One worker's throughput, from its first applied record to consumer lag zero, with the
events already in Kafka before it starts (the worker is measured, not the publisher).

    .venv/bin/python -m bench.worker_throughput [--events 200000] [--customers 20000]
                                                [--quick] [--profile/--no-profile]

Three configurations in one run, each on its own topics with the same simulated events
(deterministic seed) and its own consumer group, one after the other: the default
(RocksDB store, at_least_once), `--processing-guarantee exactly_once` (which keeps its
table in memory) and `store=memory` (at_least_once). Ratios to the default are the figures
to read: absolute rates on this shared 2-core machine are noisy. With `--profile` (on when
py-spy is found, see `bench.harness.py_spy`) a fourth run of the default configuration is
sampled by py-spy, so that its overhead is not in the measured runs.

Per run: events/s and output events/s over the active window (first state written to the
changelog, up to the group's committed offsets reaching the end of the inputs, which lags
by up to Faust's 1 s commit interval), the window's wall and CPU seconds, start-up to the
first record, and the peak RSS. Writes `bench/results/worker_throughput-latest.json` and
`.txt`, and with `--profile` `worker-profile.collapsed.gz` (py-spy's stacks) and
the top functions in the JSON. The worker runs with the event clock (see
`bench.harness.worker_env`)."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from bench.harness import (
    RESULTS,
    BenchBroker,
    KafkaProbe,
    Profiler,
    bench_broker,
    copy_inputs,
    keep_log,
    keep_profile,
    new_worker,
    publish_simulated,
    py_spy,
    scratch_dir,
    topics_of,
    unique_name,
    watch_until_idle,
    worker_env,
    worker_source,
)
from bench.stacks import StackProfile, read_collapsed
from streams.broker import TopicNames
from streams.contract import make_codec
from streams.settings import Settings
from streams.tools.audit import audit, read_output_log
from streams.tools.simulate import SimulationConfig
from streams.tools.topic_census import RecordDecoder

PARTITIONS = 8  # the shipped default
QUICK = (20_000, 2_000)
POLL_S = 0.25
EVERYWHERE = 0.85  # an area on more of the stacks than this is the event loop or mode
CONFIGURATIONS: dict[str, dict[str, str]] = {
    "default": {},
    "exactly_once": {"processing_guarantee": "exactly_once"},
    "memory_store": {"store": "memory"},
}


def main(
    events: Annotated[int, typer.Option(help="simulated events")] = 200_000,
    customers: Annotated[int, typer.Option(help="simulated customers")] = 20_000,
    quick: Annotated[bool, typer.Option(help="smoke size: 20,000 events over 2,000")] = False,
    profile: Annotated[
        bool, typer.Option(help="an extra default run under py-spy (if py-spy is found)")
    ] = True,
    profile_seconds: Annotated[int, typer.Option(help="how long py-spy samples")] = 60,
    timeout: Annotated[float, typer.Option(help="seconds one run may take")] = 1800.0,
    only: Annotated[
        str, typer.Option(help="comma-separated runs: " + ",".join(CONFIGURATIONS))
    ] = ",".join(CONFIGURATIONS),
    check: Annotated[
        bool,
        typer.Option(
            "--audit/--no-audit",
            help="audit each run against the reference fold of its log (after the clock)",
        ),
    ] = True,
    commit: Annotated[
        str | None,
        typer.Option(help="run the worker of this commit (e.g. HEAD) instead of the tree's"),
    ] = None,
) -> None:
    if quick:
        events, customers = QUICK
    config = SimulationConfig(customers=customers, events=events, seed=7)
    spy = py_spy() if profile else None
    if profile and spy is None:
        typer.echo("py-spy not found: no profile (see bench.harness.py_spy)", err=True)
    runs: dict[str, dict[str, Any]] = {}
    stack_profile: StackProfile | None = None
    with scratch_dir() as scratch_name, bench_broker(Path(scratch_name)) as broker:
        scratch = Path(scratch_name)
        source, version = worker_source(scratch, commit)
        log = topics_of(unique_name("log"), PARTITIONS, broker.bootstrap_servers)
        published, publish_s = publish_simulated(
            broker.bootstrap_servers, log, make_codec(Settings()), config
        )
        typer.echo(f"published {published:,} events in {publish_s:.1f} s", err=True)
        for label in only.split(","):
            settings = CONFIGURATIONS[label]
            typer.echo(f"-- {label}", err=True)
            runs[label] = measure(
                broker, scratch, source, log, label, settings, timeout, check=check
            )
            typer.echo(json.dumps(runs[label]), err=True)
        if spy is not None:
            typer.echo("-- default under py-spy", err=True)
            collapsed = RESULTS / "tmp" / "worker-profile.txt"
            collapsed.parent.mkdir(parents=True, exist_ok=True)
            profile_run(broker, scratch, source, log, spy, profile_seconds, collapsed, timeout)
            with collapsed.open() as lines:
                stack_profile = read_collapsed(lines)
            keep_profile(collapsed)
    result = summarise(config, version, runs, stack_profile, profile_seconds)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "worker_throughput-latest.json").write_text(json.dumps(result, indent=2) + "\n")
    text = summary_text(result)
    (RESULTS / "worker_throughput-latest.txt").write_text(text)
    typer.echo(text)


def measure(
    broker: BenchBroker,
    scratch: Path,
    source: Path | None,
    log: TopicNames,
    label: str,
    settings: dict[str, str],
    timeout_s: float,
    *,
    check: bool = False,
    module: str | None = None,
    progress_on_outputs: bool = False,
    outputs_codec: RecordDecoder | None = None,
) -> dict[str, Any]:
    """One run on its own copy of the log. `module`: another contender than the worker (see
    `BenchWorker`); `progress_on_outputs`: it keeps no changelog, so its first output marks
    its first applied record; `outputs_codec`: its outputs are not the contract's Avro."""
    bootstrap = broker.bootstrap_servers
    name = unique_name(label)
    topics = topics_of(name, PARTITIONS, bootstrap)
    codec = make_codec(Settings())
    started = time.perf_counter()
    published = copy_inputs(bootstrap, log, topics)
    copy_s = time.perf_counter() - started
    env = worker_env(bootstrap, name, name, PARTITIONS, **settings)
    probe = KafkaProbe(bootstrap)
    worker = new_worker(scratch, name, env, source, module)
    progress = topics.outputs if progress_on_outputs else None
    try:
        watched = watch_until_idle(
            worker, probe, name, topics.inputs, timeout_s=timeout_s, poll_s=POLL_S,
            progress_topics=progress,
        )  # fmt: skip
    finally:
        worker.stop()
        probe.close()
    produced = read_output_log(bootstrap, topics, outputs_codec or codec)
    verdict = audit_run(bootstrap, name, settings) if check else {}
    if verdict and not verdict["audit_ok"]:
        typer.echo(f"audit failed: the worker's log is kept at {keep_log(worker)}", err=True)
    timeline = watched.timeline
    window_s = timeline.marks["lag_zero"] - timeline.marks["first_applied"]
    window_cpu_s = timeline.cpu["lag_zero"] - timeline.cpu["first_applied"]
    outputs = sum(produced.ids.values())
    return {
        "app_id": name,
        "events": published,
        "copy_inputs_s": round(copy_s, 2),
        "start_to_first_applied_s": round(timeline.marks["first_applied"], 2),
        "start_to_lag_zero_s": round(timeline.marks["lag_zero"], 2),
        "window_s": round(window_s, 2),
        "last_state_write_s": round(
            watched.last_state_write_s - timeline.marks["first_applied"], 2
        ),
        "events_per_s": round(published / window_s),
        "outputs": outputs,
        "distinct_outputs": len(produced.ids),
        "outputs_digest": outputs_digest(produced.ids),
        "dead_letters": produced.dead_letters,
        "outputs_per_s": round(outputs / window_s),
        "window_cpu_s": round(window_cpu_s, 2),
        "cpu_share_of_window": round(window_cpu_s / window_s, 2),
        "cpu_s_per_1m_events": round(window_cpu_s / published * 1e6, 1),
        "total_cpu_s": round(timeline.cpu["lag_zero"], 2),
        "rss_peak_mb": round(watched.rss_peak_mb, 1),
        "rss_at_end_mb": round(watched.rss_mb, 1),
        "changelog_records": None if progress_on_outputs else watched.changelog_end,
        **verdict,
    }


def audit_run(bootstrap: str, name: str, settings: dict[str, str]) -> dict[str, Any]:
    """`loyalty audit` of the run: does what the worker produced and holds equal the
    reference fold of its input log? A rate is only worth comparing for a worker that
    did the work right."""
    report = audit(
        Settings.load(
            bootstrap_servers=bootstrap,
            topic_prefix=name,
            app_id=name,
            partitions=PARTITIONS,
            clock="event",
            **settings,
        )
    )
    return {
        "audit_ok": report.ok,
        "audit_mismatches": len(report.mismatches),
        "audit_customers_differing": report.customers_differing,
        "audit_outputs_expected": report.outputs_expected,
        "audit_outputs_missing": report.outputs_missing,
        "audit_outputs_unexpected": report.outputs_unexpected,
        "audit_dead_letters_expected": report.dead_letters_expected,
        "audit_first_mismatches": [str(m) for m in report.mismatches[:5]],
    }


def profile_run(
    broker: BenchBroker,
    scratch: Path,
    source: Path | None,
    log: TopicNames,
    spy: str,
    seconds: int,
    output: Path,
    timeout_s: float,
) -> None:
    """The default configuration on its own copy of the log, sampled by py-spy for `seconds`
    from its first applied record (or until it is idle, if sooner); the worker is then
    stopped. Apart from the measured runs, since py-spy takes CPU from the worker on 2 cores."""
    bootstrap = broker.bootstrap_servers
    name = unique_name("profiled")
    topics = topics_of(name, PARTITIONS, bootstrap)
    copy_inputs(bootstrap, log, topics)
    probe = KafkaProbe(bootstrap)
    worker = new_worker(scratch, name, worker_env(bootstrap, name, name, PARTITIONS), source)
    profiler: Profiler | None = None

    def start_profiler(pid: int) -> None:
        nonlocal profiler
        profiler = Profiler(spy, pid, output, seconds)

    try:
        watch_until_idle(
            worker, probe, name, topics.inputs, timeout_s=timeout_s, poll_s=POLL_S,
            on_first_applied=start_profiler,
            until=lambda: profiler is not None and profiler.done(),
        )  # fmt: skip
    finally:
        if profiler is not None:
            profiler.stop()
        worker.stop()
        probe.close()


def outputs_digest(ids: Iterable[str]) -> str:
    """A short digest of the set of output event ids: equal digests, same outputs."""
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()[:16]


def summarise(
    config: SimulationConfig,
    version: str,
    runs: dict[str, dict[str, Any]],
    stack_profile: StackProfile | None,
    profile_seconds: int,
) -> dict[str, Any]:
    default = runs.get("default") or next(iter(runs.values()))
    result: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {_cores()} cores, Python {platform.python_version()}",
        "worker_version": version,
        "events": config.events,
        "customers": config.customers,
        "partitions": PARTITIONS,
        "clock": "event",
        "runs": runs,
        "same_outputs_in_every_run": len({run["outputs_digest"] for run in runs.values()}) == 1,
        "ratios_to_default": {
            label: {
                "events_per_s": round(run["events_per_s"] / default["events_per_s"], 2),
                "cpu_s_per_1m_events": round(
                    run["cpu_s_per_1m_events"] / default["cpu_s_per_1m_events"], 2
                ),
                "rss_peak_mb": round(run["rss_peak_mb"] / default["rss_peak_mb"], 2),
            }
            for label, run in runs.items()
            if run is not default
        },
    }
    if stack_profile is not None:
        samples = stack_profile.samples
        result["profile"] = {
            "samples": samples,
            "seconds": profile_seconds,
            "collapsed_stacks": "bench/results/worker-profile.collapsed.gz",
            "top_own": [
                {"function": f, "area": a, "samples": n, "share": round(s, 3)}
                for f, a, n, s in stack_profile.top_own(15)
            ],
            "area_own_share": {
                area: round(n / samples, 3) for area, n in stack_profile.area_own.most_common()
            },
            "area_inclusive_share": {
                area: round(n / samples, 3)
                for area, n in stack_profile.area_inclusive.most_common()
            },
        }
    return result


def summary_text(result: dict[str, Any]) -> str:
    runs, ratios = result["runs"], result["ratios_to_default"]
    lines = [
        f"worker throughput, {result['date']}: {result['events']:,} events over "
        f"{result['customers']:,} customers, {result['partitions']} partitions, "
        f"{result['clock']} clock, one worker of {result['worker_version']} "
        f"({result['machine']})",
        "",
        f"{'run':<18}{'events/s':>10}{'x default':>10}{'outputs/s':>10}{'window s':>10}"
        f"{'CPU s':>8}{'CPU s/1M':>10}{'RSS MB':>8}{'start s':>9}  audit",
    ]
    for label, run in runs.items():
        ratio = ratios.get(label, {}).get("events_per_s", 1.0)
        lines.append(
            f"{label:<18}{run['events_per_s']:>10,}{ratio:>10.2f}{run['outputs_per_s']:>10,}"
            f"{run['window_s']:>10.1f}{run['window_cpu_s']:>8.1f}"
            f"{run['cpu_s_per_1m_events']:>10.0f}{run['rss_peak_mb']:>8.0f}"
            f"{run['start_to_first_applied_s']:>9.1f}  {audit_verdict(run)}"
        )
    same = "yes" if result["same_outputs_in_every_run"] else "NO"
    counts = ", ".join(f"{label} {run['outputs']:,}" for label, run in runs.items())
    lines += ["", f"same output events in every run: {same} ({counts})"]
    profile = result.get("profile")
    if profile:
        lines += [
            "",
            f"py-spy, a default run apart, {profile['samples']:,} samples over "
            f"{profile['seconds']} s; own time by area:",
        ]
        lines += [f"  {share:6.1%}  {area}" for area, share in profile["area_own_share"].items()]
        lines += ["", "on the stack (inclusive; leaving out what everything runs under):"]
        lines += [
            f"  {share:6.1%}  {area}"
            for area, share in profile["area_inclusive_share"].items()
            if share < EVERYWHERE
        ]
        lines += ["", "top 15 functions by own time:"]
        lines += [f"  {row['share']:6.1%}  {row['function']}" for row in profile["top_own"]]
    return "\n".join(lines) + "\n"


def audit_verdict(run: dict[str, Any]) -> str:
    if "audit_ok" not in run:
        return "-"
    if run["audit_ok"]:
        return "ok"
    return (
        f"{run['audit_mismatches']:,} mismatches ({run['audit_customers_differing']:,} "
        f"customers, outputs missing {run['audit_outputs_missing']:,}, unexpected "
        f"{run['audit_outputs_unexpected']:,} of {run['audit_outputs_expected']:,})"
    )


def _cores() -> int:
    return os.cpu_count() or 0


if __name__ == "__main__":
    typer.run(main)
