"""`--engine`: auto takes the native engine when built and says why when it takes Python;
native refuses what it cannot fold exactly rather than write something else."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from streams.cli import app
from streams.tools import replay_native
from streams.tools.replay import parse_as_of, replay
from tests.core.factories import REPO, program, program_with
from tests.native.engines import assert_engines_agree, replay_with

pytest.importorskip("loyalty_native")

ROWS = [
    {"type": "purchase", "event_id": "p1", "customer_id": "c-1",
     "occurred_at": "2025-01-06T10:00:00Z", "total_minor": 2500},
    {"type": "nps", "event_id": "n1", "customer_id": "c-1",
     "occurred_at": "2025-01-07T10:00:00Z", "score": 10},
]  # fmt: skip
AS_OF = parse_as_of("2025-03-01")


def write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_auto_takes_python_with_a_notice_when_the_extension_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = write(tmp_path / "events.jsonl", ROWS)
    expected = replay_with("python", events, program(), AS_OF, tmp_path / "python")
    monkeypatch.setattr(replay_native, "loyalty_native", None)
    notices: list[str] = []
    summary = replay(events, program(), AS_OF, tmp_path / "auto.jsonl", notice=notices.append)
    assert summary == expected.summary
    assert (tmp_path / "auto.jsonl").read_bytes() == expected.states
    assert len(notices) == 1 and "not built" in notices[0] and "Python engine" in notices[0]
    with pytest.raises(replay_native.NativeUnsupportedError, match="not built"):
        replay(events, program(), AS_OF, tmp_path / "native.jsonl", engine="native")


def test_rules_beyond_64_bits_are_refused_natively_and_folded_by_python(
    tmp_path: Path,
) -> None:
    # a file's numbers beyond an Avro long are row errors in both engines (the reader's,
    # streams/core/limits.py): a number the native engine cannot hold now comes only from
    # the rules
    top = program().tiers[-1]
    rules = program_with(tiers=(*program().tiers[:-1], replace(top, threshold_minor=2**70)))
    events = write(tmp_path / "events.jsonl", ROWS)
    with pytest.raises(replay_native.NativeUnsupportedError, match="tier_thresholds"):
        replay(events, rules, AS_OF, tmp_path / "native.jsonl", engine="native")
    notices: list[str] = []
    summary = replay(events, rules, AS_OF, tmp_path / "auto.jsonl", notice=notices.append)
    python = replay_with("python", events, rules, AS_OF, tmp_path / "python")
    assert summary == python.summary
    assert (tmp_path / "auto.jsonl").read_bytes() == python.states
    assert len(notices) == 1 and "tier_thresholds" in notices[0]


def test_a_number_beyond_64_bits_in_a_file_is_a_row_error_in_both_engines(
    tmp_path: Path,
) -> None:
    events = write(tmp_path / "events.jsonl", [*ROWS, {**ROWS[0], "event_id": "p2",
                                                        "total_minor": 2**70}])  # fmt: skip
    native = assert_engines_agree(events, program(), AS_OF, tmp_path)
    assert [problem.line for problem in native.summary.rejected_rows] == [3]


def test_a_sum_beyond_64_bits_is_refused_alike(tmp_path: Path) -> None:
    """Once an i64 overflow stopped the native fold; now the core's limit refuses the
    purchase that would take the lifetime spend past 2**63 - 1, in both engines."""
    big = 2**62
    rows = [{**ROWS[0], "event_id": f"p{n}", "total_minor": big} for n in range(3)]
    events = write(tmp_path / "events.jsonl", rows)
    native = assert_engines_agree(events, program(), AS_OF, tmp_path)
    assert len(native.summary.violations) == 2
    assert "lifetime spend past" in native.summary.violations[0].message


@pytest.mark.parametrize("engine", ["native", "python", "auto"])
def test_the_replay_command_takes_an_engine(engine: str, tmp_path: Path) -> None:
    events = write(tmp_path / "events.jsonl", ROWS)
    out = tmp_path / "states.jsonl"
    result = CliRunner().invoke(
        app,
        ["replay", str(events), "--rules", str(REPO / "loyalty-program.toml"),
         "--as-of", "2025-03-01", "--out", str(out), "--engine", engine],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "2 rows: 2 applied" in result.output
    assert "Python engine" not in result.output
    assert json.loads(out.read_text())["points"] == 25


def test_the_replay_command_refuses_an_unknown_engine(tmp_path: Path) -> None:
    events = write(tmp_path / "events.jsonl", ROWS)
    result = CliRunner().invoke(
        app,
        ["replay", str(events), "--as-of", "2025-03-01", "--out", str(tmp_path / "o.jsonl"),
         "--engine", "turbo"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "turbo" in result.output
