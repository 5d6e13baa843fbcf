"""Shop traffic for demos, tests and load: customers who buy, return, answer NPS surveys and
complain, in event-time order and deterministic for a seed.

Purchases follow the BG/NBD story of ../shared/DOMAIN.md, so that the churn model has something
true to find: each customer buys as a Poisson process with a rate drawn from Gamma(r, alpha)
while alive, and after every repeat purchase drops out with a probability drawn from Beta(a, b)
(no dropout at the first purchase, as in the model's likelihood). Rates are per day here."""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

SECONDS_PER_DAY = 86_400.0

Scheduler = Callable[..., None]


@dataclass(frozen=True, slots=True)
class Product:
    sku: str
    category: str
    unit_price_minor: int


# A small café-and-store catalogue: coffee for the punch card, a few big-ticket items so that
# some customers climb to gold and platinum within a simulated year.
CATALOGUE: dict[str, tuple[Product, ...]] = {
    "coffee": (
        Product("espresso", "coffee", 250),
        Product("cappuccino", "coffee", 320),
        Product("latte", "coffee", 360),
        Product("beans-1kg", "coffee", 1890),
    ),
    "bakery": (
        Product("croissant", "bakery", 180),
        Product("cake-slice", "bakery", 450),
        Product("sourdough", "bakery", 520),
    ),
    "grocery": (
        Product("milk", "grocery", 119),
        Product("cheese", "grocery", 649),
        Product("olive-oil", "grocery", 1299),
        Product("wine", "grocery", 1599),
    ),
    "home": (
        Product("mug", "home", 1290),
        Product("grinder", "home", 8990),
        Product("espresso-machine", "home", 34900),
    ),
}


@dataclass(frozen=True, slots=True)
class Population:
    """BG/NBD population parameters, rates per day (DOMAIN.md's published ones are per week)."""

    r: float = 1.2
    alpha: float = 12.0
    a: float = 0.9
    b: float = 8.0


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    customers: int
    events: int
    seed: int = 7
    start: datetime = datetime(2025, 1, 1, tzinfo=UTC)
    acquisition_days: float = 120.0
    stores: int = 12
    currency: str = "EUR"
    population: Population = field(default_factory=Population)
    return_probability: float = 0.04
    partial_return_share: float = 0.5
    nps_probability: float = 0.12
    complaint_probability: float = 0.015
    complaint_resolved_probability: float = 0.85

    def __post_init__(self) -> None:
        if self.customers < 1:
            raise ValueError("customers must be at least 1")
        if self.events < 0:
            raise ValueError("events must not be negative")


@dataclass(slots=True)
class _Customer:
    customer_id: str
    rate_per_day: float
    dropout: float
    home_store: str
    coffee_lover: bool
    big_spender: bool
    attitude: float  # the centre of their NPS answers
    purchases: int = 0


@dataclass(order=True, slots=True)
class _Due:
    at: float  # seconds since the start
    sequence: int  # ties in time keep the order they were scheduled in
    action: str = field(compare=False)
    customer: int = field(compare=False)
    payload: dict[str, Any] = field(compare=False, default_factory=dict)


