"""The audit's comparisons, without a broker: the reference fold of a simulated log against
copies of itself with one thing changed. Each change must be found, named by customer and
field; the untouched copy must show nothing."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from streams.broker import TopicNames
from streams.contract import Codec, make_codec
from streams.core import Program
from streams.program import load_program
from streams.settings import DEFAULT_RULES, Settings
from streams.tools.audit import (
    Mismatch,
    ProducedRecord,
    Reference,
    compare_dead_letters,
    compare_outputs,
    compare_states,
    default_as_of,
    reference_fold,
)
from streams.tools.simulate import SimulationConfig
from streams.worker.envelope import StoredCustomer
from streams.worker.processor import InputRecord
from tests.worker.simulated import simulated_log

PARTITIONS = 3
TOPICS = TopicNames("t")
PROGRAM: Program = load_program(DEFAULT_RULES)


@pytest.fixture(scope="module")
def codec() -> Codec:
    return make_codec(Settings())


@pytest.fixture(scope="module")
def reference(codec: Codec) -> Reference:
    records = simulated_log(
        codec, TOPICS, PARTITIONS, SimulationConfig(customers=60, events=900, seed=12)
    )
    garbage = InputRecord(records[0].source, TOPICS.purchases, 0, 10_000, 0, b"c-x", b"\x00bad")
    return reference_fold([*records, garbage], PROGRAM, codec, TOPICS, PARTITIONS)


@pytest.fixture(scope="module")
def as_of(reference: Reference) -> datetime:
    """The audit's default in event-clock mode: the log's latest event."""
    return default_as_of(Settings(clock="event"), reference)


def produced_as_sent(reference: Reference) -> list[ProducedRecord]:
    return [
        ProducedRecord(sent.topic, sent.key, sent.value)
        for sent in reference.outputs
        if sent.kind != "DeadLetter"
    ]


def dead_letters_as_sent(reference: Reference) -> list[ProducedRecord]:
    return [
        ProducedRecord(sent.topic, sent.key, sent.value)
        for sent in reference.outputs
        if sent.kind == "DeadLetter"
    ]


def with_state(stored_bytes: bytes, **changes: Any) -> bytes:
    stored = StoredCustomer.from_bytes(stored_bytes)
    from streams.core import state_to_bytes

    state = stored.state._replace(**changes)
    return StoredCustomer(
        stored.partition, stored.next_offsets, stored.next_due_ms, state_to_bytes(state)
    ).to_bytes()


# ---- states ------------------------------------------------------------------------------------


def test_the_same_table_shows_no_mismatch(reference: Reference, as_of: datetime) -> None:
    mismatches, differing = compare_states(reference.table, dict(reference.table), as_of, PROGRAM)
    assert (mismatches, differing) == ([], 0)


def test_a_wrong_points_balance_is_named_with_both_values(
    reference: Reference, as_of: datetime
) -> None:
    key = sorted(reference.table)[3]
    live = dict(reference.table)
    points = StoredCustomer.from_bytes(live[key]).state.points
    live[key] = with_state(live[key], points=points + 777)
    mismatches, differing = compare_states(reference.table, live, as_of, PROGRAM)
    assert differing == 1
    found = [m for m in mismatches if m.field == "points"]
    assert len(found) == 1 and found[0].customer == key.decode()
    assert isinstance(found[0].expected, int) and found[0].actual == found[0].expected + 777
    assert "points" in str(found[0]) and key.decode() in str(found[0])


def test_missing_extra_and_unreadable_customers_are_mismatches(
    reference: Reference, as_of: datetime
) -> None:
    keys = sorted(reference.table)
    live = dict(reference.table)
    del live[keys[0]]
    live[b"c-stranger"] = reference.table[keys[1]]
    live[keys[2]] = b"\x07not an envelope"
    mismatches, differing = compare_states(reference.table, live, as_of, PROGRAM)
    assert differing == 3
    by_customer = {m.customer: m for m in mismatches}
    assert by_customer[keys[0].decode()] == Mismatch(
        keys[0].decode(), "customer", "present", "missing"
    )
    assert by_customer["c-stranger"] == Mismatch("c-stranger", "customer", "absent", "present")
    assert by_customer[keys[2].decode()].field == "stored state"


def test_an_event_applied_twice_shows_in_the_offsets(reference: Reference, as_of: datetime) -> None:
    key = sorted(reference.table)[4]
    stored = StoredCustomer.from_bytes(reference.table[key])
    behind = StoredCustomer(
        stored.partition,
        (stored.next_offsets[0] - 1, stored.next_offsets[1]),
        stored.next_due_ms,
        stored.state_bytes,
    )
    live = {**reference.table, key: behind.to_bytes()}
    mismatches, _ = compare_states(reference.table, live, as_of, PROGRAM)
    assert [m.field for m in mismatches] == ["next_offsets.purchases"]


def test_a_difference_the_view_does_not_show_is_still_found(
    reference: Reference, as_of: datetime
) -> None:
    key = sorted(reference.table)[5]
    live = {**reference.table, key: with_state(reference.table[key], recent_ids=("x",))}
    mismatches, _ = compare_states(reference.table, live, as_of, PROGRAM)
    assert [m.field for m in mismatches] == ["state.recent_ids"]
    # compared as the view shows them only, they agree
    assert compare_states(reference.table, live, as_of, PROGRAM, internal=False) == ([], 0)


def test_states_are_compared_at_the_same_moment_whatever_each_was_advanced_to(
    reference: Reference, as_of: datetime
) -> None:
    """A live worker whose clock ran further (live mode) has advanced its customers; at a
    common later as_of that is no difference; compared as stored (event mode), it is."""
    from streams.worker.processor import Processor

    processor = Processor(PROGRAM, make_codec(Settings()), TOPICS, PARTITIONS)
    moved = {
        key: (processor.advance(value, as_of + timedelta(days=100)).write or _fail()).to_bytes()
        for key, value in reference.table.items()
    }
    assert moved != reference.table  # time-driven changes happened
    later = as_of + timedelta(days=200)
    assert compare_states(reference.table, moved, later, PROGRAM) == ([], 0)
    as_stored, differing = compare_states(reference.table, moved, later, PROGRAM, stored_too=True)
    assert differing > 0 and all(m.field.startswith("stored.") for m in as_stored)


def test_a_difference_that_time_erases_is_found_as_stored(
    reference: Reference, as_of: datetime
) -> None:
    key = sorted(reference.table)[3]
    points = StoredCustomer.from_bytes(reference.table[key]).state.points
    live = {**reference.table, key: with_state(reference.table[key], points=points + 5)}
    years_later = as_of + timedelta(days=3 * 365)  # every point has expired either way
    assert compare_states(reference.table, live, years_later, PROGRAM) == ([], 0)
    found, _ = compare_states(reference.table, live, years_later, PROGRAM, stored_too=True)
    assert [(m.field, m.expected, m.actual) for m in found] == [
        ("stored.points", points, points + 5)
    ]


def _fail() -> StoredCustomer:
    raise AssertionError("advance wrote nothing")


# ---- outputs -----------------------------------------------------------------------------------


def test_outputs_as_sent_show_no_mismatch(reference: Reference, codec: Codec) -> None:
    produced = produced_as_sent(reference)
    assert len(produced) > 50
    mismatches, counts = compare_outputs(reference.outputs, produced, codec)
    assert mismatches == []
    assert counts["produced"] == len(produced) and counts["missing"] == 0


def test_a_missing_output_is_named(reference: Reference, codec: Codec) -> None:
    produced = produced_as_sent(reference)
    lost = produced.pop(7)
    mismatches, counts = compare_outputs(reference.outputs, produced, codec)
    assert counts["missing"] == 1
    event_id = codec.decode(lost.value).record["event_id"]
    assert [(m.customer, m.actual) for m in mismatches] == [(lost.key.decode(), "missing")]  # type: ignore[union-attr]
    assert event_id in mismatches[0].field


def test_duplicates_with_their_id_pass_unless_exactly_once(
    reference: Reference, codec: Codec
) -> None:
    produced = produced_as_sent(reference)
    twice = [*produced, produced[3], produced[9]]
    mismatches, counts = compare_outputs(reference.outputs, twice, codec)
    assert mismatches == [] and counts["duplicated"] == 2
    strict, _ = compare_outputs(reference.outputs, twice, codec, duplicates_allowed=False)
    assert len(strict) == 2 and all(m.expected == "produced once" for m in strict)


def test_an_id_the_reference_does_not_have_is_unexpected(
    reference: Reference, codec: Codec
) -> None:
    produced = produced_as_sent(reference)
    record = dict(codec.decode(produced[0].value).record)
    schema = codec.decode(produced[0].value).schema_name
    record["event_id"] = "made-up-id"
    stranger = ProducedRecord(produced[0].topic, produced[0].key, codec.encode(schema, record))
    mismatches, counts = compare_outputs(reference.outputs, [*produced, stranger], codec)
    assert counts["unexpected"] == 1
    assert len(mismatches) == 1 and mismatches[0].expected == "not produced"
    # allowed, not required: no mismatch
    allowed, _ = compare_outputs(
        [s for s in reference.outputs if s.value != stranger.value],
        [*produced, stranger],
        codec,
        allowed_extra=[_as_outbound(stranger, "made-up-id")],
    )
    assert allowed == []


def _as_outbound(record: ProducedRecord, event_id: str):  # type: ignore[no-untyped-def]
    from streams.worker.processor import Outbound

    return Outbound(record.topic, record.key, record.value, event_id, "Any")


def test_a_copy_with_the_same_id_but_other_content_is_a_mismatch(
    reference: Reference, codec: Codec
) -> None:
    produced = produced_as_sent(reference)
    decoded = codec.decode(produced[2].value)
    record = dict(decoded.record)
    record["customer_id"] = "someone-else"
    changed = ProducedRecord(produced[2].topic, produced[2].key,
                             codec.encode(decoded.schema_name, record))  # fmt: skip
    mismatches, _ = compare_outputs(reference.outputs, [*produced, changed], codec)
    assert [m.field.rsplit(".", 1)[1] for m in mismatches] == ["customer_id"]
    assert (mismatches[0].expected, mismatches[0].actual) == (
        decoded.record["customer_id"],
        "someone-else",
    )


def test_an_output_on_the_wrong_topic_is_a_mismatch(reference: Reference, codec: Codec) -> None:
    produced = produced_as_sent(reference)
    moved = ProducedRecord("t.elsewhere.v1", produced[0].key, produced[0].value)
    mismatches, _ = compare_outputs(reference.outputs, [moved, *produced[1:]], codec)
    assert [m.field.endswith(" topic") for m in mismatches] == [True]


# ---- dead letters ------------------------------------------------------------------------------


def test_dead_letters_are_matched_by_their_source_record(
    reference: Reference, codec: Codec
) -> None:
    letters = dead_letters_as_sent(reference)
    assert len(letters) == 1
    assert compare_dead_letters(reference.outputs, letters * 2, codec) == ([], 1, 2)
    missing, _, _ = compare_dead_letters(reference.outputs, [], codec)
    assert [(m.field, m.expected, m.actual) for m in missing] == [
        (f"dead letter for {TOPICS.purchases}[0]@10000", "DECODE", "missing")
    ]


def test_the_summary_groups_mismatches_by_field_without_ids(
    reference: Reference, codec: Codec, as_of: datetime
) -> None:
    from streams.tools.audit import AuditReport

    produced = produced_as_sent(reference)
    kept = produced[3:]
    outputs, _ = compare_outputs(reference.outputs, kept, codec)
    live = {
        key: with_state(value, points=StoredCustomer.from_bytes(value).state.points + 1)
        for key, value in list(reference.table.items())[:2]
    }
    states, _ = compare_states(reference.table, {**reference.table, **live}, as_of, PROGRAM)
    report = AuditReport(as_of, mismatches=[*states, *outputs])
    summary = report.summary()
    assert "MISMATCHES" in summary and not report.ok
    kinds = {codec.decode(p.value).schema_name.rpartition(".")[2] for p in produced[:3]}
    line = next(x for x in summary.splitlines() if x.startswith("mismatches by field"))
    assert "points 2" in line
    assert sum(int(part.rsplit(" ", 1)[1]) for part in line.split(": ", 1)[1].split(", ")) == (
        len(report.mismatches)
    )
    assert all(f"output {kind}" in line for kind in kinds)


def test_the_summary_warns_when_the_workers_were_not_idle(as_of: datetime) -> None:
    from streams.tools.audit import AuditReport

    assert "warning" not in AuditReport(as_of, lag_at_start=0).summary()
    assert "warning" not in AuditReport(as_of, lag_at_start=None).summary()
    busy = AuditReport(as_of, lag_at_start=1234).summary()
    assert "warning: the workers were 1,234 input records behind" in busy


def test_the_reference_refuses_events_ahead_of_their_receipt_as_the_workers_are_told_to(
    codec: Codec,
) -> None:
    """The audit folds with the workers' setting: the same far-ahead event is a dead letter
    under a limit and applied without one, so a reference with another limit would differ."""
    records = simulated_log(
        codec, TOPICS, PARTITIONS, SimulationConfig(customers=5, events=40, seed=12)
    )
    first = records[0]
    ahead = InputRecord(first.source, first.topic, first.partition, first.offset,
                        first.timestamp_ms - 2 * 86_400_000, first.key, first.value)  # fmt: skip
    log = [ahead, *records[1:]]
    limited = reference_fold(log, PROGRAM, codec, TOPICS, PARTITIONS)
    assert [codec.decode(s.value).record["error_kind"] for s in limited.outputs
            if s.kind == "DeadLetter"] == ["EVENT_TIME_AHEAD"]  # fmt: skip
    unlimited = reference_fold(
        log, PROGRAM, codec, TOPICS, PARTITIONS, max_event_time_ahead_ms=None
    )
    assert unlimited.dead_letters() == 0
    three_days = reference_fold(
        log, PROGRAM, codec, TOPICS, PARTITIONS, max_event_time_ahead_ms=3 * 86_400_000
    )
    assert three_days.dead_letters() == 0
