"""What the customer table stores per customer: the core's state bytes behind a small header
the shell needs without decoding the state.

- the input partition the customer lives on (the due index is rebuilt per partition from it);
- per input source, the next offset not yet applied: a record at a lower offset was applied
  already and is skipped, which makes applying exactly-once whatever Faust redelivers after a
  crash or a rebalance (its offset commits are known to lag, gap and repeat);
- when the core says something is next due, so that the due index is rebuilt after recovery
  from the headers alone;
- the partition's clock when the customer was written (the latest event time applied on the
  partition, after the record that caused the write): after a restart, the partition's clock
  is the highest of its customers', so that time-driven work happens at the same point of the
  log as in a run that never stopped (a clock rebuilt from the records read again alone can
  be behind, and work it runs later than a late event changes what that work does).

- the customer's facts for the program's tallies (tier, stage, points, ...) and the
  fingerprint of the rules they and the due time were worked out under: a restart under the
  same rules counts and schedules its customers from the headers alone, with no state decoded
  (see `streams.core.facts_codec`); under other rules it decodes each state and asks the core.

Layout, format 3: a version byte, then fixed-width little-endian fields (the rules'
fingerprint, 0 for none; partition; due ms, -1 for none; clock ms; the facts' integers, zero
without a fingerprint), then the next offset per source as unsigned LEB128 varints, then the
core's state bytes. The fixed part is what a restart reads of every customer, and `struct`
reads it in one call: as varints read a byte at a time in Python, the restart's scan of one
table took 21 us a customer, against 9 us this way. Formats 1
and 2 (still read) were varints only: partition, offsets, due ms + 1 or 0, and from 2 the
clock; they have no fingerprint or facts."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple

from streams.core import CustomerState, state_from_bytes, state_to_bytes
from streams.core.facts_codec import FIELDS

CUSTOMER_TABLE = "customers"  # the Faust table; its changelog is `<app id>-customers-changelog`
FORMAT = 3
READABLE_FORMATS = (1, 2, 3)  # 1: no clock (read as 0); 1 and 2: no facts (rules read as 0)
SOURCES = 2  # purchases, feedback: see streams.worker.ordering.Source
# rules, partition, due, clock; the facts: tier, stage and loyalty type, churn level and NPS
# class, flags, open and overdue complaints, points, net spend, receipts (`FactsCodec`). As
# narrow as the values allow (partitions <= 1024, open complaints <= MAX_OPEN_COMPLAINTS): a
# customer's points beyond 32 bits do not fit, and such a customer is stored without facts
_FIXED = struct.Struct("<IHqqBBBBBBiqI")
_NO_FACTS = (0,) * FIELDS


class EnvelopeError(ValueError):
    """Stored bytes this build cannot read."""


def _put(out: bytearray, value: int) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _get(data: bytes, pos: int, count: int) -> tuple[list[int], int]:
    """`count` varints from `pos`, and the position after them."""
    values: list[int] = []
    value = shift = 0
    end = len(data)
    while len(values) < count:
        if pos >= end:
            raise EnvelopeError("stored customer is truncated")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            values.append(value)
            value = shift = 0
        else:
            shift += 7
    return values, pos


class Header(NamedTuple):
    partition: int
    next_due_ms: int | None
    clock_ms: int
    rules: int  # the fingerprint `next_due_ms` and `facts` hold under; 0: no facts
    facts: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class StoredCustomer:
    partition: int
    next_offsets: tuple[int, ...]  # per source: the lowest offset not applied yet
    next_due_ms: int | None
    state_bytes: bytes
    clock_ms: int = 0  # the partition's clock when written (0: unknown)
    rules: int = 0  # fingerprint of the rules `next_due_ms` and `facts` hold under (0: none)
    facts: tuple[int, ...] = ()  # the state's facts under those rules (`FactsCodec`)

    @property
    def state(self) -> CustomerState:
        return _recent_states.decode(self.state_bytes)

    def applied(self, source: int, offset: int) -> bool:
        """Whether the record at `offset` of `source` was applied to this state already."""
        return offset < self.next_offsets[source]

    def to_bytes(self) -> bytes:
        due_ms = -1 if self.next_due_ms is None else self.next_due_ms
        try:
            fixed = _FIXED.pack(self.rules, self.partition, due_ms, self.clock_ms, *self.facts)
        except struct.error:  # no facts, or one out of its field's range: decoded instead
            fixed = _FIXED.pack(0, self.partition, due_ms, self.clock_ms, *_NO_FACTS)
        out = bytearray((FORMAT,))
        out += fixed
        for offset in self.next_offsets:
            _put(out, offset)
        return bytes(out) + self.state_bytes

    @classmethod
    def from_bytes(cls, data: bytes) -> StoredCustomer:
        header, pos, offsets = cls._header(data)
        return cls(
            header.partition,
            offsets,
            header.next_due_ms,
            data[pos:],
            header.clock_ms,
            header.rules,
            header.facts,
        )

    @classmethod
    def header_of(cls, data: bytes) -> Header:
        """The header without copying the state: for rebuilding the due index, the tallies
        and the clocks."""
        if data[:1] == b"\x03":  # the current format, without reading the offsets
            return _fixed_header(data)
        return cls._header(data)[0]

    @staticmethod
    def _header(data: bytes) -> tuple[Header, int, tuple[int, ...]]:
        if not data or data[0] not in READABLE_FORMATS:
            raise EnvelopeError(
                f"unknown stored customer format {data[:1]!r}; this reads {READABLE_FORMATS}"
            )
        if data[0] == 3:
            offsets, pos = _get(data, 1 + _FIXED.size, SOURCES)
            return _fixed_header(data), pos, tuple(offsets)
        # formats 1 and 2: partition, the offsets, due + 1, then the clock (from 2)
        fields, pos = _get(data, 1, 1 + SOURCES + 1 + (data[0] >= 2))
        due_plus_one = fields[1 + SOURCES]
        header = Header(
            partition=fields[0],
            next_due_ms=due_plus_one - 1 if due_plus_one else None,
            clock_ms=fields[2 + SOURCES] if data[0] >= 2 else 0,
            rules=0,
            facts=(),
        )
        return header, pos, tuple(fields[1 : 1 + SOURCES])


def _fixed_header(data: bytes) -> Header:
    try:
        rules, partition, due_ms, clock_ms, *facts = _FIXED.unpack_from(data, 1)
    except struct.error as error:
        raise EnvelopeError("stored customer is truncated") from error
    return Header(partition, None if due_ms < 0 else due_ms, clock_ms, rules,
                  tuple(facts) if rules else ())  # fmt: skip


def stored(
    state: CustomerState,
    partition: int,
    next_offsets: tuple[int, ...],
    next_due_ms: int | None,
    clock_ms: int = 0,
    rules: int = 0,
    facts: tuple[int, ...] = (),
) -> StoredCustomer:
    state_bytes = state_to_bytes(state)
    _recent_states.remember(state_bytes, state)
    return StoredCustomer(partition, next_offsets, next_due_ms, state_bytes, clock_ms, rules, facts)


class RecentStates:
    """The states encoded or decoded lately, by their bytes: the worker reads a customer back
    as it wrote them, and decoding was the largest part of its own time per record in a
    profile (states are immutable: sharing one is safe). Two generations of at most
    `capacity` each: when the young one is full it becomes the old one, and what was old is
    forgotten (constant time, unlike evicting from the front of a dict one at a time)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._young: dict[bytes, CustomerState] = {}
        self._old: dict[bytes, CustomerState] = {}

    def decode(self, state_bytes: bytes) -> CustomerState:
        state = self._young.get(state_bytes)
        if state is None:
            state = self._old.get(state_bytes)
            if state is None:
                state = state_from_bytes(state_bytes)
            self.remember(state_bytes, state)
        return state

    def remember(self, state_bytes: bytes, state: CustomerState) -> None:
        if len(self._young) >= self.capacity:
            self._old, self._young = self._young, {}
        self._young[state_bytes] = state


# about 20 MB of states at most: what the last seconds of a busy worker's records touched
_recent_states = RecentStates(10_000)
