"""The core's limits (streams/core/limits.py, tests/core/test_limits.py) in both replay
engines: each hostile case of tests/core/test_limits.py as a JSON Lines file, replayed by
the native and the Python engine, gives the same state lines, output events and summary
(rejected rows and contract violations with their messages). `--engine native` never falls
back, so each case is also folded natively, not refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from streams.core import Program
from streams.core.limits import (
    AVRO_LONG_MAX,
    MAX_ID_CHARS,
    MAX_OPEN_COMPLAINTS,
    MAX_RETURNABLE_PURCHASES,
    MAX_REWARDS_PER_PURCHASE,
)
from streams.tools.replay import parse_as_of
from tests.core.factories import program, program_with
from tests.native.engines import Replayed, assert_engines_agree

pytest.importorskip("loyalty_native")

DAY0 = datetime(2025, 1, 6, 12, tzinfo=UTC)
AS_OF = parse_as_of("2027-06-01")


def iso(day: float, hour: float = 0) -> str:
    moment = DAY0 + timedelta(days=day, hours=hour)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def lines(items: tuple[tuple[str, int], ...]) -> list[dict[str, Any]]:
    return [
        {"sku": f"sku-{category}", "category": category, "quantity": quantity}
        | {"unit_price_minor": 360}
        for category, quantity in items
    ]


def buy(
    event_id: str,
    day: float,
    total_minor: int,
    *items: tuple[str, int],
    customer: str = "c-1",
    when: str | None = None,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "type": "purchase",
        "event_id": event_id,
        "customer_id": customer,
        "store_id": "s-1",
        "occurred_at": when or iso(day),
        "currency": "EUR",
        "total_minor": total_minor,
    }
    if items:
        row["items"] = lines(items)
    return row


def give_back(
    event_id: str,
    day: float,
    purchase_event_id: str,
    amount_minor: int | None = None,
    *items: tuple[str, int],
    customer: str = "c-1",
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "type": "return",
        "event_id": event_id,
        "customer_id": customer,
        "occurred_at": iso(day),
        "purchase_event_id": purchase_event_id,
        "currency": "EUR",
    }
    if amount_minor is not None:
        row["amount_minor"] = amount_minor
    if items:
        row["items"] = lines(items)
    return row


def opened(event_id: str, day: float, complaint_id: str, customer: str = "c-1") -> dict[str, Any]:
    return {
        "type": "complaint_opened",
        "event_id": event_id,
        "customer_id": customer,
        "occurred_at": iso(day),
        "complaint_id": complaint_id,
    }


def resolved(event_id: str, day: float, complaint_id: str) -> dict[str, Any]:
    return {**opened(event_id, day, complaint_id), "type": "complaint_resolved"}


def nps(event_id: str, day: float, score: int, customer: str = "c-1") -> dict[str, Any]:
    return {
        "type": "nps",
        "event_id": event_id,
        "customer_id": customer,
        "occurred_at": iso(day),
        "score": score,
    }


def both(rows: list[dict[str, Any]], tmp_path: Path, prog: Program | None = None) -> Replayed:
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return assert_engines_agree(events, prog or program(), AS_OF, tmp_path)


def reasons(replayed: Replayed) -> list[str]:
    return [problem.message for problem in replayed.summary.violations]


def rejected(replayed: Replayed) -> list[str]:
    return [problem.message for problem in replayed.summary.rejected_rows]


def test_event_times_before_1970_and_from_9000_on(tmp_path: Path) -> None:
    rows = [
        buy("p1", 0, 1000),
        buy("p2", 0, 1000, when="1969-12-31T23:59:59.999Z"),
        buy("p3", 0, 1000, when="0001-01-01T00:00:00Z"),
        buy("p4", 0, 1000, when="9000-01-01T00:00:00Z"),
        buy("p5", 0, 1000, when="9999-12-31T23:59:59.999Z"),
        {**buy("p6", 0, 1000), "occurred_at": -1},  # epoch milliseconds
        {**nps("n1", 0, 9), "occurred_at": "8999-12-31T23:59:59.999Z"},  # after as-of
        buy("p7", 0, 1000, when="1970-01-01T00:00:00Z"),
        # a copy of an applied purchase's id at a bad time: refused for its time
        buy("p1", 0, 1000, when="1960-01-01T00:00:00Z"),
    ]
    replayed = both(rows, tmp_path)
    messages = rejected(replayed)
    assert sum("is before 1970-01-01" in message for message in messages) == 4
    assert sum("is not before 9000-01-01" in message for message in messages) == 2
    assert replayed.summary.applied == 2 and replayed.summary.after_as_of == 1


@pytest.mark.parametrize("field", ["event_id", "customer_id", "purchase_event_id", "complaint_id"])
def test_ids_of_300_characters_are_refused_and_of_256_kept(field: str, tmp_path: Path) -> None:
    longest, too_long = "i" * MAX_ID_CHARS, "x" * 300
    rows = []
    for name, value in (("ok", longest), ("long", too_long)):
        rows += [
            buy(f"p-{name}", 0, 1000),
            give_back(f"r-{name}", 1, f"p-{name}", 100),
            opened(f"k-{name}", 1, f"c-{name}"),
            resolved(f"z-{name}", 2, f"c-{name}"),
        ]
        for row in rows[-4:]:
            if field in row:
                row[field] = value
                if field == "event_id" and row["type"] == "purchase":
                    rows[-3]["purchase_event_id"] = value
    replayed = both(rows, tmp_path)
    assert rejected(replayed)
    assert all(f"{field} is 300 characters long" in m for m in rejected(replayed))
    # a 256-character purchase id names no purchase made: the one violation
    expected = ["is unknown for this customer"] if field == "purchase_event_id" else []
    assert [m.split(", past")[0][-28:] for m in reasons(replayed)] == expected


def test_lifetime_spend_past_an_avro_long(tmp_path: Path) -> None:
    rows = [
        buy("p1", 0, AVRO_LONG_MAX),
        buy("p2", 1, 1),
        buy("p3", 1, AVRO_LONG_MAX),
        give_back("r1", 1, "p1", 10),
        buy("p4", 2, 10),
        buy("p5", 3, 1),
        {**buy("p6", 3, 1), "total_minor": -(2**63)},  # no Avro long: the reader refuses it
        {**buy("p7", 3, 1), "total_minor": 2**63},
    ]
    replayed = both(rows, tmp_path)
    assert sum("would take the customer's lifetime spend past" in m for m in reasons(replayed)) == 3
    assert len(rejected(replayed)) == 2


def test_points_balance_past_an_avro_long(tmp_path: Path) -> None:
    # a currency without minor units: one point per unit, two at platinum
    prog = program_with(currency_exponent=0)
    rows = [
        buy("p1", 0, 2**62),
        buy("p2", 1, 2**61),  # 2**62 points more: refused
        buy("p3", 1, 2**61 - 1),  # to AVRO_LONG_MAX - 1
        buy("p4", 2, 1),  # 2 points: refused
        # a year and more on the points have expired and the tier has gone: both are what
        # the check sees, not the state before time advanced
        buy("p5", 500, 2**61),
        buy("q1", 0, 2**62, customer="c-2"),
        buy("q2", 1, 2**62, customer="c-2"),  # lifetime past the bound first
        buy("w1", 0, 2**62 + 2**61, customer="c-3"),  # as many points
        buy("w2", 1, 2**60, customer="c-3"),  # 2**61 points at platinum: refused
    ]
    replayed = both(rows, tmp_path, prog)
    messages = reasons(replayed)
    assert f"total_minor {2**61} would earn {2**62} points" in messages[0]
    assert sum("taking the balance past" in m for m in messages) == 3
    assert sum("lifetime spend past" in m for m in messages) == 1
    assert replayed.summary.applied == 5


def test_a_purchase_filling_more_than_1000_punch_cards(tmp_path: Path) -> None:
    stamps = 5  # the shipped program's coffee card
    rows = [
        buy("p1", 0, 1000, ("coffee", stamps * MAX_REWARDS_PER_PURCHASE)),  # exactly 1000
        buy("p2", 1, 1000, ("coffee", stamps * MAX_REWARDS_PER_PURCHASE + stamps)),
        buy("p3", 2, 1000, ("coffee", 2), ("coffee", 10_000_000)),
        buy("p4", 3, 1000, ("coffee", AVRO_LONG_MAX), ("coffee", AVRO_LONG_MAX)),
        buy("p5", 4, 1000, ("tea", AVRO_LONG_MAX), ("coffee", 4)),
        buy("p6", 5, 1000, ("coffee", 1)),
        give_back("r1", 6, "p5", 500, ("coffee", AVRO_LONG_MAX)),
    ]
    replayed = both(rows, tmp_path)
    messages = reasons(replayed)
    assert sum("would fill punch cards" in m for m in messages) == 3
    assert "would fill punch cards 1001 times" in messages[0]
    assert replayed.summary.outputs.get("RewardEarned", 0) >= MAX_REWARDS_PER_PURCHASE


def test_quantities_of_zero_and_below(tmp_path: Path) -> None:
    rows = [
        buy("p1", 0, 1000, ("coffee", 6)),
        buy("p2", 1, 1000, ("coffee", 0)),
        buy("p3", 1, 1000, ("tea", 2), ("coffee", -3)),
        buy("p4", 1, 1000, ("tea", -(2**63 - 1))),
        give_back("r1", 2, "p1", 100, ("coffee", -1)),
        give_back("r2", 2, "p1", 100, ("coffee", 0), ("coffee", 2)),
        give_back("r3", 2, "p1", 100, ("coffee", 1)),
        {**buy("p5", 3, 1000), "items": lines((("coffee", -(2**63)),))},  # not an Avro long
        {**buy("p6", 3, 1000), "items": [{"sku": "a", "category": "tea", "unit_price_minor": 1}]},
    ]
    replayed = both(rows, tmp_path)
    messages = reasons(replayed)
    assert "items[1].quantity 0 is below 1" in messages[0]
    assert "items[2].quantity -3 is below 1" in messages[1]
    assert sum("is below 1" in m for m in messages) == 5
    assert len(rejected(replayed)) == 1


def test_65_open_complaints(tmp_path: Path) -> None:
    rows = [buy("p0", 0, 600_000)]  # a tier with service recovery
    rows += [opened(f"k{n}", 1 + n / 100, f"c{n}") for n in range(MAX_OPEN_COMPLAINTS + 1)]
    rows += [
        opened("again", 2, "c0"),  # one already open: accepted, nothing changes
        resolved("z1", 3, "c1"),
        opened("k-new", 3.1, "c-new"),  # room again
        opened("k-more", 3.2, "c-more"),
        opened("k0", 3.3, "c-other"),  # the refused id may come again later: refused again
    ]
    replayed = both(rows, tmp_path)
    messages = reasons(replayed)
    assert len(messages) == 3
    assert all("already has 64 open complaints" in m for m in messages)


def test_more_than_1000_returnable_purchases_then_a_return_of_the_oldest(tmp_path: Path) -> None:
    count = MAX_RETURNABLE_PURCHASES + 2
    rows = [buy(f"p{n}", n * 0.01, 1000, ("coffee", 1)) for n in range(count)]
    rows += [
        give_back("r0", 20, "p0"),  # forgotten
        give_back("r1", 20, "p1", 100),  # forgotten
        give_back("r2", 20, "p2", None, ("coffee", 1)),  # kept: the oldest remembered
        give_back("r3", 20, f"p{count - 1}", 500),
        buy("p0", 21, 1000),  # a resent copy: no longer recognised as a duplicate
        buy(f"p{count - 1}", 21, 1000),  # still remembered: a duplicate
    ]
    replayed = both(rows, tmp_path)
    messages = reasons(replayed)
    assert len(messages) == 2
    assert all(f"older than the customer's last {MAX_RETURNABLE_PURCHASES}" in m for m in messages)
    assert replayed.summary.duplicates == 1


def test_one_event_id_under_two_customers(tmp_path: Path) -> None:
    rows = [
        buy("same", 0, 1000, customer="c-1"),
        buy("same", 0, 2000, customer="c-2"),
        give_back("same-r", 1, "same", customer="c-2"),
        give_back("same-r", 1, "same", 100, customer="c-1"),
        opened("same-k", 2, "k", customer="c-1"),
        opened("same-k", 2, "k", customer="c-2"),
        nps("same-n", 3, 3, customer="c-2"),
        nps("same-n", 3, 10, customer="c-1"),
        buy("same", 0, 1000, customer="c-1"),  # a true duplicate
    ]
    replayed = both(rows, tmp_path)
    assert replayed.summary.applied == 8 and replayed.summary.duplicates == 1
    assert replayed.summary.customers == 2
