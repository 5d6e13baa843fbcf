"""The worker's per-record decisions, without a broker."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastavro import schemaless_writer

from streams.broker import TopicNames
from streams.contract import Codec, make_codec
from streams.contract.codec import SINGLE_OBJECT_MARKER
from streams.core.events import to_ms
from streams.program import load_program
from streams.settings import DEFAULT_RULES, Settings
from streams.worker.envelope import StoredCustomer
from streams.worker.ordering import Source
from streams.worker.processor import (
    DEFAULT_MAX_EVENT_TIME_AHEAD_MS,
    InputRecord,
    Outcome,
    Processor,
    expected_partition,
)

PARTITIONS = 4
TOPICS = TopicNames("t")
NOW = datetime(2026, 1, 1, tzinfo=UTC)  # when dead letters are written, and records received
T0 = datetime(2025, 3, 1, 10, tzinfo=UTC)


@pytest.fixture(scope="module")
def codec() -> Codec:
    return make_codec(Settings())


@pytest.fixture(scope="module")
def processor(codec: Codec) -> Processor:
    return Processor(load_program(DEFAULT_RULES), codec, TOPICS, PARTITIONS)


def purchase(event_id: str, customer: str, total_minor: int, at: datetime = T0) -> dict[str, Any]:
    return {"event_id": event_id, "customer_id": customer, "store_id": "s1", "occurred_at": at,
            "currency": "EUR", "total_minor": total_minor, "items": []}  # fmt: skip


def record_of(
    codec: Codec,
    schema: str,
    body: dict[str, Any],
    offset: int,
    *,
    source: Source = Source.PURCHASES,
    key: bytes | None = None,
    partition: int | None = None,
    received: datetime = NOW,
) -> InputRecord:
    """The record as the broker would hold it, stamped with the time it received it."""
    key = body["customer_id"].encode() if key is None else key
    partition = expected_partition(key, PARTITIONS) if partition is None else partition
    topic = TOPICS.purchases if source is Source.PURCHASES else TOPICS.feedback
    return InputRecord(
        source, topic, partition, offset, to_ms(received), key, codec.encode(schema, body)
    )


def run(processor: Processor, record: InputRecord, stored: bytes | None) -> Outcome:
    return processor.apply(processor.check(record), stored, NOW)


def test_a_purchase_over_the_silver_threshold_writes_state_and_sends_a_tier_change(
    codec: Codec, processor: Processor
) -> None:
    record = record_of(codec, "loyalty.v1.Purchase", purchase("p1", "c-1", 60_000), offset=7)
    outcome = run(processor, record, None)
    assert outcome.write is not None and outcome.rejected is None
    assert outcome.write.partition == record.partition
    assert outcome.write.next_offsets == (8, 0)
    state = outcome.write.state
    assert state.points == 600 and state.lifetime_spend_minor == 60_000
    [sent] = outcome.send
    assert sent.topic == TOPICS.tier_changes and sent.key == b"c-1" and sent.kind == "TierChanged"
    decoded = codec.decode(sent.value)
    assert decoded.record["new_tier"] == "silver" and decoded.record["caused_by"] == "p1"
    assert decoded.record["event_id"] == sent.event_id
    # the stored header says when the downgrade check is due, for the due index
    assert outcome.write.next_due_ms is not None


def test_a_redelivered_record_is_applied_once_and_sends_nothing(
    codec: Codec, processor: Processor
) -> None:
    first = record_of(codec, "loyalty.v1.Purchase", purchase("p1", "c-1", 60_000), offset=7)
    after = run(processor, first, None)
    assert after.write is not None
    stored = after.write.to_bytes()
    again = run(processor, first, stored)
    assert again.duplicate and again.send == []
    # written again unchanged, so a changelog behind the local store catches up
    assert again.write is not None and again.write.to_bytes() == stored
    # an earlier offset of the same source is also behind the high-water mark
    earlier = record_of(codec, "loyalty.v1.Purchase", purchase("p0", "c-1", 100), offset=3)
    assert run(processor, earlier, stored).duplicate
    # the other source keeps its own mark
    nps = {"event_id": "n1", "customer_id": "c-1", "store_id": None, "occurred_at": T0,
           "score": 10, "comment": None}  # fmt: skip
    feedback = record_of(codec, "loyalty.v1.NpsResponse", nps, offset=3, source=Source.FEEDBACK)
    applied = run(processor, feedback, stored)
    assert not applied.duplicate and applied.write is not None
    assert applied.write.next_offsets == (8, 4)
    assert applied.write.state.nps_score == 10


def test_garbage_bytes_become_a_dead_letter_with_the_raw_record(
    codec: Codec, processor: Processor
) -> None:
    record = InputRecord(Source.PURCHASES, TOPICS.purchases, 2, 41, 0, b"c-9", b'{"json": true}')
    checked = processor.check(record)
    assert checked.event is None and processor.event_time_ms(checked) is None
    outcome = processor.apply(checked, None, NOW)
    assert outcome.write is None
    [letter] = outcome.send
    assert letter.topic == TOPICS.dead_letter and letter.key == b"c-9"
    body = codec.decode(letter.value).record
    assert body["error_kind"] == "DECODE"
    assert body["source_topic"] == TOPICS.purchases
    assert (body["source_partition"], body["source_offset"]) == (2, 41)
    assert body["raw_value"] == b'{"json": true}'
    assert body["failed_at"] == NOW
    assert "single-object" in body["message"]


def single_object_bytes(codec: Codec, schema: str, body: dict[str, Any]) -> bytes:
    """Bytes our codec would refuse to write: a contract-breaking record, framed by hand."""
    version = codec.catalog.events[schema.rpartition(".")[2]].current
    out = io.BytesIO()
    out.write(SINGLE_OBJECT_MARKER + version.fingerprint)
    schemaless_writer(out, version.parsed, body)
    return out.getvalue()


def test_a_record_that_breaks_the_contract_is_dead_lettered_with_its_ids(
    codec: Codec, processor: Processor
) -> None:
    nps = {"event_id": "n-11", "customer_id": "c-3", "store_id": None, "occurred_at": T0,
           "score": 11, "comment": None}  # fmt: skip
    value = single_object_bytes(codec, "loyalty.v1.NpsResponse", nps)
    record = InputRecord(Source.FEEDBACK, TOPICS.feedback, 1, 5, 0, b"c-3", value)
    outcome = run(processor, record, None)
    [letter] = outcome.send
    body = codec.decode(letter.value).record
    assert body["error_kind"] == "CONTRACT"
    assert "score" in body["message"] and "11" in body["message"]
    assert (body["event_id"], body["customer_id"]) == ("n-11", "c-3")
    assert outcome.write is None


@pytest.mark.parametrize(
    ("key", "partition", "source", "kind"),
    [
        (b"someone-else", None, Source.PURCHASES, "KEY_MISMATCH"),
        (None, "wrong", Source.PURCHASES, "MISPARTITIONED"),
        (None, None, Source.FEEDBACK, "WRONG_TOPIC"),
    ],
)
def test_records_on_the_wrong_key_partition_or_topic_are_dead_lettered(
    codec: Codec,
    processor: Processor,
    key: bytes | None,
    partition: str | None,
    source: Source,
    kind: str,
) -> None:
    body = purchase("p1", "c-1", 100)
    home = expected_partition(b"c-1", PARTITIONS)
    wrong = (home + 1) % PARTITIONS if partition == "wrong" else None
    record = record_of(codec, "loyalty.v1.Purchase", body, 0, key=key, partition=wrong,
                       source=source)  # fmt: skip
    outcome = run(processor, record, None)
    assert outcome.rejected is not None and outcome.rejected.error_kind == kind
    assert outcome.write is None
    assert codec.decode(outcome.send[0].value).record["error_kind"] == kind


def test_a_return_of_an_unknown_purchase_is_dead_lettered_but_the_offset_moves_on(
    codec: Codec, processor: Processor
) -> None:
    body: dict[str, Any] = {
        "event_id": "r1", "customer_id": "c-1", "store_id": None, "occurred_at": T0,
        "purchase_event_id": "nope", "currency": "EUR", "amount_minor": None, "items": [],
    }  # fmt: skip
    outcome = run(processor, record_of(codec, "loyalty.v1.Return", body, offset=4), None)
    assert outcome.rejected is not None and outcome.rejected.error_kind == "CONTRACT"
    assert "nope" in codec.decode(outcome.send[0].value).record["message"]
    assert outcome.write is not None and outcome.write.next_offsets == (5, 0)
    assert outcome.write.state.lifetime_spend_minor == 0


def test_advance_emits_what_time_alone_causes_and_reschedules(
    codec: Codec, processor: Processor
) -> None:
    gold = run(
        processor, record_of(codec, "loyalty.v1.Purchase", purchase("p1", "c-1", 200_000), 0), None
    )
    assert gold.write is not None and gold.write.next_due_ms is not None
    due = datetime.fromtimestamp(gold.write.next_due_ms / 1000, tz=UTC)
    later = processor.advance(gold.write.to_bytes(), due + timedelta(days=400))
    kinds = sorted(sent.kind for sent in later.send)
    assert "TierChanged" in kinds  # re-qualification after a year without spend
    assert later.write is not None
    assert later.write.state.tier == 0
    assert later.write.next_offsets == gold.write.next_offsets
    assert StoredCustomer.from_bytes(later.write.to_bytes()) == later.write


# ---- event times ahead of the broker's receipt -----------------------------------------------

YEAR_2400 = datetime(2400, 1, 1, tzinfo=UTC)


def test_an_event_centuries_ahead_of_its_receipt_is_dead_lettered_and_moves_no_clock(
    codec: Codec, processor: Processor
) -> None:
    """A POS whose clock says 2400: inside the core's time window, but applied it took its
    partition's clock, and the due work after it, to 2400 (every customer's points expired)."""
    record = record_of(codec, "loyalty.v1.Purchase", purchase("p9", "c-1", 5_000, YEAR_2400), 3)
    checked = processor.check(record)
    assert checked.event is not None  # decoded: its ids go with the dead letter
    assert processor.event_time_ms(checked) is None
    outcome = processor.apply(checked, None, NOW, clock_ms=to_ms(T0))
    assert outcome.rejected is not None and outcome.rejected.error_kind == "EVENT_TIME_AHEAD"
    [letter] = outcome.send
    body = codec.decode(letter.value).record
    assert body["error_kind"] == "EVENT_TIME_AHEAD"
    assert (body["event_id"], body["customer_id"]) == ("p9", "c-1")
    assert body["message"] == (
        "occurred_at 2400-01-01T00:00:00Z is 136,600 days ahead of the time the broker "
        "received the record (2026-01-01T00:00:00Z), more than the 1 day allowed: check the "
        "POS clock"
    )
    # refused like the core's refusals: the state stays, the customer's offset mark moves on,
    # the stored clock is the partition's (not 2400), and a redelivery is not refused twice
    assert outcome.write is not None and outcome.write.next_offsets == (4, 0)
    assert outcome.write.state.lifetime_spend_minor == 0 and outcome.write.clock_ms == to_ms(T0)
    again = processor.apply(processor.check(record), outcome.write.to_bytes(), NOW)
    assert again.duplicate and again.send == [] and again.rejected is None


def test_up_to_the_limit_ahead_of_receipt_is_applied_and_a_millisecond_more_is_not(
    codec: Codec, processor: Processor
) -> None:
    assert processor.max_event_time_ahead_ms == DEFAULT_MAX_EVENT_TIME_AHEAD_MS == 86_400_000
    limit = timedelta(milliseconds=DEFAULT_MAX_EVENT_TIME_AHEAD_MS)
    at_limit = record_of(codec, "loyalty.v1.Purchase", purchase("p1", "c-1", 100, NOW + limit), 0)
    checked = processor.check(at_limit)
    assert checked.rejection is None and processor.event_time_ms(checked) == to_ms(NOW + limit)
    assert run(processor, at_limit, None).rejected is None
    over = timedelta(milliseconds=1)
    beyond = purchase("p1", "c-1", 100, NOW + limit + over)
    refused = run(processor, record_of(codec, "loyalty.v1.Purchase", beyond, 0), None).rejected
    assert refused is not None and refused.error_kind == "EVENT_TIME_AHEAD"
    assert "is just over 1 day ahead" in refused.message
    assert "more than the 1 day allowed" in refused.message
    # an event received later than it happened (a store's outbox, a backlog) is never refused
    late = purchase("p2", "c-1", 100, T0)
    received_late = record_of(codec, "loyalty.v1.Purchase", late, 1, received=NOW + limit * 3000)
    assert run(processor, received_late, None).rejected is None


def test_a_time_outside_the_core_window_keeps_the_core_reason(
    codec: Codec, processor: Processor
) -> None:
    body = purchase("p1", "c-1", 100, datetime(9500, 1, 1, tzinfo=UTC))
    refused = run(processor, record_of(codec, "loyalty.v1.Purchase", body, 0), None).rejected
    assert refused is not None and refused.error_kind == "CONTRACT"
    assert "is not before 9000-01-01" in refused.message


def test_without_a_limit_or_without_a_record_timestamp_the_time_is_not_judged(
    codec: Codec,
) -> None:
    program = load_program(DEFAULT_RULES)
    unlimited = Processor(program, codec, TOPICS, PARTITIONS, max_event_time_ahead_ms=None)
    far = record_of(codec, "loyalty.v1.Purchase", purchase("p1", "c-1", 100, YEAR_2400), 0)
    assert unlimited.event_time_ms(unlimited.check(far)) == to_ms(YEAR_2400)
    assert run(unlimited, far, None).rejected is None
    limited = Processor(program, codec, TOPICS, PARTITIONS, max_event_time_ahead_ms=60_000)
    minutes_ahead = purchase("p1", "c-1", 100, NOW + timedelta(minutes=5))
    record = record_of(codec, "loyalty.v1.Purchase", minutes_ahead, 0)
    refused = run(limited, record, None).rejected
    assert refused is not None and "is 5 minutes ahead" in refused.message
    assert "more than the 1 minute allowed" in refused.message
    # Kafka's -1, "no timestamp": nothing to compare with
    untimed = InputRecord(far.source, far.topic, far.partition, far.offset, -1, far.key, far.value)
    assert run(limited, untimed, None).rejected is None
