"""Time to build the program report (`loyalty report`) from a simulated history, beside
`loyalty replay` on the same file (the report's fold is replay's, plus monthly snapshots).

    .venv/bin/python -m bench.report [--events 1000000 --customers 50000]
    .venv/bin/python -m bench.report --screenshot docs/report.png   # the README's picture

Each command runs as its own process, as a user runs it; wall time and peak memory (RSS) per
command. Prints and writes `bench/results/report-latest.json` (not with --screenshot)."""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer

RESULTS = Path(__file__).parent / "results"


def _run(*args: str) -> dict[str, Any]:
    """One `loyalty` command in a child process: wall seconds, its output, peak RSS."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        capture_output=True, text=True, check=False, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"loyalty {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "command": "loyalty " + " ".join(args),
        "seconds": round(seconds, 1),
        # ru_maxrss of children is the largest of any child so far: exact for a new maximum
        "peak_rss_mib": round(peak / 1024) if peak > before else None,
        "output": result.stdout.strip().splitlines(),
    }


def _screenshot(html: Path, png: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        raise typer.BadParameter("chromium is missing: `make browser` installs it")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                f"--user-data-dir={profile}", "--virtual-time-budget=30000",
                "--window-size=1200,2600", f"--screenshot={png}", html.as_uri(),
            ],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip


def main(
    events: Annotated[int, typer.Option(help="simulated events")] = 1_000_000,
    customers: Annotated[int, typer.Option(help="simulated customers")] = 50_000,
    screenshot: Annotated[
        Path | None,
        typer.Option(help="instead: a report of 50,000 simulated events, its top as a PNG here"),
    ] = None,
) -> None:
    with tempfile.TemporaryDirectory() as work:
        directory = Path(work)
        history = directory / "events.jsonl"
        if screenshot is not None:
            _run("simulate", "--customers", "2000", "--events", "50000", "--out", str(history))
            page = directory / "report.html"
            _run("report", str(history), "--out", str(page))
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            _screenshot(page, screenshot)
            typer.echo(f"wrote {screenshot}")
            return
        simulated = _run(
            "simulate", "--customers", str(customers), "--events", str(events),
            "--out", str(history),
        )  # fmt: skip
        report = _run("report", str(history), "--out", str(directory / "report.html"))
        html_mib = (directory / "report.html").stat().st_size / 2**20
        # the same moment for replay: the report's default, the latest event
        as_of = json.loads(history.read_text().splitlines()[-1])["occurred_at"]
        replayed = _run(
            "replay", str(history), "--as-of", as_of, "--out", str(directory / "states.jsonl")
        )
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
        "events": events,
        "customers": customers,
        "simulate": simulated,
        "report": {**report, "html_mib": round(html_mib, 1)},
        "replay": replayed,
        "report_over_replay": round(report["seconds"] / replayed["seconds"], 2),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "report-latest.json").write_text(json.dumps(results, indent=2) + "\n")
    typer.echo(json.dumps(results, indent=2))


if __name__ == "__main__":
    typer.run(main)
