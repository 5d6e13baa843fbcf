"""Properties of the fold over random event streams of one customer (hypothesis)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.core import (
    ComplaintOpened,
    ComplaintResolved,
    InputEvent,
    LineItem,
    NpsResponse,
    OutputEvent,
    Purchase,
    Return,
    RuleViolation,
    TierChanged,
    advance,
    apply,
    new_customer,
    next_due,
    state_from_bytes,
    state_to_bytes,
)
from streams.core.fold import rolling_spend
from streams.core.rules import MS_PER_DAY
from streams.core.state import CustomerState
from tests.core.factories import CUSTOMER, DAY0, coffee, fold, program

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ONE_MS = timedelta(milliseconds=1)


@st.composite
def event_streams(draw: st.DrawFn) -> list[InputEvent]:
    """Events of one customer in time order (ties allowed): purchases with coffee, returns of
    earlier (or unknown) purchases, NPS answers and complaints on a few ids."""
    minutes = 0
    events: list[InputEvent] = []
    purchases: list[str] = []
    for index in range(draw(st.integers(1, 30))):
        minutes += draw(st.sampled_from([0, 1, 60, 1440, 7 * 1440])) * draw(st.integers(0, 12))
        when = DAY0 + timedelta(minutes=minutes)
        event_id = f"e{index}"
        kind = draw(st.sampled_from(["purchase"] * 5 + ["return", "nps", "open", "resolve"]))
        if kind == "purchase" or (kind == "return" and not purchases):
            cups = draw(st.integers(0, 7))
            items = (coffee(cups),) if cups else ()
            total = draw(st.integers(0, 250_000))
            events.append(Purchase(event_id, CUSTOMER, None, when, "EUR", total, items))
            purchases.append(event_id)
        elif kind == "return":
            target = draw(st.sampled_from([*purchases, "ghost"]))
            amount = draw(st.none() | st.integers(0, 120_000))
            cups = draw(st.integers(0, 3))
            items = (coffee(cups),) if cups else ()
            events.append(Return(event_id, CUSTOMER, None, when, target, "EUR", amount, items))
        elif kind == "nps":
            events.append(NpsResponse(event_id, CUSTOMER, None, when, draw(st.integers(0, 10))))
        elif kind == "open":
            complaint_id = draw(st.sampled_from("abc"))
            events.append(ComplaintOpened(event_id, CUSTOMER, None, when, complaint_id))
        else:
            complaint_id = draw(st.sampled_from("abc"))
            events.append(ComplaintResolved(event_id, CUSTOMER, None, when, complaint_id))
    return events


def last_time(events: list[InputEvent]) -> datetime:
    return max(event.occurred_at for event in events)


def ids(outputs: Sequence[OutputEvent]) -> list[str]:
    return [output.event_id for output in outputs]


@SETTINGS
@given(event_streams())
def test_applying_an_event_twice_equals_applying_it_once(events: list[InputEvent]) -> None:
    doubled = [copy for event in events for copy in (event, event)]
    assert fold(doubled) == fold(events)


@SETTINGS
@given(event_streams(), st.data())
def test_a_redelivery_within_the_memory_is_ignored(
    events: list[InputEvent], data: st.DataObject
) -> None:
    position = data.draw(st.integers(0, len(events) - 1))
    later = data.draw(st.integers(position + 1, min(len(events), position + 8)))
    replayed = [*events[:later], events[position], *events[later:]]
    assert fold(replayed) == fold(events)


@SETTINGS
@given(event_streams(), st.integers(0, 200_000), st.integers(0, 9), st.integers(0, 600))
def test_purchase_then_full_return_leaves_points_spend_and_stamps_as_before(
    events: list[InputEvent], total: int, cups: int, minutes_later: int
) -> None:
    before, _ = fold(events)
    when = last_time(events) + timedelta(minutes=minutes_later)
    before, _ = advance(before, when, program())
    items = (LineItem("latte", "coffee", cups, 360),) if cups else ()
    bought = Purchase("new", CUSTOMER, None, when, "EUR", total, items)
    undone = Return("undo", CUSTOMER, None, when, "new", "EUR", None, ())
    after, _ = fold([bought, undone], state=before)
    day = when.timestamp() * 1000 // MS_PER_DAY
    assert after.points == before.points
    assert after.lifetime_spend_minor == before.lifetime_spend_minor
    assert rolling_spend(after, int(day), program()) == rolling_spend(before, int(day), program())
    assert [card.stamps for card in after.punch_cards] == [
        card.stamps for card in before.punch_cards
    ] or (not before.punch_cards and all(card.stamps == 0 for card in after.punch_cards))


@SETTINGS
@given(event_streams(), st.data())
def test_resuming_from_saved_bytes_anywhere_equals_one_pass(
    events: list[InputEvent], data: st.DataObject
) -> None:
    split = data.draw(st.integers(0, len(events)))
    until = last_time(events) + timedelta(days=data.draw(st.integers(0, 800)))
    whole, whole_outputs = fold(events, until=until)
    first, first_outputs = fold(events[:split])
    saved = state_from_bytes(state_to_bytes(first))
    assert saved == first
    rest, rest_outputs = fold(events[split:], state=saved, until=until)
    assert rest == whole
    assert first_outputs + rest_outputs == whole_outputs


@SETTINGS
@given(event_streams())
def test_the_fold_is_deterministic_and_output_ids_are_unique(events: list[InputEvent]) -> None:
    until = last_time(events) + timedelta(days=500)
    one = fold(events, until=until)
    two = fold(list(events), until=until)
    assert one == two
    assert len(set(ids(one[1]))) == len(one[1])


@SETTINGS
@given(event_streams())
def test_tiers_never_go_down_on_a_purchase(events: list[InputEvent]) -> None:
    state = new_customer(CUSTOMER)
    for event in events:
        advanced, _ = advance(state, event.occurred_at, program())
        try:
            state, outputs = apply(state, event, program())
        except RuleViolation:
            continue
        if isinstance(event, Purchase):
            assert state.tier >= advanced.tier
            assert not [
                o
                for o in outputs
                if isinstance(o, TierChanged)
                and o.caused_by == event.event_id
                and o.direction == "DOWN"
            ]


@SETTINGS
@given(event_streams(), st.lists(st.integers(0, 50 * 24 * 60), max_size=8))
def test_advancing_in_between_changes_nothing_a_single_pass_would_not(
    events: list[InputEvent], offsets: list[int]
) -> None:
    """The worker advances at due times and at random; replay only at the end: same result."""
    until = last_time(events) + timedelta(days=400)
    expected = fold(events, until=until)
    ticks = sorted(DAY0 + timedelta(minutes=m) for m in offsets)
    state = new_customer(CUSTOMER)
    outputs: list[OutputEvent] = []
    for event in events:
        while ticks and ticks[0] <= event.occurred_at:
            state, more = advance(state, ticks.pop(0), program())
            outputs.extend(more)
        due = next_due(state, program())
        if due is not None and due <= event.occurred_at:
            state, more = advance(state, due, program())
            outputs.extend(more)
        try:
            state, more = apply(state, event, program())
        except RuleViolation:
            continue
        outputs.extend(more)
    state, more = advance(state, until, program())
    outputs.extend(more)
    assert (state, tuple(outputs)) == expected


def _at_due(state: CustomerState) -> None:
    due = next_due(state, program())
    if due is None:
        return
    quiet, outputs = advance(state, due - ONE_MS, program())
    assert outputs == ()
    assert quiet is state
    moved, outputs = advance(state, due, program())
    assert outputs or moved != state


@SETTINGS
@given(event_streams())
def test_next_due_is_the_first_moment_advance_does_anything(events: list[InputEvent]) -> None:
    state = new_customer(CUSTOMER)
    for event in events:
        try:
            state, _ = apply(state, event, program())
        except RuleViolation:
            continue
        _at_due(state)
    for _ in range(6):
        _at_due(state)
        due = next_due(state, program())
        if due is None:
            break
        state, _ = advance(state, due, program())
