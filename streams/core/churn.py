"""Churn risk: the BG/NBD probability that a customer is still alive, the risk score that adds
the other warning signs to it, and the risk level with hysteresis.

## P(alive)
BG/NBD (Fader, Hardie and Lee, 2005), exactly DOMAIN.md's formula:

    P(alive) = 1                                                        if x = 0
    P(alive) = 1 / (1 + (a / (b + x - 1)) * ((alpha + T) / (alpha + t_x))^(r + x))   otherwise

computed in log space, as the logistic of minus the log-odds of having dropped out, so that a
large x (a power of thousands) neither overflows nor loses the result to rounding. Times are
counted on calendar dates (UTC): t_x = last visit - first visit, T = as-of - first visit, in
days or in weeks (days / 7, fractional); x is the number of repeat visits (visits - 1).

## Risk score and reasons
Risk is more than P(alive). The score is explainable by hand:

    score = min(1, (1 - P(alive)) + the fixed increment of every warning sign present)

| reason code             | when                                                  | adds          |
|-------------------------|-------------------------------------------------------|---------------|
| `low_p_alive`           | P(alive) < 0.5: the model thinks them more likely gone | 1 - P(alive) |
| `detractor`             | their latest NPS answer is 0-6                        | 0.15          |
| `overdue_complaint`     | a complaint of theirs is open past the SLA            | 0.20          |
| `falling_average_check` | their recent average check fell below 0.7x their own  | 0.10          |
| `gap_beyond_cadence`    | days since the last visit exceed 3x their mean gap    | 0.15          |
|                         | between visits (from 2 repeat visits on)              |               |

(1 - P(alive) is always in the score; the `low_p_alive` reason names it only when it is the
larger half.)

The increments and thresholds are `RiskWeights` (defaults above). Reasons come in the order of
the table, so the same state always gives the same reasons.

## Levels with hysteresis
Levels are ordered from the calm base level up (default `none` < `watch` < `at_risk` <
`churned`). Every level above the base has two bounds on the score, `raise_at` > `clear_below`:
the level is entered when the score reaches `raise_at` and left only when the score falls below
`clear_below`, so a customer whose score wobbles around one bound does not flap. In P(alive)
words (no other signs): a level is raised when P(alive) falls to 1 - `raise_at` and cleared when
it climbs above 1 - `clear_below`, the higher bound. `next_level` is idempotent: the level it
returns is stable under the same score.

## When the level changes with no event
While a customer is silent, T grows and P(alive) falls monotonically (the log-odds of dropout
grow with log(alpha + T)), and the gap sign can only switch on; so the score only rises and the
level only goes up. `next_risk_change` finds the first calendar day on which the level would
change, exact to the day (a closed-form guess in log space, then checked and corrected with the
same score function `risk_score` uses), so a worker can schedule it instead of scanning
customers; `first_date_p_alive_below` does the same for P(alive) alone. Signs that time turns
on elsewhere (a complaint going overdue) are the caller's own due times: the solver holds the
given signs fixed. P(alive) is computed so that it never rises from one day to the next even in
floating point, which makes "the first day" exact rather than nearly so.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Literal, NamedTuple

TimeUnit = Literal["days", "weeks"]

DAYS_PER_UNIT: dict[TimeUnit, float] = {"days": 1.0, "weeks": 7.0}

# How far ahead `next_risk_change` looks for a change before it says "never" (about 270 years):
# beyond it P(alive) sits in the last bits of a float and no schedule is worth keeping.
HORIZON_DAYS = 100_000


@dataclass(frozen=True, slots=True)
class BgNbdParams:
    """The BG/NBD population parameters: purchase rates ~ Gamma(r, alpha), dropout
    probabilities ~ Beta(a, b). alpha is in the model's time unit."""

    r: float
    alpha: float
    a: float
    b: float

    def __post_init__(self) -> None:
        for name in ("r", "alpha", "a", "b"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"BG/NBD parameter {name} = {value!r} must be positive and finite")


