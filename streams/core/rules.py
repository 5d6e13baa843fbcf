"""The loyalty program as the core sees it: plain frozen values, already validated.

`streams/program/` reads the rules file (TOML, pydantic) and builds one `Program`; the core never
reads files. Money is integer minor units; rates are `Decimal` (exact as typed in the file), and
the points rate of every tier is kept as an integer fraction so that earning points is one
integer multiply and one floor division, never a float."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

from streams.core.churn import BgNbdParams, ChurnModel

MS_PER_HOUR = 3_600_000
MS_PER_DAY = 86_400_000


@dataclass(frozen=True, slots=True)
class Tier:
    """A tier of the discount card: held while the rolling net spend is at least the threshold."""

    name: str
    threshold_minor: int
    discount_percent: Decimal
    multiplier: Decimal


@dataclass(frozen=True, slots=True)
class PunchCard:
    """Buy `stamps` items of `category`, the next one is free."""

    category: str
    stamps: int


@dataclass(frozen=True, slots=True)
class Program:
    """Every number of DOMAIN.md that the rules file may change. Defaults are DOMAIN.md's."""

    version: str  # the file's `version` plus a short hash of its content: see streams/program
    currency: str
    currency_exponent: int  # decimal places of the minor unit: EUR 2, JPY 0
    tiers: tuple[Tier, ...]
    points_per_unit: Decimal = Decimal(1)  # points per 1.00 (one major unit) of net spend
    points_expiry_days: int = 365
    qualification_window_days: int = 365
    requalification_days: int = 365
    downgrade_warning_days: int = 30
    punch_cards: tuple[PunchCard, ...] = (PunchCard("coffee", 5),)
    return_window_days: int = 90
    complaint_sla_hours: int = 48
    service_recovery_from_tier: str = "gold"
    attached_visits: int = 4
    attached_window_days: int = 180
    category_window_days: int = 365
    occasional_from_visits: int = 2
    regular_from_visits: int = 4
    promoter_from_score: int = 9
    detractor_up_to_score: int = 6
    # BG/NBD parameters and unit, risk levels with hysteresis, weights of the warning signs
    churn: ChurnModel = field(
        default_factory=lambda: ChurnModel(BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426))
    )
    # the "recent average check" of the falling-check sign: the mean of this many last receipts,
    # compared once the customer has twice as many receipts in all
    recent_receipts: int = 3
    # derived, filled in by __post_init__
    points_rate: tuple[tuple[int, int], ...] = field(
        default=(), init=False, compare=False, repr=False
    )
    service_recovery_rank: int = field(default=0, init=False, compare=False, repr=False)
    tier_names: tuple[str, ...] = field(default=(), init=False, compare=False, repr=False)
    churn_level_names: tuple[str, ...] = field(default=(), init=False, compare=False, repr=False)
    # per churn level rank: the score range [low, high) in which the level holds (hysteresis)
    churn_level_holds: tuple[tuple[float, float], ...] = field(
        default=(), init=False, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        if not self.tiers or self.tiers[0].threshold_minor != 0:
            raise ValueError("the first tier must have threshold 0: every customer holds it")
        names = tuple(tier.name for tier in self.tiers)
        for lower, upper in zip(self.tiers, self.tiers[1:], strict=False):
            if not lower.threshold_minor < upper.threshold_minor:
                raise ValueError(f"tier {upper.name} must need more spend than {lower.name}")
        if self.service_recovery_from_tier not in names:
            raise ValueError(
                f"service_recovery_from_tier {self.service_recovery_from_tier!r} is not a tier"
            )
        rates = []
        for tier in self.tiers:
            # points = floor(spend_minor * per_unit * multiplier / 10^exponent)
            rate = (
                Fraction(self.points_per_unit)
                * Fraction(tier.multiplier)
                / 10**self.currency_exponent
            )
            rates.append((rate.numerator, rate.denominator))
        object.__setattr__(self, "points_rate", tuple(rates))
        object.__setattr__(self, "tier_names", names)
        levels = self.churn.levels
        object.__setattr__(self, "churn_level_names", levels.names)
        # The same rule as churn.next_level: a level is left upwards once the score reaches the
        # next level's raise bound, downwards once it falls below its own clear bound.
        holds = []
        for rank in range(len(levels.names)):
            low = levels.above[rank - 1].clear_below if rank > 0 else -math.inf
            high = levels.above[rank].raise_at if rank < len(levels.above) else math.inf
            holds.append((low, high))
        object.__setattr__(self, "churn_level_holds", tuple(holds))
        object.__setattr__(
            self, "service_recovery_rank", names.index(self.service_recovery_from_tier)
        )

    @property
    def longest_window_days(self) -> int:
        """How many days of spend history the state keeps (one bucket per visit day)."""
        return max(
            self.qualification_window_days, self.attached_window_days, self.category_window_days
        )

    def tier_for_spend(self, rolling_spend_minor: int) -> int:
        """The rank of the highest tier whose threshold the spend reaches."""
        rank = 0
        for index, tier in enumerate(self.tiers):
            if rolling_spend_minor >= tier.threshold_minor:
                rank = index
        return rank

    def points_for(self, spend_minor: int, tier_rank: int) -> int:
        """Points for a purchase's net spend at a tier's multiplier, rounded down."""
        numerator, denominator = self.points_rate[tier_rank]
        return spend_minor * numerator // denominator
