"""What the worker's read API answers, apart from Faust: functions from the stored customers
(key and envelope bytes, as the table holds them) and a query to a JSON-ready dict. `web`
wires them to HTTP routes; tests call them with a dict for a table.

- A customer is shown as `loyalty replay` shows one (`streams.tools.replay.state_line`), after
  advancing a copy of the stored state to `as_of` (the table is not written), with what the
  shell knows beside it: its partition, the next offsets applied per source, when the core
  says something is next due.
- Pages go in customer-id order (bytes of the UTF-8 key); the cursor is the last id of the
  previous page, opaque to clients (base64url). A customer created behind the cursor while a
  client pages is not in that walk; none is ever given twice.
- Statistics describe every customer as of one moment, as the replay would."""

from __future__ import annotations

import base64
import binascii
import heapq
import re
from collections import Counter
from collections.abc import Collection, Iterable
from datetime import UTC, datetime
from typing import Any

from streams.core import CustomerState, Program, advance, describe, net_promoter_score
from streams.core.events import from_ms
from streams.tools.replay import parse_as_of, state_line
from streams.worker.envelope import EnvelopeError, StoredCustomer
from streams.worker.ordering import Source

DEFAULT_PAGE = 100
MAX_PAGE = 1000
# bounds on what a client may send, so that no query costs more than a page does: a cursor
# is a customer id in base64url, and no id or moment of ours comes near these lengths
MAX_CUSTOMER_ID = 256
MAX_CURSOR = 4 * MAX_CUSTOMER_ID // 3 + 4
MAX_AS_OF = 64
_CURSOR_ALPHABET = re.compile(r"[A-Za-z0-9_-]*")


class QueryError(ValueError):
    """A request this API answers with an error: its HTTP status and a message for people."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "status": self.status}


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def as_of_query(text: str | None) -> datetime | None:
    """`?as_of=` as a moment; None when not given; 400 when not a date or date-time."""
    if text is None or not text.strip():
        return None
    if len(text) > MAX_AS_OF:
        raise QueryError(400, f"as_of is {len(text)} characters long: give a date or date-time")
    try:
        return parse_as_of(text)
    except ValueError as error:
        raise QueryError(400, f"as_of: {error}") from None


def last_event_moment(state: CustomerState) -> datetime | None:
    """The latest event time the state remembers: the fallback moment to show a customer at
    when the partition's clock is not known (an event-clock worker that has read nothing since
    it started)."""
    times = [state.last_purchase_ms, state.nps_ms, *(c.opened_ms for c in state.complaints)]
    known = [ms for ms in times if ms is not None]
    return from_ms(max(known)) if known else None


def default_as_of(
    state: CustomerState, clock_ms: int | None, live_clock: bool, now: datetime
) -> tuple[datetime, str]:
    """The moment to show a customer at when the client gives none, and where it came from:
    the partition's clock (the latest event time applied there); in live mode at least the
    wall clock, since that is what the partition's clock follows when idle; with no clock,
    the customer's own latest event."""
    clock = from_ms(clock_ms) if clock_ms else None
    if live_clock:
        return (max(clock, now), "partition_clock") if clock and clock > now else (now, "now")
    if clock is not None:
        return clock, "partition_clock"
    own = last_event_moment(state)
    return (own, "customer_last_event") if own is not None else (now, "now")


def customer_view(
    stored_bytes: bytes, as_of: datetime, program: Program, as_of_from: str = "query"
) -> dict[str, Any]:
    """One customer as `GET /customers/{id}` shows it."""
    stored = StoredCustomer.from_bytes(stored_bytes)
    state, _ = advance(stored.state, as_of, program)
    return {
        "state": state_line(state, as_of, program),
        "partition": stored.partition,
        "next_offsets": {source.name.lower(): stored.next_offsets[source] for source in Source},
        "next_due": _iso(None if stored.next_due_ms is None else from_ms(stored.next_due_ms)),
        "as_of_from": as_of_from,
    }


def customer_response(
    customer_id: str,
    stored_bytes: bytes | None,
    program: Program,
    *,
    as_of: datetime | None,
    clock_ms: int | None,
    live_clock: bool,
    now: datetime | None = None,
) -> dict[str, Any]:
    """`GET /customers/{id}` for a customer this worker owns; QueryError 404 if unknown."""
    if stored_bytes is None:
        raise QueryError(404, f"no customer {customer_id!r}: no event of theirs was applied")
    try:
        if as_of is not None:
            return customer_view(stored_bytes, as_of, program)
        stored = StoredCustomer.from_bytes(stored_bytes)
        moment, source = default_as_of(stored.state, clock_ms, live_clock, now or datetime.now(UTC))
        return customer_view(stored_bytes, moment, program, source)
    except (EnvelopeError, ValueError) as error:
        raise QueryError(
            500, f"customer {customer_id!r}: stored state unreadable: {error}"
        ) from None


