"""loyalty-streams against what it could be: the limit of a plain Python loop, and a naive
Faust app (issue #7).

    .venv/bin/python -m bench.compare [--quick] [--events N] [--customers N]
                                      [--recovery-customers N] [--latency-seconds S]

One broker of its own (`bench.harness.bench_broker`), one simulated log (seed 7; 1M events
over 100k customers, or 50k over 10k with --quick) published once; every contender reads its
own copy of it (`copy_inputs`: same records, same timestamps), in a process of its own,
watched from outside (CPU seconds and peak RSS from /proc, the group's committed offsets),
one after the other:
- `limit`: `bench.limit_loop`, a confluent-kafka loop: decode, `apply`, encode, produce;
- `naive_faust`: `bench.naive_faust`, the docs' Faust agent with a JSON in-memory table;
- `ours`: `loyalty worker` as shipped (RocksDB, at-least-once with the offset marks);
- `ours_eos`: the same with `exactly_once`.
Throughput is `bench.worker_throughput.measure`'s: events over the window from the first
record applied to the group having committed the end of the inputs (outputs flushed first).
Then, for ours: end-to-end latency at half its measured rate (`bench.latency`), recovery
after SIGKILL from the changelog and from the local RocksDB (`bench.recovery`'s scenarios,
on their own cheap state of `--recovery-customers`), and bytes per customer in the changelog
(compacted: the latest state of each) and on disk, from the `ours` run.

Writes `bench/results/<date>.json` (`<date>-quick.json`), `latest.json`, `latest.md` (the
table) and the table into README.md's performance section. Nothing here asserts a speed: the
targets of the issue are reported as holding or not."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from bench import latency, naive_faust, recovery, worker_throughput
from bench.harness import (
    REPO_ROOT,
    RESULTS,
    BenchBroker,
    KafkaProbe,
    bench_broker,
    dir_bytes,
    publish_simulated,
    scratch_dir,
    topics_of,
    unique_name,
    worker_source,
)
from streams.contract import make_codec
from streams.settings import Settings
from streams.tools.simulate import SimulationConfig

RECOVERED = "start_to_first_new_record_s"  # bench.recovery's measure of a restart done
PARTITIONS = 8
SEED = 7
LOAD_SHARE = 0.5  # of ours' saturated rate, for the latency run
README = REPO_ROOT / "README.md"
TABLE_BEGIN = "<!-- bench.compare: begin -->"
TABLE_END = "<!-- bench.compare: end -->"


@dataclass(frozen=True)
class Size:
    events: int
    customers: int
    recovery_customers: int
    latency_s: float


FULL = Size(1_000_000, 100_000, 1_000_000, 120.0)
QUICK = Size(50_000, 10_000, 20_000, 30.0)


@dataclass(frozen=True)
class Contender:
    title: str
    module: str | None = None  # None: `loyalty worker`
    settings: tuple[tuple[str, str], ...] = ()
    progress_on_outputs: bool = False  # keeps no changelog to watch
    audited: bool = False  # `loyalty audit` applies (our worker's state and outputs)
    json_outputs: bool = False  # its outputs are JSON, not the contract's Avro


CONTENDERS = {
    "limit": Contender(
        "limit: confluent-kafka loop, no guarantees", "bench.limit_loop", progress_on_outputs=True
    ),
    "naive_faust": Contender(
        "naive Faust: JSON values, in-memory table", "bench.naive_faust", json_outputs=True
    ),
    "ours": Contender("loyalty-streams as shipped (RocksDB, dedupe, at-least-once)", audited=True),
    "ours_eos": Contender(
        "loyalty-streams, exactly_once",
        settings=(("processing_guarantee", "exactly_once"),),
        audited=True,
    ),
}
RECOVERY_SCENARIOS = ("local_rocksdb", "local_rocksdb_static", "changelog_rocksdb")


def main(
    quick: Annotated[
        bool, typer.Option(help="50,000 events over 10,000 customers, recovery of 20,000")
    ] = False,
    events: Annotated[int | None, typer.Option(help="simulated events")] = None,
    customers: Annotated[int | None, typer.Option(help="simulated customers")] = None,
    recovery_customers: Annotated[
        int | None, typer.Option(help="customers the recovered worker holds")
    ] = None,
    latency_seconds: Annotated[float | None, typer.Option(help="of offered load")] = None,
    check: Annotated[
        bool, typer.Option("--audit/--no-audit", help="audit our runs against the reference")
    ] = True,
    readme: Annotated[bool, typer.Option(help="put the table into README.md")] = True,
    timeout: Annotated[float, typer.Option(help="seconds one run may take")] = 3600.0,
    commit: Annotated[
        str | None,
        typer.Option(help="run our worker of this commit (e.g. HEAD) instead of the tree's"),
    ] = None,
    render: Annotated[
        Path | None,
        typer.Option(help="measure nothing: the table and files again from this result JSON"),
    ] = None,
) -> None:
    if render is not None:
        result = resummarise(json.loads(render.read_text()))
        table = render_markdown(result)
        write_results(result, table, readme=README if readme else None)
        typer.echo(table)
        return
    base = QUICK if quick else FULL
    size = Size(
        events or base.events,
        customers or base.customers,
        recovery_customers or base.recovery_customers,
        latency_seconds or base.latency_s,
    )
    config = SimulationConfig(customers=size.customers, events=size.events, seed=SEED)
    with scratch_dir() as scratch_name, bench_broker(Path(scratch_name)) as broker:
        scratch = Path(scratch_name)
        source, version = worker_source(scratch, commit)
        bootstrap = broker.bootstrap_servers
        log = topics_of(unique_name("log"), PARTITIONS, bootstrap)
        published, publish_s = publish_simulated(bootstrap, log, make_codec(Settings()), config)
        typer.echo(f"published {published:,} events in {publish_s:.1f} s", err=True)
        runs: dict[str, dict[str, Any]] = {}
        for label, contender in CONTENDERS.items():
            typer.echo(f"-- {label}: {contender.title}", err=True)
            runs[label] = worker_throughput.measure(
                broker, scratch, None if contender.module else source, log, label,
                dict(contender.settings), timeout, check=check and contender.audited,
                module=contender.module, progress_on_outputs=contender.progress_on_outputs,
                outputs_codec=naive_faust.JsonOutputs() if contender.json_outputs else None,
            )  # fmt: skip
            typer.echo(json.dumps(runs[label]), err=True)
        storage = storage_of(broker, scratch, runs)
        offered = runs["ours"]["events_per_s"] * LOAD_SHARE
        typer.echo(f"-- latency of ours at {offered:,.0f} events/s", err=True)
        latencies = latency.measure(
            broker, scratch, source, log, PARTITIONS, offered, size.latency_s, timeout
        )
        typer.echo(json.dumps(latencies), err=True)
        typer.echo(f"-- recovery of ours, {size.recovery_customers:,} customers", err=True)
        recovered = recovery.measure(
            broker, scratch, source, size.recovery_customers, 1, timeout,
            scenarios=RECOVERY_SCENARIOS,
        )  # fmt: skip
    result = summarise(
        quick=quick,
        size=size,
        published=published,
        machine=f"{platform.machine()}, {_cores()} cores, Python {platform.python_version()}",
        version=version,
        date=datetime.now(UTC),
        runs=runs,
        storage=storage,
        latencies=latencies,
        recovered=recovered,
    )
    table = render_markdown(result)
    write_results(result, table, readme=README if readme else None)
    typer.echo(table)


def storage_of(
    broker: BenchBroker, scratch: Path, runs: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Bytes per customer of the `ours` run's state (realistic states, after the whole log):
    the changelog compacted (the latest record of each customer, key and value), as the
    broker keeps it on disk (every record written, until compaction), the worker's RocksDB
    directory; and the naive Faust app's JSON changelog, compacted, beside it."""
    probe = KafkaProbe(broker.bootstrap_servers)
    try:
        ours = recovery.changelog_size(broker, probe, runs["ours"]["app_id"])
        naive = recovery.changelog_size(broker, probe, runs["naive_faust"]["app_id"])
    finally:
        probe.close()
    customers = max(1, ours["distinct_keys"])
    return {
        "customers": ours["distinct_keys"],
        "changelog_records": ours["records"],
        "changelog_compacted": round(ours["compacted_payload_bytes"] / customers, 1),
        "changelog_broker_disk": round((ours["broker_disk_bytes"] or 0) / customers, 1),
        "rocksdb_dir": round(dir_bytes(scratch / runs["ours"]["app_id"]) / customers, 1),
        "naive_faust_changelog_compacted": round(
            naive["compacted_payload_bytes"] / max(1, naive["distinct_keys"]), 1
        ),
    }


