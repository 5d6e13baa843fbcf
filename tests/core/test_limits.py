"""The core's limits (streams/core/limits.py): hostile or broken events are refused with a
reason, never an unhandled exception, and the state stays bounded however many events a
customer has. README "Hostile input: limits and what happens" lists the same."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.core import (
    ComplaintOpened,
    ComplaintResolved,
    CustomerState,
    InputEvent,
    LineItem,
    NpsResponse,
    OutputEvent,
    Program,
    Purchase,
    Return,
    RewardEarned,
    RuleViolation,
    Tier,
    advance,
    apply,
    is_duplicate,
    new_customer,
    next_due,
    state_from_bytes,
    state_to_bytes,
)
from streams.core.events import output_event_id, to_ms
from streams.core.limits import (
    AVRO_LONG_MAX,
    EARLIEST_EVENT_TIME,
    LATEST_EVENT_MS,
    LATEST_EVENT_TIME,
    MAX_ID_CHARS,
    MAX_OPEN_COMPLAINTS,
    MAX_RETURNABLE_PURCHASES,
    MAX_REWARDS_PER_PURCHASE,
)
from streams.core.state import RECENT_IDS
from tests.core.factories import (
    CUSTOMER,
    at,
    coffee,
    complaint,
    give_back,
    of_type,
    program,
    program_with,
    purchase,
    resolved,
)

MS = timedelta(milliseconds=1)


def refused(state: CustomerState, event: InputEvent, *, prog: Program | None = None) -> str:
    """The reason `apply` refuses the event; the state it was given is not touched."""
    before = state_to_bytes(state)
    with pytest.raises(RuleViolation) as caught:
        apply(state, event, prog or program())
    assert state_to_bytes(state) == before
    return caught.value.reason


def accepted(
    state: CustomerState, event: InputEvent, *, prog: Program | None = None
) -> tuple[CustomerState, tuple[OutputEvent, ...]]:
    new_state, outputs = apply(state, event, prog or program())
    assert new_state is not state
    return new_state, outputs


def purchase_at(moment: datetime, event_id: str = "p1", total_minor: int = 1000) -> Purchase:
    return Purchase(event_id, CUSTOMER, None, moment, "EUR", total_minor)


# ---- event time -------------------------------------------------------------------------------


def test_the_bounds_in_milliseconds_are_the_bounds_in_time() -> None:
    assert to_ms(EARLIEST_EVENT_TIME) == 0
    assert to_ms(LATEST_EVENT_TIME) == LATEST_EVENT_MS


@pytest.mark.parametrize(
    ("moment", "words"),
    [
        (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00Z is before 1970-01-01"),
        (EARLIEST_EVENT_TIME - MS, "is before 1970-01-01"),
        (LATEST_EVENT_TIME, "9000-01-01T00:00:00Z is not before 9000-01-01"),
        (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC), "is not before 9000-01-01"),
    ],
)
def test_an_event_time_outside_1970_to_9000_is_refused(moment: datetime, words: str) -> None:
    state = new_customer(CUSTOMER)
    for event in (
        purchase_at(moment),
        NpsResponse("n1", CUSTOMER, None, moment, 9),
        ComplaintOpened("k1", CUSTOMER, None, moment, "cmp-1"),
        ComplaintResolved("k2", CUSTOMER, None, moment, "cmp-1"),
        Return("r1", CUSTOMER, None, moment, "p1", "EUR"),
    ):
        assert words in refused(state, event)


def test_the_time_is_checked_before_anything_else() -> None:
    bad_everything = Purchase("p1", CUSTOMER, None, datetime(1, 1, 1, tzinfo=UTC), "XXX", -5)
    assert "before 1970-01-01" in refused(new_customer(CUSTOMER), bad_everything)
    # even a copy of an applied event's id: a duplicate is only recognised for a valid time
    state, _ = accepted(new_customer(CUSTOMER), purchase("p1", 0, 1000))
    assert "before 1970" in refused(state, purchase_at(datetime(1, 1, 1, tzinfo=UTC), "p1"))


@pytest.mark.parametrize("moment", [EARLIEST_EVENT_TIME, LATEST_EVENT_TIME - MS])
def test_the_edges_of_the_time_window_work_through_time_and_storage(moment: datetime) -> None:
    """The last millisecond before 9000 and the epoch itself are applied; everything the core
    derives from them (due times, a silent customer's churn, expiry, storage) still works."""
    prog = program()
    state, _ = accepted(new_customer(CUSTOMER), purchase_at(moment, total_minor=600_000))
    state, _ = accepted(state, ComplaintOpened("k1", CUSTOMER, None, moment, "cmp-1"))
    assert state.tier > 0 and state.complaints
    assert state_from_bytes(state_to_bytes(state)) == state
    due = next_due(state, prog)
    assert due is not None and due > moment
    far, outputs = advance(state, datetime(9999, 12, 31, tzinfo=UTC), prog)
    assert far.points == 0 and far.tier == 0  # expired, downgraded
    assert {type(output).__name__ for output in outputs} >= {"PointsExpired", "TierChanged"}
    assert state_from_bytes(state_to_bytes(far)) == far


# ---- ids --------------------------------------------------------------------------------------


def test_ids_of_up_to_256_characters_are_kept_and_longer_ones_refused() -> None:
    longest, too_long = "i" * MAX_ID_CHARS, "i" * (MAX_ID_CHARS + 1)
    assert MAX_ID_CHARS == 256
    state, _ = accepted(new_customer(CUSTOMER), purchase(longest, 0, 1000))
    state, _ = accepted(state, complaint("k1", 0, longest))
    state, _ = accepted(state, give_back("r1", 1, longest, 100))
    assert state.purchases[0].event_id == longest and state.complaints[0].complaint_id == longest
    assert "event_id is 257 characters long, more than 256" in refused(
        state, purchase(too_long, 2, 1000)
    )
    assert "purchase_event_id is 257 characters" in refused(state, give_back("r2", 2, too_long))
    assert "complaint_id is 257 characters" in refused(state, complaint("k2", 2, too_long))
    long_customer = "c" * (MAX_ID_CHARS + 1)
    reason = refused(new_customer(long_customer), purchase("p9", 0, 1, customer_id=long_customer))
    assert "customer_id is 257 characters" in reason


def test_the_same_event_id_under_two_customers_is_two_events() -> None:
    """Event ids are per customer (the duplicate memory is in each customer's state): the POS
    may reuse a receipt number in another customer's account and both count."""
    first, out_a = accepted(new_customer("c-a"), purchase("r-1", 0, 60_000, customer_id="c-a"))
    second, out_b = accepted(new_customer("c-b"), purchase("r-1", 0, 60_000, customer_id="c-b"))
    assert first.lifetime_spend_minor == second.lifetime_spend_minor == 60_000
    assert first.points == second.points == 600
    # their outputs have ids of their own, so consumers do not drop one as a copy of the other
    assert out_a and out_b and out_a[0].event_id != out_b[0].event_id
    assert out_a[0].event_id == output_event_id("c-a", "tier", "r-1")
    # within one customer the id is a duplicate
    again = purchase("r-1", 1, 60_000, customer_id="c-a")
    assert is_duplicate(first, again) and apply(first, again, program()) == (first, ())


# ---- money and points -------------------------------------------------------------------------


def test_a_purchase_taking_lifetime_spend_past_an_avro_long_is_refused() -> None:
    state, _ = accepted(new_customer(CUSTOMER), purchase("p1", 0, AVRO_LONG_MAX))
    assert state.lifetime_spend_minor == AVRO_LONG_MAX
    reason = refused(state, purchase("p2", 1, 1))
    assert "total_minor 1 would take the customer's lifetime spend past" in reason
    assert str(AVRO_LONG_MAX) in reason
    # a return makes room again
    state, _ = accepted(state, give_back("r1", 1, "p1", 10))
    state, _ = accepted(state, purchase("p2", 2, 10))
    assert state.lifetime_spend_minor == AVRO_LONG_MAX


def test_a_purchase_taking_the_points_balance_past_an_avro_long_is_refused() -> None:
    # a currency without minor units: one point per unit, two at platinum
    prog = program_with(currency_exponent=0)
    state, _ = accepted(new_customer(CUSTOMER), purchase("p1", 0, 2**62), prog=prog)
    assert state.points == 2**62 and prog.tier_names[state.tier] == "platinum"
    reason = refused(state, purchase("p2", 1, 2**61), prog=prog)
    assert f"would earn {2**62} points, taking the balance past {AVRO_LONG_MAX}" in reason
    state, _ = accepted(state, purchase("p2", 1, 2**61 - 1), prog=prog)
    assert state.points == AVRO_LONG_MAX - 1


def test_a_warning_months_later_carries_a_spend_the_contract_can_hold() -> None:
    """Before the limit, two purchases of 2**63 - 1 were stored, and the downgrade warning a
    year on carried a rolling spend of 2**64 - 2, which no Avro long holds: an output that
    could not be encoded, long after the events that caused it."""
    state, _ = accepted(new_customer(CUSTOMER), purchase("p1", 0, AVRO_LONG_MAX))
    refused(state, purchase("p2", 1, AVRO_LONG_MAX))
    _, outputs = advance(state, at(800), program())
    assert outputs
    for output in outputs:
        assert _longs_fit(output)


def test_a_return_of_more_than_was_bought_is_refused_and_lines_never_take_stamps_below_zero() -> (
    None
):
    state, _ = accepted(new_customer(CUSTOMER), purchase("p1", 0, 720, coffee(2)))
    assert "amount_minor 721 is more than the 720 that remains of purchase p1" in refused(
        state, give_back("r1", 1, "p1", 721)
    )
    # more coffees handed back than the purchase had: its stamps go to zero, not below, and
    # another purchase's stamps stay
    state, _ = accepted(state, purchase("p2", 1, 360, coffee(1)))
    state, _ = accepted(state, give_back("r1", 2, "p1", 720, coffee(50)))
    assert state.punch_cards[0].stamps == 1


@pytest.mark.parametrize("quantity", [0, -3])
def test_a_line_with_a_quantity_below_one_is_refused(quantity: int) -> None:
    """A negative quantity would take stamps off the punch card without a return."""
    state, _ = accepted(new_customer(CUSTOMER), purchase("p1", 0, 720, coffee(2)))
    reason = refused(state, purchase("p2", 1, 360, coffee(1), coffee(quantity)))
    assert reason == f"items[2].quantity {quantity} is below 1"
    assert "below 1" in refused(state, give_back("r1", 1, "p1", 360, coffee(quantity)))


# ---- baskets and rewards ----------------------------------------------------------------------


def test_one_purchase_earns_at_most_1000_punch_card_rewards() -> None:
    n = program().punch_cards[0].stamps
    state, outputs = accepted(new_customer(CUSTOMER), purchase("p1", 0, 1, coffee(n * 1000)))
    assert len(of_type(outputs, RewardEarned)) == MAX_REWARDS_PER_PURCHASE == 1000
    # with n - 1 stamps on the card, n * 1000 + 1 more would fill it 1001 times
    state, _ = accepted(new_customer(CUSTOMER), purchase("p1", 0, 1, coffee(n - 1)))
    reason = refused(state, purchase("p2", 0, 1, coffee(n * 1000 + 1)))
    assert "would fill punch cards 1001 times, more than the 1000 one purchase may earn" in reason


def test_a_quantity_of_two_billion_is_refused_at_once() -> None:
    """It was a loop of 429 million rewards."""
    started = datetime.now(UTC)
    reason = refused(new_customer(CUSTOMER), purchase("p1", 0, 1, coffee(2**31 - 1)))
    assert "would fill punch cards 429496729 times" in reason
    assert datetime.now(UTC) - started < timedelta(seconds=2)


def test_a_basket_of_five_thousand_lines_is_applied_and_the_state_does_not_grow_with_it() -> None:
    lines = [
        LineItem(f"sku-{i}", "coffee" if i % 10 == 0 else "bakery", 1, 100) for i in range(5000)
    ]
    state, outputs = accepted(new_customer(CUSTOMER), purchase("p1", 0, 500_000, *lines))
    assert state.punch_cards[0].stamps == 500
    assert len(of_type(outputs, RewardEarned)) == 500 // program().punch_cards[0].stamps
    assert len(state_to_bytes(state)) < 200
    back, _ = accepted(state, give_back("r1", 1, "p1", 100_000, *lines[:1000]))
    assert back.punch_cards[0].stamps == 400


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=12))
def test_rewards_are_one_per_n_coffees_over_any_split_into_purchases(quantities: list[int]) -> None:
    n = program().punch_cards[0].stamps
    state, rewards = new_customer(CUSTOMER), 0
    for index, quantity in enumerate(quantities):
        state, outputs = accepted(state, purchase(f"p{index}", index, 100, coffee(quantity)))
        rewards += len(of_type(outputs, RewardEarned))
    assert rewards == sum(quantities) // n == state.punch_cards[0].rewards