def _expit_neg(log_odds: float) -> float:
    """1 / (1 + exp(log_odds)), without overflow for any finite log_odds.

    This form is accurate on both sides (exp is accurate relative to its value, and 1 + tiny
    rounds the right way) and falls monotonically with log_odds in floating point, which the
    day solver relies on; e / (1 + e) can tick up by an ulp."""
    if log_odds > 700:
        # 1 + exp(log_odds) == exp(log_odds) in floats from about 37 on; only exp would overflow.
        return math.exp(-log_odds)
    return 1.0 / (1.0 + math.exp(log_odds))


def _log_odds_dropped(x: int, t_x: float, big_t: float, params: BgNbdParams) -> float:
    """log of (a / (b + x - 1)) * ((alpha + T) / (alpha + t_x))^(r + x), for x >= 1."""
    # log1p of the relative growth is exact for T close to t_x, where log of a ratio near 1 is not.
    growth = math.log1p((big_t - t_x) / (params.alpha + t_x))
    return (params.r + x) * growth + math.log(params.a) - math.log(params.b + x - 1)


def _check_history(x: int, t_x: float, big_t: float) -> None:
    if x < 0:
        raise ValueError(f"repeat visits x = {x} must not be negative")
    if not (0 <= t_x <= big_t and math.isfinite(big_t)):
        raise ValueError(f"need 0 <= t_x <= T, got t_x = {t_x}, T = {big_t}")


def p_alive(x: int, t_x: float, big_t: float, params: BgNbdParams) -> float:
    """P(alive) of a customer with x repeat visits, the last at t_x, seen up to T (same unit as
    alpha). Exactly DOMAIN.md's formula, in log space."""
    _check_history(x, t_x, big_t)
    if x == 0:
        return 1.0
    return _expit_neg(_log_odds_dropped(x, t_x, big_t, params))


def elapsed(start: date, end: date, unit: TimeUnit) -> float:
    """Calendar time from start to end in the unit: whole days, or days / 7."""
    return (end - start).days / DAYS_PER_UNIT[unit]


def history_times(
    first_visit: date, last_visit: date, as_of: date, unit: TimeUnit
) -> tuple[float, float]:
    """(t_x, T) on calendar dates: last visit - first visit, as-of - first visit."""
    if not first_visit <= last_visit <= as_of:
        raise ValueError(
            f"need first visit <= last visit <= as-of, got {first_visit}, {last_visit}, {as_of}"
        )
    return elapsed(first_visit, last_visit, unit), elapsed(first_visit, as_of, unit)


@dataclass(frozen=True, slots=True)
class VisitHistory:
    """What the model needs of a customer's visits (calendar days with a purchase)."""

    visits: int
    first_visit: date
    last_visit: date

    def __post_init__(self) -> None:
        if self.visits < 1:
            raise ValueError(f"a visit history has at least one visit, got {self.visits}")
        if self.last_visit < self.first_visit:
            raise ValueError(f"last visit {self.last_visit} is before first {self.first_visit}")
        if self.visits == 1 and self.last_visit != self.first_visit:
            raise ValueError("one visit means the first visit is the last")

    @property
    def repeat_visits(self) -> int:
        return self.visits - 1


def p_alive_on(history: VisitHistory, as_of: date, params: BgNbdParams, unit: TimeUnit) -> float:
    """P(alive) of a visit history as of a calendar date."""
    if as_of < history.last_visit:
        raise ValueError(f"as-of {as_of} is before the last visit {history.last_visit}")
    x = history.repeat_visits
    if x == 0:
        return 1.0
    per_unit = DAYS_PER_UNIT[unit]
    t_x = (history.last_visit - history.first_visit).days / per_unit
    big_t = (as_of - history.first_visit).days / per_unit
    return _expit_neg(_log_odds_dropped(x, t_x, big_t, params))


def first_date_p_alive_below(
    history: VisitHistory, as_of: date, params: BgNbdParams, unit: TimeUnit, bound: float
) -> date | None:
    """The first date on or after as_of on which P(alive) < bound if no visit comes, or None if
    that never happens within the horizon (no repeat visit yet: P(alive) stays 1)."""
    if history.repeat_visits == 0 or bound <= 0:
        return None
    start = (as_of - history.first_visit).days

    def below(day: int) -> bool:
        return p_alive_on(history, history.first_visit + timedelta(days=day), params, unit) < bound

    found = _first_true_day(below, start, _guess_day_p_alive_below(history, params, unit, bound))
    return None if found is None else history.first_visit + timedelta(days=found)


