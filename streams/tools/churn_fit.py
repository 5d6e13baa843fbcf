"""Fitting the churn model: the BG/NBD parameters r, alpha, a, b by maximum likelihood over the
visit histories of many customers, for the rules file's `[churn.model]`.

A customer's history is summarised as DOMAIN.md counts it, on calendar dates (UTC) as of a cut-off
date: x = visits - 1 (a visit is a day with at least one purchase), t_x = last visit - first
visit, T = cut-off - first visit, in days or weeks (days / 7). Only customers whose first visit is
on or before the cut-off count, with their visits on or before it; returns never remove a visit.

The log-likelihood is Fader, Hardie and Lee (2005), section 7 (as in `lifetimes`'
`BetaGeoFitter`), vectorised over customers and over the distinct (x, t_x, T) triples, which
calendar-day data repeats a lot. It is maximised over log-parameters with its analytic gradient.
"""

from __future__ import annotations

import json
import math
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.special import digamma, gammaln

from streams.core.churn import DAYS_PER_UNIT, BgNbdParams, TimeUnit

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

PURCHASE_SCHEMA = "loyalty.v1.Purchase"

# Log-parameters are kept within e^-25..e^25 (of the rescaled time): a fit that runs into these
# walls means the data do not pin that parameter down, which `ChurnFit.at_bounds` reports.
LOG_PARAM_BOUND = 25.0
# Largest gradient component (of the mean log-likelihood per customer, in log-parameters) that
# still counts as the top of the likelihood.
STATIONARY_GRADIENT = 1e-6


class ChurnFitError(ValueError):
    """The data cannot give a fit (no customers, or nobody with a repeat visit)."""


@dataclass(frozen=True)
class Histories:
    """Per-customer BG/NBD summaries, in the fit's time unit, as parallel arrays."""

    x: IntArray
    t_x: FloatArray
    big_t: FloatArray

    def __post_init__(self) -> None:
        if not (self.x.shape == self.t_x.shape == self.big_t.shape and self.x.ndim == 1):
            raise ValueError("x, t_x and T must be 1-d arrays of one length")
        if self.x.size and (
            self.x.min() < 0 or self.t_x.min() < 0 or bool(np.any(self.t_x > self.big_t))
        ):
            raise ValueError("need x >= 0 and 0 <= t_x <= T for every customer")

    @property
    def customers(self) -> int:
        return int(self.x.size)

    @classmethod
    def of(cls, x: Iterable[int], t_x: Iterable[float], big_t: Iterable[float]) -> Histories:
        return cls(
            np.asarray(list(x) if not isinstance(x, np.ndarray) else x, dtype=np.int64),
            np.asarray(list(t_x) if not isinstance(t_x, np.ndarray) else t_x, dtype=np.float64),
            np.asarray(
                list(big_t) if not isinstance(big_t, np.ndarray) else big_t, dtype=np.float64
            ),
        )


# ---- likelihood ---------------------------------------------------------------------------------


def _terms(
    params: tuple[float, float, float, float], x: FloatArray, t_x: FloatArray, big_t: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """The pieces of log L_i = A1 + A2 + log(exp(A3) + [x > 0] exp(A4)); A4 = -inf for x = 0."""
    r, alpha, a, b = params
    repeat = x > 0
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + big_t)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(
            repeat,
            math.log(a) - np.log(b + np.maximum(x, 1) - 1) - (r + x) * np.log(alpha + t_x),
            -np.inf,
        )
    return a1, a2, a3, a4


def log_likelihood_per_customer(params: BgNbdParams, histories: Histories) -> FloatArray:
    """log L(r, alpha, a, b | x, t_x, T) of every customer."""
    x = histories.x.astype(np.float64)
    a1, a2, a3, a4 = _terms(
        (params.r, params.alpha, params.a, params.b), x, histories.t_x, histories.big_t
    )
    return a1 + a2 + np.logaddexp(a3, a4)


def log_likelihood(params: BgNbdParams, histories: Histories) -> float:
    """The total log-likelihood of the histories under the parameters."""
    return float(log_likelihood_per_customer(params, histories).sum())


