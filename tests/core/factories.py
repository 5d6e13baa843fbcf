"""Small builders for core tests: events at a day and hour of a fixed calendar, the shipped
program, and a fold over a list of events that collects outputs (and skips violations, as the
worker dead-letters them)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import TypeVar

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
    RuleViolation,
    advance,
    apply,
    new_customer,
)
from streams.program import load_program

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]
DAY0 = datetime(2025, 1, 6, tzinfo=UTC)  # a Monday
CUSTOMER = "c-1"


@cache
def program() -> Program:
    return load_program(REPO / "loyalty-program.toml")


def program_with(**changes: object) -> Program:
    return replace(program(), **changes)  # type: ignore[arg-type]


def at(day: float, hour: float = 12) -> datetime:
    return DAY0 + timedelta(days=day, hours=hour)


def coffee(quantity: int = 1) -> LineItem:
    return LineItem("latte", "coffee", quantity, 360)


def purchase(
    event_id: str,
    day: float,
    total_minor: int,
    *items: LineItem,
    hour: float = 12,
    currency: str = "EUR",
    customer_id: str = CUSTOMER,
) -> Purchase:
    return Purchase(event_id, customer_id, "s-1", at(day, hour), currency, total_minor, items)


def give_back(
    event_id: str,
    day: float,
    purchase_event_id: str,
    amount_minor: int | None = None,
    *items: LineItem,
    hour: float = 13,
    currency: str = "EUR",
) -> Return:
    return Return(
        event_id, CUSTOMER, "s-1", at(day, hour), purchase_event_id, currency, amount_minor, items
    )


def nps(event_id: str, day: float, score: int, hour: float = 12) -> NpsResponse:
    return NpsResponse(event_id, CUSTOMER, None, at(day, hour), score)


def complaint(event_id: str, day: float, complaint_id: str, hour: float = 12) -> ComplaintOpened:
    return ComplaintOpened(event_id, CUSTOMER, None, at(day, hour), complaint_id)


def resolved(event_id: str, day: float, complaint_id: str, hour: float = 12) -> ComplaintResolved:
    return ComplaintResolved(event_id, CUSTOMER, None, at(day, hour), complaint_id)


def fold(
    events: Iterable[InputEvent],
    prog: Program | None = None,
    state: CustomerState | None = None,
    until: datetime | None = None,
) -> tuple[CustomerState, tuple[OutputEvent, ...]]:
    prog = prog or program()
    state = state or new_customer(CUSTOMER)
    outputs: list[OutputEvent] = []
    for event in events:
        try:
            state, more = apply(state, event, prog)
        except RuleViolation:
            continue
        outputs.extend(more)
    if until is not None:
        state, more = advance(state, until, prog)
        outputs.extend(more)
    return state, tuple(outputs)


def of_type(outputs: Iterable[object], kind: type[T]) -> list[T]:
    return [output for output in outputs if isinstance(output, kind)]
