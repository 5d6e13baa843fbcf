"""Tiers by rolling net spend: upgrade at once, downgrade only at re-qualification with a
warning before, returns that undo an upgrade, and the window's edge."""

from __future__ import annotations

from collections.abc import Iterable

from streams.core import TierChanged, TierDowngradeWarning, advance, apply
from streams.core.events import to_ms
from streams.core.fold import rolling_spend
from streams.core.rules import MS_PER_DAY
from tests.core.factories import at, fold, give_back, of_type, program, purchase


def tier_changes(outputs: Iterable[object]) -> list[tuple[str, str, str, str]]:
    return [
        (t.previous_tier, t.new_tier, t.direction, t.reason) for t in of_type(outputs, TierChanged)
    ]


def test_upgrade_at_once_on_the_purchase_that_crosses_the_threshold() -> None:
    state, outputs = fold([purchase("p1", 0, 30000), purchase("p2", 10, 20000)])
    (change,) = of_type(outputs, TierChanged)
    assert (change.new_tier, change.direction, change.reason, change.caused_by) == (
        "silver",
        "UP",
        "purchase",
        "p2",
    )
    assert change.rolling_spend_minor == 50000
    assert change.occurred_at == at(10)
    assert change.requalify_at == at(10 + 365)
    assert state.tier == 1


def test_one_purchase_can_skip_a_tier() -> None:
    _, outputs = fold([purchase("p1", 0, 160000)])
    assert tier_changes(outputs) == [("member", "gold", "UP", "purchase")]


def test_a_purchase_exactly_365_days_old_has_left_the_window() -> None:
    old = purchase("p1", 0, 30000)
    _, outputs = fold([old, purchase("p2", 365, 20000, hour=9)])
    assert tier_changes(outputs) == []  # 300.00 is 365 days old: 200.00 in the window
    _, outputs = fold([old, purchase("p2", 364, 20000, hour=23)])
    assert tier_changes(outputs) == [("member", "silver", "UP", "purchase")]


def test_rolling_spend_is_exact_to_the_day() -> None:
    state, _ = fold([purchase("p1", 0, 100), purchase("p2", 1, 20)])
    day0 = to_ms(at(0)) // MS_PER_DAY
    assert rolling_spend(state, day0 + 364, program()) == 120
    assert rolling_spend(state, day0 + 365, program()) == 20
    assert rolling_spend(state, day0 + 366, program()) == 0


def test_downgrade_only_at_requalification_with_a_warning_30_days_before() -> None:
    state, _ = fold([purchase("p1", 0, 50000)])
    state, outputs = advance(state, at(334), program())
    assert not of_type(outputs, TierDowngradeWarning)
    state, outputs = advance(state, at(335), program())
    (warning,) = of_type(outputs, TierDowngradeWarning)
    assert (warning.current_tier, warning.expected_tier) == ("silver", "member")
    assert warning.downgrade_at == at(365)
    assert warning.occurred_at == at(335)
    assert warning.spend_to_keep_minor == 50000
    assert warning.rolling_spend_minor == 50000
    assert state.tier == 1  # still silver until re-qualification
    state, outputs = advance(state, at(365), program())
    assert tier_changes(outputs) == [("silver", "member", "DOWN", "requalification")]
    (change,) = of_type(outputs, TierChanged)
    assert change.requalify_at is None
    assert change.caused_by == "due:requalification:2026-01-06T12:00:00Z"
    assert state.tier == 0
    assert state.requalify_ms is None


def test_requalification_keeps_a_tier_the_window_still_holds_without_any_event() -> None:
    state, _ = fold([purchase("p1", 0, 50000), purchase("p2", 200, 50000)])
    state, outputs = advance(state, at(366), program())
    assert not of_type(outputs, TierChanged)
    assert not of_type(outputs, TierDowngradeWarning)
    assert state.tier == 1
    # and the next re-qualification is a year later, when p2 has left the window too
    state, outputs = advance(state, at(365 * 2), program())
    assert tier_changes(outputs) == [("silver", "member", "DOWN", "requalification")]


def test_downgrade_goes_to_the_highest_tier_still_held() -> None:
    _, outputs = fold([purchase("p1", 0, 150000), purchase("p2", 100, 60000)], until=at(366))
    assert tier_changes(outputs) == [
        ("member", "gold", "UP", "purchase"),
        ("gold", "silver", "DOWN", "requalification"),
    ]
    (warning,) = of_type(outputs, TierDowngradeWarning)
    assert (warning.expected_tier, warning.spend_to_keep_minor) == ("silver", 90000)


def test_spending_after_the_warning_keeps_the_tier() -> None:
    _, outputs = fold(
        [purchase("p1", 0, 150000), purchase("p2", 100, 100000), purchase("p3", 340, 50000)],
        until=at(400),
    )
    assert len(of_type(outputs, TierDowngradeWarning)) == 1
    assert tier_changes(outputs) == [("member", "gold", "UP", "purchase")]


def test_tiers_never_go_down_on_a_purchase() -> None:
    state, _ = fold([purchase("p1", 0, 150000)])
    state, outputs = apply(state, purchase("p2", 1, 0), program())
    assert state.tier == 2
    assert tier_changes(outputs) == []


def test_a_return_undoes_the_upgrade_its_purchase_caused() -> None:
    state, outputs = fold(
        [purchase("p1", 0, 30000), purchase("p2", 1, 30000), give_back("r1", 5, "p2")]
    )
    assert tier_changes(outputs) == [
        ("member", "silver", "UP", "purchase"),
        ("silver", "member", "DOWN", "return"),
    ]
    assert of_type(outputs, TierChanged)[1].caused_by == "r1"
    assert state.tier == 0
    assert state.requalify_ms is None


def test_a_partial_return_keeps_the_upgrade_when_the_rest_still_holds_it() -> None:
    state, outputs = fold(
        [purchase("p1", 0, 30000), purchase("p2", 1, 40000), give_back("r1", 5, "p2", 10000)]
    )
    assert tier_changes(outputs) == [("member", "silver", "UP", "purchase")]
    assert state.tier == 1


def test_undoing_an_upgrade_restores_the_previous_tier_and_its_schedule() -> None:
    state, outputs = fold(
        [purchase("p1", 0, 50000), purchase("p2", 100, 100000), give_back("r1", 110, "p2")]
    )
    assert tier_changes(outputs) == [
        ("member", "silver", "UP", "purchase"),
        ("silver", "gold", "UP", "purchase"),
        ("gold", "silver", "DOWN", "return"),
    ]
    assert of_type(outputs, TierChanged)[2].requalify_at == at(365)
    assert state.tier == 1


def test_a_return_of_a_purchase_that_caused_no_upgrade_changes_no_tier() -> None:
    state, outputs = fold(
        [purchase("p1", 0, 50000), purchase("p2", 1, 10000), give_back("r1", 2, "p1")]
    )
    # p1 caused silver: without it 100.00 remain, so silver goes
    assert tier_changes(outputs)[-1] == ("silver", "member", "DOWN", "return")
    state, outputs = fold(
        [purchase("p1", 0, 50000), purchase("p2", 1, 10000), give_back("r1", 2, "p2")]
    )
    assert tier_changes(outputs) == [("member", "silver", "UP", "purchase")]
    assert state.tier == 1
