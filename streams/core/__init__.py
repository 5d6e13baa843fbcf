"""The loyalty rulebook: pure functions over plain data, standard library only.

    apply(state, event, program) -> (state, outputs)
    advance(state, now, program) -> (state, outputs)
    next_due(state, program)     -> datetime | None

One module per mechanic or concern: `rules` (the program as values), `events` (input and output
events, `RuleViolation`), `state` (a customer's state), `fold` (tiers, points, punch cards,
returns, feedback and churn composed), `customer` (stage, category, loyalty type as of a
moment), `codec` (state as compact bytes), `churn` (BG/NBD and risk levels)."""

from streams.core.codec import StateDecodeError, state_from_bytes, state_to_bytes
from streams.core.customer import CustomerView, describe, net_promoter_score, nps_class
from streams.core.events import (
    INPUT_EVENTS,
    ChurnRiskChanged,
    ComplaintOpened,
    ComplaintResolved,
    InputEvent,
    LineItem,
    NpsResponse,
    OutputEvent,
    PointsExpired,
    Purchase,
    Return,
    RewardEarned,
    RuleViolation,
    TierChanged,
    TierDowngradeWarning,
)
from streams.core.fold import advance, apply, is_duplicate, next_due
from streams.core.rules import Program, PunchCard, Tier
from streams.core.state import CustomerState, new_customer

__all__ = [
    "INPUT_EVENTS",
    "ChurnRiskChanged",
    "ComplaintOpened",
    "ComplaintResolved",
    "CustomerState",
    "CustomerView",
    "InputEvent",
    "LineItem",
    "NpsResponse",
    "OutputEvent",
    "PointsExpired",
    "Program",
    "PunchCard",
    "Purchase",
    "Return",
    "RewardEarned",
    "RuleViolation",
    "StateDecodeError",
    "Tier",
    "TierChanged",
    "TierDowngradeWarning",
    "advance",
    "apply",
    "describe",
    "is_duplicate",
    "net_promoter_score",
    "new_customer",
    "next_due",
    "nps_class",
    "state_from_bytes",
    "state_to_bytes",
]
