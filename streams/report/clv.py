"""Customer lifetime value: how many purchases a customer will make (BG/NBD) times what each
is worth (Gamma-Gamma), as the `lifetimes` package computes them; numpy and scipy only.

- BG/NBD conditional expectation (Fader, Hardie and Lee 2005, eq. 10): the expected number of
  purchases in the next t units of a customer with x repeat visits, the last at t_x, seen for
  T, written as `lifetimes.BetaGeoFitter.conditional_expected_number_of_purchases_up_to_time`
  writes it (the hypergeometric term in log space, with Euler's transformation where it
  overflows).
- Gamma-Gamma (Fader, Hardie and Lee 2005, "RFM and CLV"): a customer's spend per visit is
  Gamma(p, nu) around their own mean, nu ~ Gamma(q, v) across customers; fitted by maximum
  likelihood over the customers with repeat visits (x, the mean spend m of those visits), as
  `lifetimes.GammaGammaFitter` does (no penalizer). The expected spend per purchase of a
  customer is the credibility mix of the population mean v p / (q - 1) and their own mean.
  The model assumes spend is independent of frequency; the report says so."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.special import digamma, gammaln, hyp2f1

from streams.core.churn import BgNbdParams

FloatArray = npt.NDArray[np.float64]

LOG_PARAM_BOUND = 25.0


def expected_purchases(
    params: BgNbdParams, t: float, x: FloatArray, t_x: FloatArray, big_t: FloatArray
) -> FloatArray:
    """Expected purchases in (T, T + t] given (x, t_x, T), in the params' time unit."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x = np.asarray(x, dtype=np.float64)
    first_a, first_b, first_c = r + x, b + x, a + b + x - 1
    z = t / (alpha + big_t + t)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_hyp = np.log(hyp2f1(first_a, first_b, first_c, z))
        log_hyp_euler = np.log(hyp2f1(first_c - first_a, first_c - first_b, first_c, z)) + (
            first_c - first_a - first_b
        ) * np.log1p(-z)
        log_hyp = np.where(np.isinf(log_hyp), log_hyp_euler, log_hyp)
        numerator = (
            (a + b + x - 1)
            / (a - 1)
            * (1 - np.exp(log_hyp + (r + x) * np.log((alpha + big_t) / (alpha + t + big_t))))
        )
        dropped_odds = np.where(
            x > 0,
            np.exp(
                math.log(a)
                - np.log(b + np.maximum(x, 1) - 1)
                + (r + x) * np.log((alpha + big_t) / (alpha + t_x))
            ),
            0.0,
        )
    return np.asarray(numerator / (1 + dropped_odds), dtype=np.float64)


@dataclass(frozen=True)
class GammaGammaParams:
    p: float
    q: float
    v: float

    @property
    def population_mean(self) -> float | None:
        """v p / (q - 1): the mean spend per visit across customers (None when q <= 1: the
        fitted spread is too wide for a finite mean)."""
        return self.v * self.p / (self.q - 1) if self.q > 1 else None


@dataclass(frozen=True)
class GammaGammaFit:
    params: GammaGammaParams
    log_likelihood: float  # total over the customers fitted
    customers: int
    converged: bool


def _gg_terms(
    p: float, q: float, v: float, x: FloatArray, m: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Per-customer log-likelihood and its derivatives in p, q, v."""
    px = p * x
    log_xm_v = np.log(x * m + v)
    ll = (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * math.log(v)
        + (px - 1) * np.log(m)
        + px * np.log(x)
        - (px + q) * log_xm_v
    )
    psi_sum = digamma(px + q)
    d_p = x * (psi_sum - digamma(px) + np.log(m) + np.log(x) - log_xm_v)
    d_q = psi_sum - digamma(q) + math.log(v) - log_xm_v
    d_v = q / v - (px + q) / (x * m + v)
    return ll, d_p, d_q, d_v


def gamma_gamma_log_likelihood(params: GammaGammaParams, x: FloatArray, m: FloatArray) -> float:
    return float(_gg_terms(params.p, params.q, params.v, x, m)[0].sum())


def fit_gamma_gamma(frequency: FloatArray, monetary: FloatArray) -> GammaGammaFit:
    """Maximum-likelihood p, q, v over customers with frequency > 0 and monetary > 0 (the
    others carry no spend information), as lifetimes' GammaGammaFitter."""
    x = np.asarray(frequency, dtype=np.float64)
    m = np.asarray(monetary, dtype=np.float64)
    kept = (x > 0) & (m > 0)
    x, m = x[kept], m[kept]
    if x.size < 2:
        raise ValueError("the Gamma-Gamma model needs at least two customers with repeat visits")
    # spend in units of its mean: p and q do not change with the unit, v scales with it
    scale = float(m.mean())
    m_scaled = m / scale

    def objective(log_params: FloatArray) -> tuple[float, FloatArray]:
        p, q, v = (float(value) for value in np.exp(log_params))
        ll, d_p, d_q, d_v = _gg_terms(p, q, v, x, m_scaled)
        gradient = np.array([p * d_p.sum(), q * d_q.sum(), v * d_v.sum()])
        return float(-ll.sum() / x.size), -gradient / x.size

    result = minimize(
        objective,
        x0=np.zeros(3),
        jac=True,
        method="L-BFGS-B",
        bounds=[(-LOG_PARAM_BOUND, LOG_PARAM_BOUND)] * 3,
        options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-10},
    )
    p, q, v_scaled = (float(value) for value in np.exp(result.x))
    params = GammaGammaParams(p=p, q=q, v=v_scaled * scale)
    converged = bool(result.success) or float(np.max(np.abs(result.jac))) < 1e-6
    return GammaGammaFit(params, gamma_gamma_log_likelihood(params, x, m), int(x.size), converged)


def expected_spend(
    params: GammaGammaParams, frequency: FloatArray, monetary: FloatArray
) -> FloatArray:
    """E[spend per visit | x, m]: the customer's own mean weighted by p x / (p x + q - 1), the
    population mean by the rest (customers without repeat visits get the population mean)."""
    x = np.asarray(frequency, dtype=np.float64)
    m = np.asarray(monetary, dtype=np.float64)
    population = params.population_mean
    if population is None:
        return np.where(x > 0, m, np.nan)
    weight = params.p * x / (params.p * x + params.q - 1)
    return np.asarray((1 - weight) * population + weight * np.where(x > 0, m, 0.0))
