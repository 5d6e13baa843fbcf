from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

from streams.tools.simulate import Pace, Population, SimulationConfig, simulate


def run(**overrides: object) -> list[tuple[str, dict[str, Any]]]:
    config = SimulationConfig(**{"customers": 300, "events": 4000, **overrides})  # type: ignore[arg-type]
    return list(simulate(config))


def test_same_seed_same_stream_other_seed_other_stream() -> None:
    assert run(seed=3) == run(seed=3)
    assert run(seed=3) != run(seed=4)


def test_stream_is_in_event_time_order_with_unique_ids_and_exact_totals() -> None:
    events = run()
    assert len(events) == 4000
    times = [record["occurred_at"] for _, record in events]
    assert all(earlier <= later for earlier, later in pairwise(times))
    assert len({record["event_id"] for _, record in events}) == len(events)
    for schema, record in events:
        if schema == "loyalty.v1.Purchase":
            assert record["total_minor"] == sum(
                item["quantity"] * item["unit_price_minor"] for item in record["items"]
            )
    kinds = Counter(schema for schema, _ in events)
    assert set(kinds) == {
        "loyalty.v1.Purchase", "loyalty.v1.Return", "loyalty.v1.NpsResponse",
        "loyalty.v1.ComplaintOpened", "loyalty.v1.ComplaintResolved",
    }  # fmt: skip
    assert any(item["category"] == "coffee" for _, r in events for item in r.get("items", []))


def test_returns_follow_their_purchase_and_never_exceed_it() -> None:
    events = run(return_probability=0.3)
    purchases = {}
    for schema, record in events:
        if schema == "loyalty.v1.Purchase":
            purchases[record["event_id"]] = record
        elif schema == "loyalty.v1.Return":
            purchase = purchases[record["purchase_event_id"]]  # seen before: ordered after it
            assert purchase["customer_id"] == record["customer_id"]
            assert record["occurred_at"] > purchase["occurred_at"]
            if record["amount_minor"] is not None:
                assert 0 < record["amount_minor"] < purchase["total_minor"]
                assert all(item in purchase["items"] for item in record["items"])


def test_complaints_resolve_after_they_open() -> None:
    opened = {}
    for schema, record in run(complaint_probability=0.3):
        if schema == "loyalty.v1.ComplaintOpened":
            opened[record["complaint_id"]] = record["occurred_at"]
        elif schema == "loyalty.v1.ComplaintResolved":
            assert record["occurred_at"] > opened[record["complaint_id"]]


def purchases_per_customer(events: list[tuple[str, dict[str, Any]]]) -> Counter[str]:
    return Counter(r["customer_id"] for s, r in events if s == "loyalty.v1.Purchase")


def test_dropout_happens_only_after_repeat_purchases_as_in_bg_nbd() -> None:
    # p ~ Beta(500, 0.001) is 1 for all purposes: everyone drops out right after the first
    # repeat purchase, so every customer buys exactly twice, never once and never three times.
    certain_dropout = Population(r=5.0, alpha=1.0, a=500.0, b=0.001)
    events = run(population=certain_dropout, events=10**6, return_probability=0.0,
                 nps_probability=0.0, complaint_probability=0.0)  # fmt: skip
    assert set(purchases_per_customer(events).values()) == {2}


def test_purchase_rates_are_heterogeneous_across_customers() -> None:
    # Gamma-distributed rates with no dropout: counts are overdispersed (variance well above
    # the mean), which a single shared Poisson rate would not give.
    no_dropout = Population(r=0.8, alpha=8.0, a=0.001, b=500.0)
    quiet = {"return_probability": 0.0, "nps_probability": 0.0, "complaint_probability": 0.0}
    events = run(population=no_dropout, customers=500, events=20000, acquisition_days=0.001,
                 **quiet)  # fmt: skip
    counts = list(purchases_per_customer(events).values())
    mean = sum(counts) / len(counts)
    variance = sum((count - mean) ** 2 for count in counts) / len(counts)
    assert variance > 3 * mean


LONG_RUN = SimulationConfig(customers=100, events=20_000)  # 200 a customer, as the soak's hour


def test_a_long_run_stays_inside_the_window_with_every_event_it_asked_for() -> None:
    """Without a window, 200 events per customer took the simulation to the year 2162: the
    few customers who never dropped out made them alone (one 4,347 purchases of 7,402), and
    a partition clock that far on expires every customer's points (and the workers refuse
    such times)."""
    events = list(simulate(LONG_RUN))
    assert LONG_RUN.horizon_days == 540
    end = LONG_RUN.start + timedelta(days=540)
    times = [record["occurred_at"] for _, record in events]
    assert len(events) == 20_000 and times[-1] < end
    assert all(earlier <= later for earlier, later in pairwise(times))
    assert times[-1] > end - timedelta(days=60)  # spread over the window, not crammed early


def test_a_long_run_is_made_by_a_loyal_clientele_at_realistic_intervals() -> None:
    """The events are many customers' visits days apart, not a few customers' daily ones."""
    simulation = simulate(LONG_RUN)
    purchases: dict[str, list[datetime]] = {}
    for schema, record in simulation:
        if schema == "loyalty.v1.Purchase":
            purchases.setdefault(record["customer_id"], []).append(record["occurred_at"])
    assert simulation.pace is not None and simulation.pace.loyalty > 1
    counts = sorted(len(times) for times in purchases.values())
    assert counts[len(counts) // 2] > 50  # the median customer, not only a few, buys often
    assert counts[-1] < 0.05 * sum(counts)  # nobody makes the run alone
    gaps = sorted(
        (later - earlier).total_seconds() / 86_400
        for times in purchases.values()
        for earlier, later in pairwise(times)
    )
    assert gaps[len(gaps) // 2] > 1.0  # days between a customer's visits, the median


def test_a_run_the_window_holds_is_what_it_was_without_a_window() -> None:
    assert run(events=4000) == run(events=4000, horizon_days=None)
    simulation = simulate(SimulationConfig(customers=300, events=4000))
    list(simulation)
    assert simulation.pace == Pace()


def test_a_long_run_is_the_same_for_the_same_seed() -> None:
    same_seed = replace(LONG_RUN, seed=3)
    assert list(simulate(same_seed)) == list(simulate(same_seed))


def test_without_an_event_count_the_run_ends_at_the_window_at_the_populations_pace() -> None:
    """What the demo sends until it is stopped: no count to make customers busier for."""
    simulation = simulate(SimulationConfig(customers=300, events=None, horizon_days=200))
    events = list(simulation)
    assert simulation.pace == Pace()
    end = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=200)
    unbounded = run(events=len(events) + 1, horizon_days=None)
    assert events == unbounded[:-1]  # the same events, up to the window's end
    assert events[-1][1]["occurred_at"] < end <= unbounded[-1][1]["occurred_at"]
