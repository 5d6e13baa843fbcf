"""The core's events match the Avro contract both ways; states survive their bytes."""

from __future__ import annotations

from dataclasses import fields

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.contract.codec import Codec
from streams.core import (
    INPUT_EVENTS,
    ChurnRiskChanged,
    InputEvent,
    LineItem,
    OutputEvent,
    PointsExpired,
    RewardEarned,
    TierChanged,
    TierDowngradeWarning,
    new_customer,
    state_from_bytes,
    state_to_bytes,
)
from streams.core.codec import StateDecodeError
from streams.core.state import CustomerState, StateDraft, freeze, thaw
from tests.core.factories import (
    at,
    coffee,
    complaint,
    fold,
    give_back,
    nps,
    purchase,
    resolved,
)


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec()


def everything_happens() -> tuple[list[InputEvent], tuple[CustomerState, tuple[OutputEvent, ...]]]:
    events: list[InputEvent] = [
        purchase("p1", 0, 160000, coffee(6)),
        give_back("r1", 1, "p1", 10000, coffee(1)),
        nps("n1", 2, 4),
        complaint("k1", 3, "c-1"),
        resolved("k2", 10, "c-1"),
        purchase("p2", 20, 500),
        give_back("r2", 21, "p2"),
    ]
    return events, fold(events, until=at(800))


def test_every_output_kind_encodes_with_the_contract_and_decodes_equal(codec: Codec) -> None:
    _, (_, outputs) = everything_happens()
    kinds = {type(output) for output in outputs}
    assert kinds == {
        TierChanged,
        TierDowngradeWarning,
        ChurnRiskChanged,
        RewardEarned,
        PointsExpired,
    }
    for output in outputs:
        record = output.to_record()
        decoded = codec.decode(codec.encode(output.SCHEMA, record))
        # the codec names schemas by full or short name; both end in the record's name
        assert decoded.schema_name.rsplit(".", 1)[-1] == output.SCHEMA.rsplit(".", 1)[1]
        assert decoded.record == record
    roles = {type(o).__name__: o.TOPIC_ROLE for o in outputs}
    assert roles["ChurnRiskChanged"] == "churn_risk"
    assert roles["PointsExpired"] == roles["RewardEarned"] == "rewards"


def test_input_events_come_from_decoded_contract_records(codec: Codec) -> None:
    events, _ = everything_happens()
    assert set(INPUT_EVENTS) == {
        "loyalty.v1.Purchase",
        "loyalty.v1.Return",
        "loyalty.v1.NpsResponse",
        "loyalty.v1.ComplaintOpened",
        "loyalty.v1.ComplaintResolved",
    }
    for event in events:
        name = f"loyalty.v1.{type(event).__name__}"
        record = {
            f.name: (
                [_item(item) for item in value]
                if isinstance(value := getattr(event, f.name), tuple)
                else value
            )
            for f in fields(event)
        }
        decoded = codec.decode(codec.encode(name, record))
        assert INPUT_EVENTS[name](decoded.record) == event


def _item(item: LineItem) -> dict[str, object]:
    return {f.name: getattr(item, f.name) for f in fields(item)}


def test_a_state_survives_its_bytes_and_stays_small() -> None:
    _, (state, _) = everything_happens()
    data = state_to_bytes(state)
    assert state_from_bytes(data) == state
    assert state_from_bytes(state_to_bytes(new_customer("x"))) == new_customer("x")
    assert len(data) < 200


def test_uuid_like_ids_front_coded_keep_a_regular_customer_small() -> None:
    events = [purchase(f"file-0123456789abcdef0123-{i}", 7 * i, 1500) for i in range(12)]
    state, _ = fold(events)
    data = state_to_bytes(state)
    assert state_from_bytes(data) == state
    assert len(data) <= 300


def test_broken_bytes_are_refused_with_a_reason() -> None:
    data = state_to_bytes(fold([purchase("p1", 0, 100)])[0])
    with pytest.raises(StateDecodeError, match="format"):
        state_from_bytes(b"\x09" + data[1:])
    with pytest.raises(StateDecodeError):
        state_from_bytes(data[:-3])


