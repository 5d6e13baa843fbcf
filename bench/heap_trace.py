"""`loyalty worker` under tracemalloc, for a soak that looks for what keeps growing.

    LOYALTY_HEAP_TRACE=/tmp/heap.txt python -m bench.heap_trace      # the worker's settings
    python -m bench.soak --minutes 20 --trace-heap                   # worker-0 runs so

Python's own allocations only (RocksDB's and librdkafka's are not seen: the soak's
`loyalty_store_memory_bytes` samples tell RocksDB's part). Every `LOYALTY_HEAP_TRACE_EVERY`
seconds (300) a snapshot is compared with the first one taken after `LOYALTY_HEAP_TRACE_AFTER`
seconds (120, past recovery and warm-up), and the source lines whose live memory grew most
since are appended to the file: a line that keeps climbing from report to report is the leak.
Tracing costs CPU (every allocation records its stack), so the traced worker is slower; it
keeps 8 frames per allocation, enough to get from a library's line to ours."""

from __future__ import annotations

import os
import sys
import threading
import time
import tracemalloc
from pathlib import Path

FRAMES = 8
TOP = 25


def report(first: tracemalloc.Snapshot, path: Path, started: float) -> None:
    now = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    grown = now.compare_to(first, "traceback")
    current, peak = tracemalloc.get_traced_memory()
    lines = [
        f"--- {time.monotonic() - started:.0f} s: traced {current / 2**20:.1f} MB "
        f"(peak {peak / 2**20:.1f} MB)"
    ]
    for stat in grown[:TOP]:
        # the allocating line, then the callers up to the first of ours (the whole stack
        # grouped: one line's allocations from two callers are two entries)
        frames = list(reversed(stat.traceback))  # innermost first
        shown = [frames[0]]
        for frame in frames[1:]:
            shown.append(frame)
            if "/streams/" in frame.filename:
                break
        where = " < ".join(f"{Path(f.filename).name}:{f.lineno}" for f in shown[:5])
        lines.append(
            f"{stat.size_diff / 2**10:+10.1f} KiB {stat.count_diff:+8d} blocks "
            f"{stat.size / 2**10:10.1f} KiB  {where}"
        )
    with path.open("a") as out:
        out.write("\n".join(lines) + "\n")


def watch(path: Path, after_s: float, every_s: float) -> None:
    started = time.monotonic()
    time.sleep(after_s)
    first = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    while True:
        time.sleep(every_s)
        report(first, path, started)


def main() -> None:
    path = Path(os.environ.get("LOYALTY_HEAP_TRACE", "heap-trace.txt"))
    after_s = float(os.environ.get("LOYALTY_HEAP_TRACE_AFTER", "120"))
    every_s = float(os.environ.get("LOYALTY_HEAP_TRACE_EVERY", "300"))
    tracemalloc.start(FRAMES)
    threading.Thread(target=watch, args=(path, after_s, every_s), daemon=True).start()
    from streams.cli import main as loyalty

    sys.argv = ["loyalty", "worker"]
    loyalty()


if __name__ == "__main__":
    main()
