"""The events the core reads and writes, with the field names of the contract (docs/events.md,
schemas/*.avsc). Input events are built from decoded Avro record dicts (`INPUT_EVENTS`, keyed
by the Avro full name); output events turn back into record dicts (`to_record`) and name their
schema (`SCHEMA`) and output topic role (`TOPIC_ROLE`), so the shell encodes and routes them
without knowing their insides."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime, exact (no float on the way)."""
    return (moment - EPOCH) // _ONE_MS


def from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


# ---- input ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LineItem:
    sku: str
    category: str
    quantity: int
    unit_price_minor: int

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> LineItem:
        return cls(
            record["sku"], record["category"], record["quantity"], record["unit_price_minor"]
        )


def _items(records: Any) -> tuple[LineItem, ...]:
    return tuple(LineItem.from_record(item) for item in records or ())


@dataclass(frozen=True, slots=True)
class Purchase:
    event_id: str
    customer_id: str
    store_id: str | None
    occurred_at: datetime
    currency: str
    total_minor: int
    items: tuple[LineItem, ...] = ()

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Purchase:
        return cls(
            record["event_id"],
            record["customer_id"],
            record.get("store_id"),
            record["occurred_at"],
            record["currency"],
            record["total_minor"],
            _items(record.get("items")),
        )


@dataclass(frozen=True, slots=True)
class Return:
    event_id: str
    customer_id: str
    store_id: str | None
    occurred_at: datetime
    purchase_event_id: str
    currency: str
    amount_minor: int | None = None  # None: everything that remains of the purchase
    items: tuple[LineItem, ...] = ()

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Return:
        return cls(
            record["event_id"],
            record["customer_id"],
            record.get("store_id"),
            record["occurred_at"],
            record["purchase_event_id"],
            record["currency"],
            record.get("amount_minor"),
            _items(record.get("items")),
        )


@dataclass(frozen=True, slots=True)
class NpsResponse:
    event_id: str
    customer_id: str
    store_id: str | None
    occurred_at: datetime
    score: int
    comment: str | None = None

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> NpsResponse:
        return cls(
            record["event_id"],
            record["customer_id"],
            record.get("store_id"),
            record["occurred_at"],
            record["score"],
            record.get("comment"),
        )


@dataclass(frozen=True, slots=True)
class ComplaintOpened:
    event_id: str
    customer_id: str
    store_id: str | None
    occurred_at: datetime
    complaint_id: str
    reason: str | None = None

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ComplaintOpened:
        return cls(
            record["event_id"],
            record["customer_id"],
            record.get("store_id"),
            record["occurred_at"],
            record["complaint_id"],
            record.get("reason"),
        )


@dataclass(frozen=True, slots=True)
class ComplaintResolved:
    event_id: str
    customer_id: str
    store_id: str | None
    occurred_at: datetime
    complaint_id: str
    resolution: str | None = None

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ComplaintResolved:
        return cls(
            record["event_id"],
            record["customer_id"],
            record.get("store_id"),
            record["occurred_at"],
            record["complaint_id"],
            record.get("resolution"),
        )


InputEvent = Purchase | Return | NpsResponse | ComplaintOpened | ComplaintResolved

INPUT_EVENTS: dict[str, Callable[[Mapping[str, Any]], InputEvent]] = {
    "loyalty.v1.Purchase": Purchase.from_record,
    "loyalty.v1.Return": Return.from_record,
    "loyalty.v1.NpsResponse": NpsResponse.from_record,
    "loyalty.v1.ComplaintOpened": ComplaintOpened.from_record,
    "loyalty.v1.ComplaintResolved": ComplaintResolved.from_record,
}


# ---- output -----------------------------------------------------------------------------------

_OUTPUT_NAMESPACE = uuid.UUID("6f1c2a4e-0d55-5b7a-9b8e-3c1f0a7d2e11")


_NAMESPACE_BYTES = _OUTPUT_NAMESPACE.bytes