def test_the_draft_copies_every_field_of_the_state() -> None:
    names = list(CustomerState._fields)
    assert sorted(StateDraft.__slots__) == sorted(names)
    state, _ = everything_happens()[1][0], None
    assert freeze(thaw(state)) == state


def test_output_ids_are_uuid5_of_customer_kind_and_cause() -> None:
    import uuid

    from streams.core.events import _OUTPUT_NAMESPACE, output_event_id

    for customer, kind, cause in [
        ("c-1", "tier", "p1"),
        ("ü", "punch:coffee:3", "due:x"),
        *[("", "", "")],
    ]:
        expected = uuid.uuid5(_OUTPUT_NAMESPACE, f"{customer}\x1f{kind}\x1f{cause}")
        assert output_event_id(customer, kind, cause) == str(expected)
    assert output_event_id("c-1", "tier", "p1") != output_event_id("c-2", "tier", "p1")


ids = st.one_of(
    st.uuids().map(str),
    st.text(min_size=1, max_size=40),
    st.integers(0, 10**6).map(lambda n: f"file-0123456789abcdef0123-{n}"),
)
times = st.integers(-(10**12), 4 * 10**12)
days = st.integers(-20000, 40000)
counts = st.integers(0, 10**9)


@settings(max_examples=300, deadline=None)
@given(
    customer_id=st.text(min_size=1, max_size=20),
    optional_ms=st.lists(st.none() | times, min_size=4, max_size=4),
    optional_days=st.lists(st.none() | days, min_size=3, max_size=3),
    numbers=st.lists(counts, min_size=6, max_size=6),
    spend_days=st.lists(st.tuples(days, st.integers(0, 10**9)), max_size=30),
    recent_ids=st.lists(ids, max_size=8, unique=True),
    purchases=st.lists(
        st.tuples(
            ids, times, counts, counts, st.lists(counts, max_size=2),
            st.none() | st.integers(0, 5), st.none() | times,
        ),
        max_size=12,
    ),
    complaints=st.lists(st.tuples(st.text(max_size=10), times, st.booleans()), max_size=3),
    nps_score=st.none() | st.integers(0, 10),
)  # fmt: skip
def test_any_state_survives_its_bytes(
    customer_id: str,
    optional_ms: list[int | None],
    optional_days: list[int | None],
    numbers: list[int],
    spend_days: list[tuple[int, int]],
    recent_ids: list[str],
    purchases: list[tuple[str, int, int, int, list[int], int | None, int | None]],
    complaints: list[tuple[str, int, bool]],
    nps_score: int | None,
) -> None:
    from streams.core.state import OpenComplaint, PunchCardStamps, PurchaseRecord, SpendDay

    state = CustomerState(
        customer_id=customer_id,
        tier=numbers[0] % 4,
        requalify_ms=optional_ms[0],
        warned_ms=optional_ms[1],
        points=numbers[1],
        last_purchase_ms=optional_ms[2],
        lifetime_spend_minor=numbers[2],
        receipts=numbers[3],
        visits=numbers[4],
        first_visit_day=optional_days[0],
        last_visit_day=optional_days[1],
        spend_days=tuple(SpendDay(day, spend) for day, spend in sorted(spend_days)),
        recent_checks=tuple(numbers[:3]),
        punch_cards=(PunchCardStamps(numbers[5], numbers[0]),),
        purchases=tuple(
            PurchaseRecord(i, at, left, pts, tuple(stamps), up, None if up is None else before)
            for i, at, left, pts, stamps, up, before in purchases
        ),
        nps_score=nps_score,
        nps_ms=optional_ms[3],
        complaints=tuple(OpenComplaint(*complaint) for complaint in complaints),
        churn_level=numbers[0] % 3,
        churn_day=optional_days[2],
        recent_ids=tuple(recent_ids),
    )
    assert state_from_bytes(state_to_bytes(state)) == state
