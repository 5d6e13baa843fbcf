"""The report's numbers: pure functions from frames to figures, no I/O, no worker.

Two inputs, as `history` and `live` give them:
- `customers`: one row per customer as of the report's moment, the columns of
  `loyalty replay`'s lines (so every "now" figure agrees with replay and with the workers);
- `history` (from an event file only): applied purchases, NPS answers and complaints, the
  program's output events, and monthly snapshots of every customer from the fold.

Money stays in integer minor units in every frame; shares are fractions 0..1; months are
`YYYY-MM` strings (UTC)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from streams.core import Program
from streams.core.churn import DAYS_PER_UNIT, BgNbdParams
from streams.report.clv import (
    GammaGammaFit,
    expected_purchases,
    expected_spend,
    fit_gamma_gamma,
)
from streams.report.history import HistoryFrames

TOP_SHARE = 0.2  # the "20" of 80/20
PARETO_POINTS = 500  # the curve is drawn through at most this many points
P_ALIVE_BINS = 20
CLV_HORIZON_DAYS = 365
TOP_CUSTOMERS = 10
REWARD_KINDS = ("PUNCH_CARD", "SERVICE_RECOVERY")  # the Avro enum loyalty.v1.RewardKind


@dataclass(frozen=True)
class ReportInput:
    program: Program
    as_of: datetime
    customers: pd.DataFrame
    history: HistoryFrames | None  # None: the live workers' current state only
    source: str  # the file or the workers, in words


def _month_number(at: pd.Series) -> pd.Series:
    """Months since year 0 (integers subtract: months between two purchases)."""
    return at.dt.year * 12 + at.dt.month - 1


def _month_label(number: int) -> str:
    return f"{number // 12:04d}-{number % 12 + 1:02d}"


def _month(at: pd.Series) -> pd.Series:
    """`YYYY-MM` of each time (UTC); formatted once per distinct month, not per row."""
    numbers = _month_number(at)
    labels = {number: _month_label(int(number)) for number in numbers.dropna().unique()}
    return numbers.map(labels)


# ---- revenue concentration --------------------------------------------------------------------


@dataclass(frozen=True)
class Pareto:
    curve: pd.DataFrame  # customer_share, revenue_share, from (0, 0) to (1, 1)
    buyers: int  # customers with at least one purchase
    revenue_minor: int  # their net spend (after returns), all time
    top_customers: int  # ceil(20 % of buyers)
    top_share: float | None  # the revenue share of those; None without revenue


def pareto(customers: pd.DataFrame) -> Pareto:
    """Share of net lifetime revenue by share of buying customers, biggest first."""
    spend = np.sort(
        customers.loc[customers["visits"] > 0, "lifetime_spend_minor"].clip(lower=0).to_numpy()
    )[::-1].astype(np.int64)
    buyers, total = int(spend.size), int(spend.sum())
    if buyers == 0 or total == 0:
        empty = pd.DataFrame({"customer_share": [0.0, 1.0], "revenue_share": [0.0, 0.0]})
        return Pareto(empty, buyers, total, 0, None)
    cumulative = np.concatenate([[0], np.cumsum(spend)])
    top = math.ceil(TOP_SHARE * buyers)
    positions = np.unique(np.linspace(0, buyers, min(buyers, PARETO_POINTS) + 1).round()).astype(
        int
    )
    curve = pd.DataFrame(
        {"customer_share": positions / buyers, "revenue_share": cumulative[positions] / total}
    )
    return Pareto(curve, buyers, total, top, float(cumulative[top] / total))


# ---- cohorts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cohorts:
    retention: pd.DataFrame | None  # cohort (first-purchase month) x months since: share buying
    sizes: pd.Series  # customers per cohort
    repeat_by_cohort: pd.Series  # share of each cohort with two visits or more
    repeat_rate: float | None  # share of buyers with two visits or more
    buyers: int
    repeaters: int


def cohorts(customers: pd.DataFrame, history: HistoryFrames | None) -> Cohorts:
    buyers = customers[customers["visits"] > 0]
    repeaters = int((buyers["visits"] >= 2).sum())
    cohort_of = _month(buyers["first_visit"])
    sizes = cohort_of.value_counts().sort_index()
    repeat_by_cohort = (buyers["visits"] >= 2).groupby(cohort_of).mean().sort_index()
    retention = None
    if history is not None and len(history.purchases):
        purchases = history.purchases
        active = pd.DataFrame(
            {"customer_id": purchases["customer_id"], "month": _month_number(purchases["at"])}
        ).drop_duplicates()
        first = active.groupby("customer_id")["month"].transform("min")
        active["cohort"] = first
        active["since"] = active["month"] - first
        counts = active.groupby(["cohort", "since"]).size().unstack(fill_value=0)
        retention = counts.div(counts[0], axis=0)
        # months not yet lived by a cohort are blank, not 0 %
        lived = int(active["month"].max()) - retention.index.to_numpy()
        retention = retention.mask(retention.columns.to_numpy()[None, :] > lived[:, None])
        retention.index = [_month_label(int(number)) for number in retention.index]
        retention.index.name = "cohort"
    return Cohorts(
        retention=retention,
        sizes=sizes,
        repeat_by_cohort=repeat_by_cohort,
        repeat_rate=repeaters / len(buyers) if len(buyers) else None,
        buyers=len(buyers),
        repeaters=repeaters,
    )


# ---- activity, tiers and stages over time -----------------------------------------------------


@dataclass(frozen=True)
class Activity:
    monthly: pd.DataFrame | None  # month: receipts, revenue_minor, average_check_minor,
    #   active_customers, visits, visits_per_customer (gross purchase totals, before returns)
    tiers_monthly: pd.DataFrame | None  # month x tier: members at the month's end
    stages_monthly: pd.DataFrame | None  # month x stage
    tier_moves: pd.DataFrame | None  # month: up, down
    tiers_now: pd.Series  # tier -> customers, in the program's order
    stages_now: pd.Series
    average_check_minor: float | None  # net lifetime spend / receipts over every customer
    visits_per_buyer: float | None


STAGES = ("prospect", "first_purchase", "repeat", "attached", "loyal")


def activity(customers: pd.DataFrame, history: HistoryFrames | None, program: Program) -> Activity:
    tiers_now = customers["tier"].value_counts().reindex(list(program.tier_names), fill_value=0)
    stages_now = customers["stage"].value_counts().reindex(list(STAGES), fill_value=0)
    receipts = int(customers["receipts"].sum())
    buyers = int((customers["visits"] > 0).sum())
    check = int(customers["lifetime_spend_minor"].sum()) / receipts if receipts else None
    visits = int(customers["visits"].sum()) / buyers if buyers else None
    if history is None:
        return Activity(None, None, None, None, tiers_now, stages_now, check, visits)
    purchases = history.purchases.assign(month=_month(history.purchases["at"]))
    purchases["day"] = purchases["at"].dt.floor("D")
    monthly = purchases.groupby("month").agg(
        receipts=("total_minor", "size"),
        revenue_minor=("total_minor", "sum"),
        active_customers=("customer_id", "nunique"),
    )
    monthly["visits"] = purchases.drop_duplicates(["customer_id", "day"]).groupby("month").size()
    monthly["average_check_minor"] = monthly["revenue_minor"] / monthly["receipts"]
    monthly["visits_per_customer"] = monthly["visits"] / monthly["active_customers"]
    snapshots = history.snapshots
    tiers_monthly = (
        snapshots.groupby(["month", "tier"], observed=False).size().unstack(fill_value=0)
    )
    stages_monthly = (
        snapshots.groupby(["month", "stage"])
        .size()
        .unstack(fill_value=0)
        .reindex(columns=list(STAGES), fill_value=0)
    )
    moves = history.tier_changes.assign(month=_month(history.tier_changes["at"]))
    tier_moves = (
        moves.groupby(["month", "direction"])
        .size()
        .unstack(fill_value=0)
        .reindex(columns=["UP", "DOWN"], fill_value=0)
        .rename(columns={"UP": "up", "DOWN": "down"})
        .reindex(tiers_monthly.index, fill_value=0)
    )
    return Activity(
        monthly, tiers_monthly, stages_monthly, tier_moves, tiers_now, stages_now, check, visits
    )


# ---- feedback ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Feedback:
    nps_now: float | None  # over every customer's latest answer (DOMAIN.md)
    classes_now: pd.Series  # promoter / passive / detractor -> customers
    nps_monthly: pd.DataFrame | None  # month: promoters, passives, detractors, answers, nps
    complaints_monthly: pd.DataFrame | None  # month: opened, resolved, overdue,
    #   median_hours_to_resolve (of those resolved that month)
    open_now: int
    overdue_now: int
    median_hours_to_resolve: float | None


def nps_of(promoters: int | pd.Series, detractors: int | pd.Series, answers: int | pd.Series):  # type: ignore[no-untyped-def]
    """% promoters - % detractors; passives count in the denominator only."""
    return 100.0 * (promoters - detractors) / answers


def nps_class_of(score: pd.Series, program: Program) -> pd.Series:
    return pd.Series(
        np.select(
            [score >= program.promoter_from_score, score <= program.detractor_up_to_score],
            ["promoter", "detractor"],
            "passive",
        ),
        index=score.index,
    )


def feedback(
    customers: pd.DataFrame, history: HistoryFrames | None, program: Program, as_of: datetime
) -> Feedback:
    answered = customers["nps_score"].dropna().astype(int)
    classes_now = (
        nps_class_of(answered, program)
        .value_counts()
        .reindex(["promoter", "passive", "detractor"], fill_value=0)
    )
    nps_now = (
        nps_of(int(classes_now["promoter"]), int(classes_now["detractor"]), len(answered))
        if len(answered)
        else None
    )
    open_now = int(customers["open_complaints"].sum())
    overdue_now = int(customers["overdue_complaints"].sum())
    if history is None:
        return Feedback(nps_now, classes_now, None, None, open_now, overdue_now, None)
    nps = history.nps.assign(month=_month(history.nps["at"]))
    # per month, each customer's latest answer in it (ties in time: the later row)
    latest = nps.sort_values("at", kind="stable").groupby(["month", "customer_id"]).tail(1)
    latest = latest.assign(nps_class=nps_class_of(latest["score"], program))
    nps_monthly = (
        latest.groupby(["month", "nps_class"])
        .size()
        .unstack(fill_value=0)
        .reindex(columns=["promoter", "passive", "detractor"], fill_value=0)
        .rename(columns={"promoter": "promoters", "passive": "passives", "detractor": "detractors"})
    )
    nps_monthly["answers"] = nps_monthly.sum(axis=1)
    nps_monthly["nps"] = nps_of(
        nps_monthly["promoters"], nps_monthly["detractors"], nps_monthly["answers"]
    )
    complaints_monthly, median_hours = _complaints(history, program, as_of)
    return Feedback(
        nps_now, classes_now, nps_monthly, complaints_monthly, open_now, overdue_now, median_hours
    )


def _complaints(
    history: HistoryFrames, program: Program, as_of: datetime
) -> tuple[pd.DataFrame, float | None]:
    """Per month opened: how many, how many overdue (resolved after the SLA, or still open
    past it at as_of); per month resolved: how many, and the median hours they took."""
    opened = history.complaints_opened.drop_duplicates(["customer_id", "complaint_id"])
    resolved = history.complaints_resolved
    matched = opened.merge(
        resolved, on=["customer_id", "complaint_id"], how="left", suffixes=("", "_resolved")
    )
    # a resolution before the opening is not one of this complaint
    matched.loc[matched["at_resolved"] < matched["at"], "at_resolved"] = pd.NaT
    matched = matched.sort_values("at_resolved").drop_duplicates(
        ["customer_id", "complaint_id"], keep="first"
    )
    hours = (matched["at_resolved"] - matched["at"]).dt.total_seconds() / 3600
    sla = float(program.complaint_sla_hours)
    open_hours = (pd.Timestamp(as_of) - matched["at"]).dt.total_seconds() / 3600
    overdue = hours.gt(sla) | (hours.isna() & open_hours.gt(sla))
    matched = matched.assign(
        month=_month(matched["at"]),
        overdue=overdue,
        hours=hours,
        resolved_month=_month(matched["at_resolved"].dropna()),
    )
    monthly = pd.DataFrame(
        {
            "opened": matched.groupby("month").size(),
            "overdue": matched.groupby("month")["overdue"].sum(),
            "resolved": matched.dropna(subset=["resolved_month"]).groupby("resolved_month").size(),
            "median_hours_to_resolve": matched.dropna(subset=["resolved_month"])
            .groupby("resolved_month")["hours"]
            .median(),
        }
    ).fillna({"opened": 0, "overdue": 0, "resolved": 0})
    monthly.index.name = "month"
    median = float(hours.median()) if hours.notna().any() else None
    return monthly.astype({"opened": int, "overdue": int, "resolved": int}), median


# ---- churn ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Churn:
    p_alive_histogram: pd.DataFrame  # bin_start, bin_end, customers (buyers only)
    by_level: pd.DataFrame  # level: customers, recent_spend_minor (net, last window)
    at_risk: int  # customers above the lowest level
    at_risk_spend_minor: int  # their net spend in the qualification window
    window_days: int


def churn(customers: pd.DataFrame, program: Program) -> Churn:
    buyers = customers[customers["visits"] > 0]
    edges = np.linspace(0.0, 1.0, P_ALIVE_BINS + 1)
    counts, _ = np.histogram(buyers["p_alive"].to_numpy(dtype=float), bins=edges)
    histogram = pd.DataFrame({"bin_start": edges[:-1], "bin_end": edges[1:], "customers": counts})
    levels = list(program.churn_level_names)
    by_level = (
        customers.groupby("churn_level")
        .agg(customers=("customer_id", "size"), recent_spend_minor=("rolling_spend_minor", "sum"))
        .reindex(levels, fill_value=0)
    )
    risky = by_level.iloc[1:]
    return Churn(
        histogram,
        by_level,
        int(risky["customers"].sum()),
        int(risky["recent_spend_minor"].sum()),
        program.qualification_window_days,
    )


# ---- lifetime value ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LifetimeValue:
    per_customer: pd.DataFrame  # customer_id, expected_purchases, expected_spend_minor, clv_minor
    top: pd.DataFrame  # the TOP_CUSTOMERS by clv
    total_clv_minor: float
    bg_nbd: BgNbdParams
    bg_nbd_fitted: bool  # False: the rules file's parameters (the data gave no fit)
    gamma_gamma: GammaGammaFit | None
    monetary_basis: str  # in words: what a customer's spend per visit is measured from
    horizon_days: int


def lifetime_value(
    customers: pd.DataFrame, history: HistoryFrames | None, program: Program, as_of: datetime
) -> LifetimeValue | None:
    from streams.tools.churn_fit import ChurnFitError, Histories, fit_bg_nbd

    buyers = customers[customers["visits"] > 0].reset_index(drop=True)
    if buyers.empty:
        return None
    unit = program.churn.unit
    per_unit = DAYS_PER_UNIT[unit]
    as_of_day = pd.Timestamp(as_of).floor("D")
    x = (buyers["visits"] - 1).to_numpy(dtype=np.int64)
    t_x = ((buyers["last_visit"] - buyers["first_visit"]).dt.days / per_unit).to_numpy(float)
    big_t = ((as_of_day - buyers["first_visit"]).dt.days / per_unit).to_numpy(float)
    try:
        bg_fit = fit_bg_nbd(Histories(x, t_x, big_t), unit)
        params, fitted = bg_fit.params, bg_fit.converged and not bg_fit.at_bounds
        if not fitted:
            params = program.churn.params
    except ChurnFitError:
        params, fitted = program.churn.params, False
    purchases = expected_purchases(params, CLV_HORIZON_DAYS / per_unit, x.astype(float), t_x, big_t)

    if history is not None and len(history.purchases):
        # lifetimes' monetary value: the mean spend of the repeat visits (days), first left out
        daily = (
            history.purchases.assign(day=history.purchases["at"].dt.floor("D"))
            .groupby(["customer_id", "day"])["total_minor"]
            .sum()
            .reset_index()
        )
        first_day = daily.groupby("customer_id")["day"].transform("min")
        monetary = daily[daily["day"] > first_day].groupby("customer_id")["total_minor"].mean()
        m = buyers["customer_id"].map(monetary).fillna(0.0).to_numpy(float)
        basis = "the mean purchase total of each customer's repeat visits (before returns)"
    else:
        m = (buyers["lifetime_spend_minor"] / buyers["visits"]).clip(lower=0).to_numpy(float)
        basis = "each customer's net spend per visit (the live state keeps no per-visit spend)"
    try:
        gg: GammaGammaFit | None = fit_gamma_gamma(x.astype(float), m)
    except ValueError:
        gg = None
    if gg is not None and gg.params.population_mean is not None:
        spend = expected_spend(gg.params, x.astype(float), m)
    else:
        fallback = float(m[x > 0].mean()) if (x > 0).any() else float(m.mean())
        spend = np.where(x > 0, m, fallback)
    per_customer = pd.DataFrame(
        {
            "customer_id": buyers["customer_id"],
            "tier": buyers["tier"],
            "visits": buyers["visits"],
            "p_alive": buyers["p_alive"],
            "expected_purchases": purchases,
            "expected_spend_minor": spend,
            "clv_minor": purchases * spend,
        }
    )
    top = per_customer.sort_values(["clv_minor", "customer_id"], ascending=[False, True]).head(
        TOP_CUSTOMERS
    )
    return LifetimeValue(
        per_customer,
        top.reset_index(drop=True),
        float(np.nansum(per_customer["clv_minor"])),
        params,
        fitted,
        gg,
        basis,
        CLV_HORIZON_DAYS,
    )


# ---- program economics ------------------------------------------------------------------------


@dataclass(frozen=True)
class Economics:
    liability_now: int  # points outstanding as of the report's moment
    monthly: pd.DataFrame | None  # month: liability (end), earned (net of returns), expired
    rewards_monthly: pd.DataFrame | None  # month x reward kind
    breakage: float | None  # expired / earned, all months
    rewards_total: int | None


def economics(customers: pd.DataFrame, history: HistoryFrames | None) -> Economics:
    liability_now = int(customers["points"].sum())
    if history is None:
        return Economics(liability_now, None, None, None, None)
    liability = history.snapshots.groupby("month")["points"].sum()
    expired_events = history.points_expired.assign(month=_month(history.points_expired["at"]))
    expired = expired_events.groupby("month")["points"].sum().reindex(liability.index, fill_value=0)
    # what the month added to the balance besides expiry: earned, less points of returns
    earned = liability.diff().fillna(liability) + expired
    monthly = pd.DataFrame(
        {"liability": liability, "earned": earned.astype(int), "expired": expired}
    )
    rewards = history.rewards.assign(month=_month(history.rewards["at"]))
    rewards_monthly = (
        rewards.groupby(["month", "reward_kind"])
        .size()
        .unstack(fill_value=0)
        .reindex(index=liability.index, columns=list(REWARD_KINDS), fill_value=0)
    )
    earned_total = int(monthly["earned"].sum())
    breakage = int(monthly["expired"].sum()) / earned_total if earned_total > 0 else None
    return Economics(liability_now, monthly, rewards_monthly, breakage, len(history.rewards))


# ---- all of it --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    report: ReportInput
    pareto: Pareto
    cohorts: Cohorts
    activity: Activity
    feedback: Feedback
    churn: Churn
    lifetime_value: LifetimeValue | None
    economics: Economics

    @property
    def customers(self) -> int:
        return len(self.report.customers)


def compute(report: ReportInput) -> Figures:
    customers, history, program = report.customers, report.history, report.program
    return Figures(
        report=report,
        pareto=pareto(customers),
        cohorts=cohorts(customers, history),
        activity=activity(customers, history, program),
        feedback=feedback(customers, history, program, report.as_of),
        churn=churn(customers, program),
        lifetime_value=lifetime_value(customers, history, program, report.as_of),
        economics=economics(customers, history),
    )
