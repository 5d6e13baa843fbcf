"""`loyalty replay` and `loyalty rules check`: event files through the core, states out."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from streams.cli import app
from streams.program import load_program
from streams.tools.replay import parse_as_of, replay

RULES = Path(__file__).resolve().parents[2] / "loyalty-program.toml"

# A return listed before its purchase in the file, but later in time; one row after --as-of.
CSV = """type,event_id,customer_id,occurred_at,total,purchase_event_id,amount,score,items
return,r1,alice,2025-03-02T10:00:00Z,,p2,100.00,,
purchase,p1,alice,2025-01-10T09:00:00Z,300.00,,,,
purchase,p2,alice,2025-03-01T18:30:00Z,300.00,,,,
nps,n1,alice,2025-03-05T12:00:00Z,,,,10,
purchase,p3,bob,2025-02-01T08:00:00Z,3.60,,,,"[{""sku"":""latte"",""category"":""coffee"",""quantity"":5,""unit_price"":0.72}]"
purchase,p4,bob,2025-12-01T08:00:00Z,9.99,,,,
nps,n2,carol,2025-02-01T08:00:00Z,,,,7,
purchase,late,alice,2026-06-01T08:00:00Z,5000.00,,,,
"""


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def events(tmp_path: Path) -> Path:
    path = tmp_path / "events.csv"
    path.write_text(CSV)
    return path


def test_replay_folds_in_event_time_order_and_writes_every_customer(
    events: Path, tmp_path: Path
) -> None:
    out = tmp_path / "states.jsonl"
    summary = replay(events, load_program(RULES), parse_as_of("2026-01-01"), out)
    states = {line["customer_id"]: line for line in lines(out)}
    assert list(states) == ["alice", "bob", "carol"]
    alice = states["alice"]
    # 300 + 300 crossed silver on p2; the return of 100.00 from p2 leaves 500.00: still silver
    assert (alice["tier"], alice["lifetime_spend_minor"], alice["rolling_spend_minor"]) == (
        "silver",
        50000,
        50000,
    )
    assert alice["points"] == 300 + 300 - 100
    assert (alice["visits"], alice["first_visit"], alice["last_visit"]) == (
        2,
        "2025-01-10",
        "2025-03-01",
    )
    assert (alice["stage"], alice["category"], alice["nps_class"]) == (
        "repeat",
        "occasional",
        "promoter",
    )
    assert alice["churn_level"] in {"none", "watch", "at_risk", "churned"}
    assert 0 <= alice["p_alive"] <= 1
    assert isinstance(alice["churn_reasons"], list)
    assert states["bob"]["punch_cards"] == {"coffee": 0}  # filled once, reward given
    assert (states["carol"]["stage"], states["carol"]["visits"]) == ("prospect", 0)
    assert summary.after_as_of == 1
    assert summary.applied == 7
    assert summary.outputs["RewardEarned"] == 1


def test_equal_times_keep_file_order(tmp_path: Path) -> None:
    path = tmp_path / "same-time.jsonl"
    rows = [
        {"type": "return", "event_id": "r1", "customer_id": "a", "occurred_at": "2025-01-01",
         "purchase_event_id": "p1"},
        {"type": "purchase", "event_id": "p1", "customer_id": "a", "occurred_at": "2025-01-01",
         "total": 10},
    ]  # fmt: skip
    path.write_text("\n".join(json.dumps(row) for row in rows))
    summary = replay(path, load_program(RULES), parse_as_of("2025-02-01"), tmp_path / "o.jsonl")
    # the return comes first in the file, so at the same moment it names an unknown purchase
    assert [(p.line, "unknown" in p.message) for p in summary.violations] == [(1, True)]
    path.write_text("\n".join(json.dumps(row) for row in reversed(rows)))
    summary = replay(path, load_program(RULES), parse_as_of("2025-02-01"), tmp_path / "o.jsonl")
    assert summary.violations == []
    assert lines(tmp_path / "o.jsonl")[0]["lifetime_spend_minor"] == 0


def test_output_events_are_written_and_the_same_on_every_replay(
    events: Path, tmp_path: Path
) -> None:
    program = load_program(RULES)
    first, second = tmp_path / "e1.jsonl", tmp_path / "e2.jsonl"
    as_of = parse_as_of("2027-01-01")
    replay(events, program, as_of, tmp_path / "s1.jsonl", events_out=first)
    replay(events, program, as_of, tmp_path / "s2.jsonl", events_out=second)
    assert first.read_text() == second.read_text()
    outputs = lines(first)
    kinds = {line["schema"] for line in outputs}
    assert {"loyalty.v1.TierChanged", "loyalty.v1.RewardEarned"} <= kinds
    assert all(line["rules_version"] == program.version for line in outputs)
    up = next(line for line in outputs if line["schema"] == "loyalty.v1.TierChanged")
    assert (up["customer_id"], up["new_tier"], up["caused_by"], up["topic"]) == (
        "alice",
        "silver",
        "p2",
        "tier_changes",
    )
    assert up["occurred_at"] == "2025-03-01T18:30:00Z"


def test_what_if_the_gold_threshold_were_lower(events: Path, tmp_path: Path) -> None:
    rules = tmp_path / "what-if.toml"
    lower = RULES.read_text().replace("threshold = 500", "threshold = 250")
    rules.write_text(lower.replace("threshold = 1500", "threshold = 450"))
    out = tmp_path / "states.jsonl"
    replay(events, load_program(rules), parse_as_of("2026-01-01"), out)
    assert lines(out)[0]["tier"] == "gold"


def test_files_without_a_type_column_take_the_type_flag(tmp_path: Path) -> None:
    path = tmp_path / "nps.csv"
    path.write_text("event_id,customer_id,occurred_at,score\nn1,a,20250101,3\n")
    out = tmp_path / "states.jsonl"
    replay(path, load_program(RULES), parse_as_of("2025-01-02"), out, default_type="nps")
    assert lines(out)[0]["nps_class"] == "detractor"


def test_as_of_is_a_date_at_midnight_utc_or_a_date_time() -> None:
    assert parse_as_of("2026-01-01") == datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_as_of("2026-01-01T12:30:00") == datetime(2026, 1, 1, 12, 30, tzinfo=UTC)
    assert parse_as_of("2026-01-01T12:30:00+02:00") == datetime(2026, 1, 1, 10, 30, tzinfo=UTC)
    with pytest.raises(ValueError, match="neither an ISO date"):
        parse_as_of("yesterday")


def test_the_replay_command(events: Path, tmp_path: Path) -> None:
    out, events_out = tmp_path / "states.jsonl", tmp_path / "events.jsonl"
    result = CliRunner().invoke(
        app,
        ["replay", str(events), "--rules", str(RULES), "--as-of", "2026-01-01",
         "--out", str(out), "--events-out", str(events_out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "8 rows: 7 applied" in result.output
    assert len(lines(out)) == 3
    assert lines(events_out)


def test_the_replay_command_refuses_a_bad_as_of(events: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["replay", str(events), "--as-of", "soon", "--out", str(tmp_path / "o.jsonl")]
    )
    assert result.exit_code == 2
    assert "neither an ISO date" in result.output


def test_rules_check_prints_the_program_or_names_the_bad_key(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["rules", "check", str(RULES)])
    assert result.exit_code == 0
    assert "Punch card coffee: buy 5" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text(RULES.read_text().replace("expiry_days = 365", "expiry_days = -1"))
    result = CliRunner().invoke(app, ["rules", "check", str(bad)])
    assert result.exit_code == 1
    assert "points.expiry_days: Input should be greater than or equal to 1" in result.output
