"""A customer's state as compact bytes, for the worker's RocksDB table and its changelog.

    state_to_bytes(state) -> bytes
    state_from_bytes(data) -> CustomerState          state_from_bytes(state_to_bytes(s)) == s

Layout (format 1): a format byte, the customer id, a bitmask of which optional fields are set,
then every field as a LEB128 varint (signed ones zigzag-encoded). Days and milliseconds are
stored relative to an anchor day (the last churn assessment, which every applied event sets),
so a time costs 2-5 bytes instead of 6. Event ids are front-coded against the previous id
(ids from one source share long prefixes: `file-<hash>-<line>`), a canonical UUID takes its 16
bytes, and a purchase record whose id is in the recent-ids ring stores only its position
there. Standard library only."""

from __future__ import annotations

import uuid

from streams.core.rules import MS_PER_DAY
from streams.core.state import (
    CustomerState,
    OpenComplaint,
    PunchCardStamps,
    PurchaseRecord,
    SpendDay,
)

FORMAT = 1


class StateDecodeError(ValueError):
    """Bytes that are not a state of a known format."""


def _uint(out: bytearray, value: int) -> None:
    if value < 0:
        raise ValueError(f"{value} is negative")
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _sint(out: bytearray, value: int) -> None:
    _uint(out, value << 1 if value >= 0 else ((-value) << 1) - 1)


def _text(out: bytearray, text: str) -> None:
    data = text.encode()
    _uint(out, len(data))
    out += data


def _shared_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _event_id(out: bytearray, event_id: str, previous: str) -> None:
    """An id front-coded against the previous one: a header (shared prefix length * 2, plus 1
    for a canonical UUID, stored as its 16 bytes), then the rest of the id as text."""
    shared = _shared_prefix(previous, event_id)
    if shared == 0 and len(event_id) == 36:
        try:
            parsed = uuid.UUID(event_id)
        except ValueError:
            parsed = None
        if parsed is not None and str(parsed) == event_id:
            _uint(out, 1)
            out += parsed.bytes
            return
    _uint(out, shared * 2)
    _text(out, event_id[shared:])


_OPTIONAL = (
    "requalify_ms",
    "warned_ms",
    "last_purchase_ms",
    "first_visit_day",
    "last_visit_day",
    "nps_score",
    "nps_ms",
    "churn_day",
)


def state_to_bytes(state: CustomerState) -> bytes:
    out = bytearray((FORMAT,))
    _text(out, state.customer_id)
    mask = 0
    for bit, name in enumerate(_OPTIONAL):
        if getattr(state, name) is not None:
            mask |= 1 << bit
    _uint(out, mask)
    anchor_day = state.churn_day if state.churn_day is not None else 0
    anchor_ms = anchor_day * MS_PER_DAY
    if state.churn_day is not None:
        _sint(out, state.churn_day)

    def ms(value: int | None) -> None:
        if value is not None:
            _sint(out, value - anchor_ms)

    def day(value: int | None) -> None:
        if value is not None:
            _sint(out, value - anchor_day)

    ms(state.requalify_ms)
    ms(state.warned_ms)
    ms(state.last_purchase_ms)
    day(state.first_visit_day)
    day(state.last_visit_day)
    if state.nps_score is not None:
        _uint(out, state.nps_score)
    ms(state.nps_ms)
    _uint(out, state.tier)
    _uint(out, state.points)
    _sint(out, state.lifetime_spend_minor)
    _uint(out, state.receipts)
    _uint(out, state.visits)
    _uint(out, state.churn_level)

    _uint(out, len(state.spend_days))
    previous_day = anchor_day
    for bucket in state.spend_days:
        _sint(out, bucket.day - previous_day)
        previous_day = bucket.day
        _sint(out, bucket.spend_minor)

    _uint(out, len(state.recent_checks))
    for check in state.recent_checks:
        _sint(out, check)

    _uint(out, len(state.punch_cards))
    for card in state.punch_cards:
        _sint(out, card.stamps)
        _uint(out, card.rewards)

    _uint(out, len(state.recent_ids))
    previous_id = ""
    for event_id in state.recent_ids:
        _event_id(out, event_id, previous_id)
        previous_id = event_id
    ring = {event_id: index for index, event_id in enumerate(state.recent_ids)}

    _uint(out, len(state.purchases))
    for record in state.purchases:
        position = ring.get(record.event_id)
        if position is None:
            _uint(out, 0)
            _event_id(out, record.event_id, previous_id)
        else:
            _uint(out, position + 1)
        previous_id = record.event_id
        ms(record.at_ms)
        _sint(out, record.spend_left_minor)
        _sint(out, record.points_left)
        _uint(out, len(record.stamps_left))
        for stamps in record.stamps_left:
            _sint(out, stamps)
        if record.upgraded_from is None:
            _uint(out, 0)
        else:
            _uint(out, record.upgraded_from + 1)
            if record.requalify_before_ms is None:
                _uint(out, 0)
            else:
                _uint(out, 1)
                ms(record.requalify_before_ms)

    _uint(out, len(state.complaints))
    for complaint in state.complaints:
        _text(out, complaint.complaint_id)
        ms(complaint.opened_ms)
        _uint(out, int(complaint.overdue))
    return bytes(out)


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def uint(self) -> int:
        result = shift = 0
        data = self.data
        while True:
            if self.pos >= len(data):
                raise StateDecodeError("state bytes end in the middle of a number")
            byte = data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result
            shift += 7

    def sint(self) -> int:
        value = self.uint()
        return value >> 1 if not value & 1 else -((value + 1) >> 1)

    def event_id(self, previous: str) -> str:
        header = self.uint()
        if header == 1:
            end = self.pos + 16
            if end > len(self.data):
                raise StateDecodeError("state bytes end in the middle of an id")
            value = str(uuid.UUID(bytes=self.data[self.pos : end]))
            self.pos = end
            return value
        return previous[: header >> 1] + self.text()

    def text(self) -> str:
        length = self.uint()
        end = self.pos + length
        if end > len(self.data):
            raise StateDecodeError("state bytes end in the middle of a text")
        value = self.data[self.pos : end].decode()
        self.pos = end
        return value


