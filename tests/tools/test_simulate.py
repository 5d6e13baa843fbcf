from collections import Counter
from itertools import pairwise
from typing import Any

from streams.tools.simulate import Population, SimulationConfig, simulate


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