def _guess_day_p_alive_below(
    history: VisitHistory, params: BgNbdParams, unit: TimeUnit, bound: float
) -> int | None:
    """Days from the first visit at which P(alive) = bound, by the closed form of the log-odds:
    (r + x) log((alpha + T) / (alpha + t_x)) = logit(1 - bound) - log(a / (b + x - 1))."""
    if bound >= 1:
        return (history.last_visit - history.first_visit).days
    x = history.repeat_visits
    t_x = elapsed(history.first_visit, history.last_visit, unit)
    target = math.log1p(-bound) - math.log(bound)
    growth = (target - math.log(params.a) + math.log(params.b + x - 1)) / (params.r + x)
    if growth > 700:
        return None
    big_t = (params.alpha + t_x) * math.exp(growth) - params.alpha
    days = big_t * DAYS_PER_UNIT[unit]
    if not days < HORIZON_DAYS:
        return None
    return max(0, math.ceil(days))


def _first_true_day(
    pred: Callable[[int], bool], start: int, guess: int | None, *, false_at_start: bool = False
) -> int | None:
    """The first day d >= start with pred(d), for pred false-then-true (monotone); None if it is
    still false at start + HORIZON_DAYS. The guess, when close, makes it a couple of calls."""
    limit = start + HORIZON_DAYS
    if not false_at_start and pred(start):
        return start
    if (guess is None or guess > limit) and not pred(limit):
        # No usable guess, mostly because the closed form says "beyond the horizon": one look
        # at the horizon settles "never" without galloping there.
        return None
    # Invariant: pred(lo) is false, pred(hi) is true (hi is None until a true day is seen).
    lo, hi = start, None
    probe = guess if guess is not None and start < guess <= limit else start + 1
    step = 1
    while hi is None:
        if pred(probe):
            hi = probe
        else:
            lo = probe
            if probe >= limit:
                return None
            probe = min(limit, probe + step)
            step *= 2
    # Gallop back from a true guess until a false day, then bisect.
    step = 1
    while hi - lo > 1:
        probe = max(lo + 1, hi - step)
        if pred(probe):
            hi = probe
            step *= 2
        else:
            lo = probe
            break
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if pred(mid):
            hi = mid
        else:
            lo = mid
    return hi


@dataclass(frozen=True, slots=True)
class RiskSignals:
    """The warning signs the rest of the state knows, as of the day asked about."""

    detractor: bool = False
    overdue_complaint: bool = False
    falling_average_check: bool = False


@dataclass(frozen=True, slots=True)
class RiskWeights:
    """What each warning sign adds to 1 - P(alive), and the thresholds of the derived signs."""

    detractor: float = 0.15
    overdue_complaint: float = 0.20
    falling_average_check: float = 0.10
    gap_beyond_cadence: float = 0.15
    # The gap sign fires when days since the last visit exceed this many mean gaps between visits.
    gap_cadence_factor: float = 3.0
    # A mean gap from fewer repeat visits says little about the customer's cadence.
    gap_min_repeat_visits: int = 2
    low_p_alive_below: float = 0.5
    # A recent average check below this share of the customer's own average counts as falling.
    falling_check_ratio: float = 0.7

    def __post_init__(self) -> None:
        for name in ("detractor", "overdue_complaint", "falling_average_check"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"risk increment {name} must be within 0..1")
        if not 0 <= self.gap_beyond_cadence <= 1:
            raise ValueError("risk increment gap_beyond_cadence must be within 0..1")
        if self.gap_cadence_factor <= 0:
            raise ValueError("gap_cadence_factor must be positive")


DEFAULT_WEIGHTS = RiskWeights()


class RiskScore(NamedTuple):
    """A risk score in 0..1 and why: reason codes in a fixed order."""

    score: float
    p_alive: float
    reasons: tuple[str, ...]