def state_from_bytes(data: bytes) -> CustomerState:
    if not data or data[0] != FORMAT:
        raise StateDecodeError(f"unknown state format {data[:1]!r}; this build reads {FORMAT}")
    read = _Reader(data)
    read.pos = 1
    customer_id = read.text()
    mask = read.uint()
    has = {name: bool(mask >> bit & 1) for bit, name in enumerate(_OPTIONAL)}
    churn_day = read.sint() if has["churn_day"] else None
    anchor_day = churn_day if churn_day is not None else 0
    anchor_ms = anchor_day * MS_PER_DAY

    def ms(name: str) -> int | None:
        return read.sint() + anchor_ms if has[name] else None

    def day(name: str) -> int | None:
        return read.sint() + anchor_day if has[name] else None

    requalify_ms = ms("requalify_ms")
    warned_ms = ms("warned_ms")
    last_purchase_ms = ms("last_purchase_ms")
    first_visit_day = day("first_visit_day")
    last_visit_day = day("last_visit_day")
    nps_score = read.uint() if has["nps_score"] else None
    nps_ms = ms("nps_ms")
    tier = read.uint()
    points = read.uint()
    lifetime_spend_minor = read.sint()
    receipts = read.uint()
    visits = read.uint()
    churn_level = read.uint()

    spend_days = []
    previous_day = anchor_day
    for _ in range(read.uint()):
        previous_day += read.sint()
        spend_days.append(SpendDay(previous_day, read.sint()))

    recent_checks = tuple(read.sint() for _ in range(read.uint()))
    punch_cards = tuple(PunchCardStamps(read.sint(), read.uint()) for _ in range(read.uint()))

    recent_ids: list[str] = []
    previous_id = ""
    for _ in range(read.uint()):
        previous_id = read.event_id(previous_id)
        recent_ids.append(previous_id)

    purchases = []
    for _ in range(read.uint()):
        position = read.uint()
        event_id = read.event_id(previous_id) if position == 0 else recent_ids[position - 1]
        previous_id = event_id
        at_ms = read.sint() + anchor_ms
        spend_left = read.sint()
        points_left = read.sint()
        stamps_left = tuple(read.sint() for _ in range(read.uint()))
        upgraded = read.uint()
        upgraded_from = None if upgraded == 0 else upgraded - 1
        requalify_before_ms = None
        if upgraded_from is not None and read.uint() == 1:
            requalify_before_ms = read.sint() + anchor_ms
        purchases.append(
            PurchaseRecord(
                event_id,
                at_ms,
                spend_left,
                points_left,
                stamps_left,
                upgraded_from,
                requalify_before_ms,
            )
        )

    complaints = []
    for _ in range(read.uint()):
        complaint_id = read.text()
        opened_ms = read.sint() + anchor_ms
        complaints.append(OpenComplaint(complaint_id, opened_ms, bool(read.uint())))
    if read.pos != len(data):
        raise StateDecodeError(f"{len(data) - read.pos} bytes left after the state")
    return CustomerState(
        customer_id=customer_id,
        tier=tier,
        requalify_ms=requalify_ms,
        warned_ms=warned_ms,
        points=points,
        last_purchase_ms=last_purchase_ms,
        lifetime_spend_minor=lifetime_spend_minor,
        receipts=receipts,
        visits=visits,
        first_visit_day=first_visit_day,
        last_visit_day=last_visit_day,
        spend_days=tuple(spend_days),
        recent_checks=recent_checks,
        punch_cards=punch_cards,
        purchases=tuple(purchases),
        nps_score=nps_score,
        nps_ms=nps_ms,
        complaints=tuple(complaints),
        churn_level=churn_level,
        churn_day=churn_day,
        recent_ids=tuple(recent_ids),
    )
