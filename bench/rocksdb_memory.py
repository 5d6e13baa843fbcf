"""RocksDB memory of a worker's table partitions: a cache and write buffers per database, as
the worker had them before issue #8, against the one budget all of them share now.

    .venv/bin/python -m bench.rocksdb_memory [--partitions 8] [--customers 200000] [--rounds 1]

Each variant runs in a fresh subprocess of its own, one after the other, on the same data:
it opens `--partitions` databases in a temp dir, writes `--customers` states (random 16-byte
keys, `--value-bytes` random bytes each: incompressible) spread over them by key, one put
each as the worker's store writes them, `--rounds` times (a worker writes a customer's state
again at each of the customer's events: what fills write buffers is the writes, not the
customers), then reads every one back and checks it against its last write.
- per_partition: Faust's options as configured before, each database with a block cache of
  `--block-cache-mb` and up to 3 write buffers of `--write-buffer-mb`;
- shared: the worker's options now, one cache of `--memory-mb` for all the databases, their
  write buffers (same size) charged to it up to half of it.
The child reads its RSS from /proc/self/status: at start (imports done, no database yet),
at its peak (VmHWM) and at the end (databases still open), and RocksDB's own counts of
memtable and block cache bytes (the shared cache's count includes the memtables charged to
it; the caches per partition hold data blocks only). Prints both side by side with the
ratios shared / per_partition, and writes `bench/results/rocksdb_memory-latest.json`."""

from __future__ import annotations

import json
import random
import subprocess  # nosec B404: runs this very script, as a child
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

RESULTS = Path(__file__).parent / "results"
REPO_ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("per_partition", "shared")
KEY_BYTES = 16
SEED = 8  # the same customers in both children
MiB = 2**20


