"""The report's figures on a history whose answers are known by hand (tests/report/handmade.py),
and the HTML carrying them."""

from __future__ import annotations

import html
import math
from pathlib import Path

import pytest

from streams.program import load_program
from streams.report.build import report_from_history
from streams.report.figures import Figures
from streams.settings import DEFAULT_RULES
from streams.tools.replay import parse_as_of
from tests.report import handmade

PROGRAM = load_program(DEFAULT_RULES)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Figures, str]:
    directory = tmp_path_factory.mktemp("handmade")
    out = directory / "report.html"
    summary = report_from_history(
        handmade.write(directory), PROGRAM, out, as_of=parse_as_of(handmade.AS_OF)
    )
    return summary.figures, html.unescape(out.read_text())


def test_revenue_concentration(built: tuple[Figures, str]) -> None:
    figures, page = built
    pareto = figures.pareto
    assert (pareto.buyers, pareto.revenue_minor, pareto.top_customers) == (7, 123_000, 2)
    assert pareto.top_share == pytest.approx(100_000 / 123_000)
    assert pareto.curve["revenue_share"].iloc[-1] == pytest.approx(1.0)
    assert "The top 20 % of customers (2 of 7 buyers) brought 81.3 % of net revenue" in page
    assert "EUR 1,230.00" in page


def test_cohort_retention_and_repeat_rate(built: tuple[Figures, str]) -> None:
    figures, page = built
    cohorts = figures.cohorts
    retention = cohorts.retention
    assert retention is not None
    assert retention.loc["2025-01", 0] == 1.0
    assert retention.loc["2025-01", 1] == 0.5  # a in February
    assert retention.loc["2025-01", 2] == 0.5  # b in March
    assert retention.loc["2025-02", 1] == 0.0
    assert math.isnan(retention.loc["2025-03", 1])  # not lived yet: blank, not 0 %
    assert retention.loc["2024-01", 1:].fillna(0).sum() == 0.0
    assert (cohorts.buyers, cohorts.repeaters) == (7, 2)
    assert cohorts.repeat_rate == pytest.approx(2 / 7)
    assert cohorts.sizes.to_dict() == {"2024-01": 1, "2025-01": 2, "2025-02": 2, "2025-03": 2}
    assert "Cohort 2025-01 (2 customers, the largest): 50.0 % bought again the month after" in page
    assert "Repeat-purchase rate: 28.6 % of buyers (2 of 7)" in page


def test_nps_now_and_by_month(built: tuple[Figures, str]) -> None:
    figures, page = built
    feedback = figures.feedback
    assert feedback.nps_now == pytest.approx(25.0)
    assert feedback.classes_now.to_dict() == {"promoter": 2, "passive": 1, "detractor": 1}
    monthly = feedback.nps_monthly
    assert monthly is not None
    assert monthly.loc["2025-01", ["promoters", "answers", "nps"]].tolist() == [1, 1, 100.0]
    assert monthly.loc["2025-03", "nps"] == pytest.approx(25.0)
    assert "NPS now +25.0 over 4 customers' latest answers: 2 promoters, 1 passives" in page


def test_complaints(built: tuple[Figures, str]) -> None:
    figures, page = built
    feedback = figures.feedback
    monthly = feedback.complaints_monthly
    assert monthly is not None
    assert monthly.loc["2025-03", ["opened", "resolved", "overdue"]].tolist() == [3, 2, 2]
    assert feedback.median_hours_to_resolve == pytest.approx(60.0)
    assert (feedback.open_now, feedback.overdue_now) == (1, 1)
    assert "3 complaints opened, 2 resolved, 2 overdue; median time to resolve 60.0 h" in page
    assert "Open complaints now: 1, of which 1 overdue (SLA 48 h)" in page


def test_points_liability_and_breakage(built: tuple[Figures, str]) -> None:
    figures, page = built
    economics = figures.economics
    assert economics.liability_now == 1220
    monthly = economics.monthly
    assert monthly is not None
    assert monthly.loc["2025-01", "liability"] == 400
    assert monthly.loc["2025-01", "expired"] == 10
    assert monthly.loc["2025-02", ["liability", "earned"]].tolist() == [550, 150]
    assert monthly.loc["2025-03", "liability"] == 1220
    assert int(monthly["earned"].sum()) == 1230
    assert economics.breakage == pytest.approx(10 / 1230)
    assert "Points outstanding now (the liability): 1,220 points" in page
    assert "10 of 1,230 points earned have lapsed: breakage 0.8 %" in page