def _objective(
    log_params: FloatArray, x: FloatArray, t_x: FloatArray, big_t: FloatArray, weights: FloatArray
) -> tuple[float, FloatArray]:
    """Mean negative log-likelihood and its gradient in log-parameters."""
    r, alpha, a, b = (float(v) for v in np.exp(log_params))
    a1, a2, a3, a4 = _terms((r, alpha, a, b), x, t_x, big_t)
    mixed = np.logaddexp(a3, a4)
    ll = a1 + a2 + mixed
    # Shares of the two ways the history can have happened: still alive at T, or dropped out
    # right after the last repeat visit.
    w3 = np.exp(a3 - mixed)
    w4 = np.exp(a4 - mixed)
    log_alpha_t, log_alpha_tx = np.log(alpha + big_t), np.log(alpha + t_x)
    d_r = digamma(r + x) - digamma(r) + np.log(alpha) - w3 * log_alpha_t - w4 * log_alpha_tx
    d_alpha = r / alpha - (r + x) * (w3 / (alpha + big_t) + w4 / (alpha + t_x))
    common = digamma(a + b) - digamma(a + b + x)
    d_a = common + w4 / a
    with np.errstate(divide="ignore", invalid="ignore"):
        last_dropout = np.where(x > 0, w4 / (b + np.maximum(x, 1) - 1), 0.0)
    d_b = common + digamma(b + x) - digamma(b) - last_dropout
    total = weights.sum()
    gradient = np.array(
        [
            r * (weights @ d_r),
            alpha * (weights @ d_alpha),
            a * (weights @ d_a),
            b * (weights @ d_b),
        ]
    )
    return float(-(weights @ ll) / total), -gradient / total


# ---- fit ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChurnFit:
    """Fitted parameters, their log-likelihood and what they were fitted on."""

    params: BgNbdParams
    log_likelihood: float
    customers: int
    returning_customers: int  # with at least one repeat visit: they carry the dropout part
    unit: TimeUnit
    converged: bool
    message: str
    at_bounds: tuple[str, ...] = field(default=())

    def as_json(self) -> dict[str, Any]:
        return {
            "r": self.params.r,
            "alpha": self.params.alpha,
            "a": self.params.a,
            "b": self.params.b,
            "log_likelihood": self.log_likelihood,
            "customers": self.customers,
        }

    def toml_block(self) -> str:
        """A `[churn.model]` block to paste into the rules file."""
        p = self.params
        return (
            "[churn.model]\n"
            f"r = {p.r!r}\n"
            f"alpha = {p.alpha!r}\n"
            f"a = {p.a!r}\n"
            f"b = {p.b!r}\n"
            f'unit = "{self.unit}"\n'
        )


def fit_bg_nbd(histories: Histories, unit: TimeUnit) -> ChurnFit:
    """Maximum-likelihood r, alpha, a, b for the histories (in `unit`, which alpha takes)."""
    if histories.customers == 0:
        raise ChurnFitError("no customers to fit: is the cut-off date before every first visit?")
    if not np.any(histories.x > 0):
        raise ChurnFitError("no customer has a repeat visit: the model cannot be fitted yet")
    # Rescale time so the oldest customer is 10 units old: the optimiser then starts with every
    # parameter near 1 whatever the unit (lifetimes does the same). Only alpha carries time.
    scale = 10.0 / float(histories.big_t.max())
    triples = np.column_stack(
        [histories.x.astype(np.float64), histories.t_x * scale, histories.big_t * scale]
    )
    distinct, counts = np.unique(triples, axis=0, return_counts=True)
    x, t_x, big_t = distinct[:, 0], distinct[:, 1], distinct[:, 2]
    weights = counts.astype(np.float64)
    bounds = [(-LOG_PARAM_BOUND, LOG_PARAM_BOUND)] * 4
    result = minimize(
        _objective,
        x0=np.zeros(4),
        args=(x, t_x, big_t, weights),
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-9},
    )
    # Near the optimum the line search can run out of float precision before the relative-
    # reduction test passes; a vanishing gradient there is convergence all the same.
    converged = bool(result.success) or float(np.max(np.abs(result.jac))) < STATIONARY_GRADIENT
    r, alpha_scaled, a, b = (float(v) for v in np.exp(result.x))
    params = BgNbdParams(r=r, alpha=alpha_scaled / scale, a=a, b=b)
    at_bounds = tuple(
        name
        for name, value in zip(("r", "alpha", "a", "b"), result.x, strict=True)
        if abs(value) > LOG_PARAM_BOUND - 1e-6
    )
    return ChurnFit(
        params=params,
        log_likelihood=log_likelihood(params, histories),
        customers=histories.customers,
        returning_customers=int(np.count_nonzero(histories.x)),
        unit=unit,
        converged=converged,
        message=str(result.message),
        at_bounds=at_bounds,
    )


# ---- histories from visits ----------------------------------------------------------------------


@dataclass
class VisitLog:
    """Purchase days per customer, collected row by row and summarised at once with numpy.
    Flat arrays of machine ints keep a file of tens of millions of purchases in memory."""

    _customer_index: dict[str, int] = field(default_factory=dict)
    _customers: array[int] = field(default_factory=lambda: array("q"))
    _days: array[int] = field(default_factory=lambda: array("q"))

    def add(self, customer_id: str, day: date) -> None:
        index = self._customer_index.setdefault(customer_id, len(self._customer_index))
        self._customers.append(index)
        self._days.append(day.toordinal())

    @property
    def purchases(self) -> int:
        return len(self._days)

    def histories(self, until: date, unit: TimeUnit) -> Histories:
        """Summaries as of the cut-off: customers with a first visit on or before it, their
        visits on or before it, T measured to it."""
        customers = np.frombuffer(self._customers, dtype=np.int64)
        days = np.frombuffer(self._days, dtype=np.int64)
        return histories_from_visits(customers, days, until, unit)


