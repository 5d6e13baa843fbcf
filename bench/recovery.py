"""How long a worker takes to come back after SIGKILL, holding the state of many customers.

    .venv/bin/python -m bench.recovery [--customers 100000] [--quick] [--rounds 1]

A worker (RocksDB store, at_least_once, event clock) builds the state of `--customers`
customers from a cheap mix (about one purchase each, published before it starts), is left
idle, then SIGKILLed. It is then restarted in each scenario below; before each restart a few
new purchases of existing customers are published, so that "first new record" means the
first record applied after the restart:
- `local_rocksdb_at_once`: data dir intact, restarted at once, as a supervisor would: the
  dead member still holds its partitions until its session times out (10 s), so this is
  what an operator sees;
- `local_rocksdb`: data dir intact (only the changelog's tail to read), restarted once the
  dead member has left the group, so the figure is the store's own;
- `local_rocksdb_static`: data dir intact, restarted at once under static membership
  (`LOYALTY_GROUP_INSTANCE_ID`, as the StatefulSet and Compose run workers): the member it
  was takes its partitions back without waiting for the session to time out (a first,
  unmeasured start makes the group know the id);
- `changelog_rocksdb`: data dir wiped: the whole changelog is replayed into a new RocksDB;
- `changelog_memory`: `store=memory`: the whole changelog is replayed into memory.
After each, the worker is idle again and SIGKILLed. Reported per scenario: seconds from the
start to /readyz 200, to the first new record applied (its state in the changelog) and to
lag zero; CPU seconds and peak RSS; and the changelog's size (records, bytes of keys and
values, bytes on the broker's disk) and the RocksDB directory's. Writes
`bench/results/recovery-latest.json` and `.txt` (`--results NAME`: `NAME.json` and `.txt`).
With `--profile`, one more restart per scenario (but the first) runs under py-spy, apart
from the measured ones; where their CPU time went is in the results."""

from __future__ import annotations