# ---- what one customer's state remembers ------------------------------------------------------


def test_at_most_64_open_complaints_and_a_resolution_makes_room() -> None:
    state = new_customer(CUSTOMER)
    for index in range(MAX_OPEN_COMPLAINTS):
        state, _ = accepted(state, complaint(f"k{index}", 0, f"cmp-{index}", hour=1))
    assert len(state.complaints) == MAX_OPEN_COMPLAINTS == 64
    reason = refused(state, complaint("k-extra", 0, "cmp-extra", hour=2))
    assert "already has 64 open complaints" in reason and "cmp-extra" in reason
    # the same complaint again is no new complaint: accepted, nothing changes
    again, _ = apply(state, complaint("k-again", 0, "cmp-3", hour=2), program())
    assert again.complaints == state.complaints
    state, _ = accepted(state, resolved("done-3", 0, "cmp-3", hour=2))
    state, _ = accepted(state, complaint("k-extra", 0, "cmp-extra", hour=3))
    assert len(state.complaints) == 64


def test_the_last_1000_purchases_are_returnable_and_older_ones_are_forgotten() -> None:
    state = new_customer(CUSTOMER)
    for index in range(MAX_RETURNABLE_PURCHASES + 1):
        state, _ = apply(state, purchase(f"p{index}", index // 100, 100), program())
    assert len(state.purchases) == MAX_RETURNABLE_PURCHASES == 1000
    assert state.purchases[0].event_id == "p1"
    reason = refused(state, give_back("r0", 11, "p0", 50))
    assert "older than the customer's last 1000 purchases" in reason
    back, _ = accepted(state, give_back("r1", 11, "p1", 50))
    assert back.lifetime_spend_minor == 1001 * 100 - 50
    # documented: a resent copy of a forgotten purchase is no longer recognised as a duplicate
    assert not is_duplicate(state, purchase("p0", 11, 100))


# ---- a customer with very many events ---------------------------------------------------------

MANY = 1_000_000 if os.environ.get("LOYALTY_TEST_FULL") == "1" else 20_000


def _one_tier_program() -> Program:
    """Points without tier multipliers, so that a reference sum is simple."""
    base = program()
    member = Tier(base.tiers[0].name, 0, Decimal(0), Decimal(1))
    return replace(base, tiers=(member,), service_recovery_from_tier=member.name)


@pytest.mark.timeout(3600)
def test_a_customer_with_very_many_events_keeps_a_bounded_state() -> None:
    """20,000 events of one customer (1,000,000 with LOYALTY_TEST_FULL=1): 24 purchases a day
    (more than the 1000 returnable purchases within the 90-day window), a return, an NPS
    answer and a complaint opened and resolved in between. Points and spend equal the
    reference sums; what the state remembers stays at its caps."""
    prog = _one_tier_program()
    start = datetime(2000, 1, 1, tzinfo=UTC)
    state = new_customer(CUSTOMER)
    spend = points = 0
    totals: dict[str, int] = {}
    largest_state = 0
    for index in range(MANY):
        moment = start + timedelta(hours=index)
        total = 100 + index % 997
        kind = index % 50
        event: InputEvent
        if kind == 10 and f"p{index - 1}" in totals:  # return the purchase an hour before
            event = Return(f"r{index}", CUSTOMER, None, moment, f"p{index - 1}", "EUR")
            returned = totals.pop(f"p{index - 1}")
            spend -= returned
            points -= returned // 100
        elif kind == 20:
            event = NpsResponse(f"n{index}", CUSTOMER, None, moment, index % 11)
        elif kind == 30:
            event = ComplaintOpened(f"k{index}", CUSTOMER, None, moment, f"cmp-{index}")
        elif kind == 31:
            event = ComplaintResolved(f"k{index}", CUSTOMER, None, moment, f"cmp-{index - 1}")
        else:
            event = Purchase(f"p{index}", CUSTOMER, None, moment, "EUR", total)
            totals[event.event_id] = total
            spend += total
            points += total // 100
        state, _ = apply(state, event, prog)
        assert len(state.recent_ids) <= RECENT_IDS
        assert len(state.purchases) <= MAX_RETURNABLE_PURCHASES
        assert len(state.spend_days) <= prog.longest_window_days + 1
        assert len(state.complaints) <= 1
        if index % 1000 == 999:
            largest_state = max(largest_state, len(state_to_bytes(state)))
    assert len(state.purchases) == MAX_RETURNABLE_PURCHASES
    assert state.lifetime_spend_minor == spend
    assert state.points == points
    assert state.receipts == len(totals) + (MANY // 50)  # returned purchases stay receipts
    assert largest_state < 64_000  # bytes: the same bound at 20,000 events and at a million


# ---- anything at all ------------------------------------------------------------------------

times = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)
near_now = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2026, 1, 1), timezones=st.just(UTC)
)
amounts = st.one_of(
    st.integers(-10, 10**6), st.integers(AVRO_LONG_MAX - 10**6, AVRO_LONG_MAX), st.integers()
)
ids = st.one_of(st.sampled_from(["p0", "p1", "p2", "cmp-1"]), st.text(max_size=300))
lines = st.lists(
    st.builds(
        LineItem,
        st.text(max_size=5),
        st.sampled_from(["coffee", "bakery", ""]),
        st.one_of(st.integers(-2, 12), st.integers(2**31 - 5, 2**31 - 1)),
        st.integers(0, 10**4),
    ),
    max_size=6,
)