def test_tiers_stages_and_moves(built: tuple[Figures, str]) -> None:
    figures, page = built
    activity = figures.activity
    assert activity.tiers_monthly is not None and activity.stages_monthly is not None
    assert activity.tiers_monthly.loc["2025-03"].to_dict() == {
        "member": 7, "silver": 1, "gold": 0, "platinum": 0,
    }  # fmt: skip
    assert activity.tiers_monthly.loc["2025-02", "silver"] == 0
    stages = activity.stages_monthly.loc["2025-03"]
    assert stages[["prospect", "first_purchase", "repeat"]].tolist() == [1, 5, 2]
    assert activity.tier_moves is not None
    assert activity.tier_moves.loc["2025-03"].tolist() == [1, 0]
    assert int(activity.tier_moves["down"].sum()) == 0
    monthly = activity.monthly
    assert monthly is not None
    # March: e 20.00, b 50.00, h 600.00 on three receipts
    assert monthly.loc["2025-03", ["receipts", "revenue_minor", "active_customers"]].tolist() == [
        3, 67_000, 3,
    ]  # fmt: skip
    assert "At the end of 2025-03: member 7 (87.5 %), silver 1 (12.5 %)" in page
    assert "1 moves up and 0 down in all" in page


def test_churn_and_value_sections_cover_every_buyer(built: tuple[Figures, str]) -> None:
    figures, page = built
    assert int(figures.churn.p_alive_histogram["customers"].sum()) == 7
    assert int(figures.churn.by_level["customers"].sum()) == 8
    value = figures.lifetime_value
    assert value is not None
    assert len(value.per_customer) == 7
    assert (value.per_customer["expected_purchases"] >= 0).all()
    assert "Expected value of the next 12 months" in page


def test_every_section_and_chart_is_on_the_page(built: tuple[Figures, str]) -> None:
    _, page = built
    for section in ("revenue", "cohorts", "activity", "feedback", "churn", "clv", "economics"):
        assert f'<section id="{section}">' in page
    for chart in (
        "chart-pareto", "chart-cohorts", "chart-repeat", "chart-check", "chart-tiers",
        "chart-stages", "chart-tier-moves", "chart-nps", "chart-complaints", "chart-p-alive",
        "chart-churn-levels", "chart-clv", "chart-liability", "chart-rewards",
    ):  # fmt: skip
        assert f'data-for="{chart}"' in page, chart
    # offline: plotly.js is inlined, no script or style is fetched
    assert "<script src=" not in page and "<link " not in page
    assert "Plotly.newPlot" in page


def test_month_starts_cover_every_month_after_the_first_up_to_as_of(tmp_path: Path) -> None:
    from streams.report.history import month_starts

    moments = month_starts(parse_as_of("2024-11-15"), parse_as_of("2025-02-01"))
    assert [m.isoformat()[:10] for m in moments] == ["2024-12-01", "2025-01-01", "2025-02-01"]


def test_the_report_does_not_load_the_worker() -> None:
    """Figures, charts and the page are pure over frames: no Faust, no worker, no Kafka."""
    import subprocess
    import sys

    code = (
        "import sys, streams.report.build, streams.report.figures, streams.report.charts;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('faust', 'aiokafka', "
        "'confluent_kafka') or m.startswith('streams.worker')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_a_history_of_purchases_only_still_makes_every_section(tmp_path: Path) -> None:
    events = tmp_path / "purchases.csv"
    events.write_text(
        "type,event_id,customer_id,occurred_at,total\n"
        "purchase,p1,a,2025-01-05T10:00:00Z,10.00\n"
        "purchase,p2,b,2025-02-05T10:00:00Z,20.00\n"
    )
    out = tmp_path / "report.html"
    summary = report_from_history(events, PROGRAM, out, as_of=parse_as_of("2025-02-10"))
    assert summary.figures.feedback.nps_now is None
    assert summary.figures.pareto.top_share == pytest.approx(2 / 3)  # b, the top 1 of 2
    page = out.read_text()
    assert "NPS now n/a over 0 customers" in page
    assert "No complaint was opened in this history." in page
    assert "current state only" not in page  # that is the live report's note


def test_nothing_before_as_of_is_an_error_in_words(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from streams.cli import app

    events = tmp_path / "events.csv"
    events.write_text(
        "type,event_id,customer_id,occurred_at,total\npurchase,p1,a,2025-01-05T10:00:00Z,10.00\n"
    )
    result = CliRunner().invoke(
        app, ["report", str(events), "--as-of", "2024-01-01", "--out", str(tmp_path / "r.html")]
    )
    assert result.exit_code == 2
    assert "nothing to report" in result.output
