"""The codec in single-object mode: round trips, the bytes on the wire, and every way a record
or a message can be refused, with the message naming the field and the reason."""

from __future__ import annotations

import copy
import functools
import io
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from fastavro import schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, load_schema, to_parsing_canonical_form
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.contract import (
    Codec,
    ContractError,
    RecordInvalidError,
    UndecodableError,
    UnknownSchemaError,
)
from streams.contract.catalog import SchemaCatalog, default_schema_dir
from tests.contract.conftest import EVENT_NAMES, full_name
from tests.contract.samples import SAMPLES
from tests.contract.strategies import records

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@functools.cache
def plain_fastavro_schema(name: str) -> Any:
    """The schema as fastavro alone loads it from our files: nothing of our catalog."""
    return load_schema(str(default_schema_dir() / f"loyalty.v1.{name}.avsc"))


def with_changes(name: str, **changes: Any) -> dict[str, Any]:
    record = copy.deepcopy(SAMPLES[name])
    record.update(changes)
    return record


def without(name: str, field: str) -> dict[str, Any]:
    record = with_changes(name)
    del record[field]
    return record


def plain_single_object(name: str, record: dict[str, Any]) -> bytes:
    """A single-object message written by fastavro alone, bypassing our checks."""
    schema = plain_fastavro_schema(name)
    out = io.BytesIO()
    out.write(b"\xc3\x01")
    out.write(bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO")))
    schemaless_writer(out, schema, record)
    return out.getvalue()


@pytest.mark.parametrize("name", EVENT_NAMES)
def test_every_sample_round_trips(codec: Codec, name: str) -> None:
    decoded = codec.decode(codec.encode(name, SAMPLES[name]))
    assert decoded.schema_name == full_name(name)
    assert decoded.record == SAMPLES[name]


@pytest.mark.parametrize("name", EVENT_NAMES)
@FAST
@given(data=st.data())
def test_any_valid_record_round_trips(
    codec: Codec, catalog: SchemaCatalog, name: str, data: st.DataObject
) -> None:
    record = data.draw(records(name, catalog.event(name).current.definition))
    decoded = codec.decode(codec.encode(name, record))
    assert (decoded.schema_name, decoded.record) == (full_name(name), record)


@pytest.mark.parametrize("name", EVENT_NAMES)
@FAST
@given(data=st.data())
def test_plain_fastavro_reads_what_the_codec_writes(
    codec: Codec, catalog: SchemaCatalog, name: str, data: st.DataObject
) -> None:
    record = data.draw(records(name, catalog.event(name).current.definition))
    message = codec.encode(name, record)
    schema = plain_fastavro_schema(name)
    assert message[:2] == b"\xc3\x01"
    expected_fingerprint = fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO")
    assert message[2:10].hex() == expected_fingerprint
    assert schemaless_reader(io.BytesIO(message[10:]), schema) == record


def test_full_names_encode_like_short_names(codec: Codec) -> None:
    purchase = SAMPLES["Purchase"]
    assert codec.encode("loyalty.v1.Purchase", purchase) == codec.encode("Purchase", purchase)


def test_fields_with_defaults_may_be_left_out(codec: Codec) -> None:
    record = without("Purchase", "items")
    del record["store_id"]
    decoded = codec.decode(codec.encode("Purchase", record))
    assert decoded.record == {**record, "store_id": None, "items": []}


def test_times_come_back_as_utc_datetimes_with_milliseconds(codec: Codec) -> None:
    moment = datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    epoch_millis = 1_777_636_800_123
    for given_time in (moment, epoch_millis):
        record = with_changes("NpsResponse", occurred_at=given_time)
        decoded = codec.decode(codec.encode("NpsResponse", record)).record["occurred_at"]
        assert decoded == moment.replace(microsecond=123000)
        assert decoded.utcoffset() is not None and decoded.utcoffset().total_seconds() == 0


MISSING = object()


def line(**changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"sku": "A", "category": "c", "quantity": 1, "unit_price_minor": 1}
    item.update(changes)
    return {k: v for k, v in item.items() if v is not MISSING}


# (schema, changes to its sample, how the refusal starts)
REFUSED_RECORDS: list[tuple[str, dict[str, Any], str]] = [
    ("Purchase", {"event_id": MISSING}, "Purchase.event_id: missing"),
    ("Purchase", {"total_minor": "12.50"}, "Purchase.total_minor: '12.50' is not a long"),
    ("Purchase", {"total_minor": -3}, "Purchase.total_minor: -3 is negative"),
    ("Purchase", {"total_minor": 2**63}, "Purchase.total_minor: 9223372036854775808 is out of"),
    ("Purchase", {"currency": "eur"}, "Purchase.currency: 'eur' is not an ISO 4217 code"),
    ("Purchase", {"customer_id": ""}, "Purchase.customer_id: is empty"),
    ("Purchase", {"store_id": " "}, "Purchase.store_id: ' ' is blank"),
    ("Purchase", {"store_id": 7}, "Purchase.store_id: 7 is not a string"),
    ("Purchase", {"customer_id": None}, "Purchase.customer_id: is null, but must be a string"),
    ("Purchase", {"storeid": "s-1"}, "Purchase.storeid: unknown field"),
    ("Purchase", {"occurred_at": "today"}, "Purchase.occurred_at: 'today' is not a timestamp"),
    ("Purchase", {"occurred_at": datetime(2026, 1, 1)}, "Purchase.occurred_at: 2026-01-01T00:00"),
    ("Purchase", {"items": [line(), line(quantity=0)]}, "Purchase.items[1].quantity: 0 is below"),
    ("Purchase", {"items": [line(quantity="2")]}, "Purchase.items[0].quantity: '2' is not an int"),
    ("Purchase", {"items": [line(quantity=MISSING)]}, "Purchase.items[0].quantity: missing"),
    ("Purchase", {"items": [line(sku="")]}, "Purchase.items[0].sku: is empty"),
    ("Purchase", {"items": [line(unit_price_minor=-1)]}, "Purchase.items[0].unit_price_minor: -1"),
    ("Return", {"amount_minor": -5}, "Return.amount_minor: -5 is negative"),
    ("Return", {"purchase_event_id": ""}, "Return.purchase_event_id: is empty"),
    ("NpsResponse", {"score": 11}, "NpsResponse.score: 11 is outside 0..10"),
    ("NpsResponse", {"score": -1}, "NpsResponse.score: -1 is outside 0..10"),
    ("ComplaintOpened", {"complaint_id": ""}, "ComplaintOpened.complaint_id: is empty"),
    ("TierChanged", {"direction": "UPWARD"}, "TierChanged.direction: 'UPWARD' is not one of UP,"),
    ("TierChanged", {"direction": "UNKNOWN"}, "TierChanged.direction: UNKNOWN is only what an"),
    ("TierChanged", {"caused_by": ""}, "TierChanged.caused_by: is empty"),
    (
        "TierDowngradeWarning",
        {"spend_to_keep_minor": -1},
        "TierDowngradeWarning.spend_to_keep_minor: -1 is negative",
    ),
    ("ChurnRiskChanged", {"p_alive": math.nan}, "ChurnRiskChanged.p_alive: nan is outside 0..1"),
    ("ChurnRiskChanged", {"p_alive": 1.5}, "ChurnRiskChanged.p_alive: 1.5 is outside 0..1"),
    ("ChurnRiskChanged", {"reasons": "gap"}, "ChurnRiskChanged.reasons: 'gap' is not an array"),
    ("RewardEarned", {"complaint_id": ""}, "RewardEarned.complaint_id: is empty"),
    ("RewardEarned", {"reward_kind": "UNKNOWN"}, "RewardEarned.reward_kind: UNKNOWN is only"),
    ("PointsExpired", {"points": -10}, "PointsExpired.points: -10 is negative"),
    ("DeadLetter", {"raw_value": "text"}, "DeadLetter.raw_value: 'text' is not bytes"),
]


@pytest.mark.parametrize(("name", "changes", "message"), REFUSED_RECORDS)
def test_encode_refuses_a_broken_record_naming_field_and_reason(
    codec: Codec, name: str, changes: dict[str, Any], message: str
) -> None:
    record = {k: v for k, v in with_changes(name, **changes).items() if v is not MISSING}
    with pytest.raises(RecordInvalidError) as refused:
        codec.encode(name, record)
    assert str(refused.value).startswith(message)
    assert refused.value.schema_name == full_name(name)
    assert message.startswith(f"{name}.{refused.value.field}:")


def test_dead_letters_carry_whatever_broke_the_rules(codec: Codec) -> None:
    # a dead letter copies ids from a broken record: they may be empty, and that must encode
    record = with_changes("DeadLetter", event_id="", customer_id=" ", source_partition=-1)
    assert codec.decode(codec.encode("DeadLetter", record)).record == record


def test_encode_refuses_an_unknown_schema_and_a_non_record(codec: Codec) -> None:
    with pytest.raises(UnknownSchemaError, match="unknown schema 'Refund'"):
        codec.encode("Refund", SAMPLES["Return"])
    with pytest.raises(RecordInvalidError, match="Purchase: list is not a record"):
        codec.encode("Purchase", [1, 2])  # type: ignore[arg-type]


def test_decode_refuses_bytes_that_are_not_single_object_encoding(codec: Codec) -> None:
    with pytest.raises(
        UndecodableError, match="not Avro single-object encoding: first bytes 7b 22"
    ):
        codec.decode(b'{"event_id": "e-1"}')
    with pytest.raises(UndecodableError, match="empty message"):
        codec.decode(b"")


def test_decode_names_an_unknown_fingerprint(codec: Codec) -> None:
    message = codec.encode("Purchase", SAMPLES["Purchase"])
    forged = message[:2] + bytes.fromhex("0123456789abcdef") + message[10:]
    with pytest.raises(UnknownSchemaError, match="unknown schema fingerprint 0x0123456789abcdef"):
        codec.decode(forged)


@pytest.mark.parametrize("name", EVENT_NAMES)
def test_decode_refuses_every_truncation(codec: Codec, name: str) -> None:
    message = codec.encode(name, SAMPLES[name])
    for cut in range(len(message)):
        with pytest.raises(UndecodableError):
            codec.decode(message[:cut])
    with pytest.raises(UndecodableError, match="header truncated: 9 bytes"):
        codec.decode(message[:9])


def test_decode_refuses_bytes_after_the_record(codec: Codec) -> None:
    message = codec.encode("Purchase", SAMPLES["Purchase"])
    with pytest.raises(UndecodableError, match="followed by 2 unread bytes"):
        codec.decode(message + b"\x00\x00")


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(EVENT_NAMES), body=st.binary(max_size=64))
def test_garbage_after_a_known_header_is_refused_or_decodes_within_the_contract(
    codec: Codec, name: str, body: bytes
) -> None:
    header = codec.encode(name, SAMPLES[name])[:10]
    try:
        decoded = codec.decode(header + body)
    except ContractError:
        return  # refused with one of our errors: what the worker dead-letters
    # random bytes can spell a valid record; then it must be one the contract allows
    codec.validate(name, decoded.record)