import json
import platform
import shutil
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from bench.harness import (
    RESULTS,
    BenchBroker,
    BenchWorker,
    KafkaProbe,
    Profiler,
    Watched,
    bench_broker,
    changelog_of,
    dir_bytes,
    keep_profile,
    new_worker,
    publish_records,
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
from streams.tools.simulate import SimulationConfig, simulate
from streams.tools.topic_census import read_topic

PARTITIONS = 8
QUICK_CUSTOMERS = 10_000
NEW_PURCHASES = 200  # published before each restart
POLL_S = 0.05  # readiness and the first new record are a few seconds apart at most
SCENARIOS: dict[str, dict[str, Any]] = {
    "local_rocksdb_at_once": {"wipe": False, "store": "rocksdb", "wait_group_empty": False},
    "local_rocksdb": {"wipe": False, "store": "rocksdb", "wait_group_empty": True},
    "local_rocksdb_static": {
        "wipe": False,
        "store": "rocksdb",
        "wait_group_empty": False,
        "static": True,
    },
    "changelog_rocksdb": {"wipe": True, "store": "rocksdb", "wait_group_empty": True},
    "changelog_memory": {"wipe": False, "store": "memory", "wait_group_empty": True},
}


def main(
    customers: Annotated[
        int, typer.Option(help="customers whose state the worker holds")
    ] = 100_000,
    quick: Annotated[bool, typer.Option(help="smoke size: 10,000 customers")] = False,
    rounds: Annotated[int, typer.Option(help="times to go through the scenarios")] = 1,
    timeout: Annotated[float, typer.Option(help="seconds one worker run may take")] = 1800.0,
    commit: Annotated[
        str | None,
        typer.Option(help="run the worker of this commit (e.g. HEAD) instead of the tree's"),
    ] = None,
    profile: Annotated[
        bool, typer.Option(help="one more restart per scenario under py-spy, apart")
    ] = False,
    results: Annotated[str, typer.Option(help="name of the result files")] = "recovery-latest",
    only: Annotated[
        str | None, typer.Option(help="comma-separated scenarios (default: all)")
    ] = None,
) -> None:
    if quick:
        customers = QUICK_CUSTOMERS
    with scratch_dir() as scratch_name, bench_broker(Path(scratch_name)) as broker:
        scratch = Path(scratch_name)
        source, version = worker_source(scratch, commit)
        spy = py_spy() if profile else None
        if profile and spy is None:
            typer.echo("py-spy not found: no profile (see bench.harness.py_spy)", err=True)
        chosen = None if only is None else only.split(",")
        result = measure(broker, scratch, source, customers, rounds, timeout, spy, chosen)
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "worker_version": version,
        **result,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{results}.json").write_text(json.dumps(result, indent=2) + "\n")
    text = summary_text(result)
    (RESULTS / f"{results}.txt").write_text(text)
    typer.echo(text)


def cheap_mix(customers: int) -> SimulationConfig:
    """About one purchase per customer: every customer arrives within a quarter of an hour
    of simulated time, before nearly anyone's second visit, and nothing else happens (2 %
    more events than customers, so that the last first visits are in)."""
    return SimulationConfig(
        customers=customers,
        events=customers + customers // 50,
        seed=5,
        acquisition_days=0.01,
        return_probability=0.0,
        nps_probability=0.0,
        complaint_probability=0.0,
    )


def new_purchases(config: SimulationConfig, scenario: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Purchases of existing customers, a month after the build, spread over them."""
    at = config.start + timedelta(days=30)
    step = max(1, config.customers // NEW_PURCHASES)
    for n in range(NEW_PURCHASES):
        yield (
            "loyalty.v1.Purchase",
            {
                "event_id": f"recovery-{scenario}-{n}",
                "customer_id": f"c-{(n * step) % config.customers:07d}",
                "store_id": "store-00",
                "occurred_at": at + timedelta(seconds=n),
                "currency": config.currency,
                "total_minor": 1250,
                "items": [],
            },
        )


def measure(
    broker: BenchBroker,
    scratch: Path,
    source: Path | None,
    customers: int,
    rounds: int,
    timeout_s: float,
    spy: str | None = None,
    scenarios: Iterable[str] | None = None,
) -> dict[str, Any]:
    """The build, then a restart per scenario (`scenarios`: a subset of SCENARIOS' names,
    in their order; all by default)."""
    chosen = {
        label: scenario
        for label, scenario in SCENARIOS.items()
        if scenarios is None or label in set(scenarios)
    }
    bootstrap = broker.bootstrap_servers
    name = unique_name("recovery")
    topics = topics_of(name, PARTITIONS, bootstrap)
    codec = make_codec(Settings())
    config = cheap_mix(customers)
    seen: set[str] = set()

    def counted() -> Iterator[tuple[str, dict[str, Any]]]:
        for schema_name, record in simulate(config):
            seen.add(record["customer_id"])
            yield schema_name, record

    published, _ = publish_records(bootstrap, topics, codec, counted())
    typer.echo(f"published {published:,} events for {len(seen):,} customers", err=True)
    probe = KafkaProbe(bootstrap)
    env = worker_env(bootstrap, name, name, PARTITIONS)
    worker = new_worker(scratch, "worker", env, source)
    try:
        build = watch_until_idle(
            worker, probe, name, topics.inputs, timeout_s=timeout_s, poll_s=0.25
        )
        time.sleep(3)  # Faust persists the table's changelog offset in RocksDB on commit (1 s)
        worker.kill()
        built = {
            "events": published,
            "customers": len(seen),
            **_window(build, published),
            "rss_peak_mb": round(build.rss_peak_mb, 1),
            "rocksdb_dir_bytes": dir_bytes(worker.data_dir),
        }
        typer.echo(json.dumps(built), err=True)
        changelog = changelog_size(broker, probe, name)
        runs: dict[str, list[dict[str, Any]]] = {label: [] for label in chosen}
        for round_number in range(rounds):
            for label, scenario in chosen.items():
                typer.echo(f"-- {label}", err=True)
                run = restart(
                    worker, probe, topics, env, codec, config, f"{label}-{round_number}",
                    scenario, timeout_s,
                )  # fmt: skip
                runs[label].append(run)
                typer.echo(json.dumps(run), err=True)
        profiles: dict[str, Any] = {}
        for label, scenario in chosen.items():
            if spy is None or not scenario["wait_group_empty"]:
                continue
            typer.echo(f"-- {label} under py-spy", err=True)
            collapsed = RESULTS / "tmp" / f"recovery-profile-{label}.txt"
            collapsed.parent.mkdir(parents=True, exist_ok=True)
            run = restart(
                worker, probe, topics, env, codec, config, f"{label}-profiled", scenario,
                timeout_s, spy=spy, profile_to=collapsed,
            )  # fmt: skip
            with collapsed.open() as lines:
                profiles[label] = profile_summary(
                    read_collapsed(lines), keep_profile(collapsed), run
                )
    finally:
        worker.kill()
        probe.close()
    return {
        "customers": len(seen),
        "partitions": PARTITIONS,
        "new_purchases_per_restart": NEW_PURCHASES,
        "build": built,
        "changelog": changelog,
        "bytes_per_customer": {
            "changelog_payload": round(changelog["payload_bytes"] / len(seen), 1),
            "rocksdb_dir": round(built["rocksdb_dir_bytes"] / len(seen), 1),
        },
        "scenarios": runs,
        "profiles": profiles,
    }


def profile_summary(profile: StackProfile, collapsed: Path, run: dict[str, Any]) -> dict[str, Any]:
    """Where a restart's time went, from its start to lag zero (CPU time only: py-spy leaves
    out threads waiting)."""
    return {
        "collapsed_stacks": f"bench/results/{collapsed.name}",
        "run": run,
        "samples": profile.samples,
        "area_own_share": {
            area: round(n / profile.samples, 3) for area, n in profile.area_own.most_common()
        },
        "top_own": [
            {"function": f, "share": round(share, 3)} for f, _, _, share in profile.top_own(12)
        ],
    }


def restart(
    worker: BenchWorker,
    probe: KafkaProbe,
    topics: TopicNames,
    env: dict[str, str],
    codec: Any,
    config: SimulationConfig,
    tag: str,
    scenario: dict[str, Any],
    timeout_s: float,
    *,
    spy: str | None = None,
    profile_to: Path | None = None,
) -> dict[str, Any]:
    group = env["LOYALTY_APP_ID"]
    if scenario.get("static"):
        if "LOYALTY_GROUP_INSTANCE_ID" not in worker.env:
            # the group learns the id: after the dead dynamic member has gone, a first life
            worker.env["LOYALTY_GROUP_INSTANCE_ID"] = f"{group}-static"
            probe.wait_group_empty(group)
            worker.start().wait_ready(timeout_s)
            time.sleep(3)  # the changelog offset persisted, as before every kill
            worker.kill()
    else:
        worker.env.pop("LOYALTY_GROUP_INSTANCE_ID", None)
    session_expiry_s = probe.wait_group_empty(group) if scenario["wait_group_empty"] else None
    publish_records(env["LOYALTY_BOOTSTRAP_SERVERS"], topics, codec, new_purchases(config, tag))
    if scenario["wipe"]:
        shutil.rmtree(worker.data_dir, ignore_errors=True)
    worker.env["LOYALTY_STORE"] = scenario["store"]
    changelog_before = probe.end_offsets(changelog_of(group))
    profiler: Profiler | None = None

    def start_profiler(pid: int) -> None:
        nonlocal profiler
        if spy is not None and profile_to is not None:
            profiler = Profiler(spy, pid, profile_to, duration_s=int(timeout_s))

    try:
        watched = watch_until_idle(
            worker, probe, group, topics.inputs, timeout_s=timeout_s, poll_s=POLL_S,
            changelog_from=changelog_before, on_start=start_profiler,
        )  # fmt: skip
    finally:
        if profiler is not None:
            profiler.stop()
    time.sleep(3)  # as after the build: the changelog offset persisted before the next kill
    worker.kill()
    marks, cpu = watched.timeline.marks, watched.timeline.cpu
    return {
        "waited_for_dead_member_s": round(session_expiry_s, 1) if session_expiry_s else None,
        "start_to_ready_s": round(marks["ready"], 2),
        "start_to_first_new_record_s": round(marks["first_applied"], 2),
        "start_to_lag_zero_s": round(marks["lag_zero"], 2),
        "cpu_to_ready_s": round(cpu["ready"], 2),
        "rss_peak_mb": round(watched.rss_peak_mb, 1),
    }


def changelog_size(broker: BenchBroker, probe: KafkaProbe, group: str) -> dict[str, Any]:
    """The changelog's records and bytes of keys and values, all of them and the latest per
    key only (what the topic holds once compacted: one state per customer)."""
    topic = changelog_of(group)
    records, payload, latest = 0, 0, {}
    for message in read_topic(broker.bootstrap_servers, topic):
        key, value = message.key() or b"", message.value() or b""
        records += 1
        payload += len(key) + len(value)
        latest[key] = len(value)
    return {
        "topic": topic,
        "records": records,
        "distinct_keys": len(latest),
        "payload_bytes": payload,
        "compacted_payload_bytes": sum(len(key) + size for key, size in latest.items()),
        "broker_disk_bytes": broker.log_dir_bytes(topic),
    }


def _window(watched: Watched, events: int) -> dict[str, Any]:
    marks, cpu = watched.timeline.marks, watched.timeline.cpu
    window = marks["lag_zero"] - marks["first_applied"]
    return {
        "start_to_first_applied_s": round(marks["first_applied"], 2),
        "window_s": round(window, 2),
        "events_per_s": round(events / window),
        "window_cpu_s": round(cpu["lag_zero"] - cpu["first_applied"], 2),
    }


def summary_text(result: dict[str, Any]) -> str:
    build, changelog = result["build"], result["changelog"]
    per_customer = result["bytes_per_customer"]
    lines = [
        f"recovery after SIGKILL, {result['date']}: one worker of {result['worker_version']} "
        f"holding {result['customers']:,} customers, {result['partitions']} partitions "
        f"({result['machine']})",
        f"build: {build['events']:,} events at {build['events_per_s']:,}/s, "
        f"peak RSS {build['rss_peak_mb']:.0f} MB; with no state yet, "
        f"{build['start_to_first_applied_s']:.1f} s from start to the first record applied",
        f"changelog: {changelog['records']:,} records, {changelog['distinct_keys']:,} keys, "
        f"{changelog['payload_bytes']:,} bytes of keys and values "
        f"({per_customer['changelog_payload']} per customer), on the broker's disk "
        f"{changelog['broker_disk_bytes'] or 0:,} bytes; RocksDB dir "
        f"{build['rocksdb_dir_bytes']:,} bytes ({per_customer['rocksdb_dir']} per customer)",
        "",
        f"{'scenario':<24}{'ready s':>9}{'1st new s':>11}{'lag 0 s':>9}{'CPU s':>8}"
        f"{'RSS MB':>8}{'waited s':>10}",
    ]
    for label, runs in result["scenarios"].items():
        for run in runs:
            waited = run["waited_for_dead_member_s"]
            lines.append(
                f"{label:<24}{run['start_to_ready_s']:>9.2f}"
                f"{run['start_to_first_new_record_s']:>11.2f}{run['start_to_lag_zero_s']:>9.2f}"
                f"{run['cpu_to_ready_s']:>8.1f}{run['rss_peak_mb']:>8.0f}"
                f"{'-' if waited is None else waited:>10}"
            )
    for label, profile in result.get("profiles", {}).items():
        lines += ["", f"py-spy, {label} restart apart, {profile['samples']:,} samples, own time:"]
        lines += [f"  {share:6.1%}  {area}" for area, share in profile["area_own_share"].items()]
        lines += [f"  {row['share']:6.1%}  {row['function']}" for row in profile["top_own"][:8]]
    lines += [
        "",
        "times from the worker's start; 'waited': seconds the dead member's session took to",
        "expire before the restart (scenarios that wait for it); CPU: the worker's, to ready",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    typer.run(main)