def _events(customer: str) -> st.SearchStrategy[InputEvent]:
    when = st.one_of(near_now, near_now, times)
    return st.one_of(
        st.builds(Purchase, ids, st.just(customer), st.none(), when,
                  st.sampled_from(["EUR", "EUR", "USD"]), amounts, lines.map(tuple)),
        st.builds(Return, ids, st.just(customer), st.none(), when, ids, st.just("EUR"),
                  st.one_of(st.none(), amounts), lines.map(tuple)),
        st.builds(NpsResponse, ids, st.just(customer), st.none(), when, st.integers(-3, 13)),
        st.builds(ComplaintOpened, ids, st.just(customer), st.none(), when, ids),
        st.builds(ComplaintResolved, ids, st.just(customer), st.none(), when, ids),
    )  # fmt: skip


def _longs_fit(output: OutputEvent) -> bool:
    return all(
        -(2**63) <= value <= AVRO_LONG_MAX
        for value in output.to_record().values()
        if isinstance(value, int) and not isinstance(value, bool)
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_events(CUSTOMER), min_size=1, max_size=12))
def test_hostile_events_are_applied_or_refused_and_never_break_the_core(
    events: list[InputEvent],
) -> None:
    """Times from year 1 to 9999, amounts up to and past 2**63, quantities up to 2**31, long
    and odd ids, scores outside 0..10: every event is applied or refused with a reason, the
    state stays inside the limits, every output fits the contract's longs, and time and
    storage keep working on what was applied."""
    prog = program()
    state = new_customer(CUSTOMER)
    outputs: list[OutputEvent] = []
    for event in events:
        try:
            state, more = apply(state, event, prog)
        except RuleViolation as violation:
            assert violation.reason and violation.event_id == event.event_id
            continue
        outputs.extend(more)
        assert 0 <= state.points <= AVRO_LONG_MAX
        assert 0 <= state.lifetime_spend_minor <= AVRO_LONG_MAX
        assert len(state.complaints) <= MAX_OPEN_COMPLAINTS
        assert len(state.purchases) <= MAX_RETURNABLE_PURCHASES
    due = next_due(state, prog)
    if due is not None:
        state, more = advance(state, due, prog)
        outputs.extend(more)
    state, more = advance(state, datetime(9999, 12, 31, tzinfo=UTC), prog)
    outputs.extend(more)
    assert all(_longs_fit(output) for output in outputs)
    assert state_from_bytes(state_to_bytes(state)) == state
