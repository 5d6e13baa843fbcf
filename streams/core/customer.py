"""What a customer's state means as of a moment, in DOMAIN.md's words: stage, category,
loyalty type, NPS class, average check, P(alive) and churn reasons. Derived, never stored:
the replay tool, the read API and the metrics all describe a state the same way.

- A visit is a calendar day (UTC) with at least one purchase.
- Category by visits in the last `category_window_days` (365): `one_time` (1), `occasional`
  (2-3), `regular` (4+); None with no visit in the window.
- Stage: `prospect` (no purchase yet), `first_purchase` (one visit), `repeat` (two or more),
  `attached` (at least 4 visits in the last 180 days), `loyal` (attached, and a promoter with
  no open complaint).
- Attitude: positive for a promoter with no open complaint, negative for a detractor or a
  customer with an overdue complaint, unknown otherwise.
- Loyalty type, frequency x attitude: `true` (frequent, positive), `latent` (rare, positive),
  `spurious` (frequent, negative), `none` (rare, negative); None when the attitude is unknown,
  and then only `frequency` is reported. Frequent means the `regular` category.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from streams.core.events import from_ms, to_ms
from streams.core.fold import day_to_date, risk_on, rolling_spend
from streams.core.rules import MS_PER_DAY, Program
from streams.core.state import CustomerState


def nps_class(score: int | None, program: Program) -> str | None:
    """promoter (9-10), passive (7-8), detractor (0-6) by default; None without an answer."""
    if score is None:
        return None
    if score >= program.promoter_from_score:
        return "promoter"
    if score <= program.detractor_up_to_score:
        return "detractor"
    return "passive"


def net_promoter_score(scores: Iterable[int], program: Program) -> float | None:
    """NPS = % promoters - % detractors over the customers' latest answers, -100..+100.
    Passives count in the denominator only. None when there is no answer."""
    answers = promoters = detractors = 0
    for score in scores:
        answers += 1
        if score >= program.promoter_from_score:
            promoters += 1
        elif score <= program.detractor_up_to_score:
            detractors += 1
    if answers == 0:
        return None
    return 100.0 * (promoters - detractors) / answers


def visits_within(state: CustomerState, as_of_day: int, window_days: int) -> int:
    """Visit days in the `window_days` days ending on as_of_day (that day included)."""
    start = as_of_day - window_days
    return sum(1 for bucket in state.spend_days if start < bucket.day <= as_of_day)


def customer_category(visits_in_window: int, program: Program) -> str | None:
    if visits_in_window >= program.regular_from_visits:
        return "regular"
    if visits_in_window >= program.occasional_from_visits:
        return "occasional"
    if visits_in_window >= 1:
        return "one_time"
    return None


@dataclass(frozen=True, slots=True)
class CustomerView:
    customer_id: str
    as_of: datetime
    tier: str
    points: int
    lifetime_spend_minor: int
    rolling_spend_minor: int
    receipts: int
    average_check_minor: int | None  # net lifetime spend / receipts, rounded down
    visits: int
    first_visit: date | None
    last_visit: date | None
    requalify_at: datetime | None
    stage: str
    category: str | None
    frequency: str  # "frequent" | "rare"
    attitude: str  # "positive" | "negative" | "unknown"
    loyalty_type: str | None
    nps_score: int | None
    nps_class: str | None
    open_complaints: int
    overdue_complaints: int
    punch_cards: dict[str, int]  # category -> stamps on the card now
    p_alive: float
    churn_level: str
    churn_reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Classification:
    """The customer's DOMAIN.md classes on a day: what `describe` reports and the metrics
    count."""

    category: str | None
    frequency: str
    attitude: str
    loyalty_type: str | None
    stage: str
    nps_class: str | None
    open_complaints: int
    overdue_complaints: int


def classify(state: CustomerState, day: int, program: Program) -> Classification:
    """Category, attitude, loyalty type and stage on `day` (days since the epoch, UTC)."""
    category = customer_category(visits_within(state, day, program.category_window_days), program)
    frequent = category == "regular"
    nps = nps_class(state.nps_score, program)
    open_complaints = len(state.complaints)
    overdue = sum(1 for c in state.complaints if c.overdue)
    if nps == "promoter" and open_complaints == 0:
        attitude = "positive"
    elif nps == "detractor" or overdue:
        attitude = "negative"
    else:
        attitude = "unknown"
    loyalty_type = None
    if attitude == "positive":
        loyalty_type = "true" if frequent else "latent"
    elif attitude == "negative":
        loyalty_type = "spurious" if frequent else "none"

    if state.visits == 0:
        stage = "prospect"
    elif visits_within(state, day, program.attached_window_days) >= program.attached_visits:
        stage = "loyal" if attitude == "positive" else "attached"
    elif state.visits >= 2:
        stage = "repeat"
    else:
        stage = "first_purchase"
    return Classification(
        category=category,
        frequency="frequent" if frequent else "rare",
        attitude=attitude,
        loyalty_type=loyalty_type,
        stage=stage,
        nps_class=nps,
        open_complaints=open_complaints,
        overdue_complaints=overdue,
    )


def describe(state: CustomerState, as_of: datetime, program: Program) -> CustomerView:
    """The customer as of a moment. Pass a state already advanced to `as_of` (the derived
    fields are computed here, the time-driven ones, like churn level, by `advance`)."""
    day = to_ms(as_of) // MS_PER_DAY
    classes = classify(state, day, program)
    risk = risk_on(state, day, program)
    cards = {
        card.category: max(0, held.stamps - held.rewards * card.stamps)
        for card, held in zip(program.punch_cards, state.punch_cards, strict=False)
    }
    for card in program.punch_cards:
        cards.setdefault(card.category, 0)
    return CustomerView(
        customer_id=state.customer_id,
        as_of=as_of,
        tier=program.tier_names[state.tier],
        points=state.points,
        lifetime_spend_minor=state.lifetime_spend_minor,
        rolling_spend_minor=rolling_spend(state, day, program),
        receipts=state.receipts,
        average_check_minor=(
            state.lifetime_spend_minor // state.receipts if state.receipts else None
        ),
        visits=state.visits,
        first_visit=None if state.first_visit_day is None else day_to_date(state.first_visit_day),
        last_visit=None if state.last_visit_day is None else day_to_date(state.last_visit_day),
        requalify_at=None if state.requalify_ms is None else from_ms(state.requalify_ms),
        stage=classes.stage,
        category=classes.category,
        frequency=classes.frequency,
        attitude=classes.attitude,
        loyalty_type=classes.loyalty_type,
        nps_score=state.nps_score,
        nps_class=classes.nps_class,
        open_complaints=classes.open_complaints,
        overdue_complaints=classes.overdue_complaints,
        punch_cards=cards,
        p_alive=risk.p_alive,
        churn_level=program.churn.levels.names[state.churn_level],
        churn_reasons=risk.reasons,
    )
