"""Churn core: P(alive) against the published BG/NBD values and the lifetimes reference, calendar
times, the risk score's reasons, the levels' hysteresis, and the day a silent customer's level
changes."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from streams.core.churn import (
    BgNbdParams,
    ChurnModel,
    RiskLevel,
    RiskLevels,
    RiskSignals,
    RiskWeights,
    VisitHistory,
    first_date_p_alive_below,
    gap_sign_from,
    history_times,
    is_average_check_falling,
    level_direction,
    next_level,
    next_risk_change,
    p_alive,
    p_alive_on,
    risk_score,
)

# Fader, Hardie and Lee's CDNOW sample, fitted in weeks.
PUBLISHED = BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)


@pytest.mark.parametrize(
    ("x", "t_x", "big_t", "expected"),
    [
        (2, 30.43, 38.86, 0.7266),
        (1, 1.71, 38.86, 0.2121),
        (7, 29.43, 38.86, 0.6418),
        (10, 34.14, 38.86, 0.8153),
    ],
)
def test_published_p_alive_vectors(x: int, t_x: float, big_t: float, expected: float) -> None:
    assert p_alive(x, t_x, big_t, PUBLISHED) == pytest.approx(expected, abs=1e-4)


def test_no_repeat_visit_is_alive_for_sure() -> None:
    assert p_alive(0, 0.0, 1000.0, PUBLISHED) == 1.0


def test_history_times_count_calendar_days_and_fractional_weeks() -> None:
    first, last, as_of = date(2025, 1, 1), date(2025, 1, 11), date(2025, 1, 15)
    assert history_times(first, last, as_of, "days") == (10, 14)
    assert history_times(first, last, as_of, "weeks") == (10 / 7, 2.0)
    assert history_times(as_of, as_of, as_of, "weeks") == (0.0, 0.0)


def test_first_date_below_is_exact_to_the_day() -> None:
    history = VisitHistory(visits=5, first_visit=date(2025, 1, 1), last_visit=date(2025, 3, 1))
    day = first_date_p_alive_below(history, date(2025, 3, 1), PUBLISHED, "weeks", 0.3)
    assert day is not None
    assert p_alive_on(history, day, PUBLISHED, "weeks") < 0.3
    assert p_alive_on(history, day - timedelta(days=1), PUBLISHED, "weeks") >= 0.3


def test_levels_rise_and_clear_with_hysteresis() -> None:
    levels = RiskLevels()
    assert next_level("none", 0.49, levels) == "none"
    assert next_level("none", 0.5, levels) == "watch"
    assert next_level("watch", 0.45, levels) == "watch"
    assert next_level("watch", 0.39, levels) == "none"
    assert next_level("none", 0.95, levels) == "churned"
    assert next_level("churned", 0.65, levels) == "at_risk"
    with pytest.raises(ValueError, match="clear_below < raise_at"):
        RiskLevel("watch", raise_at=0.4, clear_below=0.5)


def test_risk_score_adds_signs_with_reasons() -> None:
    model = ChurnModel(PUBLISHED, unit="weeks")
    history = VisitHistory(visits=3, first_visit=date(2025, 1, 1), last_visit=date(2025, 1, 15))
    calm = risk_score(history, RiskSignals(), date(2025, 1, 16), model)
    upset = risk_score(history, RiskSignals(detractor=True), date(2025, 1, 16), model)
    assert calm.reasons == ()
    assert upset.reasons == ("detractor",)
    assert upset.score == pytest.approx(calm.score + 0.15)


def test_silent_customer_level_change_day() -> None:
    model = ChurnModel(PUBLISHED, unit="weeks")
    history = VisitHistory(visits=5, first_visit=date(2025, 1, 1), last_visit=date(2025, 3, 1))
    day = next_risk_change("none", history, RiskSignals(), date(2025, 3, 1), model)
    assert day is not None
    before = risk_score(history, RiskSignals(), day - timedelta(days=1), model).score
    on = risk_score(history, RiskSignals(), day, model).score
    assert next_level("none", before) == "none"
    assert next_level("none", on) == "watch"


def test_large_histories_stay_finite() -> None:
    # (alpha + T)/(alpha + t_x) to the power of a million overflows any direct formula.
    assert p_alive(10**6, 100.0, 101.0, PUBLISHED) == 0.0
    at_last_visit = p_alive(10**6, 100.0, 100.0, PUBLISHED)
    assert at_last_visit == pytest.approx(1 / (1 + 0.793 / (2.426 + 10**6 - 1)), abs=1e-15)
    assert p_alive(3, 0.0, 1e9, PUBLISHED) < 1e-20


def test_impossible_histories_are_refused() -> None:
    with pytest.raises(ValueError, match="t_x <= T"):
        p_alive(2, 10.0, 5.0, PUBLISHED)
    with pytest.raises(ValueError, match="must not be negative"):
        p_alive(-1, 0.0, 5.0, PUBLISHED)
    with pytest.raises(ValueError, match="alpha"):
        BgNbdParams(r=1.0, alpha=0.0, a=1.0, b=1.0)
    with pytest.raises(ValueError, match="before the last visit"):
        p_alive_on(
            VisitHistory(2, date(2025, 1, 1), date(2025, 1, 9)), date(2025, 1, 8), PUBLISHED, "days"
        )


def test_gap_sign_starts_the_day_after_three_mean_gaps() -> None:
    # Three visits over 20 days: a mean gap of 10 days; silence beyond 30 days is the sign.
    history = VisitHistory(visits=3, first_visit=date(2025, 1, 1), last_visit=date(2025, 1, 21))
    assert gap_sign_from(history, RiskWeights()) == date(2025, 2, 21)
    model = ChurnModel(PUBLISHED, unit="weeks")
    on_the_edge = risk_score(history, RiskSignals(), date(2025, 2, 20), model)
    beyond = risk_score(history, RiskSignals(), date(2025, 2, 21), model)
    assert "gap_beyond_cadence" not in on_the_edge.reasons
    assert "gap_beyond_cadence" in beyond.reasons
    assert beyond.score - on_the_edge.score > 0.15  # the sign, plus a day's fall of P(alive)
    # One repeat visit is no cadence yet.
    assert gap_sign_from(VisitHistory(2, date(2025, 1, 1), date(2025, 1, 2)), RiskWeights()) is None


def test_every_sign_is_named_in_table_order_and_the_score_caps_at_one() -> None:
    model = ChurnModel(PUBLISHED, unit="weeks")
    history = VisitHistory(visits=3, first_visit=date(2024, 1, 1), last_visit=date(2024, 1, 21))
    everything = RiskSignals(detractor=True, overdue_complaint=True, falling_average_check=True)
    risk = risk_score(history, everything, date(2025, 1, 1), model)
    assert risk.reasons == (
        "low_p_alive", "detractor", "overdue_complaint", "falling_average_check",
        "gap_beyond_cadence",
    )  # fmt: skip
    assert risk.p_alive < 0.5
    assert risk.score == 1.0


def test_a_prospect_is_alive_and_silence_changes_nothing() -> None:
    model = ChurnModel(PUBLISHED, unit="weeks")
    detractor = RiskSignals(detractor=True)
    risk = risk_score(None, detractor, date(2025, 1, 1), model)
    assert risk == (0.15, 1.0, ("detractor",))
    assert next_risk_change("none", None, detractor, date(2025, 1, 1), model) is None


def test_a_change_already_due_is_due_today_and_the_top_level_has_nowhere_to_go() -> None:
    model = ChurnModel(PUBLISHED, unit="weeks")
    history = VisitHistory(visits=5, first_visit=date(2024, 1, 1), last_visit=date(2024, 3, 1))
    as_of = date(2026, 1, 1)  # P(alive) long gone: the score is far above every raise bound
    assert next_risk_change("none", history, RiskSignals(), as_of, model) == as_of
    assert next_risk_change("churned", history, RiskSignals(), as_of, model) is None


def test_falling_average_check_and_direction() -> None:
    weights = RiskWeights()
    assert is_average_check_falling(600, 1000, weights)
    assert not is_average_check_falling(700, 1000, weights)
    assert not is_average_check_falling(0, 0, weights)
    assert level_direction("watch", "at_risk") == "up"
    assert level_direction("churned", "none") == "down"


def test_levels_must_grow_and_have_distinct_names() -> None:
    with pytest.raises(ValueError, match="distinct"):
        RiskLevels(base="watch", above=(RiskLevel("watch", 0.5, 0.4),))
    with pytest.raises(ValueError, match="must grow"):
        RiskLevels(above=(RiskLevel("watch", 0.7, 0.4), RiskLevel("at_risk", 0.6, 0.5)))
    with pytest.raises(ValueError, match="unknown churn level"):
        next_level("gone", 0.5)
