"""What the customer table stores per customer: the core's state bytes behind a small header
the shell needs without decoding the state.

- the input partition the customer lives on (the due index is rebuilt per partition from it);
- per input source, the next offset not yet applied: a record at a lower offset was applied
  already and is skipped, which makes applying exactly-once whatever Faust redelivers after a
  crash or a rebalance (its offset commits are known to lag, gap and repeat);
- when the core says something is next due, so that the due index is rebuilt after recovery
  from the headers alone.

Layout: version byte, then unsigned LEB128 varints (partition, next offset per source,
due ms + 1 or 0 for none), then the core's state bytes."""

from __future__ import annotations

from dataclasses import dataclass

from streams.core import CustomerState, state_from_bytes, state_to_bytes

CUSTOMER_TABLE = "customers"  # the Faust table; its changelog is `<app id>-customers-changelog`
FORMAT = 1
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


@dataclass(frozen=True, slots=True)
class StoredCustomer:
    partition: int
    next_offsets: tuple[int, ...]  # per source: the lowest offset not applied yet
    next_due_ms: int | None
    state_bytes: bytes

    @property
    def state(self) -> CustomerState:
        return state_from_bytes(self.state_bytes)

    def applied(self, source: int, offset: int) -> bool:
        """Whether the record at `offset` of `source` was applied to this state already."""
        return offset < self.next_offsets[source]

    def to_bytes(self) -> bytes:
        out = bytearray((FORMAT,))
        _put(out, self.partition)
        for offset in self.next_offsets:
            _put(out, offset)
        _put(out, 0 if self.next_due_ms is None else self.next_due_ms + 1)
        return bytes(out) + self.state_bytes

    @classmethod
    def from_bytes(cls, data: bytes) -> StoredCustomer:
        partition, due_ms, pos, offsets = cls._header(data)
        return cls(partition, offsets, due_ms, data[pos:])

    @classmethod
    def header_of(cls, data: bytes) -> tuple[int, int | None]:
        """(partition, next due ms) without copying the state: for rebuilding the due index."""
        partition, due_ms, _, _ = cls._header(data)
        return partition, due_ms

    @staticmethod
    def _header(data: bytes) -> tuple[int, int | None, int, tuple[int, ...]]:
        if not data or data[0] != FORMAT:
            raise EnvelopeError(f"unknown stored customer format {data[:1]!r}; this reads {FORMAT}")
        partition, pos = _get(data, 1)
        offsets = []
        for _ in range(SOURCES):
            offset, pos = _get(data, pos)
            offsets.append(offset)
        due_plus_one, pos = _get(data, pos)
        return partition, (due_plus_one - 1 if due_plus_one else None), pos, tuple(offsets)


def stored(
    state: CustomerState, partition: int, next_offsets: tuple[int, ...], next_due_ms: int | None
) -> StoredCustomer:
    return StoredCustomer(partition, next_offsets, next_due_ms, state_to_bytes(state))
