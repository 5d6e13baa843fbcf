"""Churn fit speed and accuracy, and the cost of the churn core per customer.

    .venv/bin/python -m bench.churn_fit [--customers 10000 --customers 100000] [--file-events N]

Prints and writes `bench/results/churn_fit-latest.json`:
- the fit from summaries, for customers simulated from DOMAIN.md's published parameters with
  continuous times (every history distinct) and on calendar days in weeks (histories repeat),
  with the recovered parameters;
- `loyalty churn fit` on a simulated event file end to end (read, count visits, fit);
- microseconds per `risk_score` and per `next_risk_change` call of the core."""

from __future__ import annotations

import json
import random
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from typer.testing import CliRunner

from streams.core.churn import (
    BgNbdParams,
    ChurnModel,
    RiskSignals,
    VisitHistory,
    next_level,
    next_risk_change,
    risk_score,
)
from streams.tools.churn_fit import Histories, fit_bg_nbd, simulate_histories

RESULTS = Path(__file__).parent / "results"
PUBLISHED = BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)


def _fit_case(customers: int, calendar_days: bool) -> dict[str, Any]:
    rng = np.random.default_rng(customers)
    ages = rng.uniform(20.0, 40.0, customers)
    if calendar_days:
        ages = np.floor(ages * 7) / 7
    histories = simulate_histories(PUBLISHED, ages, rng)
    if calendar_days:
        histories = Histories(histories.x, np.floor(histories.t_x * 7) / 7, histories.big_t)
    started = time.perf_counter()
    fit = fit_bg_nbd(histories, "weeks")
    elapsed = time.perf_counter() - started
    return {
        "customers": customers,
        "times": "calendar days" if calendar_days else "continuous",
        "fit_s": round(elapsed, 3),
        "recovered": {
            k: round(v, 4) for k, v in fit.as_json().items() if k in ("r", "alpha", "a", "b")
        },
        "converged": fit.converged,
    }


def _file_case(events: int) -> dict[str, Any]:
    from streams.cli import churn
    from streams.contract.event_files import EventFileWriter
    from streams.tools.simulate import SimulationConfig, simulate

    app = typer.Typer()

    @app.callback()
    def root() -> None:
        """bench"""

    churn.register(app)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "traffic.jsonl"
        last = None
        with EventFileWriter(path) as writer:
            for schema_name, record in simulate(SimulationConfig(events // 10, events)):
                writer.write(schema_name, record)
                last = record["occurred_at"]
        assert last is not None
        args = ["churn", "fit", str(path), "--until", last.date().isoformat(), "--unit", "days"]
        started = time.perf_counter()
        result = CliRunner().invoke(app, [*args, "--json", "--currency", "EUR"])
        elapsed = time.perf_counter() - started
    assert result.exit_code == 0, result.output
    fitted = json.loads(result.stdout)
    return {
        "events": events,
        "customers": fitted["customers"],
        "seconds": round(elapsed, 2),
        "rows_per_s": round(events / elapsed),
        "recovered_per_day": {k: round(fitted[k], 4) for k in ("r", "alpha", "a", "b")},
        "true_per_day": {"r": 1.2, "alpha": 12.0, "a": 0.9, "b": 8.0},
    }


def _core_case(calls: int) -> dict[str, float]:
    model = ChurnModel(PUBLISHED, unit="weeks")
    rng = random.Random(1)
    cases = []
    for _ in range(calls):
        visits = rng.randint(1, 40)
        first = date(2024, 1, 1) + timedelta(days=rng.randint(0, 300))
        last = first + timedelta(days=rng.randint(visits - 1, visits * 20) if visits > 1 else 0)
        signals = RiskSignals(rng.random() < 0.2, rng.random() < 0.1, rng.random() < 0.1)
        as_of = last + timedelta(days=rng.randint(0, 30))
        history = VisitHistory(visits, first, last)
        level = next_level("none", risk_score(history, signals, as_of, model).score)
        cases.append((level, history, signals, as_of))
    started = time.perf_counter()
    for _, history, signals, as_of in cases:
        risk_score(history, signals, as_of, model)
    per_score = (time.perf_counter() - started) / calls
    started = time.perf_counter()
    for level, history, signals, as_of in cases:
        next_risk_change(level, history, signals, as_of, model)
    per_change = (time.perf_counter() - started) / calls
    return {
        "risk_score_us": round(per_score * 1e6, 2),
        "next_risk_change_us": round(per_change * 1e6, 2),
    }


def main(
    customers: Annotated[list[int] | None, typer.Option()] = None,
    file_events: Annotated[int, typer.Option()] = 200_000,
) -> None:
    sizes = customers or [10_000, 100_000]
    result = {
        "true_weeks": {
            "r": PUBLISHED.r,
            "alpha": PUBLISHED.alpha,
            "a": PUBLISHED.a,
            "b": PUBLISHED.b,
        },
        "fit": [_fit_case(n, days) for n in sizes for days in (False, True)],
        "cli_file": _file_case(file_events),
        "core": _core_case(20_000),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "churn_fit-latest.json").write_text(json.dumps(result, indent=2) + "\n")
    typer.echo(json.dumps(result, indent=2))


if __name__ == "__main__":
    typer.run(main)
