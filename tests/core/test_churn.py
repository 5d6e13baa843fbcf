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
    VisitHistory,
    first_date_p_alive_below,
    history_times,
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
