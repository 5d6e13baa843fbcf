"""The native replay engine writes what the Python engine writes: random event histories of
several customers (the core's property streams), rows in every form the file reader takes
(and wrong ones), three programs, CSV, JSON Lines and gzip; and a simulated file of 20,000
events. Skipped only where the extension is not built (`make install` builds it)."""

from __future__ import annotations

import dataclasses
import gzip
import json
import tempfile
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.contract.event_files import EventFileWriter
from streams.core import InputEvent, Program, PunchCard
from streams.core.churn import BgNbdParams, ChurnModel, RiskLevel, RiskLevels, RiskWeights
from streams.core.events import to_ms
from streams.tools.replay import parse_as_of
from streams.tools.simulate import SimulationConfig, simulate
from tests.core.factories import program, program_with
from tests.core.test_properties import event_streams
from tests.native.engines import assert_engines_agree, row_of

pytest.importorskip("loyalty_native")

# ids that JSON escapes (non-ASCII, a line separator, a character beyond the BMP)
CUSTOMER_IDS = ["c-1", "c-2", "Zoë", "c\u2028x", "\U0001d520-5", 'q"\\']


def _programs() -> list[Program]:
    shipped = program()
    return [
        shipped,
        # days as the churn unit, two levels, a cadence from one repeat visit
        program_with(
            churn=ChurnModel(
                BgNbdParams(r=0.5, alpha=9.0, a=0.4, b=3.1),
                unit="days",
                levels=RiskLevels(
                    base="calm",
                    above=(RiskLevel("watch", 0.3, 0.2), RiskLevel("gone", 0.6, 0.5)),
                ),
                weights=RiskWeights(gap_min_repeat_visits=1, gap_cadence_factor=1.5),
            )
        ),
        # short windows, two cards on one category, recovery from silver
        program_with(
            punch_cards=(PunchCard("coffee", 5), PunchCard("coffee", 2)),
            points_expiry_days=60,
            return_window_days=30,
            requalification_days=90,
            downgrade_warning_days=20,
            qualification_window_days=60,
            complaint_sla_hours=5,
            service_recovery_from_tier="silver",
            recent_receipts=2,
        ),
    ]


PROGRAMS = _programs()

# rows the fast reader hands to Python (or that are wrong), written in place of a plain row
VARIANTS = ["plain"] * 8 + [
    "decimal",
    "spaced",
    "no_event_id",
    "epoch_ms",
    "yyyymmdd",
    "null_fields",
    "extra_field",
    "unit_price",
    "lower_currency",
    "foreign_currency",
    "negative",
]
JUNK = [
    "not json",
    "[1, 2]",
    '{"type": "purchase"}',
    '{"type": "refund", "event_id": "x", "customer_id": "c-1"}',
    '{"type": "nps", "event_id": "n", "customer_id": "c-1", '
    '"occurred_at": "2025-01-06T10:00:00Z", "score": 11}',
    '{"type": "nps", "event_id": "n", "customer_id": "c-1", '
    '"occurred_at": "2025-02-30T10:00:00Z", "score": 3}',
    "   ",
    "\ufeff",
    "",
]


def _variant(row: dict[str, Any], variant: str) -> dict[str, Any]:
    row = dict(row)
    if variant == "decimal":
        for name in ("total", "amount"):
            if f"{name}_minor" in row:
                row[name] = str(Decimal(row.pop(f"{name}_minor")) / 100)
    elif variant == "spaced":
        row["type"] = f" {row['type']} "
        row["customer_id"] = f"\t{row['customer_id']} "
    elif variant == "no_event_id":
        row.pop("event_id")
    elif variant == "epoch_ms":
        row["occurred_at"] = to_ms(datetime.fromisoformat(row["occurred_at"]))
    elif variant == "yyyymmdd":
        row["occurred_at"] = row["occurred_at"][:10].replace("-", "")
    elif variant == "null_fields":
        row.update(store_id=None, comment=None, total=None, amount=None, items=None)
    elif variant == "extra_field":
        row["note"] = {"nested": [1, 2.5, None]}
    elif variant == "unit_price":
        for item in row.get("items", []):
            item["unit_price"] = str(Decimal(item.pop("unit_price_minor")) / 100)
    elif variant == "lower_currency":
        row["currency"] = "eur"
    elif variant == "foreign_currency":
        row["currency"] = "USD"
    elif variant == "negative":
        for name in ("total_minor", "amount_minor"):
            if name in row:
                row[name] = -row[name] - 1
    return row


