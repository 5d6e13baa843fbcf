"""The lifetime-value models against `lifetimes`, the reference implementation."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from streams.core.churn import BgNbdParams
from streams.report.clv import (
    GammaGammaParams,
    expected_purchases,
    expected_spend,
    fit_gamma_gamma,
    gamma_gamma_log_likelihood,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from lifetimes import BetaGeoFitter, GammaGammaFitter


def gamma_gamma_sample(seed: int, customers: int, p: float, q: float, v: float):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    nu = rng.gamma(q, 1 / v, customers)
    frequency = rng.integers(1, 12, customers)
    monetary = np.array([rng.gamma(p, 1 / n, f).mean() for n, f in zip(nu, frequency, strict=True)])
    return frequency.astype(float), monetary


@pytest.mark.parametrize(("seed", "p", "q", "v"), [(1, 6.0, 4.0, 15.0), (2, 2.5, 3.0, 300.0)])
def test_gamma_gamma_fit_matches_lifetimes(seed: int, p: float, q: float, v: float) -> None:
    frequency, monetary = gamma_gamma_sample(seed, 1500, p, q, v)
    ours = fit_gamma_gamma(frequency, monetary)
    reference = GammaGammaFitter(penalizer_coef=0.0).fit(frequency, monetary)
    theirs = GammaGammaParams(**reference.params_.to_dict())
    assert ours.converged
    for name in ("p", "q", "v"):
        assert getattr(ours.params, name) == pytest.approx(getattr(theirs, name), rel=2e-3), name
    # the maximum: never worse than the reference's optimum
    assert ours.log_likelihood >= gamma_gamma_log_likelihood(theirs, frequency, monetary) - 1e-6
    ours_spend = expected_spend(ours.params, frequency[:20], monetary[:20])
    their_spend = reference.conditional_expected_average_profit(
        pd.Series(frequency[:20]), pd.Series(monetary[:20])
    )
    np.testing.assert_allclose(ours_spend, np.asarray(their_spend), rtol=2e-3)


def test_customers_without_repeat_visits_get_the_population_mean() -> None:
    params = GammaGammaParams(p=6.0, q=4.0, v=15.0)
    spend = expected_spend(params, np.array([0.0, 3.0]), np.array([0.0, 50.0]))
    assert spend[0] == pytest.approx(15.0 * 6.0 / 3.0)
    assert spend[0] < spend[1] < 50.0  # pulled towards the population mean


def test_gamma_gamma_needs_repeat_buyers() -> None:
    with pytest.raises(ValueError, match="at least two customers"):
        fit_gamma_gamma(np.array([0.0, 1.0]), np.array([0.0, 10.0]))


def test_expected_purchases_match_lifetimes() -> None:
    params = BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)  # DOMAIN.md's published fit
    reference = BetaGeoFitter()
    reference.params_ = pd.Series({"r": params.r, "alpha": params.alpha, "a": params.a,
                                   "b": params.b})  # fmt: skip
    rng = np.random.default_rng(5)
    big_t = rng.uniform(1, 80, 300)
    t_x = big_t * rng.uniform(0, 1, 300)
    x = rng.integers(0, 60, 300).astype(float)
    t_x[x == 0] = 0
    for horizon in (1.0, 52.0, 200.0):
        ours = expected_purchases(params, horizon, x, t_x, big_t)
        theirs = reference.conditional_expected_number_of_purchases_up_to_time(
            horizon, x, t_x, big_t
        )
        np.testing.assert_allclose(ours, np.asarray(theirs), rtol=1e-9)
    # a customer seen lately expects more than one silent for long, with the same visits
    recent, silent = expected_purchases(
        params, 52.0, np.array([5.0, 5.0]), np.array([38.0, 5.0]), np.array([39.0, 39.0])
    )
    assert recent > silent
