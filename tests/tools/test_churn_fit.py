"""The churn fit: our log-likelihood is lifetimes' to 1e-9, its gradient is right, the simulator
draws BG/NBD customers, the fit recovers known parameters, and histories are counted on
calendar days as DOMAIN.md says."""

from __future__ import annotations

import json
import tomllib
from datetime import date

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from lifetimes import BetaGeoFitter
from scipy.optimize import approx_fprime

from streams.core.churn import BgNbdParams, TimeUnit
from streams.tools.churn_fit import (
    ChurnFitError,
    Histories,
    _objective,
    fit_bg_nbd,
    histories_from_visits,
    log_likelihood,
    simulate_histories,
)

CDNOW_WEEKS = BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
SHOP_DAYS = BgNbdParams(r=1.2, alpha=12.0, a=0.9, b=8.0)


def simulated(
    params: BgNbdParams, customers: int, ages: tuple[float, float], seed: int
) -> Histories:
    rng = np.random.default_rng(seed)
    return simulate_histories(params, rng.uniform(*ages, customers), rng)


def lifetimes_log_likelihood(params: BgNbdParams, histories: Histories) -> float:
    log_params = np.log([params.r, params.alpha, params.a, params.b])
    weights = np.ones(histories.customers)
    mean_negative = BetaGeoFitter._negative_log_likelihood(
        log_params, histories.x, histories.t_x, histories.big_t, weights, 0.0
    )
    return float(-mean_negative * histories.customers)


def positive(low: float, high: float) -> st.SearchStrategy[float]:
    return st.floats(np.log(low), np.log(high)).map(lambda v: float(np.exp(v)))