# ---- the result, pure ---------------------------------------------------------------------------


def ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator to 2 decimals; None where the denominator is nothing."""
    if not denominator:
        return None
    return round(numerator / denominator, 2)


def summarise(
    *,
    quick: bool,
    size: Size,
    published: int,
    machine: str,
    version: str,
    date: datetime,
    runs: dict[str, dict[str, Any]],
    storage: dict[str, Any],
    latencies: dict[str, Any],
    recovered: dict[str, Any],
) -> dict[str, Any]:
    eps = {label: run["events_per_s"] for label, run in runs.items()}
    # events per CPU second of the contender's own process: what contention for the machine
    # (other processes, the broker) leaves alone, where events/s does not
    cpu_eps = {label: 1e6 / run["cpu_s_per_1m_events"] for label, run in runs.items()}
    scenarios = recovered["scenarios"]
    result: dict[str, Any] = {
        "date": date.isoformat(timespec="seconds"),
        "quick": quick,
        "machine": machine,
        "worker_version": version,
        "events": published,
        "customers": size.customers,
        "partitions": PARTITIONS,
        "seed": SEED,
        "throughput_eps": eps,
        "cpu_s_per_1m_events": {label: run["cpu_s_per_1m_events"] for label, run in runs.items()},
        "peak_rss_mb": {label: run["rss_peak_mb"] for label, run in runs.items()},
        "outputs": {label: run["outputs"] for label, run in runs.items()},
        "audit_ok": {label: run.get("audit_ok") for label, run in runs.items()},
        "ratios": {
            "ours_vs_limit": ratio(eps["ours"], eps["limit"]),
            "ours_vs_naive_faust": ratio(eps["ours"], eps["naive_faust"]),
            "eos_vs_ours": ratio(eps["ours_eos"], eps["ours"]),
        },
        "ratios_per_cpu_s": {
            "ours_vs_limit": ratio(cpu_eps["ours"], cpu_eps["limit"]),
            "ours_vs_naive_faust": ratio(cpu_eps["ours"], cpu_eps["naive_faust"]),
            "eos_vs_ours": ratio(cpu_eps["ours_eos"], cpu_eps["ours"]),
        },
        "latency_ms": latencies,
        # to the first new record applied, not to /readyz: the worker answers ready once
        # Faust has recovered the table, and indexes its customers on the first record after
        # (with branch restart-from-headers at 1M customers: ready after 4.4 s, the first
        # record applied after 13.9 s)
        "recovery_s": {
            "changelog": scenarios["changelog_rocksdb"][0][RECOVERED],
            "local_rocksdb": scenarios["local_rocksdb"][0][RECOVERED],
            # restarted at once under static membership (results before it have none)
            "local_rocksdb_static": (
                scenarios["local_rocksdb_static"][0][RECOVERED]
                if scenarios.get("local_rocksdb_static")
                else None
            ),
            "customers": recovered["customers"],
            "measured_as": "worker start to the first new record applied, after SIGKILL",
        },
        "bytes_per_customer": storage["changelog_compacted"],
        "bytes_per_customer_detail": storage,
        "runs": runs,
        "recovery": recovered,
    }
    result["targets"] = targets(result)
    return result


def resummarise(result: dict[str, Any]) -> dict[str, Any]:
    """A result summarised again from the measurements it holds (after a change of the
    summary or the table: the runs are not repeated)."""
    return summarise(
        quick=result["quick"],
        size=Size(
            result["events"],
            result["customers"],
            result["recovery_s"]["customers"],
            result["latency_ms"].get("seconds", 0.0),
        ),
        published=result["events"],
        machine=result["machine"],
        version=result["worker_version"],
        date=datetime.fromisoformat(result["date"]),
        runs=result["runs"],
        storage=result["bytes_per_customer_detail"],
        latencies=result["latency_ms"],
        recovered=result["recovery"],
    )


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the figure measured and whether it holds (None: not
    measured). A target for 1M customers measured on fewer says so."""
    ratios, lat, rec = result["ratios"], result["latency_ms"], result["recovery_s"]
    per_cpu = result["ratios_per_cpu_s"]
    full_size = rec["customers"] >= 1_000_000
    at = "" if full_size else f" (only {rec['customers']:,} measured)"

    def row(name: str, value: float | None, holds: bool | None, shown: str) -> dict[str, Any]:
        return {"target": name, "value": value, "shown": shown, "holds": holds}

    def at_least(value: float | None, bound: float) -> bool | None:
        return None if value is None else value >= bound

    def below(value: float | None, bound: float) -> bool | None:
        return None if value is None else value < bound

    p99 = lat.get("p99")

    def throughput(name: str, key: str, bound: float) -> dict[str, Any]:
        shown = f"{_times(ratios[key])} (per CPU second {_times(per_cpu[key])})"
        return row(name, ratios[key], at_least(ratios[key], bound), shown)

    return [
        throughput("ours >= 0.5x limit", "ours_vs_limit", 0.5),
        throughput("ours >= 3x naive Faust", "ours_vs_naive_faust", 3),
        throughput("exactly_once >= 0.8x ours", "eos_vs_ours", 0.8),
        row(f"p99 < 100 ms at {LOAD_SHARE:.0%} of ours' saturated rate", p99, below(p99, 100),
            "-" if p99 is None else f"{p99:,.0f} ms"),
        row("recovery of 1M customers from the changelog < 60 s" + at, rec["changelog"],
            below(rec["changelog"], 60) if full_size else None, f"{rec['changelog']:.1f} s"),
        row("recovery from local RocksDB < 5 s", rec["local_rocksdb"],
            below(rec["local_rocksdb"], 5), f"{rec['local_rocksdb']:.1f} s"),
        row("<= 300 bytes per customer in the changelog", result["bytes_per_customer"],
            None if result["bytes_per_customer"] is None
            else result["bytes_per_customer"] <= 300,
            f"{result['bytes_per_customer']:,.0f} B"),
    ]  # fmt: skip


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def render_markdown(result: dict[str, Any]) -> str:
    """The comparison as Markdown: the contenders side by side, then ours' latency,
    recovery and size, then the targets."""
    eps, lat, rec = result["throughput_eps"], result["latency_ms"], result["recovery_s"]
    size = result["bytes_per_customer_detail"]
    ratios = result["ratios"]
    run = "quick run" if result["quick"] else "full run"
    lines = [
        f"{result['date'][:10]}, {run}: {result['events']:,} simulated events over "
        f"{result['customers']:,} customers (seed {result['seed']}), {result['partitions']} "
        f"partitions, one process per contender on its own copy of the same log; "
        f"{result['machine']}; worker {result['worker_version']}.",
        "",
        "| contender | events/s | x limit | CPU s / 1M events | x limit per CPU s "
        "| peak RSS MB | outputs | audit |",
        "|---|--:|--:|--:|--:|--:|--:|---|",
    ]
    cpu = result["cpu_s_per_1m_events"]
    for label, contender in CONTENDERS.items():
        audit = {None: "-", True: "ok", False: "FAILED"}[result["audit_ok"].get(label)]
        lines.append(
            f"| {contender.title} | {eps[label]:,} | {_times(ratio(eps[label], eps['limit']))} "
            f"| {cpu[label]:,.0f} | {_times(ratio(cpu['limit'], cpu[label]))} "
            f"| {result['peak_rss_mb'][label]:,.0f} | {result['outputs'][label]:,} | {audit} |"
        )
    per_cpu = result["ratios_per_cpu_s"]
    lines += [
        "",
        f"ours / limit {_times(ratios['ours_vs_limit'])}, ours / naive Faust "
        f"{_times(ratios['ours_vs_naive_faust'])}, exactly_once / ours "
        f"{_times(ratios['eos_vs_ours'])}; per CPU second of each process "
        f"{_times(per_cpu['ours_vs_limit'])}, {_times(per_cpu['ours_vs_naive_faust'])}, "
        f"{_times(per_cpu['eos_vs_ours'])}.",
        "",
        "| loyalty-streams | measured |",
        "|---|---|",
    ]
    if lat.get("matched"):
        lines.append(
            f"| end-to-end latency, POS publish to output read, at {lat['offered_eps']:,} "
            f"events/s offered ({LOAD_SHARE:.0%} of ours): p50 / p99 / p99.9 "
            f"| {lat['p50']:,.0f} / {lat['p99']:,.0f} / {lat['p999']:,.0f} ms "
            f"({lat['matched']:,} inputs with an output; to the output's timestamp "
            f"{lat['to_output_timestamp']['p50']:,.0f} / {lat['to_output_timestamp']['p99']:,.0f}"
            f" / {lat['to_output_timestamp']['p999']:,.0f} ms) |"
        )
    else:
        lines.append("| end-to-end latency | no output matched an input |")
    lines += [
        f"| recovery after SIGKILL from the changelog (RocksDB wiped), {rec['customers']:,} "
        f"customers | {rec['changelog']:.1f} s to work again |",
        f"| recovery after SIGKILL from the local RocksDB, the dead member gone from the group "
        f"| {rec['local_rocksdb']:.1f} s to work again |",
        *(
            [
                "| recovery after SIGKILL from the local RocksDB, restarted at once under static "
                f"membership (LOYALTY_GROUP_INSTANCE_ID) | {static:.1f} s to work again |"
            ]
            if (static := rec.get("local_rocksdb_static")) is not None
            else []
        ),
        f"| bytes per customer: changelog compacted / broker disk (uncompacted) / RocksDB dir "
        f"| {size['changelog_compacted']:,.0f} / {size['changelog_broker_disk']:,.0f} / "
        f"{size['rocksdb_dir']:,.0f} (naive Faust's JSON changelog: "
        f"{size['naive_faust_changelog_compacted']:,.0f}) |",
        "",
        "| target | measured | holds |",
        "|---|--:|---|",
    ]
    for target in result["targets"]:
        holds = {True: "yes", False: "no", None: "not measured at this size"}[target["holds"]]
        lines.append(f"| {target['target']} | {target['shown']} | {holds} |")
    return "\n".join(lines) + "\n"


def with_table(readme: str, table: str) -> str:
    """The README with the table between its markers (unchanged if it has none)."""
    begin, end = readme.find(TABLE_BEGIN), readme.find(TABLE_END)
    if begin < 0 or end < begin:
        return readme
    return readme[: begin + len(TABLE_BEGIN)] + "\n" + table + readme[end:]


def result_name(result: dict[str, Any]) -> str:
    return f"{result['date'][:10]}{'-quick' if result['quick'] else ''}.json"


def write_results(result: dict[str, Any], table: str, readme: Path | None) -> None:
    RESULTS.mkdir(exist_ok=True)
    text = json.dumps(result, indent=2) + "\n"
    (RESULTS / result_name(result)).write_text(text)
    (RESULTS / "latest.json").write_text(text)
    (RESULTS / "latest.md").write_text(table)
    if readme is not None and readme.exists():
        readme.write_text(with_table(readme.read_text(), table))


def _cores() -> int:
    return os.cpu_count() or 0


if __name__ == "__main__":
    typer.run(main)
