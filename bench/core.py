"""Speed of the loyalty core: the pure fold, `loyalty replay` end to end, and state size.

    .venv/bin/python -m bench.core [--quick] [--events N] [--customers N]

On one simulated file (`streams.tools.simulate`, BG/NBD customers with baskets, returns, NPS
and complaints; 1M events, or 100k with --quick):
- fold_eps: `apply` per second over pre-built input events in event-time order (no parsing,
  no I/O), the duplicate check and churn scoring included; fold_eps_gc_paused: the same with
  cyclic GC paused, as `loyalty replay` folds (see `streams.tools.replay.gc_paused`);
- replay_eps: rows per second of `loyalty replay` on the Python engine (parse, sort, fold,
  advance to --as-of, write the states and, with --events-out, the output events), what
  marketing waits for; native_replay_eps: the same replay on the native engine (native/, the
  Rust extension), in the same run, with native_vs_python_replay their ratio and
  native_replay_identical whether the two wrote the same files byte for byte (states, output
  events) and the same summary. `*_cpu_eps`: the same rows per second of the process's CPU
  time, which other load on the machine does not stretch as it stretches wall time;
- state bytes: `state_to_bytes` of every customer at the end (mean, p95, max);
- next_due_us: the cost of the worker's due-index question after an event.
Prints and writes `bench/results/core-latest.json`."""

from __future__ import annotations

import filecmp
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

from streams.contract.event_files import EventFileWriter
from streams.core import (
    INPUT_EVENTS,
    CustomerState,
    InputEvent,
    Program,
    RuleViolation,
    apply,
    new_customer,
    next_due,
    state_to_bytes,
)
from streams.program import load_program
from streams.settings import DEFAULT_RULES
from streams.tools.replay import ReplaySummary, gc_paused, parse_as_of, replay
from streams.tools.replay_native import available as native_available
from streams.tools.simulate import SimulationConfig, simulate

RESULTS = Path(__file__).parent / "results"
AS_OF = "2027-01-01"


def fold(
    inputs: list[InputEvent], program: Program
) -> tuple[float, dict[str, CustomerState], int, int]:
    """Seconds to apply every event in order; the states, outputs and violations."""
    states: dict[str, CustomerState] = {}
    outputs = violations = 0
    started = time.perf_counter()
    for event in inputs:
        state = states.get(event.customer_id) or new_customer(event.customer_id)
        try:
            state, emitted = apply(state, event, program)
        except RuleViolation:
            violations += 1
            continue
        states[event.customer_id] = state
        outputs += len(emitted)
    return time.perf_counter() - started, states, outputs, violations


def timed_replay(
    engine: str, events: Path, program: Program, scratch: Path
) -> tuple[float, float, ReplaySummary, Path, Path]:
    """Wall and CPU seconds of one `loyalty replay --events-out` on an engine, its summary
    and the files it wrote."""
    out, events_out = scratch / f"states-{engine}.jsonl", scratch / f"outputs-{engine}.jsonl"
    wall, cpu = time.perf_counter(), time.process_time()
    summary = replay(
        events,
        program,
        parse_as_of(AS_OF),
        out,
        events_out=events_out,
        engine=engine,  # type: ignore[arg-type]
    )
    return time.perf_counter() - wall, time.process_time() - cpu, summary, out, events_out


def main(
    quick: Annotated[bool, typer.Option(help="100k events instead of 1M")] = False,
    events: Annotated[int | None, typer.Option(help="events to simulate")] = None,
    customers: Annotated[int | None, typer.Option(help="customers to simulate")] = None,
) -> None:
    events = events or (100_000 if quick else 1_000_000)
    customers = customers or max(1000, events // 20)
    program = load_program(DEFAULT_RULES)
    config = SimulationConfig(customers=customers, events=events, currency=program.currency)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "traffic.jsonl"
        inputs = []
        with EventFileWriter(path) as writer:
            for schema_name, record in simulate(config):
                writer.write(schema_name, record)
                inputs.append(INPUT_EVENTS[schema_name](record))
        inputs.sort(key=lambda event: event.occurred_at)

        fold_s, states, outputs, violations = fold(inputs, program)
        with gc_paused():
            fold_paused_s, *_ = fold(inputs, program)

        sample = list(states.values())[:: max(1, len(states) // 2000)]
        started = time.perf_counter()
        for state in sample:
            next_due(state, program)
        next_due_us = (time.perf_counter() - started) / len(sample) * 1e6

        sizes = sorted(len(state_to_bytes(state)) for state in states.values())

        replay_s, replay_cpu_s, summary, *python_files = timed_replay(
            "python", path, program, Path(scratch)
        )
        native: dict[str, object] = {"native_replay_eps": None}
        if native_available():
            native_s, native_cpu_s, native_summary, *native_files = timed_replay(
                "native", path, program, Path(scratch)
            )
            native = {
                "native_replay_eps": round(summary.rows / native_s),
                "native_replay_cpu_eps": round(summary.rows / native_cpu_s),
                "native_vs_python_replay": round(replay_s / native_s, 1),
                "native_vs_python_replay_cpu": round(replay_cpu_s / native_cpu_s, 1),
                "native_replay_identical": native_summary == summary
                and all(
                    filecmp.cmp(ours, theirs, shallow=False)
                    for ours, theirs in zip(native_files, python_files, strict=True)
                ),
            }

    result = {
        "events": events,
        "customers": len(states),
        "fold_eps": round(len(inputs) / fold_s),
        "fold_eps_gc_paused": round(len(inputs) / fold_paused_s),
        "fold_outputs": outputs,
        "fold_violations": violations,
        "replay_eps": round(summary.rows / replay_s),
        "replay_cpu_eps": round(summary.rows / replay_cpu_s),
        **native,
        "replay_as_of": AS_OF,
        "replay_outputs": sum(summary.outputs.values()),
        "state_bytes_mean": round(statistics.fmean(sizes), 1),
        "state_bytes_p95": sizes[int(0.95 * (len(sizes) - 1))],
        "state_bytes_max": sizes[-1],
        "next_due_us": round(next_due_us, 1),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "core-latest.json").write_text(json.dumps(result, indent=2) + "\n")
    typer.echo(json.dumps(result, indent=2))


if __name__ == "__main__":
    typer.run(main)
