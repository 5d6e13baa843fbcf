"""`loyalty churn fit` end to end: an event file in, the same fit as from visits counted
independently of the parser, only purchases making visits, and clear failures."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from streams.cli import churn
from streams.contract.event_files import EventFileWriter
from streams.tools.churn_fit import Histories, fit_bg_nbd
from streams.tools.simulate import SimulationConfig, simulate

runner = CliRunner()
REPO_RULES = Path(__file__).parents[2] / "loyalty-program.toml"


def churn_cli() -> typer.Typer:
    """A root app with the churn group mounted, as the program commands mount it."""
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        """loyalty"""

    churn.register(app)
    return app


def fit_json(*args: str) -> dict[str, float]:
    result = runner.invoke(churn_cli(), ["churn", "fit", *args, "--json", "--currency", "EUR"])
    assert result.exit_code == 0, result.output
    parsed: dict[str, float] = json.loads(result.stdout)
    return parsed


def histories_by_hand(path: Path, until: date) -> Histories:
    """Visits straight from the JSON lines, without the event-file parser."""
    days: dict[str, set[date]] = defaultdict(set)
    for text in path.read_text().splitlines():
        row = json.loads(text)
        if row["type"] == "purchase":
            day = date.fromisoformat(row["occurred_at"][:10])  # written in UTC ("...Z")
            if day <= until:
                days[row["customer_id"]].add(day)
    x, t_x, big_t = [], [], []
    for visits in days.values():
        x.append(len(visits) - 1)
        t_x.append((max(visits) - min(visits)).days / 7)
        big_t.append((until - min(visits)).days / 7)
    return Histories.of(x, t_x, big_t)


def test_fit_of_a_simulated_file_equals_the_fit_of_its_visits(tmp_path: Path) -> None:
    path = tmp_path / "traffic.jsonl"
    config = SimulationConfig(customers=1500, events=15_000, seed=11)
    with EventFileWriter(path) as writer:
        for schema_name, record in simulate(config):
            writer.write(schema_name, record)
    until = date(2025, 4, 20)  # inside the simulated span: later visits must not count
    reported = fit_json(str(path), "--until", until.isoformat(), "--unit", "weeks")
    expected = fit_bg_nbd(histories_by_hand(path, until), "weeks")
    assert list(reported) == ["r", "alpha", "a", "b", "log_likelihood", "customers"]
    assert reported["customers"] == expected.customers
    for name in ("r", "alpha", "a", "b", "log_likelihood"):
        assert reported[name] == pytest.approx(expected.as_json()[name], rel=1e-9)


def test_only_purchase_days_up_to_the_cut_off_are_visits(tmp_path: Path) -> None:
    def row(kind: str, customer: str, at: str, **fields: object) -> dict[str, object]:
        return {"type": kind, "customer_id": customer, "occurred_at": at, **fields}

    rows = [
        row("purchase", "ann", "2025-01-01T09:00:00Z", total="5.00"),
        row("purchase", "ann", "2025-01-01T18:00:00Z", total="2.00"),
        row("return", "ann", "2025-01-08T10:00:00Z", purchase_event_id="x"),
        row("purchase", "ann", "2025-01-15T23:59:59Z", total="5.00"),
        row("nps", "bob", "2025-01-02T10:00:00Z", score=9),
        row("purchase", "bob", "2025-01-29T10:00:00Z", total="1.00"),
        row("purchase", "cid", "2025-01-30T10:00:00Z", total="1.00"),
        row("purchase", "cid", "2025-02-03T10:00:00Z", total="1.00"),
        row("purchase", "dan", "2025-01-03T10:00:00Z", total="oops"),
    ]
    path = tmp_path / "few.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = runner.invoke(
        churn_cli(),
        ["churn", "fit", str(path), "--until", "2025-01-29", "--unit", "days", "--currency", "EUR"],
    )
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output and "line 9:" in result.output  # dan's bad total, by line
    assert "[churn.model]" in result.stdout and 'unit = "days"' in result.stdout
    # ann: visits 1 and 15 January (x = 1, t_x = 14, T = 28); bob: first bought on the
    # cut-off day (T = 0); cid: first visit after it, not a customer yet; dan: no valid row.
    expected = fit_bg_nbd(Histories.of([1, 0], [14.0, 0.0], [28.0, 0.0]), "days")
    assert f"over {expected.customers} customers, 1 of them with repeat visits" in result.stdout
    assert f"{expected.log_likelihood:.6f}" in result.stdout


def test_a_file_without_type_column_takes_type(tmp_path: Path) -> None:
    path = tmp_path / "pos.csv"
    path.write_text(
        "customer_id,occurred_at,total\n"
        "ann,20250101,3.50\nann,20250110,3.50\nbob,20250105,2.00\nbob,20250107,1.00\n"
    )
    reported = fit_json(str(path), "--until", "2025-01-20", "--type", "purchase", "--unit", "days")
    expected = fit_bg_nbd(Histories.of([1, 1], [9.0, 2.0], [19.0, 15.0]), "days")
    assert reported["customers"] == 2
    assert reported["log_likelihood"] == pytest.approx(expected.log_likelihood, rel=1e-9)


def test_no_fit_without_repeat_visits(tmp_path: Path) -> None:
    path = tmp_path / "once.csv"
    path.write_text("type,customer_id,occurred_at,total\npurchase,ann,2025-01-01,1.00\n")
    args = ["churn", "fit", str(path), "--until", "2025-02-01", "--currency", "EUR"]
    result = runner.invoke(churn_cli(), args)
    assert result.exit_code == 1
    assert "no customer has a repeat visit" in result.output


def test_bad_until_names_the_expected_form(tmp_path: Path) -> None:
    path = tmp_path / "once.csv"
    path.write_text("type,customer_id,occurred_at,total\npurchase,ann,2025-01-01,1.00\n")
    args = ["churn", "fit", str(path), "--until", "last tuesday", "--currency", "EUR"]
    result = runner.invoke(churn_cli(), args)
    assert result.exit_code == 2
    assert "2025-06-30" in result.output


def test_rows_without_currency_take_the_rules_files(tmp_path: Path) -> None:
    rules = tmp_path / "yen.toml"
    rules.write_text(REPO_RULES.read_text().replace('currency = "EUR"', 'currency = "JPY"'))
    path = tmp_path / "pos.csv"
    # Yen have no minor unit: 350.50 cannot be a yen amount, so that row is skipped.
    path.write_text(
        "type,customer_id,occurred_at,total\n"
        "purchase,ann,20250101,350\npurchase,ann,20250110,350.50\n"
        "purchase,bob,20250105,200\npurchase,bob,20250107,100\n"
    )
    args = ["churn", "fit", str(path), "--until", "2025-01-20", "--rules", str(rules), "--json"]
    result = runner.invoke(churn_cli(), args)
    assert result.exit_code == 0, result.output
    assert "line 3:" in result.output  # the header is line 1
    reported = json.loads(result.stdout)
    expected = fit_bg_nbd(Histories.of([0, 1], [0.0, 2 / 7], [19 / 7, 15 / 7]), "weeks")
    assert reported["log_likelihood"] == pytest.approx(expected.log_likelihood, rel=1e-9)
