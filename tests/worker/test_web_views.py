"""The read API's answers, without Faust or a broker: a table of stored customers from the
worker's own loop over a simulated log, and the view functions over it."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.broker import TopicNames
from streams.contract import make_codec
from streams.core import Program, advance
from streams.core.events import from_ms, to_ms
from streams.program import load_program
from streams.settings import DEFAULT_RULES, Settings
from streams.tools.audit import reference_fold
from streams.tools.replay import state_line
from streams.tools.simulate import SimulationConfig
from streams.worker.envelope import StoredCustomer
from streams.worker.ordering import Source
from streams.worker.processor import expected_partition
from streams.worker.views import (
    MAX_PAGE,
    QueryError,
    as_of_query,
    customer_response,
    customer_stats,
    customers_page,
    page_limit,
)
from tests.worker.simulated import simulated_log

PARTITIONS = 3
TOPICS = TopicNames("t")
PROGRAM: Program = load_program(DEFAULT_RULES)


def simulated_table() -> dict[bytes, bytes]:
    codec = make_codec(Settings())
    config = SimulationConfig(customers=80, events=1200, seed=7)
    records = simulated_log(codec, TOPICS, PARTITIONS, config)
    return reference_fold(records, PROGRAM, codec, TOPICS, PARTITIONS).table


TABLE = simulated_table()
ALL_PARTITIONS = frozenset(range(PARTITIONS))


def stored(key: bytes) -> StoredCustomer:
    return StoredCustomer.from_bytes(TABLE[key])


def latest_event(value: bytes) -> datetime:
    state = StoredCustomer.from_bytes(value).state
    assert state.last_purchase_ms is not None or state.nps_ms is not None
    return from_ms(max(ms for ms in (state.last_purchase_ms, state.nps_ms) if ms is not None))


def test_the_table_has_customers_on_every_partition() -> None:
    assert len(TABLE) == 80
    assert {stored(key).partition for key in TABLE} == set(ALL_PARTITIONS)


# ---- one customer ------------------------------------------------------------------------------


def test_a_customer_at_a_given_moment_is_the_replay_line_of_the_advanced_state() -> None:
    key = sorted(TABLE)[5]
    as_of = latest_event(TABLE[key]) + timedelta(days=400)
    body = customer_response(
        key.decode(), TABLE[key], PROGRAM, as_of=as_of, clock_ms=None, live_clock=False
    )
    advanced, _ = advance(stored(key).state, as_of, PROGRAM)
    assert body["state"] == state_line(advanced, as_of, PROGRAM)
    assert body["state"]["as_of"] == as_of.isoformat().replace("+00:00", "Z")
    # 400 days of silence: the time-driven fields moved on from what is stored
    assert body["state"] != state_line(stored(key).state, as_of, PROGRAM)
    assert body["partition"] == expected_partition(key, PARTITIONS)
    assert body["next_offsets"] == {
        "purchases": stored(key).next_offsets[Source.PURCHASES],
        "feedback": stored(key).next_offsets[Source.FEEDBACK],
    }
    due_ms = stored(key).next_due_ms
    assert due_ms is not None
    assert body["next_due"] == from_ms(due_ms).isoformat().replace("+00:00", "Z")
    assert body["as_of_from"] == "query"


def test_without_as_of_an_event_clock_worker_shows_the_partition_clock() -> None:
    key = sorted(TABLE)[0]
    clock = latest_event(TABLE[key]) + timedelta(days=3, hours=5)
    body = customer_response(
        key.decode(), TABLE[key], PROGRAM, as_of=None, clock_ms=to_ms(clock), live_clock=False
    )
    assert body["as_of_from"] == "partition_clock"
    assert body["state"]["as_of"] == clock.isoformat().replace("+00:00", "Z")


def test_without_as_of_or_clock_an_event_clock_worker_shows_the_customers_last_event() -> None:
    key = sorted(TABLE)[1]
    body = customer_response(
        key.decode(),
        TABLE[key],
        PROGRAM,
        as_of=None,
        clock_ms=None,
        live_clock=False,
        now=datetime(2099, 1, 1, tzinfo=UTC),
    )
    assert body["as_of_from"] == "customer_last_event"
    assert body["state"]["as_of"] == latest_event(TABLE[key]).isoformat().replace("+00:00", "Z")


def test_a_live_worker_shows_now_unless_its_clock_is_ahead() -> None:
    key = sorted(TABLE)[2]
    now = latest_event(TABLE[key]) + timedelta(days=30)
    behind = customer_response(
        key.decode(),
        TABLE[key],
        PROGRAM,
        as_of=None,
        clock_ms=to_ms(now) - 5000,
        live_clock=True,
        now=now,
    )
    assert (behind["as_of_from"], behind["state"]["as_of"]) == (
        "now",
        now.isoformat().replace("+00:00", "Z"),
    )
    ahead = customer_response(
        key.decode(),
        TABLE[key],
        PROGRAM,
        as_of=None,
        clock_ms=to_ms(now) + 5000,
        live_clock=True,
        now=now,
    )
    assert ahead["as_of_from"] == "partition_clock"
    assert ahead["state"]["as_of"] == (now + timedelta(seconds=5)).isoformat().replace(
        "+00:00", "Z"
    )


def test_an_unknown_customer_is_a_404_naming_it() -> None:
    with pytest.raises(QueryError) as raised:
        customer_response("nobody", None, PROGRAM, as_of=None, clock_ms=None, live_clock=False)
    assert raised.value.status == 404
    assert raised.value.body() == {"error": raised.value.message, "status": 404}
    assert "'nobody'" in raised.value.message


def test_unreadable_stored_bytes_are_a_json_error_not_a_crash() -> None:
    with pytest.raises(QueryError) as raised:
        customer_response("c", b"\x09junk", PROGRAM, as_of=None, clock_ms=None, live_clock=False)
    assert raised.value.status == 500 and "unreadable" in raised.value.message


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "2026-01-01T25:00"])
def test_a_bad_as_of_is_a_400(text: str) -> None:
    with pytest.raises(QueryError) as raised:
        as_of_query(text)
    assert raised.value.status == 400 and "as_of" in raised.value.message


def test_as_of_takes_dates_and_date_times() -> None:
    assert as_of_query("2026-03-01") == datetime(2026, 3, 1, tzinfo=UTC)
    assert as_of_query("2026-03-01T12:30:00+02:00") == datetime(2026, 3, 1, 10, 30, tzinfo=UTC)
    assert as_of_query(None) is None and as_of_query("") is None


# ---- pages -------------------------------------------------------------------------------------


def walk(
    items: list[tuple[bytes, bytes]], owned: frozenset[int], limit: int, as_of: datetime
) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor = None
    while True:
        page = customers_page(items, owned, PROGRAM, cursor=cursor, limit=limit, as_of=as_of)
        pages.append([line["customer_id"] for line in page["customers"]])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) <= len(items) + 1, "the cursor does not move on"


@settings(max_examples=40, deadline=None)
@given(
    limit=st.integers(1, 30),
    owned=st.frozensets(st.integers(0, PARTITIONS - 1)),
    seed=st.integers(0, 10_000),
)
def test_paging_gives_every_owned_customer_once_in_id_order(
    limit: int, owned: frozenset[int], seed: int
) -> None:
    items = list(TABLE.items())
    random.Random(seed).shuffle(items)  # a store iterates in its own order
    pages = walk(items, owned, limit, datetime(2030, 1, 1, tzinfo=UTC))
    ids = [customer_id for page in pages for customer_id in page]
    expected = sorted(k.decode() for k in TABLE if stored(k).partition in owned)
    assert ids == expected
    assert all(len(page) == limit for page in pages[:-1])
    assert len(pages[-1]) <= limit


def test_a_page_line_is_the_replay_line_with_its_partition() -> None:
    as_of = datetime(2030, 1, 1, tzinfo=UTC)
    page = customers_page(TABLE.items(), ALL_PARTITIONS, PROGRAM, cursor=None, limit=3, as_of=as_of)
    first = min(TABLE)
    advanced, _ = advance(stored(first).state, as_of, PROGRAM)
    assert page["customers"][0] == {
        **state_line(advanced, as_of, PROGRAM),
        "partition": stored(first).partition,
    }
    assert page["partitions"] == [0, 1, 2]


@pytest.mark.parametrize("text", ["0", "-1", str(MAX_PAGE + 1), "ten", "1.5"])
def test_a_limit_out_of_range_is_a_400_saying_the_range(text: str) -> None:
    with pytest.raises(QueryError) as raised:
        page_limit(text)
    assert raised.value.status == 400
    assert str(MAX_PAGE) in raised.value.message or "whole number" in raised.value.message


def test_limit_defaults_and_bounds() -> None:
    assert page_limit(None) == 100
    assert page_limit("1") == 1 and page_limit(str(MAX_PAGE)) == MAX_PAGE


def test_a_cursor_not_given_out_is_a_400() -> None:
    with pytest.raises(QueryError) as raised:
        customers_page(
            TABLE.items(),
            ALL_PARTITIONS,
            PROGRAM,
            cursor="a",
            limit=5,
            as_of=datetime(2030, 1, 1, tzinfo=UTC),
        )
    assert raised.value.status == 400


# ---- statistics --------------------------------------------------------------------------------


def lines(values: Iterable[bytes], owned: frozenset[int], as_of: datetime) -> list[dict]:  # type: ignore[type-arg]
    found = []
    for value in values:
        customer = StoredCustomer.from_bytes(value)
        if customer.partition in owned:
            state, _ = advance(customer.state, as_of, PROGRAM)
            found.append(state_line(state, as_of, PROGRAM))
    return found


@pytest.mark.parametrize("owned", [ALL_PARTITIONS, frozenset({1}), frozenset()])
def test_stats_count_the_owned_customers_as_of_the_moment(owned: frozenset[int]) -> None:
    as_of = max(latest_event(v) for v in TABLE.values()) + timedelta(days=120)
    figures = customer_stats(TABLE.values(), owned, PROGRAM, as_of)
    shown = lines(TABLE.values(), owned, as_of)
    assert figures["customers"] == len(shown)
    assert figures["tiers"] == {
        name: sum(1 for line in shown if line["tier"] == name) for name in PROGRAM.tier_names
    }
    assert figures["stages"] == dict(sorted(Counter(line["stage"] for line in shown).items()))
    assert figures["points_liability"] == sum(line["points"] for line in shown)
    levels = Counter(line["churn_level"] for line in shown)
    assert figures["at_risk"] == {name: levels[name] for name in PROGRAM.churn_level_names[1:]}
    assert figures["at_risk_total"] == sum(levels[n] for n in PROGRAM.churn_level_names[1:])
    classes = Counter(line["nps_class"] for line in shown if line["nps_class"] is not None)
    answers = sum(classes.values())
    assert figures["nps_answers"] == answers
    if answers:
        assert figures["nps"] == round(
            100 * (classes["promoter"] - classes["detractor"]) / answers, 2
        )
    else:
        assert figures["nps"] is None


def test_stats_see_time_pass_without_events() -> None:
    last = max(latest_event(v) for v in TABLE.values())
    soon = customer_stats(TABLE.values(), ALL_PARTITIONS, PROGRAM, last)
    much_later = customer_stats(
        TABLE.values(), ALL_PARTITIONS, PROGRAM, last + timedelta(days=2000)
    )
    assert much_later["at_risk_total"] > soon["at_risk_total"]
    assert much_later["customers"] == soon["customers"] == len(TABLE)
