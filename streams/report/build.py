"""`loyalty report`: from a history file or from the live workers to one HTML file."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from streams.core import Program
from streams.report import charts, page
from streams.report.figures import Figures, ReportInput, compute
from streams.report.history import ProgressFactory, fold_history
from streams.report.live import LiveReadError, read_live
from streams.tools.replay import ReplaySummary

TITLE = "Loyalty program report"
HISTORY_NOTE = (
    "From an event history folded through the loyalty rules (the same fold as "
    "`loyalty replay`): every section shows the months of the history and the state at the end."
)
LIVE_NOTE = (
    "From the running workers' API: the current state of every customer. Sections that need "
    "history (cohort retention, months, tier moves, expiry, rewards over time) show the state "
    "now only; build the report from the event history for those."
)


@dataclass
class ReportSummary:
    out: Path
    figures: Figures
    seconds: dict[str, float] = field(default_factory=dict)  # per phase
    replay: ReplaySummary | None = None
    mismatches: list[str] = field(default_factory=list)  # live: /stats vs pages

    def describe(self) -> str:
        phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.seconds.items())
        text = f"wrote {self.out} ({self.figures.customers:,} customers; {phases})"
        if self.replay is not None:
            text = self.replay.describe() + "\n" + text
        for mismatch in self.mismatches:
            text += f"\nwarning: the workers' /stats and pages differ: {mismatch}"
        return text


def write_report(report: ReportInput, out: Path, note: str) -> tuple[Figures, float, float]:
    started = time.monotonic()
    figures = compute(report)
    computed = time.monotonic()
    html = page.render(
        charts.sections(figures),
        title=TITLE,
        as_of=report.as_of,
        source=report.source,
        customers=len(report.customers),
        mode_note=note,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return figures, computed - started, time.monotonic() - computed


def report_from_history(
    events: Path,
    program: Program,
    out: Path,
    *,
    as_of: datetime | None = None,
    default_type: str | None = None,
    progress: ProgressFactory | None = None,
    token: str | None = None,
) -> ReportSummary:
    started = time.monotonic()
    folded = fold_history(events, program, as_of, default_type=default_type, progress=progress)
    folding = time.monotonic() - started
    if folded.customers.empty:
        raise ValueError(f"no event of {events} is on or before {folded.as_of}: nothing to report")
    report = ReportInput(program, folded.as_of, folded.customers, folded.history, str(events.name))
    figures, computing, rendering = write_report(report, out, HISTORY_NOTE)
    return ReportSummary(
        out,
        figures,
        {"reading and folding": folding, "figures": computing, "charts and page": rendering},
        replay=folded.summary,
    )


def report_from_workers(
    workers: list[str],
    partitions: int,
    program: Program,
    out: Path,
    *,
    as_of: datetime | None = None,
    progress: ProgressFactory | None = None,
    token: str | None = None,
) -> ReportSummary:
    started = time.monotonic()
    if progress is None:
        live = read_live(workers, partitions, as_of, token=token)
    else:
        with progress("reading the workers", None) as advance:
            live = read_live(workers, partitions, as_of, advance, token)
    reading = time.monotonic() - started
    if live.customers.empty:
        raise LiveReadError(f"the workers at {', '.join(workers)} hold no customer yet")
    source = "the live workers at " + ", ".join(workers)
    report = ReportInput(program, live.as_of, live.customers, None, source)
    figures, computing, rendering = write_report(report, out, LIVE_NOTE)
    return ReportSummary(
        out,
        figures,
        {"reading the workers": reading, "figures": computing, "charts and page": rendering},
        mismatches=live.mismatches,
    )