@dataclass
class Simulation:
    """Iterating yields `(schema_name, record)` pairs in event-time order; records are the
    contract's dicts (docs/events.md). `stats` counts what was produced, by kind."""

    config: SimulationConfig
    stats: dict[str, int] = field(default_factory=dict)

    def __iter__(self) -> Iterator[tuple[str, dict[str, Any]]]:
        config = self.config
        rng = random.Random(config.seed)
        customers = [self._new_customer(index, rng) for index in range(config.customers)]
        queue: list[_Due] = []
        sequence = 0

        def schedule(at: float, action: str, customer: int, **payload: Any) -> None:
            nonlocal sequence
            sequence += 1
            heapq.heappush(queue, _Due(at, sequence, action, customer, payload))

        for index in range(config.customers):
            schedule(rng.uniform(0, config.acquisition_days) * SECONDS_PER_DAY, "purchase", index)

        emitted = 0
        while queue and emitted < config.events:
            due = heapq.heappop(queue)
            customer = customers[due.customer]
            event_id = f"sim-{config.seed}-{emitted:09d}"
            common = {
                "event_id": event_id,
                "customer_id": customer.customer_id,
                "store_id": customer.home_store,
                "occurred_at": self._moment(due.at),
            }
            if due.action == "purchase":
                record = self._purchase(common, customer, rng)
                self._after_purchase(due, customer, record, rng, schedule)
                yield "loyalty.v1.Purchase", record
            elif due.action == "return":
                yield "loyalty.v1.Return", self._return(common, due.payload, rng)
            elif due.action == "nps":
                score = max(0, min(10, round(rng.gauss(customer.attitude, 1.5))))
                yield "loyalty.v1.NpsResponse", {**common, "score": score, "comment": None}
            elif due.action == "complaint_opened":
                complaint_id = f"K-{event_id}"
                if rng.random() < config.complaint_resolved_probability:
                    hours = rng.uniform(1, 96)  # some answered after the 48 h SLA
                    schedule(due.at + hours * 3600, "complaint_resolved", due.customer,
                             complaint_id=complaint_id)  # fmt: skip
                yield "loyalty.v1.ComplaintOpened", {
                    **common, "complaint_id": complaint_id, "reason": "service",
                }  # fmt: skip
            else:
                yield "loyalty.v1.ComplaintResolved", {
                    **common, "complaint_id": due.payload["complaint_id"], "resolution": "refund",
                }  # fmt: skip
            self.stats[due.action] = self.stats.get(due.action, 0) + 1
            emitted += 1

    # -- pieces ----------------------------------------------------------------------------------

    def _new_customer(self, index: int, rng: random.Random) -> _Customer:
        population = self.config.population
        return _Customer(
            customer_id=f"c-{index:07d}",
            rate_per_day=rng.gammavariate(population.r, 1.0 / population.alpha),
            dropout=rng.betavariate(population.a, population.b),
            home_store=f"store-{rng.randrange(self.config.stores):02d}",
            coffee_lover=rng.random() < 0.45,
            big_spender=rng.random() < 0.08,
            attitude=rng.uniform(3.0, 10.5),
        )

    def _moment(self, seconds: float) -> datetime:
        # whole milliseconds, as Avro's timestamp-millis keeps them
        return self.config.start + timedelta(milliseconds=int(seconds * 1000))

    def _purchase(
        self, common: dict[str, Any], customer: _Customer, rng: random.Random
    ) -> dict[str, Any]:
        categories = ["bakery", "grocery"] + (["coffee"] * 3 if customer.coffee_lover else [])
        if customer.big_spender or rng.random() < 0.03:
            categories.append("home")
        lines: dict[str, dict[str, Any]] = {}
        for _ in range(1 + min(6, int(rng.expovariate(0.7)))):
            product = rng.choice(CATALOGUE[rng.choice(categories)])
            line = lines.setdefault(
                product.sku,
                {"sku": product.sku, "category": product.category, "quantity": 0,
                 "unit_price_minor": product.unit_price_minor},
            )  # fmt: skip
            line["quantity"] += 1
        items = list(lines.values())
        total = sum(line["quantity"] * line["unit_price_minor"] for line in items)
        return {**common, "currency": self.config.currency, "total_minor": total, "items": items}

    def _after_purchase(
        self,
        due: _Due,
        customer: _Customer,
        purchase: dict[str, Any],
        rng: random.Random,
        schedule: Scheduler,
    ) -> None:
        config = self.config
        customer.purchases += 1
        repeat = customer.purchases > 1
        alive = not (repeat and rng.random() < customer.dropout)
        if alive:
            gap_days = rng.expovariate(customer.rate_per_day)
            schedule(due.at + gap_days * SECONDS_PER_DAY, "purchase", due.customer)
        if rng.random() < config.return_probability:
            schedule(due.at + rng.uniform(1, 14) * SECONDS_PER_DAY, "return", due.customer,
                     purchase=purchase)  # fmt: skip
        if rng.random() < config.nps_probability:
            schedule(due.at + rng.uniform(1, 48) * 3600, "nps", due.customer)
        if rng.random() < config.complaint_probability:
            schedule(due.at + rng.uniform(0.5, 24) * 3600, "complaint_opened", due.customer)

    def _return(
        self, common: dict[str, Any], payload: dict[str, Any], rng: random.Random
    ) -> dict[str, Any]:
        purchase = payload["purchase"]
        record = {
            **common,
            "store_id": purchase["store_id"],
            "purchase_event_id": purchase["event_id"],
            "currency": purchase["currency"],
            "amount_minor": None,
            "items": [],
        }
        items = purchase["items"]
        if len(items) > 1 and rng.random() < self.config.partial_return_share:
            line = rng.choice(items)
            record["items"] = [line]
            record["amount_minor"] = line["quantity"] * line["unit_price_minor"]
        return record


def simulate(config: SimulationConfig) -> Simulation:
    return Simulation(config)
