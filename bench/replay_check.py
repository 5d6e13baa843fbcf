"""Same bytes before and after an optimisation: `loyalty replay`'s STATES.jsonl and events
output on a simulated file, compared byte for byte with a reference run.

    .venv/bin/python -m bench.replay_check simulate FILE [--events N] [--customers N]
    .venv/bin/python -m bench.replay_check run FILE OUT_DIR [--as-of DATE]
    .venv/bin/python -m bench.replay_check compare REFERENCE_DIR OUT_DIR

`run` writes OUT_DIR/states.jsonl, OUT_DIR/events.jsonl and OUT_DIR/summary.txt (the replay
summary in words) and prints their SHA-256 and the rows/s; `compare` exits 1 on the first
difference, naming the file and line. Take the reference with the code before a change
(`git stash` is not ours to use in a shared tree: a `git worktree` of the old commit works)."""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from streams.contract.event_files import EventFileWriter
from streams.program import load_program
from streams.settings import DEFAULT_RULES
from streams.tools.replay import parse_as_of, replay
from streams.tools.simulate import SimulationConfig, simulate

OUTPUTS = ("states.jsonl", "events.jsonl", "summary.txt")
app = typer.Typer(add_completion=False)


@app.command("simulate")
def simulate_file(
    path: Path,
    events: Annotated[int, typer.Option()] = 1_000_000,
    customers: Annotated[int | None, typer.Option()] = None,
) -> None:
    program = load_program(DEFAULT_RULES)
    config = SimulationConfig(
        customers=customers or max(1000, events // 20), events=events, currency=program.currency
    )
    with EventFileWriter(path) as writer:
        for schema_name, record in simulate(config):
            writer.write(schema_name, record)
    typer.echo(f"{path}: {events:,} events")


@app.command("run")
def run(
    path: Path,
    out_dir: Path,
    as_of: Annotated[str, typer.Option()] = "2027-01-01",
) -> None:
    program = load_program(DEFAULT_RULES)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    summary = replay(
        path,
        program,
        parse_as_of(as_of),
        out_dir / "states.jsonl",
        events_out=out_dir / "events.jsonl",
    )
    seconds = time.perf_counter() - started
    lines = [summary.describe()]
    lines += [f"rejected {problem}" for problem in summary.rejected_rows]
    lines += [f"violation {problem}" for problem in summary.violations]
    (out_dir / "summary.txt").write_text("\n".join(lines) + "\n")
    for name in OUTPUTS:
        digest = hashlib.sha256((out_dir / name).read_bytes()).hexdigest()
        typer.echo(f"{digest}  {name}")
    typer.echo(f"{summary.rows / seconds:,.0f} rows/s ({seconds:.1f} s, events output included)")


@app.command("compare")
def compare(reference_dir: Path, out_dir: Path) -> None:
    for name in OUTPUTS:
        expected = (reference_dir / name).read_bytes()
        actual = (out_dir / name).read_bytes()
        if expected == actual:
            typer.echo(f"same: {name} ({len(actual):,} bytes)")
            continue
        for number, (left, right) in enumerate(
            zip(expected.splitlines(), actual.splitlines(), strict=False), start=1
        ):
            if left != right:
                typer.echo(f"DIFFERENT: {name} line {number}\n  was {left!r}\n  now {right!r}")
                break
        else:
            typer.echo(f"DIFFERENT: {name}: {len(expected):,} bytes, now {len(actual):,}")
        sys.exit(1)


if __name__ == "__main__":
    app()
