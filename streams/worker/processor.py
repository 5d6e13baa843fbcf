"""One record at a time, without Kafka: decode and check an input record, apply it to the
customer's stored state with the core, and say what to write and what to send. The agent
moves bytes in and out; everything that decides lives here or in the core, so it is tested
without a broker.

Nothing raises for bad input: every record that cannot be applied becomes a dead letter with
the reason, its source coordinates and its raw bytes.

One check needs the record as well as its event, so it is made here rather than in the core:
an event dated further ahead of the time the broker received its record than
`max_event_time_ahead_ms` is refused (`EVENT_TIME_AHEAD`). The receive time is the record's
timestamp (the input topics use LogAppendTime), which is in the log: a replay of the log
refuses the same events. A file has no such time, so `loyalty replay` cannot make this check."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka.partitioner import murmur2

from streams.broker.topics import TopicNames
from streams.contract import Codec
from streams.contract.errors import ContractError, RecordInvalidError
from streams.core import (
    INPUT_EVENTS,
    CustomerState,
    InputEvent,
    OutputEvent,
    Program,
    RuleViolation,
    advance,
    apply,
    new_customer,
    next_due,
)
from streams.core.events import from_ms, to_ms
from streams.core.limits import EARLIEST_EVENT_MS, LATEST_EVENT_MS
from streams.settings import DEFAULT_MAX_EVENT_TIME_AHEAD_SECONDS
from streams.worker.envelope import SOURCES, EnvelopeError, StoredCustomer, stored
from streams.worker.ordering import Source

_SOURCE_OF_SCHEMA = {
    "loyalty.v1.Purchase": Source.PURCHASES,
    "loyalty.v1.Return": Source.PURCHASES,
    "loyalty.v1.NpsResponse": Source.FEEDBACK,
    "loyalty.v1.ComplaintOpened": Source.FEEDBACK,
    "loyalty.v1.ComplaintResolved": Source.FEEDBACK,
}


@dataclass(frozen=True, slots=True)
class InputRecord:
    """A record as it came off an input topic."""

    source: Source
    topic: str
    partition: int
    offset: int
    # the Kafka record's timestamp, the broker's receive time (LogAppendTime): the merge orders
    # sources by it; -1 (Kafka's "no timestamp") for a record without one
    timestamp_ms: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Rejection:
    error_kind: str
    message: str
    event_id: str | None = None
    customer_id: str | None = None


@dataclass(frozen=True, slots=True)
class Checked:
    """An input record after decoding: its event (None if it could not be decoded) and why it
    cannot be applied (None if nothing seen so far stops it: the customer's state still may).
    A decoded event refused here keeps its event, so that applying it moves its customer's
    offset mark past it, as the core's refusals do, and a redelivery is recognised."""

    record: InputRecord
    event: InputEvent | None
    rejection: Rejection | None


@dataclass(frozen=True, slots=True)
class Outbound:
    """A record to produce: an output event or a dead letter."""

    topic: str
    key: bytes | None
    value: bytes
    event_id: str | None
    kind: str  # the schema's short name, for metrics
    reward_kind: str | None = None  # a RewardEarned's kind, for metrics


@dataclass(slots=True)
class Outcome:
    customer_id: str | None = None
    write: StoredCustomer | None = None  # None: the stored customer stays as it was
    send: list[Outbound] = field(default_factory=list)
    duplicate: bool = False
    rejected: Rejection | None = None
    # the customer's state before and after, when it changed (for the program's metrics)
    before: CustomerState | None = None
    after: CustomerState | None = None

    @property
    def next_due_ms(self) -> int | None:
        return None if self.write is None else self.write.next_due_ms


DEFAULT_MAX_EVENT_TIME_AHEAD_MS = round(DEFAULT_MAX_EVENT_TIME_AHEAD_SECONDS * 1000)


def expected_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's Java client (and aiokafka) choose for a key: murmur2, positive."""
    return (int(murmur2(key)) & 0x7FFFFFFF) % partitions


class Processor:
    def __init__(
        self,
        program: Program,
        codec: Codec,
        topics: TopicNames,
        partitions: int,
        *,
        max_event_time_ahead_ms: int | None = DEFAULT_MAX_EVENT_TIME_AHEAD_MS,
    ):
        """`max_event_time_ahead_ms`: how far an event's time may be ahead of its record's
        timestamp (`Settings.max_event_time_ahead_ms`); None: any distance."""
        self.program = program
        self.codec = codec
        self.topics = topics
        self.partitions = partitions
        self.max_event_time_ahead_ms = max_event_time_ahead_ms
        self._topic_of_role = {
            "tier_changes": topics.tier_changes,
            "churn_risk": topics.churn_risk,
            "rewards": topics.rewards,
        }

    # ---- decoding ----------------------------------------------------------------------------

    def check(self, record: InputRecord) -> Checked:
        """Decodes and checks what can be checked without the customer's state: the bytes,
        the key, the partition, the topic, and the event's time against the record's."""
        event, rejection = self._decode(record)
        if event is not None and rejection is None:
            rejection = self._ahead_of_receipt(record, event)
        return Checked(record, event, rejection)

    def _ahead_of_receipt(self, record: InputRecord, event: InputEvent) -> Rejection | None:
        """Why an event dated too far ahead of its record's receipt is refused, or None. A
        time outside the core's window is left to the core, whose reason says more; a record
        without a timestamp cannot be judged."""
        limit_ms = self.max_event_time_ahead_ms
        at_ms = to_ms(event.occurred_at)
        if (
            limit_ms is None
            or record.timestamp_ms < 0
            or not EARLIEST_EVENT_MS <= at_ms < LATEST_EVENT_MS
            or at_ms - record.timestamp_ms <= limit_ms
        ):
            return None
        allowed, ahead = _span(limit_ms), _span(at_ms - record.timestamp_ms)
        if ahead == allowed:  # rounded to it: say which side it is on
            ahead = f"just over {allowed}"
        return Rejection(
            "EVENT_TIME_AHEAD",
            f"occurred_at {_iso(at_ms)} is {ahead} ahead of the time the broker received the "
            f"record ({_iso(record.timestamp_ms)}), more than the {allowed} allowed: check the "
            "POS clock",
            event.event_id,
            event.customer_id,
        )

    def _decode(self, record: InputRecord) -> tuple[InputEvent | None, Rejection | None]:
        if not record.value:
            return None, Rejection("DECODE", "empty value: no event to decode")
        try:
            decoded = self.codec.decode(record.value)
        except RecordInvalidError as error:
            return None, Rejection(error.error_kind, str(error), error.event_id, error.customer_id)
        except ContractError as error:
            return None, Rejection(error.error_kind, str(error))
        body = decoded.record
        ids = {"event_id": body.get("event_id"), "customer_id": body.get("customer_id")}
        source = _SOURCE_OF_SCHEMA.get(decoded.schema_name)
        if source is None:
            return None, Rejection(
                "UNKNOWN_SCHEMA", f"{decoded.schema_name} is not an input event", **ids
            )
        if source is not record.source:
            return None, Rejection(
                "WRONG_TOPIC",
                f"{decoded.schema_name} belongs on the {source.name.lower()} topic, "
                f"not on {record.topic}",
                **ids,
            )
        customer_key = str(body["customer_id"]).encode()
        if record.key != customer_key:
            return None, Rejection(
                "KEY_MISMATCH",
                f"record key {record.key!r} is not the customer id {body['customer_id']!r}",
                **ids,
            )
        home = expected_partition(customer_key, self.partitions)
        if home != record.partition:
            return None, Rejection(
                "MISPARTITIONED",
                f"customer {body['customer_id']!r} belongs on partition {home} (murmur2 of the "
                f"key, as Kafka's Java client partitions), not {record.partition}; librdkafka "
                "producers need partitioner=murmur2_random",
                **ids,
            )
        return INPUT_EVENTS[decoded.schema_name](body), None

    @staticmethod
    def event_time_ms(checked: Checked) -> int | None:
        """The time this record moves its partition's clock to; None: it does not move it.
        A refused event must not move the clock: at 9500 (outside the core's time window) one
        made the partition's due work expire every customer's points, and one at 2400 (inside
        the window, but centuries ahead of its receipt) would do the same."""
        if checked.event is None or checked.rejection is not None:
            return None
        at_ms = to_ms(checked.event.occurred_at)
        return at_ms if EARLIEST_EVENT_MS <= at_ms < LATEST_EVENT_MS else None

    # ---- applying ----------------------------------------------------------------------------

    def apply(
        self, checked: Checked, stored_bytes: bytes | None, now: datetime, clock_ms: int = 0
    ) -> Outcome:
        """The outcome of one checked record for its customer (`stored_bytes`: the table's
        value for the customer, None for a new one). `now` only stamps dead letters;
        `clock_ms` is the partition's clock once this record is applied, stored with it."""
        record = checked.record
        if checked.event is None:
            rejection = checked.rejection or Rejection("DECODE", "no event")
            return Outcome(
                customer_id=rejection.customer_id,
                send=[self.dead_letter(record, rejection, now)],
                rejected=rejection,
            )
        event = checked.event
        outcome = Outcome(customer_id=event.customer_id)
        try:
            current = self._load(stored_bytes, event.customer_id, record.partition)
        except (EnvelopeError, ValueError) as error:
            unreadable = Rejection("STATE", f"stored state unreadable: {error}", event.event_id,
                                  event.customer_id)  # fmt: skip
            outcome.send.append(self.dead_letter(record, unreadable, now))
            outcome.rejected = unreadable
            return outcome
        if current.applied(record.source, record.offset):
            # Redelivered after a crash or a rebalance: applied once already. The state is
            # written again all the same: after a crash the local store can be ahead of the
            # changelog (its last writes never sent), and the next owner of the partition
            # rebuilds from the changelog; writing it now makes the changelog catch up before
            # this record's offset is committed.
            outcome.duplicate = True
            outcome.write = current
            return outcome
        offsets = list(current.next_offsets)
        offsets[record.source] = record.offset + 1
        before = state = current.state
        sends: list[Outbound] = []
        refusal = checked.rejection  # refused by `check`, after the redelivery test above
        try:
            if refusal is None:
                state, outputs = apply(state, event, self.program)
                sends = self.encode_outputs(outputs)
        except RuleViolation as violation:
            refusal = Rejection(violation.error_kind, violation.reason, event.event_id,
                                  event.customer_id)  # fmt: skip
        except Exception as error:
            # A defect of ours rather than the record's, but a record that crashes the worker
            # crashes every restart of it: dead-letter it, loudly, and keep the partition going.
            refusal = Rejection("INTERNAL", f"the processor failed on this event "
                                  f"({type(error).__name__}: {error}); its state is unchanged",
                                  event.event_id, event.customer_id)  # fmt: skip
        if refusal is not None:
            outcome.send.append(self.dead_letter(record, refusal, now))
            outcome.rejected = refusal
            state, sends = before, []  # the state stays, but the offset moves on: record done
        outcome.send.extend(sends)
        outcome.write = self._store(state, record.partition, tuple(offsets), clock_ms)
        outcome.before = None if stored_bytes is None else before
        outcome.after = state
        return outcome

    def advance(self, stored_bytes: bytes, up_to: datetime, clock_ms: int = 0) -> Outcome:
        """Time-driven work for one customer up to `up_to` (the partition's clock less the
        grace); `clock_ms`, the partition's clock, is stored with it."""
        current = StoredCustomer.from_bytes(stored_bytes)
        before = current.state
        state, outputs = advance(before, up_to, self.program)
        outcome = Outcome(customer_id=state.customer_id, send=self.encode_outputs(outputs))
        outcome.write = self._store(state, current.partition, current.next_offsets, clock_ms)
        outcome.before, outcome.after = before, state
        return outcome

    def _load(self, stored_bytes: bytes | None, customer_id: str, partition: int) -> StoredCustomer:
        if stored_bytes is None:
            return stored(new_customer(customer_id), partition, (0,) * SOURCES, None)
        return StoredCustomer.from_bytes(stored_bytes)

    def next_due_ms(self, state: CustomerState) -> int | None:
        """When the core under this worker's rules next has time-driven work for the state."""
        due = next_due(state, self.program)
        return None if due is None else to_ms(due)

    def _store(
        self, state: Any, partition: int, offsets: tuple[int, ...], clock_ms: int
    ) -> StoredCustomer:
        return stored(state, partition, offsets, self.next_due_ms(state), clock_ms)

    # ---- encoding ----------------------------------------------------------------------------

    def encode_outputs(
        self, outputs: tuple[OutputEvent, ...] | list[OutputEvent]
    ) -> list[Outbound]:
        return [
            Outbound(
                topic=self._topic_of_role[output.TOPIC_ROLE],
                key=output.customer_id.encode(),
                value=self.codec.encode(output.SCHEMA, output.to_record()),
                event_id=output.event_id,
                kind=output.SCHEMA.rpartition(".")[2],
                reward_kind=getattr(output, "reward_kind", None),
            )
            for output in outputs
        ]

    def dead_letter(self, record: InputRecord, rejection: Rejection, now: datetime) -> Outbound:
        value = self.codec.encode(
            "loyalty.v1.DeadLetter",
            {
                "source_topic": record.topic,
                "source_partition": record.partition,
                "source_offset": record.offset,
                "raw_key": record.key,
                "raw_value": record.value,
                "error_kind": rejection.error_kind,
                "message": rejection.message,
                "failed_at": now.astimezone(UTC),
                "event_id": rejection.event_id,
                "customer_id": rejection.customer_id,
            },
        )
        return Outbound(self.topics.dead_letter, record.key, value, None, "DeadLetter")


def due_moment(ms: int) -> datetime:
    return from_ms(ms)


def _iso(ms: int) -> str:
    return from_ms(ms).isoformat().replace("+00:00", "Z")


_UNITS = ((86_400_000, "day"), (3_600_000, "hour"), (60_000, "minute"), (1000, "second"))


def _span(ms: int) -> str:
    """A length of time in the largest unit it holds: `1 day`, `3.5 hours`, `0.2 seconds`."""
    unit_ms, unit = next((size for size in _UNITS if ms >= size[0]), _UNITS[-1])
    amount = f"{ms / unit_ms:,.1f}".removesuffix(".0")
    return f"{amount} {unit}" + ("" if amount == "1" else "s")
