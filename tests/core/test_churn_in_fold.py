"""Churn in the fold: a silent customer is flagged by the passing of time alone, at the day
`next_due` announced; a purchase clears the level; levels change with hysteresis."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace
from datetime import timedelta
from typing import Literal

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core import ChurnRiskChanged, advance, apply, next_due
from streams.core import churn as churn_model
from streams.core.fold import risk_on, risk_score_on
from streams.core.fold import risk_signals as fold_signals
from streams.core.state import OpenComplaint, new_customer
from tests.core.factories import (
    CUSTOMER,
    at,
    complaint,
    fold,
    nps,
    of_type,
    program,
    program_with,
    purchase,
    resolved,
)

WEEKLY = [purchase(f"p{i}", 7 * i, 2000) for i in range(6)]


def levels(outputs: Iterable[object]) -> list[tuple[str, str]]:
    return [(c.previous_level, c.level) for c in of_type(outputs, ChurnRiskChanged)]


def test_a_silent_customer_is_flagged_without_any_event_of_theirs() -> None:
    state, outputs = fold(WEEKLY)
    assert levels(outputs) == []
    state, outputs = advance(state, at(400), program())
    assert levels(outputs) == [("none", "watch"), ("watch", "at_risk"), ("at_risk", "churned")]
    changes = of_type(outputs, ChurnRiskChanged)
    for change in changes:
        assert change.occurred_at.time() == at(0, hour=0).time()  # midnight UTC
        assert change.caused_by.startswith("due:churn:")
        assert "low_p_alive" in change.reasons or "gap_beyond_cadence" in change.reasons
    assert changes[0].p_alive > changes[1].p_alive > changes[2].p_alive


def test_next_due_is_the_moment_the_level_changes() -> None:
    state, _ = fold(WEEKLY)
    due = next_due(state, program())
    assert due is not None
    before, outputs = advance(state, due - timedelta(milliseconds=1), program())
    assert outputs == ()
    assert before is state
    after, outputs = advance(state, due, program())
    (change,) = of_type(outputs, ChurnRiskChanged)
    assert change.occurred_at == due
    assert after.churn_level == 1


def test_a_purchase_after_the_flag_clears_it() -> None:
    state, _ = fold(WEEKLY, until=at(70))
    assert state.churn_level > 0
    state, outputs = apply(state, purchase("back", 70, 2000), program())
    (change,) = of_type(outputs, ChurnRiskChanged)
    assert (change.level, change.caused_by) == ("none", "back")


def test_time_changes_are_emitted_before_the_event_that_reveals_them() -> None:
    # no advance between: the purchase on day 70 first emits the rises that time caused
    _, outputs = fold([*WEEKLY, purchase("back", 70, 2000)])
    assert levels(outputs)[:1] == [("none", "watch")]
    assert of_type(outputs, ChurnRiskChanged)[-1].caused_by == "back"


def test_hysteresis_keeps_a_level_until_the_score_is_below_its_clear_bound() -> None:
    weights = replace(
        program().churn.weights, detractor=0.45, overdue_complaint=0.10, falling_average_check=0
    )
    prog = program_with(churn=replace(program().churn, weights=weights))
    # a prospect (P(alive) = 1): detractor 0.45 alone stays below watch's 0.5
    state, outputs = fold([nps("n1", 0, 3)], prog)
    assert levels(outputs) == []
    # the complaint turns overdue after 48 h: 0.55 raises watch, caused by the due time
    state, outputs = fold([complaint("k1", 1, "c-1")], prog, state, until=at(4))
    assert levels(outputs) == [("none", "watch")]
    assert of_type(outputs, ChurnRiskChanged)[0].caused_by.startswith("due:overdue:")
    # resolved: back to 0.45, above the clear bound 0.4, so watch holds
    state, outputs = apply(state, resolved("k2", 5, "c-1"), prog)
    assert levels(outputs) == []
    # a passive answer: score 0, below 0.4, cleared
    state, outputs = apply(state, nps("n2", 6, 8), prog)
    assert levels(outputs) == [("watch", "none")]


def test_level_holds_exactly_when_next_level_keeps_it() -> None:
    from streams.core.fold import _level_holds

    prog = program()
    state = new_customer(CUSTOMER)
    for rank, name in enumerate(prog.churn_level_names):
        ranked = state._replace(churn_level=rank)
        for score in [i / 100 for i in range(101)]:
            kept = churn_model.next_level(name, score, prog.churn.levels) == name
            assert _level_holds(ranked, score, prog) == kept, (name, score)


@settings(max_examples=200, deadline=None)
@given(
    visits=st.integers(1, 60),
    span=st.integers(0, 400),
    silence=st.integers(0, 2000),
    receipts_extra=st.integers(0, 20),
    score=st.none() | st.integers(0, 10),
    overdue=st.booleans(),
    checks=st.lists(st.integers(0, 50000), min_size=0, max_size=3),
    unit=st.sampled_from(["days", "weeks"]),
)
def test_the_fast_score_is_the_churn_module_score(
    visits: int,
    span: int,
    silence: int,
    receipts_extra: int,
    score: int | None,
    overdue: bool,
    checks: list[int],
    unit: Literal["days", "weeks"],
) -> None:
    span = span if visits > 1 else 0
    first = 20000
    prog = program_with(churn=replace(program().churn, unit=unit))
    receipts = visits + receipts_extra
    state = new_customer(CUSTOMER)._replace(
        visits=visits,
        receipts=receipts,
        lifetime_spend_minor=receipts * 2500,
        first_visit_day=first,
        last_visit_day=first + span,
        nps_score=score,
        complaints=(OpenComplaint("k", 0, overdue),),
        recent_checks=tuple(checks),
    )
    day = first + span + silence
    fast = risk_score_on(state, day, prog)
    reference = risk_on(state, day, prog).score
    assert fast == reference or (math.isnan(fast) and math.isnan(reference))


@settings(max_examples=300, deadline=None)
@given(
    visits=st.integers(1, 40),
    span=st.integers(0, 300),
    after=st.integers(0, 400),
    score=st.none() | st.integers(0, 10),
    overdue=st.booleans(),
    level=st.integers(0, 3),
    unit=st.sampled_from(["days", "weeks"]),
)
def test_the_churn_day_is_the_churn_module_day(
    visits: int,
    span: int,
    after: int,
    score: int | None,
    overdue: bool,
    level: int,
    unit: Literal["days", "weeks"],
) -> None:
    from streams.core.fold import _next_churn_day, date_to_day, day_to_date, visit_history

    span = span if visits > 1 else 0
    prog = program_with(churn=replace(program().churn, unit=unit))
    first = 20000
    state = new_customer(CUSTOMER)._replace(
        visits=visits,
        receipts=visits,
        lifetime_spend_minor=visits * 2500,
        first_visit_day=first,
        last_visit_day=first + span,
        nps_score=score,
        complaints=(OpenComplaint("k", 0, overdue),),
        churn_level=level,
        churn_day=first + span + after,
    )
    history = visit_history(state)
    assert history is not None
    expected = churn_model.next_risk_change(
        prog.churn_level_names[level],
        history,
        fold_signals(state, prog),
        day_to_date(first + span + after + 1),
        prog.churn,
    )
    found = _next_churn_day(state, prog)
    assert found == (None if expected is None else date_to_day(expected))
