"""`loyalty worker` watched for what keeps growing in its Python heap, for a soak.

    LOYALTY_HEAP_TRACE=/tmp/heap.txt python -m bench.heap_trace      # the worker's settings
    python -m bench.soak --minutes 20 --trace-heap                   # worker-0 runs so

Python's own objects only (RocksDB's and librdkafka's memory is not seen: the soak's
`loyalty_store_memory_bytes` samples tell RocksDB's part). Every `LOYALTY_HEAP_TRACE_EVERY`
seconds (300) the heap is compared with the first look, taken `LOYALTY_HEAP_TRACE_AFTER`
seconds (120) after the start, past recovery and warm-up, and what grew most is appended to
the file: a line that keeps climbing from report to report is the leak.

Two ways of looking, by `LOYALTY_HEAP_TRACE_FRAMES`:
- 0 (the default): a census of the objects the garbage collector tracks, by type, with their
  shallow sizes (`sys.getsizeof`): nothing is paid between looks, so the worker keeps its
  pace; a list or dict that grows shows as its type's bytes growing.
- N > 0: tracemalloc keeping N frames per allocation, reported by allocating stack up to the
  first frame of ours. Exact, but every allocation pays for it: with 8 frames the soak's
  worker fell behind its 75 events/s."""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from pathlib import Path

TOP = 25


def census() -> tuple[Counter[str], Counter[str]]:
    """Objects the collector tracks, by type: how many, and their shallow bytes."""
    counts: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    for obj in gc.get_objects():
        kind = type(obj)
        name = f"{kind.__module__}.{kind.__qualname__}"
        counts[name] += 1
        # a type whose __sizeof__ needs arguments is counted, not sized
        with contextlib.suppress(TypeError):
            sizes[name] += sys.getsizeof(obj)
    return counts, sizes


def census_report(first: tuple[Counter[str], Counter[str]], started: float) -> list[str]:
    counts, sizes = census()
    grown = sorted(sizes, key=lambda name: sizes[name] - first[1].get(name, 0), reverse=True)
    lines = [
        f"--- {time.monotonic() - started:.0f} s: {sum(counts.values()):,} tracked objects, "
        f"{sum(sizes.values()) / 2**20:.1f} MB shallow"
    ]
    for name in grown[:TOP]:
        lines.append(
            f"{(sizes[name] - first[1].get(name, 0)) / 2**10:+10.1f} KiB "
            f"{counts[name] - first[0].get(name, 0):+9d} objects {sizes[name] / 2**10:10.1f} KiB"
            f"  {name}"
        )
    return lines


def snapshot() -> tracemalloc.Snapshot:
    return tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )


def tracemalloc_report(first: tracemalloc.Snapshot, started: float) -> list[str]:
    grown = snapshot().compare_to(first, "traceback")
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
    return lines


def watch(path: Path, after_s: float, every_s: float, traced: bool) -> None:
    started = time.monotonic()
    time.sleep(after_s)
    report: Callable[[], list[str]]
    if traced:
        first_snapshot = snapshot()
        report = lambda: tracemalloc_report(first_snapshot, started)  # noqa: E731
    else:
        first_census = census()
        report = lambda: census_report(first_census, started)  # noqa: E731
    while True:
        time.sleep(every_s)
        lines = report()
        with path.open("a") as out:
            out.write("\n".join(lines) + "\n")


def main() -> None:
    path = Path(os.environ.get("LOYALTY_HEAP_TRACE", "heap-trace.txt"))
    after_s = float(os.environ.get("LOYALTY_HEAP_TRACE_AFTER", "120"))
    every_s = float(os.environ.get("LOYALTY_HEAP_TRACE_EVERY", "300"))
    frames = int(os.environ.get("LOYALTY_HEAP_TRACE_FRAMES", "0"))
    if frames > 0:
        tracemalloc.start(frames)
    threading.Thread(target=watch, args=(path, after_s, every_s, frames > 0), daemon=True).start()
    from streams.cli import main as loyalty

    sys.argv = ["loyalty", "worker"]
    loyalty()


if __name__ == "__main__":
    main()
