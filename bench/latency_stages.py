"""Splits each input record's time in the worker into stages, from the trace lines that
`latency-trace.patch` makes a worker write (one per record applied: partition, source,
offset, LogAppendTime ms, then wall seconds received, released by the merge, done).

    python -m bench.latency_stages '/tmp/trace-*.txt'

Percentiles are `bench.latency`'s (nearest rank), as in its end-to-end figures."""

from __future__ import annotations

import glob
import sys
from collections.abc import Callable

from bench.latency import percentile

Row = tuple[int, int, float, float, float, float, int]  # partition, source, append .. done, sends


def read(pattern: str) -> list[Row]:
    rows = []
    for path in glob.glob(pattern):
        with open(path) as lines:
            for line in lines:
                partition, source, _offset, append_ms, received, released, done, sends, _id = (
                    line.split()
                )
                rows.append((int(partition), int(source), int(append_ms) / 1000, float(received),
                             float(released), float(done), int(sends)))  # fmt: skip
    return rows


def show(name: str, values: list[float]) -> None:
    p50, p90, p99 = (percentile(values, q) * 1000 for q in (0.5, 0.9, 0.99))
    print(f"{name:28s} n={len(values):6d} p50 {p50:7.1f}  p90 {p90:7.1f}  p99 {p99:7.1f}  "
          f"max {max(values) * 1000:7.1f} ms")  # fmt: skip


def main(pattern: str) -> None:
    rows = read(pattern)
    groups: list[tuple[str, Callable[[Row], bool]]] = [
        ("all", lambda row: True),
        ("with output", lambda row: row[6] > 0),
        ("purchases", lambda row: row[1] == 0),
        ("feedback", lambda row: row[1] == 1),
    ]
    for label, chosen in groups:
        selected = [row for row in rows if chosen(row)]
        if not selected:
            continue
        print(label)
        show("  append -> received", [row[3] - row[2] for row in selected])
        show("  received -> released", [row[4] - row[3] for row in selected])
        show("  released -> done", [row[5] - row[4] for row in selected])
        show("  append -> done", [row[5] - row[2] for row in selected])


if __name__ == "__main__":
    main(sys.argv[1])