def test_decode_checks_the_contract_and_names_the_record(codec: Codec) -> None:
    broken = plain_single_object("Purchase", with_changes("Purchase", total_minor=-3))
    with pytest.raises(RecordInvalidError) as refused:
        codec.decode(broken)
    error = refused.value
    assert str(error) == "Purchase.total_minor: -3 is negative"
    assert (error.schema_name, error.field) == ("loyalty.v1.Purchase", "total_minor")
    assert (error.event_id, error.customer_id) == ("pos-1-0001", "c-42")
    assert error.error_kind == "CONTRACT"


def test_decode_accepts_the_readers_unknown_symbol(codec: Codec) -> None:
    # UNKNOWN is what an old reader resolves a newer symbol to: it must not dead-letter
    message = plain_single_object("TierChanged", with_changes("TierChanged", direction="UNKNOWN"))
    assert codec.decode(message).record["direction"] == "UNKNOWN"


def test_a_confluent_frame_without_a_registry_says_what_to_set(codec: Codec) -> None:
    with pytest.raises(UnknownSchemaError, match=r"schema id 7\).*set SCHEMA_REGISTRY_URL"):
        codec.decode(b"\x00\x00\x00\x00\x07\x02e1")


def test_error_kinds_are_the_dead_letter_words(catalog: SchemaCatalog) -> None:
    kinds: dict[type[ContractError], str] = {
        UndecodableError: "DECODE",
        UnknownSchemaError: "UNKNOWN_SCHEMA",
        RecordInvalidError: "CONTRACT",
    }
    error_kind_doc = next(
        f["doc"]
        for f in catalog.event("DeadLetter").current.definition["fields"]
        if f["name"] == "error_kind"
    )
    for error_class, kind in kinds.items():
        assert error_class.error_kind == kind
        assert kind in error_kind_doc