def output_event_id(customer_id: str, kind: str, cause: str) -> str:
    """Deterministic id: UUID5 of the customer, the output's kind and what caused it (an input
    event id or a `due:` marker). Replaying the same log gives the same ids, so consumers can
    drop a re-sent output by id. The same string as `uuid.uuid5`, without its objects."""
    name = f"{customer_id}\x1f{kind}\x1f{cause}".encode()
    # SHA-1 because UUID5 is defined on it, not for security
    raw = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name, usedforsecurity=False).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def due_marker(kind: str, at_ms: int) -> str:
    """`caused_by` of an output that time alone caused: `due:<kind>:<ISO time>`."""
    return f"due:{kind}:{from_ms(at_ms).isoformat().replace('+00:00', 'Z')}"


def _record(event: object) -> dict[str, Any]:
    return {
        name: list(value) if isinstance(value, tuple) else value
        for name in event.__slots__  # type: ignore[attr-defined]
        for value in (getattr(event, name),)
    }


@dataclass(frozen=True, slots=True)
class TierChanged:
    SCHEMA: ClassVar[str] = "loyalty.v1.TierChanged"
    TOPIC_ROLE: ClassVar[str] = "tier_changes"

    event_id: str
    customer_id: str
    occurred_at: datetime
    caused_by: str
    rules_version: str
    previous_tier: str
    new_tier: str
    direction: str  # "UP" | "DOWN" (Avro enum loyalty.v1.TierDirection)
    reason: str  # "purchase" | "return" | "requalification"
    rolling_spend_minor: int
    currency: str
    requalify_at: datetime | None

    def to_record(self) -> dict[str, Any]:
        return _record(self)


@dataclass(frozen=True, slots=True)
class TierDowngradeWarning:
    SCHEMA: ClassVar[str] = "loyalty.v1.TierDowngradeWarning"
    TOPIC_ROLE: ClassVar[str] = "tier_changes"

    event_id: str
    customer_id: str
    occurred_at: datetime
    caused_by: str
    rules_version: str
    current_tier: str
    expected_tier: str
    downgrade_at: datetime
    rolling_spend_minor: int
    spend_to_keep_minor: int
    currency: str

    def to_record(self) -> dict[str, Any]:
        return _record(self)


@dataclass(frozen=True, slots=True)
class ChurnRiskChanged:
    SCHEMA: ClassVar[str] = "loyalty.v1.ChurnRiskChanged"
    TOPIC_ROLE: ClassVar[str] = "churn_risk"

    event_id: str
    customer_id: str
    occurred_at: datetime
    caused_by: str
    rules_version: str
    level: str
    previous_level: str
    p_alive: float
    reasons: tuple[str, ...]

    def to_record(self) -> dict[str, Any]:
        return _record(self)


@dataclass(frozen=True, slots=True)
class RewardEarned:
    SCHEMA: ClassVar[str] = "loyalty.v1.RewardEarned"
    TOPIC_ROLE: ClassVar[str] = "rewards"

    event_id: str
    customer_id: str
    occurred_at: datetime
    caused_by: str
    rules_version: str
    reward_kind: str  # "PUNCH_CARD" | "SERVICE_RECOVERY" (Avro enum loyalty.v1.RewardKind)
    punch_card: str | None
    complaint_id: str | None
    description: str

    def to_record(self) -> dict[str, Any]:
        return _record(self)


@dataclass(frozen=True, slots=True)
class PointsExpired:
    SCHEMA: ClassVar[str] = "loyalty.v1.PointsExpired"
    TOPIC_ROLE: ClassVar[str] = "rewards"

    event_id: str
    customer_id: str
    occurred_at: datetime
    caused_by: str
    rules_version: str
    points: int
    last_purchase_at: datetime

    def to_record(self) -> dict[str, Any]:
        return _record(self)


OutputEvent = TierChanged | TierDowngradeWarning | ChurnRiskChanged | RewardEarned | PointsExpired


class RuleViolation(ValueError):  # noqa: N818 - the contract calls it a violation, not an error
    """An input event that breaks the contract in a way only the customer's state can see (a
    return of a purchase we do not know or past its return window, a return larger than what
    remains, a currency other than the program's). The state is left as it was; the worker
    dead-letters the event with `error_kind` and `reason`. Not raised for duplicates: those are
    silently ignored (see `is_duplicate`)."""

    error_kind = "CONTRACT"

    def __init__(self, event: InputEvent, reason: str) -> None:
        super().__init__(f"event {event.event_id} of customer {event.customer_id}: {reason}")
        self.event_id = event.event_id
        self.customer_id = event.customer_id
        self.reason = reason
