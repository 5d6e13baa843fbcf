"""Hostile and broken input at the edges: the Avro decoder, the POS file parser, and the worker's
per-record processor behind them. Nothing raises out of them; every refused input carries a
reason, and in the worker every refused record becomes a dead letter."""

from __future__ import annotations

import csv
import gzip
import io
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastavro import schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.broker import TopicNames
from streams.contract import Codec
from streams.contract.codec import SINGLE_OBJECT_MARKER
from streams.contract.errors import ContractError, UndecodableError
from streams.contract.event_files import ParsedRow, RowError, count_rows, read_event_file
from streams.contract.money import MoneyError, to_minor_units
from streams.core.events import to_ms
from streams.core.limits import AVRO_LONG_MAX, LATEST_EVENT_MS, MAX_ID_CHARS
from streams.program import load_program
from streams.settings import DEFAULT_RULES
from streams.worker.ordering import Source
from streams.worker.processor import InputRecord, Outcome, Processor, expected_partition
from tests.contract.samples import SAMPLES

PARTITIONS = 4
TOPICS = TopicNames("t")
NOW = datetime(2026, 1, 1, tzinfo=UTC)
RECEIVED = datetime(2027, 1, 1, tzinfo=UTC)  # by the broker: after every sample's occurred_at
INPUTS = ("Purchase", "Return", "NpsResponse", "ComplaintOpened", "ComplaintResolved")
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec()


@pytest.fixture(scope="module")
def processor(codec: Codec) -> Processor:
    return Processor(load_program(DEFAULT_RULES), codec, TOPICS, PARTITIONS)


def raw_avro(codec: Codec, schema: str, record: dict[str, Any]) -> bytes:
    """Single-object bytes written by fastavro alone: none of our checks on the way, as a
    producer that does not use our codec would write them."""
    event = codec.catalog.event(schema)
    out = io.BytesIO()
    out.write(SINGLE_OBJECT_MARKER + event.current.fingerprint)
    schemaless_writer(out, event.current.parsed, record)
    return out.getvalue()


def decoded_or_refused(codec: Codec, data: bytes) -> str | None:
    """None when `data` decodes; else the reason, which must be a ContractError's."""
    try:
        codec.decode(data)
    except ContractError as error:
        assert str(error).strip()
        return str(error)
    return None


# ---- the decoder --------------------------------------------------------------------------


_CODEC = Codec()  # hypothesis tests take no function-scoped fixtures
_HEADERS = [SINGLE_OBJECT_MARKER + event.current.fingerprint for event in _CODEC.catalog]


@FAST
@given(st.binary(max_size=200))
def test_any_bytes_decode_or_are_refused_with_a_reason(data: bytes) -> None:
    decoded_or_refused(_CODEC, data)


@FAST
@given(st.sampled_from(_HEADERS), st.binary(max_size=300))
def test_any_body_behind_a_known_schema_decodes_or_is_refused_with_a_reason(
    header: bytes, body: bytes
) -> None:
    decoded_or_refused(_CODEC, header + body)