# ---- pages -------------------------------------------------------------------------------------


def encode_cursor(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> bytes | None:
    if cursor is None or cursor == "":
        return None
    if len(cursor) > MAX_CURSOR or not _CURSOR_ALPHABET.fullmatch(cursor):
        # base64 decoding skips characters outside its alphabet: refuse them, not ignore them
        raise QueryError(400, "cursor is not one this API gave out")
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise QueryError(400, f"cursor {cursor!r} is not one this API gave out") from None


def customer_id_path(customer_id: str) -> str:
    """The id in `/customers/{id}`, bounded (400 past MAX_CUSTOMER_ID characters)."""
    if len(customer_id) > MAX_CUSTOMER_ID:
        raise QueryError(
            400, f"customer id is {len(customer_id)} characters long: at most {MAX_CUSTOMER_ID}"
        )
    return customer_id


def page_limit(text: str | None) -> int:
    if text is None or text == "":
        return DEFAULT_PAGE
    try:
        limit = int(text)
    except ValueError:
        raise QueryError(400, f"limit {text!r} is not a whole number") from None
    if not 1 <= limit <= MAX_PAGE:
        raise QueryError(400, f"limit {limit} is out of range: give 1 to {MAX_PAGE}")
    return limit


def customers_page(
    items: Iterable[tuple[bytes, bytes]],
    owned_partitions: Collection[int],
    program: Program,
    *,
    cursor: str | None,
    limit: int,
    as_of: datetime,
) -> dict[str, Any]:
    """`GET /customers`: the next `limit` customers after the cursor, of the partitions this
    worker owns. One scan of the local table (O(customers) per page: fine for tens of
    thousands; a seek per partition store would make it O(limit))."""
    after = decode_cursor(cursor)
    wanted = (
        (key, value)
        for key, value in items
        if (after is None or key > after)
        and StoredCustomer.header_of(value).partition in owned_partitions
    )
    # one more than asked: whether there is a next page, without a second scan
    chosen = heapq.nsmallest(limit + 1, wanted, key=lambda item: item[0])
    more = len(chosen) > limit
    chosen = chosen[:limit]
    customers = []
    for _key, value in chosen:
        stored = StoredCustomer.from_bytes(value)
        state, _ = advance(stored.state, as_of, program)
        customers.append({**state_line(state, as_of, program), "partition": stored.partition})
    return {
        "customers": customers,
        "next_cursor": encode_cursor(chosen[-1][0]) if more else None,
        "as_of": _iso(as_of),
        "partitions": sorted(owned_partitions),
    }


# ---- statistics --------------------------------------------------------------------------------


def customer_stats(
    values: Iterable[bytes],
    owned_partitions: Collection[int],
    program: Program,
    as_of: datetime,
) -> dict[str, Any]:
    """`GET /stats` over the customers of the owned partitions, each as of `as_of`: counts by
    tier and stage, NPS over the customers' latest answers, customers at risk by churn level
    (every level but the lowest), points liability (points outstanding, after expiry up to
    as_of)."""
    tiers: Counter[str] = Counter({name: 0 for name in program.tier_names})
    stages: Counter[str] = Counter()
    levels: Counter[str] = Counter({name: 0 for name in program.churn_level_names})
    scores: list[int] = []
    customers = points = 0
    for value in values:
        stored = StoredCustomer.from_bytes(value)
        if stored.partition not in owned_partitions:
            continue
        state, _ = advance(stored.state, as_of, program)
        view = describe(state, as_of, program)
        customers += 1
        tiers[view.tier] += 1
        stages[view.stage] += 1
        levels[view.churn_level] += 1
        points += view.points
        if view.nps_score is not None:
            scores.append(view.nps_score)
    lowest = program.churn_level_names[0]
    nps = net_promoter_score(scores, program)
    return {
        "as_of": _iso(as_of),
        "partitions": sorted(owned_partitions),
        "customers": customers,
        "tiers": dict(tiers),
        "stages": dict(sorted(stages.items())),
        "churn_levels": dict(levels),
        "at_risk": {level: n for level, n in levels.items() if level != lowest},
        "at_risk_total": sum(n for level, n in levels.items() if level != lowest),
        "nps": None if nps is None else round(nps, 2),
        "nps_answers": len(scores),
        "points_liability": points,
        "currency": program.currency,
    }
