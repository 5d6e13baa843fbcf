import gzip
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.contract.event_files import (
    INPUT_KINDS,
    EventFileWriter,
    ParsedRow,
    RowError,
    count_rows,
    parse_occurred_at,
    read_event_file,
)
from streams.contract.money import MoneyError, format_minor_units, to_minor_units
from streams.contract.topics import INPUT_SCHEMAS


def rows_of(path: Path, **kwargs: object) -> list[ParsedRow | RowError]:
    return list(read_event_file(path, currency="EUR", **kwargs))  # type: ignore[arg-type]


def parsed(path: Path) -> list[ParsedRow]:
    rows = rows_of(path)
    assert all(isinstance(row, ParsedRow) for row in rows), rows
    return [row for row in rows if isinstance(row, ParsedRow)]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_minimal_csv_purchase_gets_defaults_and_exact_money(tmp_path: Path) -> None:
    path = write(
        tmp_path / "p.csv", "type,customer_id,occurred_at,total\npurchase,c1,20250301,11.77\n"
    )
    [row] = rows_of(path)
    assert isinstance(row, ParsedRow)
    assert row.line == 2
    assert row.schema_name == "loyalty.v1.Purchase"
    assert row.record["total_minor"] == 1177
    assert row.record["currency"] == "EUR"
    assert row.record["store_id"] is None
    assert row.record["items"] == []
    assert row.record["occurred_at"] == datetime(2025, 3, 1, tzinfo=UTC)
    assert row.record["event_id"].startswith("file-")


def test_every_input_kind_is_an_input_schema_of_the_contract() -> None:
    assert {kind.schema_name for kind in INPUT_KINDS.values()} == set(INPUT_SCHEMAS)


def test_every_kind_from_json_lines(tmp_path: Path) -> None:
    lines = [
        {"type": "purchase", "event_id": "p1", "customer_id": "c1", "store_id": "s1",
         "occurred_at": "2025-03-01T10:15:00Z", "total": 12.5, "currency": "eur",
         "items": [{"sku": "espresso", "category": "coffee", "quantity": 2, "unit_price": "2.50"},
                   {"sku": "cake", "category": "bakery", "unit_price_minor": 750}]},
        {"type": "return", "event_id": "r1", "customer_id": "c1",
         "occurred_at": "2025-03-02T09:00:00+01:00", "purchase_event_id": "p1", "amount": "5"},
        {"type": "return", "event_id": "r2", "customer_id": "c1",
         "occurred_at": "2025-03-03", "purchase_event_id": "p1"},
        {"type": "nps", "event_id": "n1", "customer_id": "c1", "occurred_at": 1740823200000,
         "score": 9, "comment": "great"},
        {"type": "complaint_opened", "event_id": "k1", "customer_id": "c1",
         "occurred_at": "2025-03-04T00:00:00Z", "complaint_id": "K-7", "reason": "cold coffee"},
        {"type": "complaint_resolved", "event_id": "k2", "customer_id": "c1",
         "occurred_at": "2025-03-05T00:00:00Z", "complaint_id": "K-7"},
    ]  # fmt: skip
    path = write(tmp_path / "e.jsonl", "\n".join(json.dumps(line) for line in lines) + "\n")
    rows = rows_of(path)
    assert all(isinstance(row, ParsedRow) for row in rows)
    purchase, full_return, partial_return, nps, opened, resolved = rows
    assert isinstance(purchase, ParsedRow)
    assert purchase.record["currency"] == "EUR"
    assert purchase.record["total_minor"] == 1250
    assert purchase.record["items"] == [
        {"sku": "espresso", "category": "coffee", "quantity": 2, "unit_price_minor": 250},
        {"sku": "cake", "category": "bakery", "quantity": 1, "unit_price_minor": 750},
    ]
    assert isinstance(full_return, ParsedRow) and isinstance(partial_return, ParsedRow)
    assert full_return.record["amount_minor"] == 500
    assert full_return.record["occurred_at"] == datetime(2025, 3, 2, 8, 0, tzinfo=UTC)
    assert partial_return.record["amount_minor"] is None
    assert isinstance(nps, ParsedRow) and nps.record["score"] == 9
    assert nps.record["occurred_at"] == datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
    assert isinstance(opened, ParsedRow) and opened.kind.name == "complaint_opened"
    assert isinstance(resolved, ParsedRow) and resolved.record["resolution"] is None


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("purchase,,20250301,1.00", "customer_id is missing"),
        ("purchase,c1,,1.00", "occurred_at is missing"),
        ("purchase,c1,2025-13-45,1.00", "neither ISO-8601"),
        ("purchase,c1,20250301,", "total is missing"),
        ("purchase,c1,20250301,1.005", "more decimals than EUR allows (2)"),
        ("purchase,c1,20250301,abc", "not a decimal number"),
        ("refund,c1,20250301,1.00", "type 'refund' is not one of"),
        ("purchase,c1,20250301,1.00,extra", "more values than header columns"),
    ],
)
def test_bad_rows_say_which_line_and_why(tmp_path: Path, line: str, reason: str) -> None:
    header = "type,customer_id,occurred_at,total\n"
    path = write(tmp_path / "bad.csv", header + "purchase,ok,20250301,1.00\n" + line + "\n")
    good, bad = rows_of(path)
    assert isinstance(good, ParsedRow)
    assert isinstance(bad, RowError)
    assert bad.line == 3
    assert reason in bad.message
    assert str(bad).startswith("line 3: ")


