"""Returns undo what their purchase earned, in proportion; contract violations are raised with
a reason and leave the state alone; duplicates change nothing."""

from __future__ import annotations

import pytest

from streams.core import InputEvent, RuleViolation, apply, is_duplicate
from streams.core.state import RECENT_IDS
from tests.core.factories import coffee, fold, give_back, nps, program, purchase


def test_a_partial_return_gives_back_points_and_spend_in_proportion() -> None:
    state, _ = fold([purchase("p1", 0, 10000), give_back("r1", 3, "p1", 2500)])
    assert state.points == 75
    assert state.lifetime_spend_minor == 7500
    # a second partial return of the rest: everything is back to zero, nothing negative
    state, _ = apply(state, give_back("r2", 4, "p1", 7500), program())
    assert (state.points, state.lifetime_spend_minor) == (0, 0)


def test_partial_returns_round_so_that_the_sum_of_reversals_is_what_was_earned() -> None:
    # 99 points on 99.99; three returns of 33.33: 66, 33, 0 remain, never more than earned
    events = [purchase("p1", 0, 9999)] + [
        give_back(f"r{i}", 1, "p1", 3333, hour=13 + i) for i in range(3)
    ]
    state, _ = fold(events)
    assert state.points == 0
    record = state.purchases[0]
    assert (record.spend_left_minor, record.points_left) == (0, 0)


def test_a_full_return_gives_back_the_stamps_without_items_named() -> None:
    state, _ = fold([purchase("p1", 0, 1440, coffee(4)), give_back("r1", 0, "p1")])
    assert state.punch_cards[0] == (0, 0)


def test_a_partial_return_without_lines_takes_stamps_in_proportion() -> None:
    state, _ = fold([purchase("p1", 0, 1440, coffee(4)), give_back("r1", 0, "p1", 720)])
    assert state.punch_cards[0] == (2, 0)


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (give_back("r1", 1, "nope"), "purchase nope is unknown"),
        (give_back("r1", 1, "p1", 10001), "more than the 10000 that remains"),
        (give_back("r1", 1, "p1", currency="USD"), "currency USD is not the program's EUR"),
        (give_back("r1", 90, "p1"), "90-day return window"),
        (purchase("p2", 1, 100, currency="USD"), "currency USD"),
    ],
)
def test_contract_violations_name_the_reason_and_change_nothing(
    event: InputEvent, reason: str
) -> None:
    state, _ = fold([purchase("p1", 0, 10000)])
    with pytest.raises(RuleViolation) as raised:
        apply(state, event, program())
    assert reason in raised.value.reason
    assert raised.value.event_id == event.event_id
    assert raised.value.error_kind == "CONTRACT"


def test_a_return_inside_the_window_edge_is_accepted() -> None:
    state, _ = fold([purchase("p1", 0, 10000, hour=12), give_back("r1", 89, "p1", hour=23)])
    assert state.lifetime_spend_minor == 0


def test_a_second_full_return_is_a_violation_not_a_second_refund() -> None:
    state, _ = fold([purchase("p1", 0, 10000), give_back("r1", 1, "p1")])
    with pytest.raises(RuleViolation, match="already fully returned"):
        apply(state, give_back("r2", 2, "p1"), program())


def test_an_event_applied_twice_changes_nothing_the_second_time() -> None:
    state, _ = fold([purchase("p1", 0, 10000, coffee(5))])
    again, outputs = apply(state, purchase("p1", 0, 10000, coffee(5)), program())
    assert again is state
    assert outputs == ()


def test_duplicate_memory_the_last_ids_and_every_returnable_purchase() -> None:
    events = [purchase("p0", 0, 100)] + [nps(f"n{i}", 1, 8, hour=i) for i in range(RECENT_IDS)]
    state, _ = fold(events)
    assert "p0" not in state.recent_ids
    assert is_duplicate(state, purchase("p0", 0, 100))  # still returnable
    assert is_duplicate(state, nps("n7", 1, 8))
    assert not is_duplicate(state, nps("n-new", 1, 8))