@FAST
@given(st.sampled_from(INPUTS), st.data())
def test_a_valid_record_with_bytes_flipped_or_cut_decodes_or_is_refused(
    schema: str, data: st.DataObject
) -> None:
    good = bytearray(_CODEC.encode(schema, SAMPLES[schema]))
    for _ in range(data.draw(st.integers(1, 4))):
        good[data.draw(st.integers(0, len(good) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(good)))
    decoded_or_refused(_CODEC, bytes(good[:cut]))


@pytest.mark.parametrize("schema", INPUTS)
def test_every_truncation_of_a_valid_record_is_refused(codec: Codec, schema: str) -> None:
    whole = codec.encode(schema, SAMPLES[schema])
    for end in range(len(whole)):
        reason = decoded_or_refused(codec, whole[:end])
        assert reason is not None, f"{end} of {len(whole)} bytes decoded"


@pytest.mark.parametrize("millis", [2**63 - 1, -(2**63), 253_402_300_800_000, -62_135_596_800_001])
def test_a_timestamp_no_date_can_hold_is_refused_in_words(codec: Codec, millis: int) -> None:
    data = raw_avro(codec, "Purchase", dict(SAMPLES["Purchase"], occurred_at=millis))
    with pytest.raises(UndecodableError, match="a timestamp is outside the years 1 to 9999"):
        codec.decode(data)


# ---- the worker: every refused record is a dead letter ------------------------------------


def _record(
    schema: str, body: dict[str, Any], data: bytes, offset: int, received_ms: int = to_ms(RECEIVED)
) -> InputRecord:
    """The record as the broker holds it, stamped with the time it received it."""
    key = str(body.get("customer_id", "c")).encode()
    source = Source.PURCHASES if schema in {"Purchase", "Return"} else Source.FEEDBACK
    topic = TOPICS.purchases if source is Source.PURCHASES else TOPICS.feedback
    partition = expected_partition(key, PARTITIONS)
    return InputRecord(source, topic, partition, offset, received_ms, key, data)


def run(processor: Processor, record: InputRecord, stored: bytes | None) -> Outcome:
    outcome = processor.apply(processor.check(record), stored, NOW)
    if outcome.rejected is not None:
        assert outcome.rejected.message.strip()
        [letter] = [sent for sent in outcome.send if sent.kind == "DeadLetter"]
        dead = processor.codec.decode(letter.value).record
        assert dead["raw_value"] == record.value and dead["message"] == outcome.rejected.message
    else:
        assert all(sent.kind != "DeadLetter" for sent in outcome.send)
    return outcome


long_values = st.one_of(
    st.integers(0, 10**6), st.integers(AVRO_LONG_MAX - 1000, AVRO_LONG_MAX), st.integers(-5, -1)
)
any_millis = st.one_of(
    st.integers(1_700_000_000_000, 1_800_000_000_000),
    st.integers(-62_135_596_800_000, 253_402_300_799_999),  # every time a date holds
    st.integers(-(2**63), 2**63 - 1),
)
hostile_ids = st.one_of(
    st.sampled_from(["p1", "p2", "c-1", "cmp-1"]),
    st.text(min_size=1, max_size=MAX_ID_CHARS + 20),
)
line_items = st.lists(
    st.fixed_dictionaries(
        {
            "sku": st.sampled_from(["latte", "", " "]),
            "category": st.sampled_from(["coffee", "bakery"]),
            "quantity": st.one_of(st.integers(-3, 20), st.integers(2**31 - 9, 2**31 - 1)),
            "unit_price_minor": long_values,
        }
    ),
    max_size=4,
)


def hostile_bodies(customer: str) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    head = {
        "event_id": hostile_ids,
        "customer_id": st.just(customer),
        "store_id": st.none(),
        "occurred_at": any_millis,
    }
    money = {"currency": st.sampled_from(["EUR", "EUR", "USD", "eur"]), "items": line_items}
    return st.one_of(
        st.tuples(st.just("Purchase"), st.fixed_dictionaries(
            {**head, **money, "total_minor": long_values})),
        st.tuples(st.just("Return"), st.fixed_dictionaries(
            {**head, **money, "purchase_event_id": hostile_ids,
             "amount_minor": st.one_of(st.none(), long_values)})),
        st.tuples(st.just("NpsResponse"), st.fixed_dictionaries(
            {**head, "score": st.integers(-(2**31), 2**31 - 1), "comment": st.none()})),
        st.tuples(st.just("ComplaintOpened"), st.fixed_dictionaries(
            {**head, "complaint_id": hostile_ids, "reason": st.none()})),
        st.tuples(st.just("ComplaintResolved"), st.fixed_dictionaries(
            {**head, "complaint_id": hostile_ids, "resolution": st.none()})),
    )  # fmt: skip


# the broker's receive time: Kafka's -1 (none), any time, and the window's end (where no event
# is ahead of its receipt, so that the core's own limits decide)
received_millis = st.one_of(
    st.just(-1), st.just(LATEST_EVENT_MS), st.integers(0, 2**63 - 1), any_millis
)


@FAST
@given(st.lists(st.tuples(hostile_bodies("c-1"), received_millis), min_size=1, max_size=8))
def test_hostile_records_are_applied_or_dead_lettered_by_the_worker(
    bodies: list[tuple[tuple[str, dict[str, Any]], int]],
) -> None:
    """Valid Avro with extreme values (times from year 1 to 9999 and beyond, amounts up to
    2**63 - 1, quantities up to 2**31, long ids, scores outside 0..10), received at any time,
    one customer's records in a row: each is applied (its outputs encoded) or ends in one
    dead letter with a reason."""
    processor = Processor(load_program(DEFAULT_RULES), _CODEC, TOPICS, PARTITIONS)
    stored: bytes | None = None
    for offset, ((schema, body), received_ms) in enumerate(bodies):
        record = _record(schema, body, raw_avro(_CODEC, schema, body), offset, received_ms)
        outcome = run(processor, record, stored)
        if outcome.write is not None:
            stored = outcome.write.to_bytes()


@FAST
@given(st.binary(max_size=120), st.sampled_from([Source.PURCHASES, Source.FEEDBACK]))
def test_any_bytes_on_an_input_topic_end_in_a_dead_letter(data: bytes, source: Source) -> None:
    processor = Processor(load_program(DEFAULT_RULES), _CODEC, TOPICS, PARTITIONS)
    record = InputRecord(source, "t.any", 0, 0, 0, b"c-1", data)
    outcome = run(processor, record, None)
    assert outcome.rejected is not None


def test_two_purchases_of_the_largest_long_end_one_applied_and_one_dead_lettered(
    codec: Codec, processor: Processor
) -> None:
    stored = None
    outcomes = []
    for offset, event_id in enumerate(["p1", "p2"]):
        body = dict(SAMPLES["Purchase"], event_id=event_id, total_minor=AVRO_LONG_MAX, items=[])
        outcome = run(processor, _record("Purchase", body, codec.encode("Purchase", body), offset),
                      stored)  # fmt: skip
        assert outcome.write is not None
        stored = outcome.write.to_bytes()
        outcomes.append(outcome)
    assert outcomes[0].rejected is None
    assert outcomes[1].rejected is not None
    assert outcomes[1].rejected.error_kind == "CONTRACT"
    assert "lifetime spend past 9223372036854775807" in outcomes[1].rejected.message


def test_a_defect_in_the_core_dead_letters_the_record_and_keeps_the_state(
    codec: Codec, processor: Processor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record that crashed the processor would crash every restart of the worker."""
    import streams.worker.processor as module

    def broken(*_: object) -> object:
        raise OverflowError("date value out of range")

    monkeypatch.setattr(module, "apply", broken)
    body = dict(SAMPLES["Purchase"], items=[])
    outcome = run(processor, _record("Purchase", body, codec.encode("Purchase", body), 3), None)
    assert outcome.rejected is not None and outcome.rejected.error_kind == "INTERNAL"
    assert "OverflowError: date value out of range" in outcome.rejected.message
    assert outcome.write is not None and outcome.write.state.receipts == 0
    assert outcome.write.next_offsets[Source.PURCHASES] == 4  # the record is done


# ---- the POS file parser ------------------------------------------------------------------


def read(content: bytes, suffix: str) -> list[ParsedRow | RowError]:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"events{suffix}"
        path.write_bytes(gzip.compress(content) if suffix.endswith(".gz") else content)
        rows = list(read_event_file(path, currency="EUR"))
        count_rows(path)
    for row in rows:
        assert isinstance(row, ParsedRow | RowError)
        if isinstance(row, RowError):
            assert row.message.strip() and row.line >= 1
    return rows


def errors(rows: list[ParsedRow | RowError]) -> list[str]:
    return [str(row) for row in rows if isinstance(row, RowError)]


def parsed(rows: list[ParsedRow | RowError]) -> list[ParsedRow]:
    return [row for row in rows if isinstance(row, ParsedRow)]


@FAST
@given(st.binary(max_size=400), st.sampled_from([".csv", ".jsonl", ".csv.gz", ".jsonl.gz"]))
def test_any_bytes_as_an_event_file_give_rows_or_reasons(content: bytes, suffix: str) -> None:
    read(content, suffix)


@FAST
@given(st.binary(max_size=300), st.sampled_from([".csv.gz", ".jsonl.gz"]))
def test_any_bytes_as_a_gzip_file_give_rows_or_reasons(content: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"events{suffix}"
        path.write_bytes(content)
        for row in read_event_file(path, currency="EUR"):
            assert isinstance(row, ParsedRow | RowError)
        count_rows(path)


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(-(10**30), 10**30),
        st.floats(),
        st.text(max_size=30),
        st.sampled_from(["2025-03-01T10:15:00Z", "20250301", "0001-01-01T00:00:00+01:00",
                         "9999-12-31T23:59:59-05:00", "1e999999", "92233720368547758.08",
                         "1.0000000000000000000000000001", "-3", "coffee", "purchase"]),
    ),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children,
                                                                    max_size=3),
    max_leaves=8,
)  # fmt: skip
FIELDS = ["type", "event_id", "customer_id", "occurred_at", "total", "total_minor", "amount",
          "amount_minor", "purchase_event_id", "score", "complaint_id", "currency",
          "items"]  # fmt: skip
item_dicts = st.fixed_dictionaries(
    {},
    optional={name: json_values for name in ["sku", "category", "quantity", "unit_price",
                                              "unit_price_minor"]},
)  # fmt: skip
rows = st.fixed_dictionaries(
    {"type": st.sampled_from(["purchase", "return", "nps", "complaint_opened",
                              "complaint_resolved"])},
    optional={**{name: json_values for name in FIELDS[1:]},
              "items": st.lists(item_dicts, max_size=3)},
)  # fmt: skip


def _jsonl(values: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(value) + "\n" for value in values).encode()


@FAST
@given(st.lists(rows, min_size=1, max_size=5))
def test_hostile_json_rows_give_records_the_codec_takes_or_reasons(
    values: list[dict[str, Any]],
) -> None:
    """Each row is a record or a RowError; a record either encodes (publish sends it) or the
    codec refuses it with a ContractError (publish lists it): nothing else escapes."""
    for row in parsed(read(_jsonl(values), ".jsonl")):
        try:
            _CODEC.encode(row.schema_name, row.record)
        except ContractError as error:
            assert str(error).strip()


@FAST
@given(st.lists(st.lists(st.text(max_size=12), max_size=6), max_size=5))
def test_hostile_csv_rows_give_records_or_reasons(cells: list[list[str]]) -> None:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["type", "customer_id", "occurred_at", "total", "items", "event_id"])
    writer.writerows(cells)
    read(out.getvalue().encode("utf-8", "surrogatepass"), ".csv")


PURCHASE_CSV = "type,customer_id,occurred_at,total\npurchase,c-1,2025-03-01T10:15:00Z,11.77\n"


def test_a_byte_order_mark_is_skipped_in_csv_and_json_lines() -> None:
    [row] = read(b"\xef\xbb\xbf" + PURCHASE_CSV.encode(), ".csv")
    assert isinstance(row, ParsedRow) and row.record["total_minor"] == 1177
    line = b'{"type":"purchase","customer_id":"c-1","occurred_at":"20250301","total":"1"}\n'
    [row] = read(b"\xef\xbb\xbf" + line, ".jsonl")
    assert isinstance(row, ParsedRow) and row.record["total_minor"] == 100


def test_a_utf16_file_is_refused_as_one_reason() -> None:
    assert errors(read(PURCHASE_CSV.encode("utf-16"), ".csv")) == [
        "line 1: the file is UTF-16 text (it starts with a UTF-16 byte-order mark); "
        "save it as UTF-8"
    ]


def test_bytes_that_are_not_utf8_refuse_their_row_only() -> None:
    content = PURCHASE_CSV.encode() + "purchase,c-\xe9,20250301,1\n".encode("latin-1")
    content += b"purchase,c-3,20250301,2\n"
    rows = read(content, ".csv")
    assert errors(rows) == [
        "line 3: column customer_id is not UTF-8 text (byte 0xe9); save the file as UTF-8"
    ]
    assert [row.line for row in parsed(rows)] == [2, 4]
    line = '{"type":"nps","customer_id":"c-\xe9","occurred_at":"20250301","score":3}\n'
    assert errors(read(line.encode("latin-1"), ".jsonl")) == [
        "line 1: the line is not UTF-8 text (byte 0xe9); save the file as UTF-8"
    ]


def test_a_csv_field_over_the_csv_limit_refuses_its_row_only() -> None:
    content = PURCHASE_CSV + "purchase,c-2,20250301," + "9" * 200_000 + "\n"
    content += "purchase,c-3,20250301,2\n"
    rows = read(content.encode(), ".csv")
    assert errors(rows) == ["line 3: not valid CSV: field larger than field limit (131072)"]
    assert [row.line for row in parsed(rows)] == [2, 4]


def test_a_broken_gzip_file_says_where_it_breaks() -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "events.jsonl.gz"
        line = b'{"type":"nps","customer_id":"c-1","occurred_at":"20250301","score":3}\n'
        path.write_bytes(gzip.compress(line * 50)[:-30])
        rows = list(read_event_file(path, currency="EUR"))
        assert isinstance(rows[-1], RowError)
        assert "cannot be read from here on" in rows[-1].message
        assert all(isinstance(row, ParsedRow) for row in rows[:-1])
        path.write_bytes(b"not gzip")
        [row] = read_event_file(path, currency="EUR")
        assert str(row).startswith("line 1: the file cannot be read from here on: Not a gzipped")


def _one_json_row(**fields: Any) -> str:
    row = {"type": "purchase", "customer_id": "c-1", "occurred_at": "20250301", "total": "1"}
    row.update(fields)
    [problem] = errors(read((json.dumps(row) + "\n").encode(), ".jsonl"))
    return problem


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"occurred_at": 10**20}, "occurred_at 100000000000000000000 (epoch milliseconds) is "
                                  "outside the years 1 to 9999"),
        ({"occurred_at": -(10**14)}, "is outside the years 1 to 9999"),
        ({"occurred_at": "0001-01-01T00:00:00+01:00"}, "is outside the years 1 to 9999 in UTC"),
        ({"occurred_at": "9999-12-31T23:59:59-01:00"}, "is outside the years 1 to 9999 in UTC"),
        ({"occurred_at": "1969-12-31T23:59:59Z"}, "is before 1970-01-01: check the POS clock"),
        ({"occurred_at": -1}, "1969-12-31T23:59:59.999000Z is before 1970-01-01"),
        ({"occurred_at": "9000-01-01"}, "is not before 9000-01-01"),
        ({"total": "1e999999999"}, "total: amount '1e999999999' is too large: at most "
                                   "92233720368547758.07 EUR"),
        ({"total": "1e99999"}, "is too large"),
        ({"total": "1e-999999999"}, "has more decimals than EUR allows (2)"),
        ({"total": "1.0000000000000000000000000001"}, "has more decimals than EUR allows"),
        ({"total": None, "total_minor": "9" * 5000}, "999... is out of range (at most"),
        ({"total": None, "total_minor": 2**63}, "total_minor 9223372036854775808 is out of range"),
        ({"total": None, "total_minor": 1e300}, "is out of range"),
        ({"event_id": "e" * 257}, "event_id is 257 characters long, more than 256"),
        ({"customer_id": "c" * 257}, "customer_id is 257 characters long, more than 256"),
        ({"type": "return", "purchase_event_id": "p" * 300}, "purchase_event_id is 300 characters"),
        ({"type": "complaint_opened", "complaint_id": "k" * 257}, "complaint_id is 257"),
        ({"items": "[" * 100_000}, "items (a JSON list) is JSON nested too deeply"),
        ({"items": [{"sku": "a", "quantity": 10**30, "unit_price": 1}]},
         "items[1].quantity 1000000000000000000000000000000 is out of range"),
    ],
)  # fmt: skip
def test_hostile_values_are_refused_with_a_reason(fields: dict[str, Any], reason: str) -> None:
    assert reason in _one_json_row(**fields)


def test_a_line_nested_too_deeply_or_with_a_5000_digit_number_is_refused() -> None:
    assert errors(read(b"[" * 100_000 + b"\n", ".jsonl")) == [
        "line 1: the line is JSON nested too deeply"
    ]
    [problem] = errors(read(b'{"type":"nps","score":' + b"9" * 5000 + b"}\n", ".jsonl"))
    assert problem.startswith("line 1: the line is not usable JSON: Exceeds the limit")


def test_the_edges_of_the_time_window_and_of_money_are_read() -> None:
    line = {"type": "purchase", "customer_id": "c-1", "total": "92233720368547758.07"}
    rows = read(
        _jsonl([dict(line, occurred_at="1970-01-01T00:00:00Z"),
                dict(line, occurred_at="8999-12-31T23:59:59.999Z"), dict(line, occurred_at=0)]),
        ".jsonl",
    )  # fmt: skip
    assert [row.record["total_minor"] for row in parsed(rows)] == [AVRO_LONG_MAX] * 3
    assert parsed(rows)[2].record["occurred_at"] == datetime(1970, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("amount", "minor"),
    [("92233720368547758.07", AVRO_LONG_MAX), ("0e99999", 0), ("1E+2", 10_000), ("-0.5", -50)],
)
def test_money_at_its_edges(amount: str, minor: int) -> None:
    assert to_minor_units(amount, "EUR") == minor


@pytest.mark.parametrize(
    "amount", ["92233720368547758.08", "1.0000000000000000000000000001", "1" * 65, "1e-30"]
)
def test_money_beyond_its_edges_is_refused_never_rounded(amount: str) -> None:
    """'1.0000000000000000000000000001' EUR was 100 cents: the decimal context's 28 digits
    rounded it before the check for extra decimals."""
    with pytest.raises(MoneyError):
        to_minor_units(amount, "EUR")


def test_an_event_outside_the_time_window_is_dead_lettered_and_moves_no_clock(
    codec: Codec, processor: Processor
) -> None:
    """The partition's clock is the latest event time applied: a refused event at 8999-12-31
    would have moved it there, and the due work after it expired every customer's points.
    (Received at the window's end, so that no event is ahead of its receipt: see
    tests/worker/test_processor.py for that limit.)"""
    for moment, moves in [
        (datetime(8999, 12, 31, tzinfo=UTC), True),
        (datetime(9000, 1, 1, tzinfo=UTC), False),
        (datetime(1969, 12, 31, tzinfo=UTC), False),
    ]:
        body = dict(SAMPLES["Purchase"], occurred_at=moment, items=[])
        data = codec.encode("Purchase", body)
        checked = processor.check(_record("Purchase", body, data, 0, LATEST_EVENT_MS))
        assert (processor.event_time_ms(checked) is not None) is moves
        outcome = run(processor, checked.record, None)
        assert (outcome.rejected is None) is moves