def test_type_flag_and_column_renames(tmp_path: Path) -> None:
    path = write(tmp_path / "pos.csv", "cust_no,when,amount_eur\nc9,20250301,3.10\n")
    [row] = rows_of(
        path, default_type="purchase", renames={"customer_id": "cust_no", "occurred_at": "when",
                                                 "total": "amount_eur"}
    )  # fmt: skip
    assert isinstance(row, ParsedRow)
    assert row.record["customer_id"] == "c9"
    assert row.record["total_minor"] == 310
    [untyped] = rows_of(path, renames={"customer_id": "cust_no"})
    assert isinstance(untyped, RowError) and "type is missing" in untyped.message


def test_derived_ids_are_stable_for_the_same_content_and_differ_by_line(tmp_path: Path) -> None:
    text = "type,customer_id,occurred_at,total\npurchase,a,20250301,1\npurchase,a,20250301,1\n"
    first = [r.record["event_id"] for r in parsed(write(tmp_path / "a.csv", text))]
    again = [r.record["event_id"] for r in parsed(write(tmp_path / "b.csv", text))]
    longer = write(tmp_path / "c.csv", text + "purchase,b,20250301,1\n")
    other = [r.record["event_id"] for r in parsed(longer)]
    assert first == again
    assert first[0] != first[1]
    assert set(first).isdisjoint(other)


def test_writer_output_reads_back_to_the_same_records(tmp_path: Path) -> None:
    source = write(
        tmp_path / "in.jsonl",
        json.dumps({"type": "purchase", "event_id": "p1", "customer_id": "c1",
                    "occurred_at": "2025-03-01T10:15:00.123Z", "total_minor": 999,
                    "items": [{"sku": "x", "category": "coffee", "quantity": 3,
                               "unit_price_minor": 333}]})
        + "\n"
        + json.dumps({"type": "nps", "event_id": "n1", "customer_id": "c1",
                      "occurred_at": "20250302", "score": 0})
        + "\n",
    )  # fmt: skip
    originals = parsed(source)
    for suffix in (".jsonl", ".csv"):
        out = tmp_path / f"out{suffix}"
        with EventFileWriter(out) as writer:
            for row in originals:
                writer.write(row.schema_name, row.record)
        assert count_rows(out) == 2
        again = parsed(out)
        assert [(r.schema_name, r.record) for r in again] == [
            (r.schema_name, r.record) for r in originals
        ]


def test_gzip_files_are_read_transparently(tmp_path: Path) -> None:
    path = tmp_path / "p.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as stream:
        stream.write("type,customer_id,occurred_at,total\npurchase,c1,20250301,2\n")
    [row] = rows_of(path)
    assert isinstance(row, ParsedRow) and row.record["total_minor"] == 200


def test_occurred_at_is_truncated_to_milliseconds_in_utc() -> None:
    moment = parse_occurred_at("2025-03-01T10:15:00.123456-02:00")
    assert moment == datetime(2025, 3, 1, 12, 15, 0, 123000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [("11.77", "EUR", 1177), ("0.1", "EUR", 10), (11.77, "EUR", 1177), ("5", "JPY", 5),
     ("1.234", "KWD", 1234), (3, "USD", 300), ("-2.50", "EUR", -250)],
)  # fmt: skip
def test_money_is_exact(amount: str | float, currency: str, minor: int) -> None:
    assert to_minor_units(amount, currency) == minor


@pytest.mark.parametrize(
    ("amount", "currency", "message"),
    [("1.5", "JPY", "more decimals than JPY allows (0)"), ("nan", "EUR", "not a finite"),
     ("1", "euro", "three-letter ISO 4217"), ("1,50", "EUR", "not a decimal number")],
)  # fmt: skip
def test_money_errors_name_the_problem(amount: str, currency: str, message: str) -> None:
    with pytest.raises(MoneyError, match=re.escape(message)):
        to_minor_units(amount, currency)


@given(st.integers(min_value=-(10**15), max_value=10**15), st.sampled_from(["EUR", "JPY", "KWD"]))
def test_formatting_and_parsing_minor_units_round_trip(minor: int, currency: str) -> None:
    assert to_minor_units(format_minor_units(minor, currency), currency) == minor
