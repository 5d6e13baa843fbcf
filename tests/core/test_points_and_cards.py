"""Points (floor per purchase, tier multiplier, expiry) and punch cards, by worked examples."""

from __future__ import annotations

from streams.core import (
    LineItem,
    PointsExpired,
    RewardEarned,
    advance,
    apply,
    new_customer,
    next_due,
)
from tests.core.factories import (
    CUSTOMER,
    at,
    coffee,
    fold,
    give_back,
    of_type,
    program,
    purchase,
)


def test_one_point_per_currency_unit_rounded_down_per_purchase() -> None:
    # 11.99 + 0.99: per purchase 11 + 0 = 11, not floor(12.98) = 12
    state, _ = fold([purchase("p1", 0, 1199), purchase("p2", 0, 99)])
    assert state.points == 11
    assert state.lifetime_spend_minor == 1298


def test_the_tier_multiplier_applies_to_purchases_made_in_that_tier() -> None:
    # 500.00 crosses silver: earned at member rate (500); the next 10.00 earns 12.5 -> 12
    state, _ = fold([purchase("p1", 0, 50000), purchase("p2", 1, 1000)])
    assert state.tier == 1
    assert state.points == 500 + 12


def test_exact_rational_multipliers_never_drift() -> None:
    # gold x1.5: 33.33 -> 49.995 -> 49 points; no float could be trusted with this
    state, _ = fold([purchase("p1", 0, 150000), purchase("p2", 1, 3333)])
    assert state.tier == 2
    assert state.points == 1500 + 49


def test_points_expire_after_365_days_without_a_purchase() -> None:
    state, outputs = fold([purchase("p1", 0, 2000), purchase("p2", 100, 3000)])
    assert state.points == 50
    due = next_due(state, program())
    assert due is not None
    # the churn level of this two-visit customer rises first; expiry is 365 days after p2
    state, outputs = advance(state, at(100 + 364), program())
    assert not of_type(outputs, PointsExpired)
    state, outputs = advance(state, at(100 + 365), program())
    expired = of_type(outputs, PointsExpired)
    assert [(e.points, e.last_purchase_at, e.occurred_at) for e in expired] == [
        (50, at(100), at(465))
    ]
    assert expired[0].caused_by == "due:expiry:2026-04-16T12:00:00Z"
    assert state.points == 0


def test_a_purchase_before_expiry_keeps_the_points() -> None:
    state, outputs = fold([purchase("p1", 0, 2000), purchase("p2", 364, 100)], until=at(400))
    assert not of_type(outputs, PointsExpired)
    assert state.points == 21


def test_the_fifth_coffee_fills_the_card() -> None:
    events = [purchase(f"p{i}", i, 360, coffee()) for i in range(5)]
    state, outputs = fold(events[:4])
    assert not of_type(outputs, RewardEarned)
    state, outputs = apply(state, events[4], program())
    rewards = of_type(outputs, RewardEarned)
    assert [(r.reward_kind, r.punch_card, r.caused_by) for r in rewards] == [
        ("PUNCH_CARD", "coffee", "p4")
    ]
    assert state.punch_cards[0].stamps - 5 * state.punch_cards[0].rewards == 0


def test_stamps_count_item_quantity_and_one_purchase_can_fill_two_cards() -> None:
    state, outputs = fold([purchase("p1", 0, 4320, coffee(12))])
    rewards = of_type(outputs, RewardEarned)
    assert len(rewards) == 2
    assert len({r.event_id for r in rewards}) == 2
    assert state.punch_cards[0] == (12, 2)


def test_other_categories_give_no_stamps() -> None:
    bread = LineItem("sourdough", "bakery", 5, 180)
    state, outputs = fold([purchase("p1", 0, 900, bread)])
    assert state.punch_cards == ()
    assert not of_type(outputs, RewardEarned)


def test_returned_coffees_leave_the_card_short_of_the_next_reward() -> None:
    # 5 coffees filled the card; 2 of them come back: the card owes 2 stamps
    state, outputs = fold(
        [
            purchase("p1", 0, 1800, coffee(5)),
            give_back("r1", 1, "p1", 720, coffee(2)),
            purchase("p2", 2, 1800, coffee(5)),
        ]
    )
    assert len(of_type(outputs, RewardEarned)) == 1
    assert state.punch_cards[0] == (8, 1)  # 5 - 2 + 5 stamps, one reward


def test_new_customer_has_nothing_due() -> None:
    assert next_due(new_customer(CUSTOMER), program()) is None
