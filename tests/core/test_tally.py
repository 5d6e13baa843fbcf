"""The program tally kept from transitions equals the tally of the final states (hypothesis):
the metrics' counts never drift, whatever the order of changes across customers."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from streams.core import CustomerState, InputEvent, RuleViolation, advance, apply, new_customer
from streams.core.rules import MS_PER_DAY
from streams.core.tally import Facts, Tally, facts_of, latest_day, tally_of
from tests.core.factories import CUSTOMER, DAY0, at, complaint, nps, program, purchase
from tests.core.test_properties import SETTINGS, event_streams


@SETTINGS
@given(
    streams=st.lists(event_streams(), min_size=1, max_size=4),
    advance_days=st.lists(st.integers(0, 800), max_size=3),
)
def test_the_tally_kept_by_transitions_equals_the_tally_of_the_final_states(
    streams: list[list[InputEvent]], advance_days: list[int]
) -> None:
    rules = program()
    states: dict[str, CustomerState] = {}
    kept = Tally()
    # interleave the customers' streams, each renamed to a customer of its own
    queue = [(i, event) for i, stream in enumerate(streams) for event in stream]
    for number, event in sorted(queue, key=lambda pair: pair[1].occurred_at):
        customer = f"c{number}"
        before = states.get(customer)
        try:
            after, _ = apply(
                before or new_customer(customer), replace(event, customer_id=customer), rules
            )
        except RuleViolation:
            continue
        kept.change(None if before is None else facts_of(before, rules), facts_of(after, rules))
        states[customer] = after
    for days in advance_days:
        for customer, before in list(states.items()):
            after, _ = advance(before, DAY0 + timedelta(days=days), rules)
            kept.change(facts_of(before, rules), facts_of(after, rules))
            states[customer] = after
    assert kept == tally_of(states.values(), rules)
    assert kept.customers == len(states)


def test_facts_name_the_customers_classes_in_the_programs_words() -> None:
    rules = program()
    state, _ = apply(new_customer(CUSTOMER), purchase("p1", 0, 1_000), rules)
    state, _ = apply(state, purchase("p2", 3, 2_000), rules)
    state, _ = apply(state, nps("n1", 4, 3), rules)
    state, _ = apply(state, complaint("k1", 5, "K1"), rules)
    facts = facts_of(state, rules)
    assert facts == Facts(
        tier="member",
        stage="repeat",
        loyalty_type="none",  # a detractor (negative) who is not a regular (rare)
        churn_level=facts.churn_level,
        nps_class="detractor",
        visited=True,
        repeat=True,
        open_complaints=1,
        overdue_complaints=0,
        points=state.points,
        net_spend_minor=3_000,
        receipts=2,
    )


def test_a_customers_latest_day_is_its_latest_own_event_not_a_clock() -> None:
    rules = program()
    state, _ = apply(new_customer(CUSTOMER), purchase("p1", 0, 500), rules)
    state, _ = apply(state, nps("n1", 9, 10), rules)
    assert latest_day(state) == int(at(9).timestamp() * 1000) // MS_PER_DAY  # the NPS answer


def test_merging_tallies_adds_every_count() -> None:
    rules = program()
    one = tally_of([apply(new_customer(CUSTOMER), purchase("p1", 0, 500), rules)[0]], rules)
    two = tally_of([new_customer("other")], rules)
    both = one.merged(two)
    assert both.customers == 2
    assert both.by_stage == {"first_purchase": 1, "prospect": 1}
    assert both.with_visit == 1
    assert both.net_spend_minor == one.net_spend_minor
