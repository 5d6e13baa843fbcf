"""The test oracle and `loyalty audit`: read the input topics from the beginning, fold them
with the core in the order the worker applies them (per partition, the event-time merge of
the sources), and compare with what the workers produced.

The reference runs the worker's own loop over an in-memory table with every source caught up
only at the end of the log, so it sees exactly the complete-log merge; what it does not have
is Kafka, Faust, crashes and rebalances: which is what the comparison is about."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from streams.broker.security import KafkaTarget
from streams.broker.topics import TopicNames
from streams.contract import Codec
from streams.core import CustomerState, Program, advance
from streams.settings import Settings
from streams.tools.replay import state_line
from streams.tools.topic_census import RecordDecoder, read_topic
from streams.worker.envelope import EnvelopeError, StoredCustomer
from streams.worker.loop import DictTable, WorkerLoop
from streams.worker.ordering import Source
from streams.worker.processor import (
    DEFAULT_MAX_EVENT_TIME_AHEAD_MS,
    InputRecord,
    Outbound,
    Processor,
)

Progress = Callable[[int], None]
ProgressFactory = Callable[[str, int | None], AbstractContextManager[Progress]]


@contextmanager
def _no_progress(_label: str, _total: int | None) -> Iterator[Progress]:
    yield lambda _count: None


@dataclass
class Reference:
    table: DictTable = field(default_factory=DictTable)
    outputs: list[Outbound] = field(default_factory=list)

    def output_ids(self, topic: str | None = None) -> Counter[str]:
        return Counter(
            sent.event_id
            for sent in self.outputs
            if sent.event_id is not None and (topic is None or sent.topic == topic)
        )

    def dead_letters(self) -> int:
        return sum(1 for sent in self.outputs if sent.kind == "DeadLetter")


def read_input_log(
    kafka: KafkaTarget, topics: TopicNames, progress: Progress | None = None
) -> list[InputRecord]:
    records = []
    for source, topic in ((Source.PURCHASES, topics.purchases), (Source.FEEDBACK, topics.feedback)):
        for message in read_topic(kafka, topic):
            if progress is not None:
                progress(1)
            partition, offset = message.partition(), message.offset()
            assert partition is not None and offset is not None
            timestamp_ms = message.timestamp()[1]
            records.append(
                InputRecord(
                    source, topic, partition, offset, timestamp_ms, message.key(), message.value()
                )
            )
    return records


def reference_fold(
    records: Iterable[InputRecord],
    program: Program,
    codec: Codec,
    topics: TopicNames,
    partitions: int,
    *,
    grace_ms: int = 0,
    max_event_time_ahead_ms: int | None = DEFAULT_MAX_EVENT_TIME_AHEAD_MS,
    restarted_from: Reference | None = None,
) -> Reference:
    """What a worker that never crashed would have stored and sent for this log (with the
    worker's grace, so that the time-driven work at the log's end matches too, and its limit
    on event times ahead of their records' receipt, so that it refuses the same events). With
    `restarted_from`: what a worker restarted (with `program`, new rules perhaps) after
    storing and sending that reference goes on to store and send for `records`, the rest of
    the log; its table and outputs carry on from it (and it is left unchanged)."""
    reference = Reference()
    if restarted_from is not None:
        reference.table.update(restarted_from.table)
        reference.outputs.extend(restarted_from.outputs)
    processor = Processor(
        program, codec, topics, partitions, max_event_time_ahead_ms=max_event_time_ahead_ms
    )
    at_end = False

    async def send(outbound: list[Outbound], _partition: int) -> None:
        reference.outputs.extend(outbound)

    loop = WorkerLoop(
        processor,
        reference.table,
        send,
        lambda _source, _partition, _last, _as_of: at_end,
        grace_ms=grace_ms,
        live_clock=False,
        merge_delay_ms=0,
        max_idle_s=float("inf"),
    )

    async def fold() -> None:
        nonlocal at_end
        seen_partitions = set()
        for record in records:
            seen_partitions.add(record.partition)
            await loop.on_record(record, lambda: None, more_coming=True)  # batches, as live
        await loop.flush()
        at_end = True
        for partition in sorted(seen_partitions):
            await loop.on_tick(partition, 0)  # drains what waited for the log's end

    asyncio.run(fold())
    return reference


@dataclass
class OutputLog:
    ids: Counter[str] = field(default_factory=Counter)
    dead_letters: int = 0
    records: int = 0


def read_output_log(kafka: KafkaTarget, topics: TopicNames, codec: RecordDecoder) -> OutputLog:
    log = OutputLog()
    for topic in (*topics.outputs, topics.dead_letter):
        for message in read_topic(kafka, topic):
            log.records += 1
            record = codec.decode(message.value() or b"").record
            if topic == topics.dead_letter:
                log.dead_letters += 1
            else:
                log.ids[record["event_id"]] += 1
    return log


# ---- the audit: reference against what the workers hold and produced ---------------------------


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One difference: for a customer (None for a record with none), what differs, what the
    reference fold says and what the workers have."""

    customer: str | None
    field: str
    expected: Any
    actual: Any

    def __str__(self) -> str:
        return (
            f"{self.customer or '-'}  {self.field}: expected {self.expected!r}, "
            f"actual {self.actual!r}"
        )


@dataclass
class AuditReport:
    as_of: datetime
    mismatches: list[Mismatch] = field(default_factory=list)
    input_records: int = 0
    customers_expected: int = 0
    customers_live: int = 0
    customers_differing: int = 0
    outputs_expected: int = 0  # distinct output event ids of the reference
    outputs_live: int = 0  # records on the output topics
    outputs_missing: int = 0
    outputs_unexpected: int = 0
    outputs_duplicated: int = 0  # records beyond the first of their id
    dead_letters_expected: int = 0
    dead_letters_live: int = 0
    lag_at_start: int | None = None  # the workers' consumer lag when the audit began
    seconds: dict[str, float] = field(default_factory=dict)  # by phase

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def summary(self) -> str:
        verdict = "OK" if self.ok else f"{len(self.mismatches):,} MISMATCHES"
        took = ", ".join(f"{phase} {s:.1f} s" for phase, s in self.seconds.items())
        return "\n".join(
            [
                f"audit as of {self.as_of.isoformat().replace('+00:00', 'Z')}: {verdict}",
                f"input records: {self.input_records:,}",
                f"customers: {self.customers_expected:,} expected, {self.customers_live:,} "
                f"live, {self.customers_differing:,} differing",
                f"output events: {self.outputs_expected:,} expected ids, {self.outputs_live:,} "
                f"records produced, {self.outputs_missing:,} missing, "
                f"{self.outputs_unexpected:,} unexpected, {self.outputs_duplicated:,} duplicates "
                f"(same id)",
                f"dead letters: {self.dead_letters_expected:,} expected, "
                f"{self.dead_letters_live:,} produced",
                *self._by_field(),
                *self._not_idle(),
                f"took: {took}",
            ]
        )

    def _not_idle(self) -> list[str]:
        if not self.lag_at_start:
            return []
        return [
            f"warning: the workers were {self.lag_at_start:,} input records behind when the "
            "audit began: differences may be work in progress (loyalty status --wait-idle)"
        ]

    def _by_field(self) -> list[str]:
        """Which fields differ, most often first: a thousand mismatches often have one cause."""
        if not self.mismatches:
            return []
        kinds = Counter(_field_kind(m.field) for m in self.mismatches)
        shown = ", ".join(f"{kind} {n:,}" for kind, n in kinds.most_common(10))
        return [f"mismatches by field: {shown}"]


def _field_kind(name: str) -> str:
    """A mismatch's field without the event id: `output TierChanged <id>.tier` ->
    `output TierChanged.tier`, `output TierChanged <id>` -> `output TierChanged`."""
    parts = name.split(" ")
    if parts[0] != "output" or len(parts) < 3 or parts[1] == "on":
        return "dead letter" if name.startswith("dead letter") else name
    detail = parts[2].partition(".")[2]
    return " ".join([f"output {parts[1]}" + (f".{detail}" if detail else ""), *parts[3:]])


def compare_states(
    expected: dict[bytes, bytes],
    live: dict[bytes, bytes],
    as_of: datetime,
    program: Program,
    *,
    internal: bool = True,
    stored_too: bool = False,
) -> tuple[list[Mismatch], int]:
    """Per customer, both stored states advanced to as_of and compared as `state_line` dicts,
    field by field; then what the shell stores (partition, next offsets per source) and, if the
    lines agree, the advanced states themselves (a difference the view does not show yet, such
    as a remembered event id or the order events were applied in, is still a difference; not
    with `internal=False`). With `stored_too` (workers on the event
    clock, whose partitions' clocks end where the reference's do), the stored states must be
    equal as stored, too: advancing both far enough can hide a difference (points that have
    expired by as_of either way). Returns the mismatches and how many customers differ."""
    mismatches: list[Mismatch] = []
    differing = 0
    for key in sorted(expected.keys() | live.keys()):
        customer = key.decode(errors="replace")
        found = _compare_customer(
            customer, expected.get(key), live.get(key), as_of, program, internal, stored_too
        )
        if found:
            differing += 1
            mismatches.extend(found)
    return mismatches, differing


def _compare_customer(
    customer: str,
    expected_bytes: bytes | None,
    live_bytes: bytes | None,
    as_of: datetime,
    program: Program,
    internal: bool,
    stored_too: bool,
) -> list[Mismatch]:
    if live_bytes is None:
        return [Mismatch(customer, "customer", "present", "missing")]
    if expected_bytes is None:
        return [Mismatch(customer, "customer", "absent", "present")]
    expected = StoredCustomer.from_bytes(expected_bytes)
    try:
        live = StoredCustomer.from_bytes(live_bytes)
        live_state, _ = advance(live.state, as_of, program)
    except (EnvelopeError, ValueError) as error:
        return [Mismatch(customer, "stored state", "readable", f"unreadable: {error}")]
    expected_state, _ = advance(expected.state, as_of, program)
    found = []
    expected_line = state_line(expected_state, as_of, program)
    live_line = state_line(live_state, as_of, program)
    for name, value in expected_line.items():
        if live_line.get(name) != value:
            found.append(Mismatch(customer, name, value, live_line.get(name)))
    if live.partition != expected.partition:
        found.append(Mismatch(customer, "partition", expected.partition, live.partition))
    for source in Source:
        want, have = expected.next_offsets[source], live.next_offsets[source]
        if want != have:
            found.append(Mismatch(customer, f"next_offsets.{source.name.lower()}", want, have))
    if not internal:
        return found
    if not found and live_state != expected_state:
        found.extend(_state_fields(customer, "state", expected_state, live_state))
    if not found and stored_too and live.state_bytes != expected.state_bytes:
        found.extend(_state_fields(customer, "stored", expected.state, live.state))
    return found


def _state_fields(
    customer: str, label: str, expected: CustomerState, live: CustomerState
) -> list[Mismatch]:
    return [
        Mismatch(customer, f"{label}.{name}", value, getattr(live, name))
        for name, value in expected._asdict().items()
        if getattr(live, name) != value
    ]


@dataclass(frozen=True, slots=True)
class ProducedRecord:
    topic: str
    key: bytes | None
    value: bytes


def read_produced(
    kafka: KafkaTarget, topics: Iterable[str], progress: Progress | None = None
) -> list[ProducedRecord]:
    produced = []
    for topic in topics:
        for message in read_topic(kafka, topic):
            if progress is not None:
                progress(1)
            produced.append(ProducedRecord(topic, message.key(), message.value() or b""))
    return produced


def compare_outputs(
    expected: list[Outbound],
    produced: list[ProducedRecord],
    codec: Codec,
    *,
    allowed_extra: Iterable[Outbound] = (),
    duplicates_allowed: bool = True,
) -> tuple[list[Mismatch], Counter[str]]:
    """Every expected output id produced, on its topic, each copy equal to the expected
    record; no id the reference does not have (`allowed_extra`: ids that may be produced but
    need not be); copies of an id only when `duplicates_allowed`. Returns the mismatches and
    counts (missing, unexpected, duplicated, produced)."""
    mismatches: list[Mismatch] = []
    counts: Counter[str] = Counter()
    wanted = {sent.event_id: sent for sent in expected if sent.event_id is not None}
    extra = {sent.event_id: sent for sent in allowed_extra if sent.event_id is not None}
    copies: dict[str, list[ProducedRecord]] = {}
    for record in produced:
        counts["produced"] += 1
        try:
            event_id = str(codec.decode(record.value).record["event_id"])
        except Exception as error:  # anything undecodable on an output topic is a finding
            mismatches.append(
                Mismatch(
                    _customer(record.key),
                    f"output on {record.topic}",
                    "decodable",
                    f"undecodable: {error}",
                )
            )
            continue
        copies.setdefault(event_id, []).append(record)
    for event_id, sent in wanted.items():
        if event_id not in copies:
            counts["missing"] += 1
            mismatches.append(
                Mismatch(
                    _customer(sent.key),
                    f"output {sent.kind} {event_id}",
                    f"produced on {sent.topic}",
                    "missing",
                )
            )
    for event_id, records in copies.items():
        reference = wanted.get(event_id) or extra.get(event_id)
        if reference is None:
            counts["unexpected"] += 1
            schema_name = codec.decode(records[0].value).schema_name
            mismatches.append(
                Mismatch(
                    _customer(records[0].key),
                    f"output {schema_name} {event_id}",
                    "not produced",
                    f"produced {len(records)}x on {records[0].topic}",
                )
            )
            continue
        counts["duplicated"] += len(records) - 1
        if len(records) > 1 and not duplicates_allowed:
            mismatches.append(
                Mismatch(
                    _customer(reference.key),
                    f"output {reference.kind} {event_id}",
                    "produced once",
                    f"produced {len(records)}x",
                )
            )
        for record in records:
            mismatches.extend(_compare_output(event_id, reference, record, codec))
    return mismatches, counts


def _compare_output(
    event_id: str, reference: Outbound, record: ProducedRecord, codec: Codec
) -> list[Mismatch]:
    customer = _customer(reference.key)
    label = f"output {reference.kind} {event_id}"
    found = []
    if record.topic != reference.topic:
        found.append(Mismatch(customer, f"{label} topic", reference.topic, record.topic))
    if record.key != reference.key:
        found.append(Mismatch(customer, f"{label} key", reference.key, record.key))
    if record.value != reference.value:
        want, have = codec.decode(reference.value).record, codec.decode(record.value).record
        for name in sorted(want.keys() | have.keys()):
            if want.get(name) != have.get(name):
                found.append(Mismatch(customer, f"{label}.{name}", want.get(name), have.get(name)))
    return found


def _customer(key: bytes | None) -> str | None:
    return None if key is None else key.decode(errors="replace")


DeadLetterSpot = tuple[str, int, int]  # source topic, partition, offset


def compare_dead_letters(
    expected: list[Outbound], produced: list[ProducedRecord], codec: Codec
) -> tuple[list[Mismatch], int, int]:
    """Dead letters by the source record they stand for: every expected one produced with
    the same error kind, none for a record the reference applied. Copies of one are allowed
    (a crash may send one twice; it has no id). Returns mismatches, expected and produced."""
    want = _dead_letter_kinds((s.value for s in expected if s.kind == "DeadLetter"), codec)
    have = _dead_letter_kinds((record.value for record in produced), codec)
    mismatches = []
    for spot in sorted(want.keys() | have.keys()):
        label = f"dead letter for {spot[0]}[{spot[1]}]@{spot[2]}"
        if spot not in have:
            mismatches.append(Mismatch(want[spot][1], label, want[spot][0], "missing"))
        elif spot not in want:
            mismatches.append(Mismatch(have[spot][1], label, "none", have[spot][0]))
        elif want[spot][0] != have[spot][0]:
            mismatches.append(
                Mismatch(want[spot][1], f"{label} error_kind", want[spot][0], have[spot][0])
            )
    expected_count = sum(1 for sent in expected if sent.kind == "DeadLetter")
    return mismatches, expected_count, len(produced)


def _dead_letter_kinds(
    values: Iterable[bytes], codec: Codec
) -> dict[DeadLetterSpot, tuple[str, str | None]]:
    kinds = {}
    for value in values:
        record = codec.decode(value).record
        spot = (record["source_topic"], record["source_partition"], record["source_offset"])
        kinds[spot] = (record["error_kind"], record.get("customer_id"))
    return kinds


def default_as_of(settings: Settings, reference: Reference) -> datetime:
    """Where no --as-of is given: in event-clock mode the latest event time of the log, the
    furthest any partition's clock got; in live mode now (the workers move silent partitions
    on to the wall clock)."""
    from streams.worker.views import last_event_moment

    if settings.clock == "live":
        return datetime.now(UTC)
    latest = None
    for value in reference.table.values():
        moment = last_event_moment(StoredCustomer.from_bytes(value).state)
        if moment is not None and (latest is None or moment > latest):
            latest = moment
    return latest or datetime.now(UTC)


def audit(
    settings: Settings,
    as_of: datetime | None = None,
    progress: ProgressFactory | None = None,
    *,
    view_only: bool = False,
) -> AuditReport:
    """The input topics from the beginning folded with the worker's own loop (same partitions,
    same grace), compared with the live state (the customer table's changelog, as `export`
    reads it) and with the output and dead-letter topics. `progress(label, total)` as for
    `replay`. In live-clock mode the workers may have moved silent customers on further than
    the log's event times: time-driven outputs up to as_of are then allowed, not required.
    `view_only`: customers compared as replay lines, partition and offsets only, not in the
    state the view does not show (see `compare_states`)."""
    from streams.contract import make_codec
    from streams.program import load_program
    from streams.tools.export import read_customer_table
    from streams.tools.replay import gc_paused

    bars = progress or _no_progress
    lag = _lag(settings)
    program = load_program(settings.rules)
    codec = make_codec(settings)
    codec.prepare()
    topics = TopicNames.from_settings(settings)
    seconds: dict[str, float] = {}

    started = time.monotonic()
    with bars("reading inputs", None) as advance_bar, gc_paused():
        records = read_input_log(settings.kafka, topics, advance_bar)
    seconds["read inputs"] = time.monotonic() - started

    started = time.monotonic()
    with bars("folding", len(records)) as advance_bar, gc_paused():
        reference = reference_fold(
            _counted(records, advance_bar),
            program,
            codec,
            topics,
            settings.partitions,
            grace_ms=int(settings.late_grace_seconds * 1000),
            max_event_time_ahead_ms=settings.max_event_time_ahead_ms,
        )
    seconds["fold"] = time.monotonic() - started
    moment = as_of or default_as_of(settings, reference)
    report = AuditReport(moment, input_records=len(records), lag_at_start=lag)

    started = time.monotonic()
    with bars("reading live state", None) as advance_bar:
        live = read_customer_table(settings.kafka, settings.app_id, advance_bar)
    with bars("comparing states", None), gc_paused():
        states, report.customers_differing = compare_states(
            reference.table,
            live.customers,
            moment,
            program,
            internal=not view_only,
            stored_too=settings.clock == "event" and not view_only,
        )
    report.customers_expected, report.customers_live = len(reference.table), len(live.customers)
    seconds["states"] = time.monotonic() - started

    started = time.monotonic()
    with bars("reading outputs", None) as advance_bar:
        produced = read_produced(settings.kafka, topics.outputs, advance_bar)
        dead = read_produced(settings.kafka, [topics.dead_letter], advance_bar)
    extra: list[Outbound] = []
    if settings.clock == "live":
        processor = Processor(program, codec, topics, settings.partitions)
        for value in reference.table.values():
            extra.extend(processor.advance(value, moment).send)
    outputs, counts = compare_outputs(
        reference.outputs,
        produced,
        codec,
        allowed_extra=extra,
        duplicates_allowed=settings.processing_guarantee != "exactly_once",
    )
    letters, report.dead_letters_expected, report.dead_letters_live = compare_dead_letters(
        reference.outputs, dead, codec
    )
    seconds["outputs"] = time.monotonic() - started

    report.outputs_expected = len(reference.output_ids())
    report.outputs_live = counts["produced"]
    report.outputs_missing = counts["missing"]
    report.outputs_unexpected = counts["unexpected"]
    report.outputs_duplicated = counts["duplicated"]
    report.mismatches = [*states, *outputs, *letters]
    report.seconds = seconds
    return report


def _lag(settings: Settings) -> int | None:
    """The workers' total consumer lag, or None if it cannot be told (no such group yet)."""
    from streams.tools.lag import group_lag

    try:
        lag = group_lag(settings.kafka, settings.app_id, TopicNames.from_settings(settings).inputs)
    except Exception:  # only for a warning: never the reason an audit fails
        return None
    return sum(lag.values())


def _counted(records: list[InputRecord], advance_bar: Progress) -> Iterator[InputRecord]:
    for record in records:
        advance_bar(1)
        yield record