def is_average_check_falling(
    recent_average_minor: float, lifetime_average_minor: float, weights: RiskWeights
) -> bool:
    """The recent average check fell below the configured share of the customer's own."""
    return lifetime_average_minor > 0 and (
        recent_average_minor < weights.falling_check_ratio * lifetime_average_minor
    )


def gap_sign_from(history: VisitHistory, weights: RiskWeights) -> date | None:
    """The first date on which the gap since the last visit is beyond the customer's cadence, or
    None when they have too few repeat visits to have a cadence."""
    x = history.repeat_visits
    if x < weights.gap_min_repeat_visits:
        return None
    mean_gap_days = (history.last_visit - history.first_visit).days / x
    # "exceeds factor x mean gap": the first whole day strictly beyond it.
    return history.last_visit + timedelta(
        days=math.floor(weights.gap_cadence_factor * mean_gap_days) + 1
    )


def risk_score(
    history: VisitHistory | None, signals: RiskSignals, as_of: date, model: ChurnModel
) -> RiskScore:
    """The customer's risk score as of a date and its reasons (see the module docstring).
    A customer with no purchase yet (history None) has P(alive) 1."""
    gap_from = None if history is None else gap_sign_from(history, model.weights)
    return _risk_on(history, signals, as_of, model, gap_from)


def _risk_on(
    history: VisitHistory | None,
    signals: RiskSignals,
    as_of: date,
    model: ChurnModel,
    gap_from: date | None,
) -> RiskScore:
    """risk_score with the gap sign's first day already known (the day solver asks many days)."""
    weights = model.weights
    alive = 1.0 if history is None else p_alive_on(history, as_of, model.params, model.unit)
    score = 1.0 - alive
    reasons: list[str] = []
    if alive < weights.low_p_alive_below:
        reasons.append("low_p_alive")
    if signals.detractor:
        score += weights.detractor
        reasons.append("detractor")
    if signals.overdue_complaint:
        score += weights.overdue_complaint
        reasons.append("overdue_complaint")
    if signals.falling_average_check:
        score += weights.falling_average_check
        reasons.append("falling_average_check")
    if gap_from is not None and as_of >= gap_from:
        score += weights.gap_beyond_cadence
        reasons.append("gap_beyond_cadence")
    return RiskScore(min(1.0, score), alive, tuple(reasons))


@dataclass(frozen=True, slots=True)
class RiskLevel:
    """A level above the base: entered when the score reaches raise_at, left when it falls
    below clear_below."""

    name: str
    raise_at: float
    clear_below: float

    def __post_init__(self) -> None:
        if not 0 < self.clear_below < self.raise_at <= 1:
            raise ValueError(
                f"churn level {self.name}: need 0 < clear_below < raise_at <= 1, "
                f"got clear_below = {self.clear_below}, raise_at = {self.raise_at}"
            )


@dataclass(frozen=True, slots=True)
class RiskLevels:
    """The ordered levels: the base level (no risk) and those above it, calmest first."""

    base: str = "none"
    above: tuple[RiskLevel, ...] = field(
        default_factory=lambda: (
            RiskLevel("watch", raise_at=0.5, clear_below=0.4),
            RiskLevel("at_risk", raise_at=0.7, clear_below=0.6),
            RiskLevel("churned", raise_at=0.9, clear_below=0.8),
        )
    )

    _names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _ranks: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = (self.base, *(level.name for level in self.above))
        # Cached: the fold asks for ranks on every event.
        object.__setattr__(self, "_names", names)
        object.__setattr__(self, "_ranks", {name: rank for rank, name in enumerate(names)})
        if len(set(names)) != len(names):
            raise ValueError(f"churn level names must be distinct, got {names}")
        for lower, upper in zip(self.above, self.above[1:], strict=False):
            if not (lower.raise_at < upper.raise_at and lower.clear_below < upper.clear_below):
                raise ValueError(
                    f"churn levels {lower.name} < {upper.name}: both bounds must grow "
                    "from one level to the next"
                )

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    def rank(self, name: str) -> int:
        """0 for the base level, 1 for the first level above it, and so on."""
        rank = self._ranks.get(name)
        if rank is None:
            raise ValueError(f"unknown churn level {name!r}; levels are {self._names}")
        return rank


