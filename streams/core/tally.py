"""Counts over many customers, kept from state transitions: what the program's metrics report
(customers by tier, stage, loyalty type and churn level, NPS classes, complaints, points
liability, spend) without a scan of every state at each scrape.

A customer's `Facts` depend on its state alone (its classes are taken on its own latest day),
so the facts removed when a customer changes are exactly the facts added at its previous
change, and a tally kept by transitions always equals the tally of the current states."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from streams.core.customer import classify
from streams.core.rules import MS_PER_DAY, Program
from streams.core.state import CustomerState


@dataclass(frozen=True, slots=True)
class Facts:
    tier: str
    stage: str
    loyalty_type: str  # "unknown" while the attitude is unknown
    churn_level: str
    nps_class: str | None
    visited: bool
    repeat: bool  # two visits or more
    open_complaints: int
    overdue_complaints: int
    points: int
    net_spend_minor: int
    receipts: int


def latest_day(state: CustomerState) -> int:
    """The customer's own latest day: its last visit, NPS answer, complaint or churn check."""
    days = [state.last_visit_day, state.churn_day]
    if state.nps_ms is not None:
        days.append(state.nps_ms // MS_PER_DAY)
    days.extend(c.opened_ms // MS_PER_DAY for c in state.complaints)
    return max((d for d in days if d is not None), default=0)


def facts_of(state: CustomerState, program: Program) -> Facts:
    classes = classify(state, latest_day(state), program)
    return Facts(
        tier=program.tier_names[state.tier],
        stage=classes.stage,
        loyalty_type=classes.loyalty_type or "unknown",
        churn_level=program.churn.levels.names[state.churn_level],
        nps_class=classes.nps_class,
        visited=state.visits > 0,
        repeat=state.visits >= 2,
        open_complaints=classes.open_complaints,
        overdue_complaints=classes.overdue_complaints,
        points=state.points,
        net_spend_minor=state.lifetime_spend_minor,
        receipts=state.receipts,
    )


@dataclass
class Tally:
    customers: int = 0
    by_tier: Counter[str] = field(default_factory=Counter)
    by_stage: Counter[str] = field(default_factory=Counter)
    by_loyalty_type: Counter[str] = field(default_factory=Counter)
    by_churn_level: Counter[str] = field(default_factory=Counter)
    by_nps_class: Counter[str] = field(default_factory=Counter)
    with_visit: int = 0
    with_repeat: int = 0
    complaints_open: int = 0
    complaints_overdue: int = 0
    points: int = 0
    net_spend_minor: int = 0
    receipts: int = 0

    def count(self, facts: Facts, sign: int = 1) -> None:
        """Adds a customer's facts (sign +1) or takes them away (sign -1)."""
        self.customers += sign
        for counter, key in (
            (self.by_tier, facts.tier),
            (self.by_stage, facts.stage),
            (self.by_loyalty_type, facts.loyalty_type),
            (self.by_churn_level, facts.churn_level),
            (self.by_nps_class, facts.nps_class),
        ):
            if key is not None:
                counter[key] += sign
                if counter[key] == 0:
                    del counter[key]
        self.with_visit += sign * facts.visited
        self.with_repeat += sign * facts.repeat
        self.complaints_open += sign * facts.open_complaints
        self.complaints_overdue += sign * facts.overdue_complaints
        self.points += sign * facts.points
        self.net_spend_minor += sign * facts.net_spend_minor
        self.receipts += sign * facts.receipts

    def change(self, before: Facts | None, after: Facts | None) -> None:
        """A customer went from `before` to `after` (None: not counted there)."""
        if before == after:
            return
        if before is not None:
            self.count(before, -1)
        if after is not None:
            self.count(after)

    def merged(self, other: Tally) -> Tally:
        """A new tally of both (a worker's total over its partitions)."""
        total = Tally()
        for tally in (self, other):
            total.customers += tally.customers
            total.by_tier.update(tally.by_tier)
            total.by_stage.update(tally.by_stage)
            total.by_loyalty_type.update(tally.by_loyalty_type)
            total.by_churn_level.update(tally.by_churn_level)
            total.by_nps_class.update(tally.by_nps_class)
            total.with_visit += tally.with_visit
            total.with_repeat += tally.with_repeat
            total.complaints_open += tally.complaints_open
            total.complaints_overdue += tally.complaints_overdue
            total.points += tally.points
            total.net_spend_minor += tally.net_spend_minor
            total.receipts += tally.receipts
        return total


def tally_of(states: Iterable[CustomerState], program: Program) -> Tally:
    """The tally counted from scratch (after an assignment; the tests' reference)."""
    tally = Tally()
    for state in states:
        tally.count(facts_of(state, program))
    return tally
