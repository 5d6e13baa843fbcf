"""One valid, hand-written record per event schema, as the contract's producers would send it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

AT = datetime(2026, 3, 14, 9, 26, 53, 589000, tzinfo=UTC)
LATER = datetime(2027, 3, 14, 9, 26, 53, tzinfo=UTC)

COFFEE = {"sku": "CF-100", "category": "coffee", "quantity": 2, "unit_price_minor": 350}
CAKE = {"sku": "CK-7", "category": "bakery", "quantity": 1, "unit_price_minor": 425}

OUTPUT_HEAD: dict[str, Any] = {
    "customer_id": "c-42",
    "occurred_at": AT,
    "caused_by": "pos-1-0001",
    "rules_version": "2026.1",
}

SAMPLES: dict[str, dict[str, Any]] = {
    "Purchase": {
        "event_id": "pos-1-0001",
        "customer_id": "c-42",
        "store_id": "store-7",
        "occurred_at": AT,
        "currency": "EUR",
        "total_minor": 1125,
        "items": [COFFEE, CAKE],
    },
    "Return": {
        "event_id": "pos-1-0002",
        "customer_id": "c-42",
        "store_id": None,
        "occurred_at": AT,
        "purchase_event_id": "pos-1-0001",
        "currency": "EUR",
        "amount_minor": 425,
        "items": [CAKE],
    },
    "NpsResponse": {
        "event_id": "nps-9",
        "customer_id": "c-42",
        "store_id": "store-7",
        "occurred_at": AT,
        "score": 9,
        "comment": "friendly staff",
    },
    "ComplaintOpened": {
        "event_id": "cmp-1-open",
        "customer_id": "c-42",
        "store_id": None,
        "occurred_at": AT,
        "complaint_id": "cmp-1",
        "reason": "cold coffee",
    },
    "ComplaintResolved": {
        "event_id": "cmp-1-done",
        "customer_id": "c-42",
        "store_id": None,
        "occurred_at": AT,
        "complaint_id": "cmp-1",
        "resolution": None,
    },
    "TierChanged": {
        "event_id": "c-42:tier:pos-1-0001",
        **OUTPUT_HEAD,
        "previous_tier": "member",
        "new_tier": "silver",
        "direction": "UP",
        "reason": "purchase",
        "rolling_spend_minor": 50_125,
        "currency": "EUR",
        "requalify_at": LATER,
    },
    "TierDowngradeWarning": {
        "event_id": "c-42:tier-warning:2027-02-12",
        **OUTPUT_HEAD,
        "caused_by": "due:tier-warning:2027-02-12T09:26:53Z",
        "current_tier": "silver",
        "expected_tier": "member",
        "downgrade_at": LATER,
        "rolling_spend_minor": 30_000,
        "spend_to_keep_minor": 20_000,
        "currency": "EUR",
    },
    "ChurnRiskChanged": {
        "event_id": "c-42:churn:pos-1-0001",
        **OUTPUT_HEAD,
        "level": "high",
        "previous_level": "low",
        "p_alive": 0.21,
        "reasons": ["p_alive below 0.3", "detractor score"],
    },
    "RewardEarned": {
        "event_id": "c-42:reward:pos-1-0001",
        **OUTPUT_HEAD,
        "reward_kind": "PUNCH_CARD",
        "punch_card": "coffee",
        "complaint_id": None,
        "description": "the 6th coffee is on us",
    },
    "PointsExpired": {
        "event_id": "c-42:expiry:2027-03-14",
        **OUTPUT_HEAD,
        "caused_by": "due:points-expiry:2027-03-14T09:26:53Z",
        "points": 1234,
        "last_purchase_at": AT,
    },
    "DeadLetter": {
        "source_topic": "loyalty.purchases.v1",
        "source_partition": 3,
        "source_offset": 1017,
        "raw_key": b"c-42",
        "raw_value": b"\xc3\x01garbage",
        "error_kind": "DECODE",
        "message": "Purchase body truncated",
        "failed_at": AT,
        "event_id": None,
        "customer_id": "c-42",
    },
}