def histories_from_visits(
    customers: IntArray, days: IntArray, until: date, unit: TimeUnit
) -> Histories:
    """BG/NBD summaries from purchase days (proleptic ordinals) per customer index."""
    kept = days <= until.toordinal()
    customers, days = customers[kept], days[kept]
    # Distinct (customer, day) pairs are the visits; sorted by customer then day.
    visits = np.unique(np.column_stack([customers, days]), axis=0)
    if visits.size == 0:
        return Histories.of([], [], [])
    owner, day = visits[:, 0], visits[:, 1]
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    ends = np.r_[starts[1:], owner.size]
    first, last = day[starts], day[ends - 1]
    per_unit = DAYS_PER_UNIT[unit]
    return Histories(
        x=(ends - starts - 1).astype(np.int64),
        t_x=(last - first).astype(np.float64) / per_unit,
        big_t=(until.toordinal() - first).astype(np.float64) / per_unit,
    )


def visits_from_event_file(
    path: Path,
    *,
    currency: str,
    default_type: str | None = None,
    on_row: Callable[[], None] | None = None,
    on_error: Callable[[str], None] | None = None,
) -> VisitLog:
    """The purchase days of every customer in a POS event file (the `loyalty publish` formats)."""
    from streams.contract.event_files import RowError, read_event_file

    log = VisitLog()
    for row in read_event_file(path, default_type=default_type, currency=currency):
        if on_row is not None:
            on_row()
        if isinstance(row, RowError):
            if on_error is not None:
                on_error(str(row))
            continue
        if row.schema_name == PURCHASE_SCHEMA:
            record = row.record
            log.add(record["customer_id"], record["occurred_at"].date())
    return log


# ---- simulation (tests, benchmarks) -------------------------------------------------------------


def simulate_histories(
    params: BgNbdParams, big_t: FloatArray, rng: np.random.Generator
) -> Histories:
    """Customers drawn from the BG/NBD model, observed for big_t each (vectorised).

    lambda ~ Gamma(r, scale 1/alpha) and p ~ Beta(a, b) per customer; repeat purchases come as a
    Poisson process with rate lambda, and after each one the customer drops out with probability
    p. So the repeat purchases a customer would ever make are K ~ Geometric(p), those seen by T
    are x = min(K, N) with N ~ Poisson(lambda T), and the x-th of N uniform arrival times in
    [0, T] is T times a Beta(x, N - x + 1) draw.
    """
    size = big_t.shape[0]
    rate = rng.gamma(params.r, 1.0 / params.alpha, size)
    dropout = rng.beta(params.a, params.b, size)
    # Geometric by inversion in floats: a dropout probability of (nearly) 0 gives K = inf, where
    # numpy's integer geometric would overflow.
    with np.errstate(divide="ignore"):
        lifetime_repeats = np.ceil(np.log(rng.random(size)) / np.log1p(-dropout))
    arrivals = rng.poisson(rate * big_t)
    x = np.minimum(np.maximum(lifetime_repeats, 1.0), arrivals).astype(np.int64)
    seen = x > 0
    t_x = np.zeros(size)
    t_x[seen] = big_t[seen] * rng.beta(x[seen], arrivals[seen] - x[seen] + 1)
    return Histories(x=x, t_x=t_x, big_t=big_t.astype(np.float64))


def fit_report(fit: ChurnFit) -> str:
    """The fit in words, with the block for the rules file."""
    p = fit.params
    lines = [
        f"BG/NBD fit over {fit.customers} customers, {fit.returning_customers} of them with "
        f"repeat visits (time unit: {fit.unit})",
        f"  r     = {p.r:.6g}",
        f"  alpha = {p.alpha:.6g}",
        f"  a     = {p.a:.6g}",
        f"  b     = {p.b:.6g}",
        f"  log-likelihood = {fit.log_likelihood:.6f}",
    ]
    if not fit.converged:
        lines.append(f"  warning: the optimiser did not converge ({fit.message})")
    if fit.at_bounds:
        lines.append(
            "  warning: the data barely constrain "
            + ", ".join(fit.at_bounds)
            + " (the fit ran to the edge of the search range)"
        )
    lines += ["", "Paste into the rules file:", "", fit.toml_block()]
    return "\n".join(lines)


def fit_json(fit: ChurnFit) -> str:
    return json.dumps(fit.as_json())
