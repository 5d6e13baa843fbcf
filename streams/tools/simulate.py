"""Shop traffic for demos, tests and load: customers who buy, return, answer NPS surveys and
complain, in event-time order and deterministic for a seed.

Purchases follow the BG/NBD story of ../shared/DOMAIN.md, so that the churn model has something
true to find: each customer buys as a Poisson process with a rate drawn from Gamma(r, alpha)
while alive, and after every repeat purchase drops out with a probability drawn from Beta(a, b)
(no dropout at the first purchase, as in the model's likelihood). Rates are per day here.

Simulated time stays inside a window, `horizon_days` from the start. A fixed population under
BG/NBD makes a bounded number of visits in a window, while a run may ask for any number of
events: the soak's hour asked for 130 per customer, and the few customers whose dropout
probability was near zero made them, alone, a visit every week or so, until the year 2531
(one customer 34,000 purchases). A partition clock centuries on expires every customer's
points, and the workers refuse events dated far ahead of their receipt anyway. So a run that
the window holds is what it always was, and one that it does not hold gets a more loyal
clientele (`Pace`): first customers stay longer, visiting at their own rate but dropping out
after more visits, which keeps the time between visits what the population makes it; only
when even customers who hardly ever leave cannot make the run's events in the window do
they also visit more often. Returns, NPS answers and complaints keep their own delays (a
complaint's 48 h SLA means what it did)."""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

SECONDS_PER_DAY = 86_400.0

# A year and a half: a year of qualifying spend and points, and the half year after it in which
# the first customers' re-qualifications, downgrade warnings and points expiries (365 days on)
# come due. From the default start it ends on 2026-06-25, before the wall clock, so that
# simulated traffic is not refused as ahead of the broker's receipt (EVENT_TIME_AHEAD).
DEFAULT_HORIZON_DAYS = 540.0

# How many times as many visits customers may make before dropping out, at their own visit
# rate, before they are made to visit more often: at 20 the mean dropout after a visit is
# under 0.6 %, and most customers stay through the window.
MOST_LOYALTY = 20.0

Scheduler = Callable[..., None]


@dataclass(frozen=True, slots=True)
class Pace:
    """How a run's population differs from `Population` so that the window holds its events;
    still BG/NBD, with rates Gamma(r, alpha / frequency) and dropouts Beta(a, b * loyalty *
    frequency). `loyalty`: customers drop out after about that many times as many visits;
    `frequency`: they visit that many times as often (and drop out after as many times more
    visits again, so that their lives span the time they did)."""

    loyalty: float = 1.0
    frequency: float = 1.0

    def faster(self, shortfall: float) -> Pace:
        """The next pace to try when a pass ended at the horizon having made 1/`shortfall` of
        the events asked for: loyalty doubled up to MOST_LOYALTY, then visits more often in
        proportion to the shortfall (which they grow with), a little more so that the next
        pass usually fits."""
        if self.loyalty < MOST_LOYALTY:
            return Pace(min(MOST_LOYALTY, self.loyalty * 2), self.frequency)
        return Pace(self.loyalty, self.frequency * max(1.1, 1.05 * shortfall))

    def describe(self) -> str:
        if self == Pace():
            return "customers at the population's own pace"
        return (
            f"customers made {self.loyalty:g} times as loyal (they drop out after that many "
            f"times as many visits) and {self.frequency:.3g} times as frequent as the "
            "population, for the window to hold the run's events"
        )


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
    """`events`: how many to produce (fewer if every customer has dropped out first); None:
    as many as the window holds at the population's own pace. `horizon_days`: the window,
    every event before `start` + that; None: no window (time runs on as long as the events
    do, as before there was one; tests whose fixtures were made so keep it)."""

    customers: int
    events: int | None
    seed: int = 7
    start: datetime = datetime(2025, 1, 1, tzinfo=UTC)
    horizon_days: float | None = DEFAULT_HORIZON_DAYS
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
        if self.events is not None and self.events < 0:
            raise ValueError("events must not be negative")
        if self.horizon_days is not None and not self.horizon_days > self.acquisition_days:
            # every customer's first purchase inside the window: a run can then always be
            # paced up to fit it
            raise ValueError("horizon_days must be more than acquisition_days")


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
class _Run:
    """How far one pass of the simulation got, and why it stopped there."""

    emitted: int = 0
    reached_horizon: bool = False


@dataclass
class Simulation:
    """Iterating yields `(schema_name, record)` pairs in event-time order; records are the
    contract's dicts (docs/events.md). `stats` counts what was produced, by kind; `pace` is
    the population's `Pace` for the run, known once iterating begins."""

    config: SimulationConfig
    stats: dict[str, int] = field(default_factory=dict)
    pace: Pace | None = None

    def __iter__(self) -> Iterator[tuple[str, dict[str, Any]]]:
        self.pace = self._pace()
        yield from self._events(self.pace, _Run(), self.stats)

    def _pace(self) -> Pace:
        """The population's own pace if the window holds the run's events at it; else one it
        holds them at, found by passes that count events and are thrown away (the same seed
        and pace give the same events, so the pass that fits is the one iterated)."""
        config = self.config
        pace = Pace()
        if config.horizon_days is None or config.events is None:
            return pace
        while True:
            run = _Run()
            for _ in self._events(pace, run, {}):
                pass
            if not run.reached_horizon:  # all the events asked for, or everyone dropped out
                return pace
            pace = pace.faster(config.events / max(run.emitted, 1))

    def _events(
        self, pace: Pace, run: _Run, stats: dict[str, int]
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        config = self.config
        rng = random.Random(config.seed)
        customers = [self._new_customer(index, rng, pace) for index in range(config.customers)]
        horizon_s = None if config.horizon_days is None else config.horizon_days * SECONDS_PER_DAY
        queue: list[_Due] = []
        sequence = 0

        def schedule(at: float, action: str, customer: int, **payload: Any) -> None:
            nonlocal sequence
            sequence += 1
            heapq.heappush(queue, _Due(at, sequence, action, customer, payload))

        for index in range(config.customers):
            schedule(rng.uniform(0, config.acquisition_days) * SECONDS_PER_DAY, "purchase", index)

        while queue and (config.events is None or run.emitted < config.events):
            due = heapq.heappop(queue)
            if horizon_s is not None and due.at >= horizon_s:
                run.reached_horizon = True  # and everything still queued is later
                return
            customer = customers[due.customer]
            event_id = f"sim-{config.seed}-{run.emitted:09d}"
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
            stats[due.action] = stats.get(due.action, 0) + 1
            run.emitted += 1

    # -- pieces ----------------------------------------------------------------------------------

    def _new_customer(self, index: int, rng: random.Random, pace: Pace) -> _Customer:
        population = self.config.population
        return _Customer(
            customer_id=f"c-{index:07d}",
            rate_per_day=rng.gammavariate(population.r, pace.frequency / population.alpha),
            dropout=rng.betavariate(population.a, population.b * pace.loyalty * pace.frequency),
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
