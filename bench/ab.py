"""Side by side: the same measurements of two source trees, interleaved in one run.

    .venv/bin/python -m bench.ab BEFORE_ROOT AFTER_ROOT FILE [--rounds 3] [--parts fold,replay]

The machine is shared (2 cores, other people's jobs), so absolute figures drift by tens of
percent between minutes; a ratio of two trees measured alternately (A B A B ...) in fresh
processes does not, and each figure is per second of the process's own CPU time
(`time.process_time`), so time spent waiting for a core another job holds is not counted;
parse and fold take the best of three passes in each process. A root is a directory holding a
`streams` package (a `git archive` of a commit, or the working tree); each measurement imports
it first on the path.

Parts, each in events (rows) per second over FILE (a JSON Lines file of `loyalty simulate`):
- parse: `read_event_file` plus building the core's input events (what `read_events` does);
- fold: `apply` over those events in event-time order, cyclic GC paused, as replay folds;
- replay: `streams.tools.replay.replay` end to end (parse, sort, fold, advance, write states);
- replay_events: the same writing the output events too (`--events-out`).
Prints the median of each part per tree and AFTER/BEFORE; `--json` writes them too."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

# Runs inside a fresh interpreter with the tree under test first on sys.path.
_MEASURE = r"""
import gc, json, sys, tempfile, time
from pathlib import Path
from streams.contract.event_files import ParsedRow, read_event_file
from streams.core import INPUT_EVENTS, RuleViolation, apply, new_customer
from streams.program import load_program
from streams.settings import DEFAULT_RULES
from streams.tools.replay import parse_as_of, replay

part, path = sys.argv[1], Path(sys.argv[2])
program = load_program(DEFAULT_RULES)


def parse():
    events = []
    for row in read_event_file(path, currency=program.currency):
        if isinstance(row, ParsedRow):
            events.append(INPUT_EVENTS[row.schema_name](row.record))
    return events


gc.freeze()
gc.disable()
def fold(events):
    states = {}
    started = time.process_time()
    for event in events:
        state = states.get(event.customer_id) or new_customer(event.customer_id)
        try:
            state, _ = apply(state, event, program)
        except RuleViolation:
            continue
        states[event.customer_id] = state
    return time.process_time() - started


if part == "parse":
    seconds = float("inf")
    for _ in range(3):
        started = time.process_time()
        count = len(parse())
        seconds = min(seconds, time.process_time() - started)
elif part == "fold":
    events = parse()
    events.sort(key=lambda event: event.occurred_at)
    gc.freeze()
    seconds = min(fold(events) for _ in range(3))
    count = len(events)
else:
    gc.enable()
    gc.unfreeze()
    with tempfile.TemporaryDirectory() as scratch:
        started = time.process_time()
        events_out = Path(scratch) / "e.jsonl" if part == "replay_events" else None
        summary = replay(
            path,
            program,
            parse_as_of("2027-01-01"),
            Path(scratch) / "s.jsonl",
            events_out=events_out,
        )
        seconds = time.process_time() - started
    count = summary.rows
print(json.dumps({"eps": count / seconds}))
"""


def measure(root: Path, part: str, path: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(root)}
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, part, str(path)],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(json.loads(result.stdout.splitlines()[-1])["eps"])


def main(
    before: Path,
    after: Path,
    path: Path,
    rounds: Annotated[int, typer.Option()] = 3,
    parts: Annotated[str, typer.Option()] = "parse,fold,replay",
    json_out: Annotated[Path | None, typer.Option("--json")] = None,
) -> None:
    results: dict[str, dict[str, float]] = {}
    for part in parts.split(","):
        runs: dict[str, list[float]] = {"before": [], "after": []}
        for _ in range(rounds):
            runs["before"].append(measure(before, part, path))
            runs["after"].append(measure(after, part, path))
        medians = {name: statistics.median(values) for name, values in runs.items()}
        ratio = medians["after"] / medians["before"]
        results[part] = {**medians, "ratio": round(ratio, 3)}
        typer.echo(
            f"{part:7s} before {medians['before']:>9,.0f}/s  after {medians['after']:>9,.0f}/s"
            f"  x{ratio:.2f}  (runs before {[round(v) for v in runs['before']]}, "
            f"after {[round(v) for v in runs['after']]})"
        )
    typer.echo(f"load average {os.getloadavg()}")
    if json_out is not None:
        json_out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    typer.run(main)
