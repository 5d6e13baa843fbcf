"""Properties of the churn core over wide random inputs: P(alive) equals the lifetimes
reference, falls while a customer is silent, and the day solvers return exactly the first day
on which the bound is crossed."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from lifetimes import BetaGeoFitter

from streams.core.churn import (
    HORIZON_DAYS,
    BgNbdParams,
    ChurnModel,
    RiskLevel,
    RiskLevels,
    RiskSignals,
    RiskWeights,
    TimeUnit,
    VisitHistory,
    _first_true_day,
    first_date_p_alive_below,
    next_level,
    next_risk_change,
    p_alive,
    p_alive_on,
    risk_score,
)


def positive(low: float, high: float) -> st.SearchStrategy[float]:
    """Log-uniform-ish: parameters span orders of magnitude in real fits."""
    return st.floats(np.log(low), np.log(high)).map(lambda v: float(np.exp(v)))


params_strategy = st.builds(
    BgNbdParams,
    r=positive(1e-3, 1e3),
    alpha=positive(1e-3, 1e4),
    a=positive(1e-3, 1e3),
    b=positive(1e-3, 1e4),
)


@st.composite
def histories(draw: st.DrawFn) -> tuple[int, float, float]:
    x = draw(st.one_of(st.integers(0, 50), st.integers(0, 10**7)))
    t_x = 0.0 if x == 0 else draw(st.floats(0, 1e5))
    big_t = t_x + draw(st.one_of(st.floats(0, 10), st.floats(0, 1e5)))
    return x, t_x, big_t


def reference_p_alive(x: int, t_x: float, big_t: float, params: BgNbdParams) -> float:
    fitter = BetaGeoFitter()
    fitter.params_ = pd.Series({"r": params.r, "alpha": params.alpha, "a": params.a, "b": params.b})
    return float(fitter.conditional_probability_alive(x, t_x, big_t)[0])


@settings(max_examples=400, deadline=None)
@given(history=histories(), params=params_strategy)
def test_p_alive_equals_lifetimes(history: tuple[int, float, float], params: BgNbdParams) -> None:
    x, t_x, big_t = history
    ours = p_alive(x, t_x, big_t, params)
    assert 0.0 <= ours <= 1.0
    assert ours == pytest.approx(reference_p_alive(x, t_x, big_t, params), abs=1e-9, rel=0)


@given(history=histories(), later=st.floats(0, 1e4), params=params_strategy)
def test_p_alive_falls_while_silent(
    history: tuple[int, float, float], later: float, params: BgNbdParams
) -> None:
    x, t_x, big_t = history
    assert p_alive(x, t_x, big_t + later, params) <= p_alive(x, t_x, big_t, params)


units: st.SearchStrategy[TimeUnit] = st.sampled_from(("days", "weeks"))
first_visits = st.dates(date(2000, 1, 1), date(2030, 12, 31))


@st.composite
def visit_histories(draw: st.DrawFn) -> tuple[VisitHistory, date]:
    first = draw(first_visits)
    visits = draw(st.one_of(st.integers(1, 30), st.integers(1, 5000)))
    span = 0 if visits == 1 else draw(st.integers(visits - 1, visits - 1 + 3000))
    last = first + timedelta(days=span)
    as_of = last + timedelta(days=draw(st.integers(0, 2000)))
    return VisitHistory(visits, first, last), as_of


# The published CDNOW fit and parameters around it: realistic shapes where bounds are crossed
# within years, next to the wide strategy that also reaches "never".
realistic_params = st.builds(
    BgNbdParams,
    r=positive(0.05, 5),
    alpha=positive(0.5, 50),
    a=positive(0.05, 5),
    b=positive(0.5, 20),
)


@settings(max_examples=300, deadline=None)
@given(
    case=visit_histories(),
    params=st.one_of(realistic_params, params_strategy),
    unit=units,
    bound=st.floats(0.001, 0.999),
)
def test_first_date_below_is_the_first_such_day(
    case: tuple[VisitHistory, date], params: BgNbdParams, unit: TimeUnit, bound: float
) -> None:
    history, as_of = case
    found = first_date_p_alive_below(history, as_of, params, unit, bound)
    if found is None:
        far = as_of + timedelta(days=100_000)
        assert p_alive_on(history, far, params, unit) >= bound
        return
    assert found >= as_of
    assert p_alive_on(history, found, params, unit) < bound
    if found > as_of:
        day_before = found - timedelta(days=1)
        assert p_alive_on(history, day_before, params, unit) >= bound


@st.composite
def risk_levels(draw: st.DrawFn) -> RiskLevels:
    count = draw(st.integers(1, 4))
    raises = sorted(draw(st.sets(st.floats(0.05, 1.0), min_size=count, max_size=count)))
    levels = []
    previous_clear = 0.0
    for index, raise_at in enumerate(raises):
        low = max(previous_clear, raise_at / 2)
        clear = draw(st.floats(low, raise_at, exclude_min=True, exclude_max=True))
        assume(previous_clear < clear < raise_at)
        levels.append(RiskLevel(f"level{index}", raise_at=raise_at, clear_below=clear))
        previous_clear = clear
    return RiskLevels(base="none", above=tuple(levels))


@given(levels=risk_levels(), data=st.data())
def test_next_level_is_stable_and_rises_with_the_score(
    levels: RiskLevels, data: st.DataObject
) -> None:
    current = data.draw(st.sampled_from(levels.names))
    low, high = sorted(data.draw(st.lists(st.floats(0, 1), min_size=2, max_size=2)))
    at_low, at_high = next_level(current, low, levels), next_level(current, high, levels)
    assert next_level(at_low, low, levels) == at_low
    assert levels.rank(at_low) <= levels.rank(at_high)
    # Hysteresis: a level once reached is kept until the score falls below its clear bound.
    rank = levels.rank(at_high)
    if rank > 0:
        clear = levels.above[rank - 1].clear_below
        for score in (clear, (clear + high) / 2):
            assert levels.rank(next_level(at_high, score, levels)) >= rank


@settings(max_examples=300, deadline=None)
@given(
    case=visit_histories(),
    params=realistic_params,
    unit=units,
    levels=risk_levels(),
    data=st.data(),
)
def test_next_risk_change_is_the_first_day_the_level_changes(
    case: tuple[VisitHistory, date],
    params: BgNbdParams,
    unit: TimeUnit,
    levels: RiskLevels,
    data: st.DataObject,
) -> None:
    history, as_of = case
    signals = data.draw(st.builds(RiskSignals, st.booleans(), st.booleans(), st.booleans()))
    model = ChurnModel(params, unit=unit, levels=levels, weights=RiskWeights())
    # Start from a level the score already stands at, as the fold keeps it.
    start = data.draw(st.sampled_from(levels.names))
    current = next_level(start, risk_score(history, signals, as_of, model).score, levels)

    def level_on(day: date) -> str:
        return next_level(current, risk_score(history, signals, day, model).score, levels)

    found = next_risk_change(current, history, signals, as_of, model)
    if found is None:
        assert level_on(as_of + timedelta(days=100_000)) == current
        return
    assert found > as_of
    assert level_on(found) != current
    assert levels.rank(level_on(found)) > levels.rank(current)
    assert level_on(found - timedelta(days=1)) == current


@given(
    start=st.integers(-1000, 1000),
    first_true=st.one_of(st.none(), st.integers(0, 120_000)),
    guess=st.one_of(st.none(), st.integers(-2000, 250_000)),
    false_at_start=st.booleans(),
)
def test_day_search_finds_the_threshold_whatever_the_guess(
    start: int, first_true: int | None, guess: int | None, false_at_start: bool
) -> None:
    # The closed-form guess is usually right to the day; the search must not depend on it.
    threshold = None if first_true is None else start + first_true
    if false_at_start and threshold == start:
        threshold += 1
    asked: list[int] = []

    def pred(day: int) -> bool:
        asked.append(day)
        return threshold is not None and day >= threshold

    found = _first_true_day(pred, start, guess, false_at_start=false_at_start)
    expected = threshold if threshold is not None and threshold <= start + HORIZON_DAYS else None
    assert found == expected
    assert len(asked) <= 80  # galloping and bisection: logarithmic in the distance
