"""One customer's loyalty state: immutable, compact, and everything the rules need.

Times are epoch milliseconds (`*_ms`), calendar days (UTC) are days since 1970-01-01 (`*_day`),
money is integer minor units. Collections are tuples, so a state is a value: `==` compares
states, and an update builds a new state sharing what did not change.

What is kept, and for how long (the bounds make the state small, see `codec`):
- `spend_days`: one bucket per visit day (its net spend) for the program's longest
  window (365 days by default): the rolling spend is exact to the day, and visits in the last
  180 / 365 days are counted from the same buckets.
- `purchases`: what each purchase still returnable earned (spend, points, stamps, the upgrade
  it caused) for the return window (90 days by default), at most the last
  `limits.MAX_RETURNABLE_PURCHASES` (1000) of them.
- `complaints`: the open complaints, at most `limits.MAX_OPEN_COMPLAINTS` (64).
- `recent_ids`: the ids of the last `RECENT_IDS` input events applied; with the purchase ids in
  `purchases` this is the duplicate memory (see `fold.is_duplicate`)."""

from __future__ import annotations

from typing import NamedTuple

# How many input event ids a customer's state remembers for duplicate detection.
RECENT_IDS = 8


class SpendDay(NamedTuple):
    """A visit day and the net spend of its purchases (after returns); a day whose purchases
    were all returned stays a visit."""

    day: int
    spend_minor: int


class PurchaseRecord(NamedTuple):
    """What a still-returnable purchase earned and has not yet given back."""

    event_id: str
    at_ms: int
    spend_left_minor: int
    points_left: int
    stamps_left: tuple[int, ...]  # per punch card of the program, in its order
    upgraded_from: int | None  # tier rank before the upgrade this purchase caused
    requalify_before_ms: int | None  # the re-qualification time before that upgrade


class PunchCardStamps(NamedTuple):
    """A punch card's net qualifying items ever bought (after returns) and rewards given.
    Stamps on the card now = stamps - rewards * N; a return of items already rewarded leaves
    the card short, so the next reward needs them bought again."""

    stamps: int
    rewards: int


class OpenComplaint(NamedTuple):
    complaint_id: str
    opened_ms: int
    overdue: bool


class CustomerState(NamedTuple):
    """Immutable (a named tuple: built once per step, compared by value, cheap to make)."""

    customer_id: str
    tier: int = 0  # rank in Program.tiers
    requalify_ms: int | None = None  # when the tier is next re-checked (None for the base tier)
    warned_ms: int | None = None  # the requalify_ms whose downgrade warning has been handled
    points: int = 0
    last_purchase_ms: int | None = None
    lifetime_spend_minor: int = 0  # net of returns
    receipts: int = 0
    visits: int = 0
    first_visit_day: int | None = None
    last_visit_day: int | None = None
    spend_days: tuple[SpendDay, ...] = ()
    recent_checks: tuple[int, ...] = ()  # the last receipts' totals, oldest first
    punch_cards: tuple[PunchCardStamps, ...] = ()  # () until the first stamp
    purchases: tuple[PurchaseRecord, ...] = ()
    nps_score: int | None = None
    nps_ms: int | None = None
    complaints: tuple[OpenComplaint, ...] = ()
    churn_level: int = 0  # rank in the program's churn levels
    churn_day: int | None = None  # the day the churn level was last assessed
    recent_ids: tuple[str, ...] = ()


def new_customer(customer_id: str) -> CustomerState:
    """The state of a customer the processor has not seen yet."""
    return CustomerState(customer_id)


class StateDraft:
    """A customer's state while one `apply` or `advance` changes it: a mutable copy made once
    and frozen once, so that a step that touches ten fields does not build ten states. Private
    to the core; a step that raises (a `RuleViolation`) simply drops its draft, so the state
    it started from is untouched."""

    __slots__ = (
        "churn_day",
        "churn_level",
        "complaints",
        "customer_id",
        "first_visit_day",
        "last_purchase_ms",
        "last_visit_day",
        "lifetime_spend_minor",
        "nps_ms",
        "nps_score",
        "points",
        "punch_cards",
        "purchases",
        "receipts",
        "recent_checks",
        "recent_ids",
        "requalify_ms",
        "spend_days",
        "tier",
        "visits",
        "warned_ms",
    )
    customer_id: str
    tier: int
    requalify_ms: int | None
    warned_ms: int | None
    points: int
    last_purchase_ms: int | None
    lifetime_spend_minor: int
    receipts: int
    visits: int
    first_visit_day: int | None
    last_visit_day: int | None
    spend_days: tuple[SpendDay, ...]
    recent_checks: tuple[int, ...]
    punch_cards: tuple[PunchCardStamps, ...]
    purchases: tuple[PurchaseRecord, ...]
    nps_score: int | None
    nps_ms: int | None
    complaints: tuple[OpenComplaint, ...]
    churn_level: int
    churn_day: int | None
    recent_ids: tuple[str, ...]


def thaw(s: CustomerState) -> StateDraft:
    d = StateDraft()
    (
        d.customer_id,
        d.tier,
        d.requalify_ms,
        d.warned_ms,
        d.points,
        d.last_purchase_ms,
        d.lifetime_spend_minor,
        d.receipts,
        d.visits,
        d.first_visit_day,
        d.last_visit_day,
        d.spend_days,
        d.recent_checks,
        d.punch_cards,
        d.purchases,
        d.nps_score,
        d.nps_ms,
        d.complaints,
        d.churn_level,
        d.churn_day,
        d.recent_ids,
    ) = s
    return d


# What CustomerState(...) ends in: the named tuple's own __new__ is a Python function that
# binds 21 arguments and then calls this, once per event.
_new_state = tuple.__new__


def freeze(d: StateDraft) -> CustomerState:
    return _new_state(
        CustomerState,
        (
            d.customer_id,
            d.tier,
            d.requalify_ms,
            d.warned_ms,
            d.points,
            d.last_purchase_ms,
            d.lifetime_spend_minor,
            d.receipts,
            d.visits,
            d.first_visit_day,
            d.last_visit_day,
            d.spend_days,
            d.recent_checks,
            d.punch_cards,
            d.purchases,
            d.nps_score,
            d.nps_ms,
            d.complaints,
            d.churn_level,
            d.churn_day,
            d.recent_ids,
        ),
    )