def proc_status_mb() -> dict[str, float]:
    """This process's VmRSS (now) and VmHWM (peak), in MB."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) / 1024
    return values


def customer_states(count: int, value_bytes: int, round_: int) -> Iterator[tuple[bytes, bytes]]:
    """The same customers every round, with new states. Made again for the reads rather
    than kept: a list of them would weigh on the RSS measured."""
    keys, values = random.Random(SEED), random.Random(f"{SEED}-{round_}")
    for _ in range(count):
        yield keys.randbytes(KEY_BYTES), values.randbytes(value_bytes)


def run_variant(variant: str, partitions: int, customers: int, rounds: int, value_bytes: int,
                args: dict[str, int]) -> dict[str, Any]:  # fmt: skip
    """One variant, in this process (the child's side)."""
    import rocksdict
    from faust.stores.rocksdb import RocksDBOptions

    from streams.settings import STORE_WRITE_BUFFERS_SHARE
    from streams.worker.rocksdb_memory import SharedBudgetOptions

    per_db: dict[str, Any] = {
        "write_buffer_size": args["write_buffer_mb"] * MiB,
        "max_write_buffer_number": 3,
        "use_rocksdict": True,
    }
    options: RocksDBOptions
    if variant == "shared":
        options = SharedBudgetOptions(
            **per_db,
            memory_budget_size=args["memory_mb"] * MiB,
            write_buffer_budget_size=round(args["memory_mb"] * MiB * STORE_WRITE_BUFFERS_SHARE),
        )
    else:
        options = RocksDBOptions(**per_db, block_cache_size=args["block_cache_mb"] * MiB)
    start = proc_status_mb()

    with tempfile.TemporaryDirectory(prefix="rocksdb-memory-") as scratch:
        dbs: list[rocksdict.Rdict] = [
            options.open(Path(scratch) / f"partition-{p}") for p in range(partitions)
        ]

        def partition_of(key: bytes) -> int:
            return int.from_bytes(key[:4], "big") % partitions

        started = time.perf_counter()
        for round_ in range(rounds):
            for key, value in customer_states(customers, value_bytes, round_):
                dbs[partition_of(key)].put(key, value)
        write_s = time.perf_counter() - started
        after_writes = proc_status_mb()

        started = time.perf_counter()
        wrong = sum(
            dbs[partition_of(key)].get(key) != value
            for key, value in customer_states(customers, value_bytes, rounds - 1)
        )
        read_s = time.perf_counter() - started
        end = proc_status_mb()

        def total(name: str) -> int:
            return sum(db.property_int_value(name) or 0 for db in dbs)

        memtables = total("rocksdb.cur-size-all-mem-tables")
        if isinstance(options, SharedBudgetOptions):
            cache = options.shared.cache.get_usage()  # one cache: every database reports it
        else:
            cache = total("rocksdb.block-cache-usage")
        for db in dbs:
            db.close()

    return {
        "variant": variant,
        "start_rss_mb": round(start["VmRSS"], 1),
        "after_writes_rss_mb": round(after_writes["VmRSS"], 1),
        "final_rss_mb": round(end["VmRSS"], 1),
        "peak_rss_mb": round(end["VmHWM"], 1),
        "memtables_mb": round(memtables / MiB, 1),
        "block_cache_mb": round(cache / MiB, 1),
        "write_s": round(write_s, 2),
        "read_s": round(read_s, 2),
        "wrong_reads": wrong,
    }


def child(variant: str, partitions: int, customers: int, rounds: int, value_bytes: int,
          args: dict[str, int]) -> dict[str, Any]:  # fmt: skip
    """Runs one variant in a fresh interpreter: neither inherits the other's heap."""
    command = [sys.executable, "-m", "bench.rocksdb_memory", "--variant", variant,
               "--partitions", str(partitions), "--customers", str(customers),
               "--rounds", str(rounds), "--value-bytes", str(value_bytes),
               *(part for name, value in args.items()
                 for part in (f"--{name.replace('_', '-')}", str(value)))]  # fmt: skip
    done = subprocess.run(  # nosec B603: our own script
        command, cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def ratios(shared: dict[str, Any], per_partition: dict[str, Any]) -> dict[str, float]:
    def above_start(run: dict[str, Any], field: str) -> float:
        return float(run[field] - run["start_rss_mb"])

    return {
        "peak_rss": round(shared["peak_rss_mb"] / per_partition["peak_rss_mb"], 2),
        "final_rss": round(shared["final_rss_mb"] / per_partition["final_rss_mb"], 2),
        # what RocksDB and the data add to the interpreter and its imports
        "peak_above_start": round(
            above_start(shared, "peak_rss_mb") / above_start(per_partition, "peak_rss_mb"), 2
        ),
        "final_above_start": round(
            above_start(shared, "final_rss_mb") / above_start(per_partition, "final_rss_mb"), 2
        ),
    }


def table(runs: list[dict[str, Any]]) -> str:
    columns = ("start_rss_mb", "peak_rss_mb", "final_rss_mb", "memtables_mb",
               "block_cache_mb", "write_s", "read_s")  # fmt: skip
    lines = [f"{'variant':<14}" + "".join(f"{c.removesuffix('_mb'):>16}" for c in columns)]
    for run in runs:
        lines.append(f"{run['variant']:<14}" + "".join(f"{run[c]:>16}" for c in columns))
    return "\n".join(lines)


def main(
    partitions: Annotated[int, typer.Option(help="databases, one per table partition")] = 8,
    customers: Annotated[int, typer.Option(help="states written, over all partitions")] = 200_000,
    rounds: Annotated[int, typer.Option(min=1, help="times each state is written")] = 1,
    value_bytes: Annotated[int, typer.Option(help="bytes of each state")] = 180,
    write_buffer_mb: Annotated[int, typer.Option(help="each write buffer, both variants")] = 8,
    block_cache_mb: Annotated[int, typer.Option(help="per_partition: cache per database")] = 16,
    memory_mb: Annotated[int, typer.Option(help="shared: the one budget")] = 128,
    results: Annotated[str, typer.Option(help="name of the result file")] = "rocksdb_memory-latest",
    variant: Annotated[str | None, typer.Option(hidden=True, help="run one, as a child")] = None,
) -> None:
    args = {"write_buffer_mb": write_buffer_mb, "block_cache_mb": block_cache_mb,
            "memory_mb": memory_mb}  # fmt: skip
    if variant is not None:
        if variant not in VARIANTS:
            raise typer.BadParameter(f"one of {VARIANTS}", param_hint="--variant")
        run = run_variant(variant, partitions, customers, rounds, value_bytes, args)
        typer.echo(json.dumps(run))
        return

    runs = [child(name, partitions, customers, rounds, value_bytes, args) for name in VARIANTS]
    if any(run["wrong_reads"] for run in runs):
        raise SystemExit(f"states read back wrong: {runs}")
    by_name = {run["variant"]: run for run in runs}
    result = {
        "partitions": partitions,
        "customers": customers,
        "rounds": rounds,
        "value_bytes": value_bytes,
        **args,
        "runs": runs,
        "shared_vs_per_partition": ratios(by_name["shared"], by_name["per_partition"]),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{results}.json").write_text(json.dumps(result, indent=2) + "\n")
    typer.echo(
        f"{partitions} partitions, {customers:,} customers x {value_bytes} B "
        f"({customers * value_bytes / MiB:,.1f} MB of values), written {rounds} time(s)\n"
        f"{table(runs)}\n"
        f"shared / per_partition: {json.dumps(result['shared_vs_per_partition'])}"
    )


if __name__ == "__main__":
    typer.run(main)
