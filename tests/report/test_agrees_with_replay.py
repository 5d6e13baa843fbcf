"""`loyalty report` and `loyalty replay` on the same simulated history: the report's "now"
figures are the replay lines' own, and its fold emits the same output events."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from streams.cli import app
from streams.contract.event_files import EventFileWriter
from streams.core import net_promoter_score
from streams.program import load_program
from streams.report.build import report_from_history
from streams.settings import DEFAULT_RULES
from streams.tools.replay import parse_as_of, replay
from streams.tools.simulate import SimulationConfig, simulate

PROGRAM = load_program(DEFAULT_RULES)
AS_OF = "2025-09-15T12:00:00Z"


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sim") / "events.jsonl"
    with EventFileWriter(path) as writer:
        for schema_name, record in simulate(SimulationConfig(customers=300, events=6000, seed=3)):
            writer.write(schema_name, record)
    return path


def test_report_numbers_agree_with_replay(events: Path, tmp_path: Path) -> None:
    as_of = parse_as_of(AS_OF)
    states = tmp_path / "states.jsonl"
    replayed = replay(events, PROGRAM, as_of, states)
    lines = [json.loads(line) for line in states.read_text().splitlines()]
    summary = report_from_history(events, PROGRAM, tmp_path / "report.html", as_of=as_of)
    figures = summary.figures

    assert summary.replay is not None
    assert summary.replay.outputs == replayed.outputs  # monthly checkpoints change no output
    assert (summary.replay.applied, summary.replay.after_as_of) == (
        replayed.applied, replayed.after_as_of,
    )  # fmt: skip
    assert figures.customers == len(lines)
    buyers = [line for line in lines if line["visits"] > 0]
    assert figures.pareto.buyers == len(buyers)
    assert figures.pareto.revenue_minor == sum(line["lifetime_spend_minor"] for line in buyers)
    assert figures.economics.liability_now == sum(line["points"] for line in lines)
    assert figures.activity.tiers_now.to_dict() == {
        name: sum(line["tier"] == name for line in lines) for name in PROGRAM.tier_names
    }
    scores = [line["nps_score"] for line in lines if line["nps_score"] is not None]
    assert figures.feedback.nps_now == pytest.approx(net_promoter_score(scores, PROGRAM))
    levels = Counter(line["churn_level"] for line in lines)
    assert figures.churn.by_level["customers"].to_dict() == {
        name: levels[name] for name in PROGRAM.churn_level_names
    }
    assert figures.cohorts.repeaters == sum(line["visits"] >= 2 for line in lines)
    assert figures.feedback.overdue_now == sum(line["overdue_complaints"] for line in lines)
    # the last monthly snapshot is the state as of the report's moment
    history_tiers = figures.activity.tiers_monthly
    assert history_tiers is not None
    assert history_tiers.iloc[-1].to_dict() == figures.activity.tiers_now.to_dict()


def test_cli_writes_the_report_with_progress_and_a_summary(events: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", str(events), "--out", str(out), "--as-of", AS_OF])
    assert result.exit_code == 0, result.output
    assert "6,000 rows" in result.output and f"wrote {out}" in result.output
    assert out.stat().st_size > 1_000_000  # plotly.js itself is inlined
    # neither a file nor --live; both
    assert CliRunner().invoke(app, ["report", "--out", str(out)]).exit_code == 2
    assert CliRunner().invoke(app, ["report", str(events), "--live"]).exit_code == 2
