"""Facts as stored integers: they read back to the same facts, under the rules they were taken
with only; and a digest of what the code behind them answers, so that a change to that code
cannot leave headers written before it trusted."""

from __future__ import annotations

import hashlib
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.core import (
    INPUT_EVENTS,
    CustomerState,
    InputEvent,
    RuleViolation,
    apply,
    new_customer,
    next_due,
)
from streams.core.facts_codec import (
    CODE_VERSION,
    FIELDS,
    LOYALTY_TYPES,
    NPS_CLASSES,
    STAGES,
    FactsCodec,
    StoredFactsSum,
    rules_fingerprint,
)
from streams.core.tally import Facts, facts_of, tally_of
from streams.tools.simulate import SimulationConfig, simulate
from tests.core.factories import CUSTOMER, fold, program, program_with
from tests.core.test_properties import SETTINGS, event_streams


@SETTINGS
@given(events=event_streams())
def test_a_customers_facts_read_back_from_their_integers(events: list[InputEvent]) -> None:
    rules = program()
    codec = FactsCodec(rules)
    state, _ = fold(events, rules)
    facts = facts_of(state, rules)
    stored = codec.encode(facts)
    assert len(stored) == FIELDS
    assert codec.decode(stored) == facts


@SETTINGS
@given(streams=st.lists(event_streams(), min_size=1, max_size=6))
def test_stored_facts_summed_are_the_tally_of_the_customers(
    streams: list[list[InputEvent]],
) -> None:
    rules = program()
    codec = FactsCodec(rules)
    states = [fold(events, rules)[0] for events in streams]
    summed = StoredFactsSum(codec)
    for state in states:
        summed.add(codec.encode(facts_of(state, rules)))
    assert summed.tally() == tally_of(states, rules)


def test_every_class_and_sign_reads_back() -> None:
    rules = program()
    codec = FactsCodec(rules)
    for tier, churn, stage, loyalty, nps in itertools.product(
        rules.tier_names, rules.churn_level_names, STAGES, LOYALTY_TYPES, NPS_CLASSES
    ):
        facts = Facts(tier, stage, loyalty, churn, nps, visited=True, repeat=False,
                      open_complaints=2, overdue_complaints=1, points=-75,
                      net_spend_minor=-1_234_567_890_123, receipts=0)  # fmt: skip
        assert codec.decode(codec.encode(facts)) == facts


def test_integers_that_are_not_these_rules_facts_are_refused() -> None:
    codec = FactsCodec(program())
    good = codec.encode(facts_of(new_customer(CUSTOMER), program()))
    with pytest.raises(ValueError, match="fact fields"):
        codec.decode(good[:-1])
    with pytest.raises(ValueError, match="not of these rules"):
        codec.decode((len(program().tiers), *good[1:]))  # a tier this program lacks


def test_the_fingerprint_tells_rules_apart_and_never_reads_as_none() -> None:
    same = rules_fingerprint(program())
    assert same == rules_fingerprint(program())  # loaded twice: the same rules
    assert same != 0
    others = {
        rules_fingerprint(program_with(points_expiry_days=30)),
        rules_fingerprint(program_with(attached_visits=5)),
        rules_fingerprint(program_with(promoter_from_score=10)),
    }
    assert same not in others and len(others) == 3


# What the code behind the stored facts and due times answered for a simulated population
# when CODE_VERSION was last bumped. If this fails after a change to `facts_of`, `classify`,
# `next_due` or the encoding, bump CODE_VERSION and put the new digest here; if only the
# simulation changed, the digest alone.
ANSWERS_DIGEST = {1: "8369d477c1bdb1be91ee50fe5578067422e4aed0b1ddac81617b21400f84f34a"}


def answers_digest() -> str:
    rules = program()
    codec = FactsCodec(rules)
    states: dict[str, CustomerState] = {}
    digest = hashlib.sha256()
    for schema, body in simulate(SimulationConfig(customers=300, events=6000, seed=11)):
        event = INPUT_EVENTS[schema](body)
        state = states.get(event.customer_id) or new_customer(event.customer_id)
        try:
            state, _ = apply(state, event, rules)
        except RuleViolation:
            continue
        states[event.customer_id] = state
        due = next_due(state, rules)
        digest.update(repr((codec.encode(facts_of(state, rules)), due)).encode())
    return digest.hexdigest()


def test_the_code_behind_stored_facts_answers_as_when_its_version_was_set() -> None:
    assert answers_digest() == ANSWERS_DIGEST[CODE_VERSION], (
        "facts or due times changed: bump streams.core.facts_codec.CODE_VERSION (headers "
        "written before are then worked out again) and record the new digest here"
    )