@settings(max_examples=60, deadline=None)
@given(
    params=st.builds(
        BgNbdParams,
        positive(1e-2, 1e2),
        positive(1e-2, 1e3),
        positive(1e-2, 1e2),
        positive(1e-2, 1e3),
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_log_likelihood_equals_lifetimes(params: BgNbdParams, seed: int) -> None:
    histories = simulated(CDNOW_WEEKS, 300, (0.0, 60.0), seed)
    reference = lifetimes_log_likelihood(params, histories)
    # where lifetimes overflows (-inf at r~90, alpha~0.01) it is no reference: ours stays finite
    assume(np.isfinite(reference))
    ours = log_likelihood(params, histories)
    assert ours == pytest.approx(reference, rel=1e-9)


def test_gradient_matches_finite_differences() -> None:
    histories = simulated(SHOP_DAYS, 2000, (1.0, 365.0), 3)
    args = (histories.x.astype(float), histories.t_x, histories.big_t, np.ones(histories.customers))
    for point in (np.log([1.2, 12.0, 0.9, 8.0]), np.array([-1.0, 0.5, 1.5, -0.3])):
        _, gradient = _objective(point, *args)
        numeric = approx_fprime(point, lambda p: _objective(p, *args)[0], 1e-7)
        assert gradient == pytest.approx(numeric, rel=1e-4, abs=1e-6)


def test_simulated_repeat_visits_have_the_model_mean() -> None:
    # E[X(t)] of BG/NBD (FHL 2005, eq. 9), via lifetimes, for customers all observed for t.
    age = 52.0
    histories = simulated(CDNOW_WEEKS, 200_000, (age, age), 11)
    reference = BetaGeoFitter()
    reference.params_ = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    expected = float(reference.expected_number_of_purchases_up_to_time(age))
    standard_error = histories.x.std() / np.sqrt(histories.customers)
    assert abs(histories.x.mean() - expected) < 4 * standard_error
    assert np.all(histories.t_x[histories.x == 0] == 0)
    assert np.all(histories.t_x <= histories.big_t)


@pytest.mark.parametrize(
    ("true", "ages", "unit"),
    [(CDNOW_WEEKS, (20.0, 40.0), "weeks"), (SHOP_DAYS, (0.0, 365.0), "days")],
)
def test_fit_recovers_known_parameters(
    true: BgNbdParams, ages: tuple[float, float], unit: TimeUnit
) -> None:
    histories = simulated(true, 30_000, ages, 2026)
    fit = fit_bg_nbd(histories, unit)
    assert fit.converged and fit.at_bounds == ()
    assert fit.customers == 30_000
    assert fit.params.r == pytest.approx(true.r, rel=0.08)
    assert fit.params.alpha == pytest.approx(true.alpha, rel=0.08)
    # a and b trade off against each other; the mean dropout probability a / (a + b) is sharp.
    assert fit.params.a == pytest.approx(true.a, rel=0.3)
    assert fit.params.b == pytest.approx(true.b, rel=0.3)
    mean_dropout = fit.params.a / (fit.params.a + fit.params.b)
    assert mean_dropout == pytest.approx(true.a / (true.a + true.b), rel=0.06)
    assert fit.log_likelihood >= log_likelihood(true, histories)


def test_fit_reaches_lifetimes_optimum() -> None:
    histories = simulated(CDNOW_WEEKS, 3000, (20.0, 40.0), 5)
    ours = fit_bg_nbd(histories, "weeks")
    reference = BetaGeoFitter().fit(histories.x, histories.t_x, histories.big_t)
    theirs = BgNbdParams(*(float(reference.params_[name]) for name in ("r", "alpha", "a", "b")))
    assert ours.log_likelihood >= log_likelihood(theirs, histories) - 1e-6
    assert ours.params.r == pytest.approx(theirs.r, rel=1e-3)
    assert ours.params.b == pytest.approx(theirs.b, rel=1e-3)


def test_output_formats() -> None:
    fit = fit_bg_nbd(simulated(CDNOW_WEEKS, 2000, (20.0, 40.0), 9), "weeks")
    block = tomllib.loads(fit.toml_block())["churn"]["model"]
    assert block == {"r": fit.params.r, "alpha": fit.params.alpha, "a": fit.params.a,
                     "b": fit.params.b, "unit": "weeks"}  # fmt: skip
    assert list(json.loads(json.dumps(fit.as_json()))) == [
        "r", "alpha", "a", "b", "log_likelihood", "customers"
    ]  # fmt: skip


def test_histories_count_visits_on_calendar_days_up_to_the_cut_off() -> None:
    until = date(2025, 3, 1)
    day = date.toordinal
    purchases = [
        (0, date(2025, 1, 1)),
        (0, date(2025, 1, 1)),  # a second receipt the same day is the same visit
        (0, date(2025, 1, 15)),
        (0, date(2025, 3, 2)),  # after the cut-off: not seen
        (1, date(2025, 3, 1)),  # first bought on the cut-off day: T = 0
        (2, date(2025, 3, 5)),  # first visit after the cut-off: not a customer yet
        (3, date(2025, 2, 1)),
    ]
    customers = np.array([c for c, _ in purchases], dtype=np.int64)
    days = np.array([day(d) for _, d in purchases], dtype=np.int64)
    weekly = histories_from_visits(customers, days, until, "weeks")
    assert weekly.x.tolist() == [1, 0, 0]
    assert weekly.t_x.tolist() == [2.0, 0.0, 0.0]
    assert weekly.big_t.tolist() == pytest.approx([59 / 7, 0.0, 28 / 7])
    daily = histories_from_visits(customers, days, until, "days")
    assert daily.big_t.tolist() == [59.0, 0.0, 28.0]


def test_fit_needs_customers_with_repeat_visits() -> None:
    with pytest.raises(ChurnFitError, match="no customers"):
        fit_bg_nbd(Histories.of([], [], []), "weeks")
    with pytest.raises(ChurnFitError, match="repeat visit"):
        fit_bg_nbd(Histories.of([0, 0], [0.0, 0.0], [3.0, 5.0]), "weeks")


def test_days_and_weeks_fit_the_same_model() -> None:
    # The same visits in days or weeks: only alpha carries time (7x per day of a week), and the
    # log-likelihood differs by the density's Jacobian, sum(x) * log 7.
    rng = np.random.default_rng(8)
    first = rng.integers(0, 200, 4000)
    ages_days = 280 - first
    weekly = simulate_histories(CDNOW_WEEKS, ages_days / 7, rng)
    last_days = np.floor(weekly.t_x * 7)
    daily = Histories(weekly.x, last_days, ages_days.astype(float))
    in_weeks = Histories(weekly.x, last_days / 7, ages_days / 7)
    by_day, by_week = fit_bg_nbd(daily, "days"), fit_bg_nbd(in_weeks, "weeks")
    for name in ("r", "a", "b"):
        assert getattr(by_day.params, name) == pytest.approx(
            getattr(by_week.params, name), rel=1e-4
        )
    assert by_day.params.alpha == pytest.approx(7 * by_week.params.alpha, rel=1e-4)
    jacobian = float(weekly.x.sum()) * np.log(7)
    assert by_day.log_likelihood == pytest.approx(by_week.log_likelihood - jacobian, rel=1e-9)
