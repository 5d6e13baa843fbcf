"""NPS, complaints and service recovery; visits, stages, categories and loyalty type."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from streams.core import (
    InputEvent,
    RewardEarned,
    advance,
    apply,
    describe,
    net_promoter_score,
    next_due,
)
from streams.core import nps_class as classify
from tests.core.factories import (
    at,
    complaint,
    fold,
    nps,
    of_type,
    program,
    purchase,
    resolved,
)


def test_nps_counts_passives_in_the_denominator_only() -> None:
    assert net_promoter_score([10, 9, 8, 7, 3], program()) == 20.0
    # adding passives to promoters (a common mistake) would give 100
    assert net_promoter_score([9, 7], program()) == 50.0
    assert net_promoter_score([6, 0], program()) == -100.0
    assert net_promoter_score([], program()) is None


def test_nps_classes_at_their_bounds() -> None:
    assert [classify(s, program()) for s in (0, 6, 7, 8, 9, 10)] == [
        "detractor",
        "detractor",
        "passive",
        "passive",
        "promoter",
        "promoter",
    ]


def test_the_latest_answer_by_event_time_sets_the_class() -> None:
    state, _ = fold([nps("n2", 5, 10), nps("n1", 2, 3)])  # n1 is older, arrives later
    assert describe(state, at(6), program()).nps_class == "promoter"
    state, _ = apply(state, nps("n3", 7, 8), program())
    assert describe(state, at(8), program()).nps_class == "passive"


def test_a_complaint_is_overdue_after_the_48_hour_sla() -> None:
    state, _ = fold([purchase("p1", 0, 1000), complaint("k1", 0, "c-9", hour=12)])
    assert next_due(state, program()) == at(2, hour=12)
    early, _ = advance(state, at(2, hour=12) - timedelta(milliseconds=1), program())
    assert describe(early, at(2, hour=11), program()).overdue_complaints == 0
    late, _ = advance(state, at(2, hour=12), program())
    view = describe(late, at(2, hour=12), program())
    assert (view.open_complaints, view.overdue_complaints, view.attitude) == (1, 1, "negative")
    assert "overdue_complaint" in view.churn_reasons


def test_a_resolved_complaint_is_no_longer_open() -> None:
    state, _ = fold([complaint("k1", 0, "c-9"), resolved("k2", 1, "c-9")], until=at(10))
    view = describe(state, at(10), program())
    assert (view.open_complaints, view.overdue_complaints) == (0, 0)


def test_gold_and_up_get_service_recovery_at_once() -> None:
    _, outputs = fold([purchase("p1", 0, 150000), complaint("k1", 3, "c-9", hour=9)])
    (reward,) = of_type(outputs, RewardEarned)
    assert (reward.reward_kind, reward.complaint_id, reward.caused_by) == (
        "SERVICE_RECOVERY",
        "c-9",
        "k1",
    )
    assert reward.occurred_at == at(3, hour=9)


def test_silver_gets_no_service_recovery() -> None:
    _, outputs = fold([purchase("p1", 0, 50000), complaint("k1", 3, "c-9")])
    assert not of_type(outputs, RewardEarned)


def test_several_receipts_on_one_day_are_one_visit() -> None:
    state, _ = fold(
        [purchase("p1", 0, 100, hour=8), purchase("p2", 0, 100, hour=20), purchase("p3", 1, 1)]
    )
    view = describe(state, at(1), program())
    assert (view.visits, view.receipts, view.average_check_minor) == (2, 3, 67)
    assert (view.first_visit, view.last_visit) == (at(0).date(), at(1).date())


def stage_and_category(events: Sequence[InputEvent], day: int) -> tuple[str, str | None]:
    state, _ = fold(events, until=at(day))
    view = describe(state, at(day), program())
    return view.stage, view.category


def test_stages_from_prospect_to_loyal() -> None:
    assert stage_and_category([nps("n1", 0, 10)], 1) == ("prospect", None)
    one: list[InputEvent] = [purchase("p1", 0, 100)]
    assert stage_and_category(one, 1) == ("first_purchase", "one_time")
    two: list[InputEvent] = [*one, purchase("p2", 30, 100)]
    assert stage_and_category(two, 31) == ("repeat", "occasional")
    four: list[InputEvent] = [*two, purchase("p3", 60, 100), purchase("p4", 90, 100)]
    assert stage_and_category(four, 91) == ("attached", "regular")
    assert stage_and_category([*four, nps("n1", 91, 9)], 92) == ("loyal", "regular")
    # a promoter with an open complaint is not (yet) loyal
    open_complaint = [*four, nps("n1", 91, 9), complaint("k1", 91, "c-1")]
    assert stage_and_category(open_complaint, 92)[0] == "attached"


def test_attached_needs_four_visits_within_180_days() -> None:
    spread = [purchase(f"p{i}", 70 * i, 100) for i in range(4)]  # days 0, 70, 140, 210
    assert stage_and_category(spread, 211) == ("repeat", "regular")


def test_category_counts_visits_of_the_last_365_days() -> None:
    visits = [purchase(f"p{i}", 10 * i, 100) for i in range(4)]  # days 0..30
    assert stage_and_category(visits, 364)[1] == "regular"
    assert stage_and_category(visits, 375)[1] == "occasional"  # day 0 and day 10 are out
    assert stage_and_category(visits, 395)[1] is None


def loyalty(events: Sequence[InputEvent], day: int) -> tuple[str, str, str | None]:
    state, _ = fold(events, until=at(day))
    view = describe(state, at(day), program())
    return view.frequency, view.attitude, view.loyalty_type


def test_loyalty_type_is_frequency_times_attitude() -> None:
    frequent: list[InputEvent] = [purchase(f"p{i}", 7 * i, 100) for i in range(4)]
    rare: list[InputEvent] = [purchase("p1", 0, 100)]
    assert loyalty([*frequent, nps("n", 22, 10)], 23) == ("frequent", "positive", "true")
    assert loyalty([*rare, nps("n", 1, 10)], 2) == ("rare", "positive", "latent")
    assert loyalty([*frequent, nps("n", 22, 2)], 23) == ("frequent", "negative", "spurious")
    assert loyalty([*rare, nps("n", 1, 2)], 2) == ("rare", "negative", "none")
    # no answer, or a passive: attitude unknown, only the frequency is reported
    assert loyalty(frequent, 23) == ("frequent", "unknown", None)
    assert loyalty([*rare, nps("n", 1, 8)], 2) == ("rare", "unknown", None)
    # an overdue complaint makes the attitude negative even for a promoter
    overdue = [*frequent, nps("n", 22, 10), complaint("k", 22, "c-1")]
    assert loyalty(overdue, 25) == ("frequent", "negative", "spurious")