DEFAULT_LEVELS = RiskLevels()


@dataclass(frozen=True, slots=True)
class ChurnModel:
    """Everything the rules file says about churn: the fitted parameters and their time unit
    (`[churn.model]`), the levels (`[churn.levels]`) and the warning signs' weights."""

    params: BgNbdParams
    unit: TimeUnit = "weeks"
    levels: RiskLevels = DEFAULT_LEVELS
    weights: RiskWeights = DEFAULT_WEIGHTS

    def __post_init__(self) -> None:
        if self.unit not in DAYS_PER_UNIT:
            raise ValueError(f'churn model unit must be "days" or "weeks", got {self.unit!r}')


def next_level(current: str, score: float, levels: RiskLevels = DEFAULT_LEVELS) -> str:
    """The level after seeing a score: up to the highest level whose raise bound the score
    reaches; otherwise down past every level whose clear bound the score is below."""
    rank = levels.rank(current)
    for higher in range(len(levels.above), rank, -1):
        if score >= levels.above[higher - 1].raise_at:
            return levels.above[higher - 1].name
    while rank > 0 and score < levels.above[rank - 1].clear_below:
        rank -= 1
    return levels.names[rank]


def level_direction(old: str, new: str, levels: RiskLevels = DEFAULT_LEVELS) -> str:
    """ "up" when risk grew, "down" when it fell (for a churn-risk-changed event)."""
    return "up" if levels.rank(new) > levels.rank(old) else "down"


def next_risk_change(
    current: str, history: VisitHistory | None, signals: RiskSignals, as_of: date, model: ChurnModel
) -> date | None:
    """The first date on or after as_of on which `next_level(current, risk_score(...).score)`
    differs from `current` if nothing else happens (no visit, the same signals), or None.

    as_of itself is returned when the level is already due to change. Otherwise silence only
    raises the score, so this is the first day the score reaches the next level's raise bound.
    """

    gap_from = None if history is None else gap_sign_from(history, model.weights)

    def score_on(day: date) -> float:
        return _risk_on(history, signals, day, model, gap_from).score

    levels = model.levels
    if next_level(current, score_on(as_of), levels) != current:
        return as_of
    rank = levels.rank(current)
    if history is None or rank == len(levels.above):
        # No visits: P(alive) stays 1 and no gap grows, so nothing changes with time.
        return None
    raise_at = levels.above[rank].raise_at
    first = history.first_visit

    def raised(day: int) -> bool:
        return score_on(first + timedelta(days=day)) >= raise_at

    guess = _guess_raise_day(history, signals, model, raise_at, gap_from)
    # The level held at as_of, so the score was below the next raise bound then.
    found = _first_true_day(raised, (as_of - first).days, guess, false_at_start=True)
    return None if found is None else first + timedelta(days=found)


def _guess_raise_day(
    history: VisitHistory,
    signals: RiskSignals,
    model: ChurnModel,
    raise_at: float,
    gap_from: date | None,
) -> int | None:
    """Days from the first visit on which the score reaches raise_at, by the closed form of
    P(alive) once before and once after the gap sign switches on."""
    weights = model.weights
    fixed = (
        weights.detractor * signals.detractor
        + weights.overdue_complaint * signals.overdue_complaint
        + weights.falling_average_check * signals.falling_average_check
    )
    guesses: list[int] = []
    bound = 1.0 - raise_at + fixed
    if history.repeat_visits > 0 and bound > 0:
        plain = _guess_day_p_alive_below(history, model.params, model.unit, bound)
        if plain is not None:
            guesses.append(plain)
    if gap_from is not None:
        gap_day = (gap_from - history.first_visit).days
        with_gap = bound + weights.gap_beyond_cadence
        if with_gap >= 1:
            guesses.append(gap_day)
        elif with_gap > 0 and history.repeat_visits > 0:
            after_gap = _guess_day_p_alive_below(history, model.params, model.unit, with_gap)
            if after_gap is not None:
                guesses.append(max(gap_day, after_gap))
    return min(guesses) if guesses else None