@st.composite
def histories(draw: st.DrawFn) -> list[InputEvent]:
    """Several customers' streams, interleaved, some events delivered twice, times to the ms."""
    customers = draw(st.lists(st.sampled_from(CUSTOMER_IDS), min_size=1, max_size=4, unique=True))
    events: list[InputEvent] = []
    for customer_id in customers:
        shift = timedelta(days=draw(st.integers(0, 40)), milliseconds=draw(st.integers(0, 999)))
        events.extend(
            dataclasses.replace(
                event, customer_id=customer_id, occurred_at=event.occurred_at + shift
            )
            for event in draw(event_streams())
        )
    events.extend(draw(st.lists(st.sampled_from(events), max_size=4)))
    return list(draw(st.permutations(events)))


def _write(
    path: Path, events: list[InputEvent], variants: list[str], junk: list[tuple[int, str]]
) -> None:
    if path.suffix == ".csv":
        with EventFileWriter(path) as writer:
            for event in events:
                row = row_of(event)
                writer.write(_schema(row["type"]), _record(row))
        return
    lines = [
        json.dumps(_variant(row_of(event), v)) for event, v in zip(events, variants, strict=True)
    ]
    for position, text in junk:
        lines.insert(position % (len(lines) + 1), text)
    crlf = len(junk) % 2 == 1
    data = ("\r\n" if crlf else "\n").join(lines).encode() + b"\n"
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def _schema(kind: str) -> str:
    from streams.contract.event_files import INPUT_KINDS

    return INPUT_KINDS[kind].schema_name


def _record(row: dict[str, Any]) -> dict[str, Any]:
    record = {name: value for name, value in row.items() if name != "type"}
    record["occurred_at"] = datetime.fromisoformat(row["occurred_at"])
    return record


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    events=histories(),
    data=st.data(),
    prog=st.sampled_from(PROGRAMS),
    suffix=st.sampled_from([".jsonl", ".jsonl", ".jsonl", ".jsonl.gz", ".csv"]),
    later_minutes=st.integers(-5 * 1440, 800 * 1440),
    micros=st.integers(0, 999_999),
)
def test_random_histories_give_the_same_files(
    events: list[InputEvent],
    data: st.DataObject,
    prog: Program,
    suffix: str,
    later_minutes: int,
    micros: int,
) -> None:
    variants = [data.draw(st.sampled_from(VARIANTS)) for _ in events]
    junk = data.draw(st.lists(st.tuples(st.integers(0, 200), st.sampled_from(JUNK)), max_size=3))
    last = max(event.occurred_at for event in events)
    as_of = last + timedelta(minutes=later_minutes, microseconds=micros)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / f"events{suffix}"
        _write(path, events, variants, junk)
        assert_engines_agree(path, prog, as_of, Path(scratch))


def _simulated(path: Path, events: int, customers: int) -> None:
    config = SimulationConfig(customers=customers, events=events, currency=program().currency)
    with EventFileWriter(path) as writer:
        for schema_name, record in simulate(config):
            writer.write(schema_name, record)


@pytest.mark.parametrize("as_of", ["2027-01-01", "2025-06-01T12:30:00.123456Z"])
def test_a_simulated_file_of_20k_events_gives_the_same_files(as_of: str, tmp_path: Path) -> None:
    events = tmp_path / "traffic.jsonl"
    _simulated(events, 20_000, 1_000)
    native = assert_engines_agree(events, program(), parse_as_of(as_of), tmp_path)
    assert native.summary.rows == 20_000
    assert native.summary.customers > 500
    assert sum(native.summary.outputs.values()) > 1_000


def test_a_simulated_csv_file_gives_the_same_files(tmp_path: Path) -> None:
    events = tmp_path / "traffic.csv"
    _simulated(events, 3_000, 200)
    assert_engines_agree(events, PROGRAMS[2], parse_as_of("2026-03-01"), tmp_path)


def test_a_file_without_a_type_column_takes_the_default_type(tmp_path: Path) -> None:
    events = tmp_path / "nps.jsonl"
    events.write_text(
        '{"event_id": "n1", "customer_id": "c-1", "occurred_at": "2025-01-06T10:00:00Z", '
        '"score": 3}\n'
        '{"event_id": "n2", "customer_id": "c-2", "occurred_at": "2025-01-07T10:00:00.5Z", '
        '"score": 9}\n'
    )
    native = assert_engines_agree(events, program(), parse_as_of("2025-02-01"), tmp_path, "nps")
    assert native.summary.applied == 2
