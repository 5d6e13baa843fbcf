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

Layout: version byte, then unsigned LEB128 varints (partition, next offset per source,
due ms + 1 or 0 for none, clock ms), then the core's state bytes. Version 1 had no clock."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from streams.core import CustomerState, state_from_bytes, state_to_bytes

CUSTOMER_TABLE = "customers"  # the Faust table; its changelog is `<app id>-customers-changelog`
FORMAT = 2
READABLE_FORMATS = (1, 2)  # version 1: no clock (read as 0)
SOURCES = 2  # purchases, feedback: see streams.worker.ordering.Source


class EnvelopeError(ValueError):
    """Stored bytes this build cannot read."""


def _put(out: bytearray, value: int) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _get(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise EnvelopeError("stored customer is truncated")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


class Header(NamedTuple):
    partition: int
    next_due_ms: int | None
    clock_ms: int


@dataclass(frozen=True, slots=True)
class StoredCustomer:
    partition: int
    next_offsets: tuple[int, ...]  # per source: the lowest offset not applied yet
    next_due_ms: int | None
    state_bytes: bytes
    clock_ms: int = 0  # the partition's clock when written (0: unknown)

    @property
    def state(self) -> CustomerState:
        return _recent_states.decode(self.state_bytes)

    def applied(self, source: int, offset: int) -> bool:
        """Whether the record at `offset` of `source` was applied to this state already."""
        return offset < self.next_offsets[source]

    def to_bytes(self) -> bytes:
        out = bytearray((FORMAT,))
        _put(out, self.partition)
        for offset in self.next_offsets:
            _put(out, offset)
        _put(out, 0 if self.next_due_ms is None else self.next_due_ms + 1)
        _put(out, self.clock_ms)
        return bytes(out) + self.state_bytes

    @classmethod
    def from_bytes(cls, data: bytes) -> StoredCustomer:
        header, pos, offsets = cls._header(data)
        return cls(header.partition, offsets, header.next_due_ms, data[pos:], header.clock_ms)

    @classmethod
    def header_of(cls, data: bytes) -> Header:
        """The header without copying the state: for rebuilding the due index and clocks."""
        return cls._header(data)[0]

    @staticmethod
    def _header(data: bytes) -> tuple[Header, int, tuple[int, ...]]:
        if not data or data[0] not in READABLE_FORMATS:
            raise EnvelopeError(
                f"unknown stored customer format {data[:1]!r}; this reads {READABLE_FORMATS}"
            )
        partition, pos = _get(data, 1)
        offsets = []
        for _ in range(SOURCES):
            offset, pos = _get(data, pos)
            offsets.append(offset)
        due_plus_one, pos = _get(data, pos)
        clock_ms = 0
        if data[0] >= 2:
            clock_ms, pos = _get(data, pos)
        due_ms = due_plus_one - 1 if due_plus_one else None
        return Header(partition, due_ms, clock_ms), pos, tuple(offsets)


def stored(
    state: CustomerState,
    partition: int,
    next_offsets: tuple[int, ...],
    next_due_ms: int | None,
    clock_ms: int = 0,
) -> StoredCustomer:
    state_bytes = state_to_bytes(state)
    _recent_states.remember(state_bytes, state)
    return StoredCustomer(partition, next_offsets, next_due_ms, state_bytes, clock_ms)


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
