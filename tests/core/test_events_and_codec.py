"""The core's events match the Avro contract both ways; states survive their bytes."""

from __future__ import annotations

from dataclasses import fields

import pytest

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
