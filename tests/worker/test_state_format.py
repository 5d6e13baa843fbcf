"""State format versioning: a worker reads what the previous release stored.

The fixtures under `fixtures/` are the table values one customer had in releases of this
project, written by that release's code and committed unchanged ever since: envelope format 1
(no clock) and 2 (with the partition's clock), each around the core's state bytes. A new build
must read them to the same customer and carry on from them exactly as a fold that never
stopped. When the format changes, add a fixture of the new format next to these (run this
module: `python -m tests.worker.test_state_format NAME`) and never rewrite the old ones."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from streams.broker import TopicNames
from streams.contract import Codec, make_codec
from streams.core import CustomerState, apply, state_to_bytes
from streams.core.events import InputEvent, OutputEvent
from streams.program import load_program
from streams.settings import DEFAULT_RULES, Settings
from streams.tools.replay import parse_as_of, state_line
from streams.tools.simulate import SimulationConfig
from streams.worker.envelope import FORMAT, EnvelopeError, RecentStates, StoredCustomer
from streams.worker.processor import Processor
from tests.worker.simulated import simulated_log

FIXTURES = Path(__file__).parent / "fixtures"
PROGRAM = load_program(DEFAULT_RULES)
PARTITIONS = 3
# the simulation the fixtures were written from: without the window simulations now keep to
# (its events run to 2027-06-20), so that the customer's events after the cut are the same
SIMULATION = SimulationConfig(customers=40, events=1200, seed=17, horizon_days=None)
CUSTOMER = "c-0000034"  # purchases, returns, NPS answers and complaints: most fields set


def customer_events(codec: Codec) -> list[InputEvent]:
    """The customer's events in log order, decoded as the worker decodes them."""
    processor = Processor(PROGRAM, codec, TopicNames("t"), PARTITIONS)
    records = simulated_log(codec, TopicNames("t"), PARTITIONS, SIMULATION)
    events = []
    for record in records:
        checked = processor.check(record)
        if checked.event is not None and checked.event.customer_id == CUSTOMER:
            events.append(checked.event)
    return events


def fold(events: list[InputEvent]) -> CustomerState | None:
    from streams.core import new_customer

    state: CustomerState | None = None
    for event in events:
        state = state or new_customer(event.customer_id)
        state, _ = apply(state, event, PROGRAM)
    return state


@pytest.fixture(scope="module")
def codec() -> Codec:
    return make_codec(Settings())


def expected() -> dict[str, Any]:
    result: dict[str, Any] = json.loads((FIXTURES / "stored-customer.json").read_text())
    return result


@pytest.mark.parametrize("name", ["stored-customer-v1", "stored-customer-v2"])
def test_a_stored_customer_of_an_earlier_format_reads_to_the_same_customer(name: str) -> None:
    facts = expected()
    stored = StoredCustomer.from_bytes(bytes.fromhex((FIXTURES / f"{name}.hex").read_text()))
    assert stored.partition == facts["partition"]
    assert list(stored.next_offsets) == facts["next_offsets"]
    assert stored.next_due_ms == facts["next_due_ms"]
    assert stored.clock_ms == (facts["clock_ms"] if name.endswith("v2") else 0)
    as_of = parse_as_of(facts["as_of"])
    assert state_line(stored.state, as_of, PROGRAM) == facts["state"]


@pytest.mark.parametrize("name", ["stored-customer-v1", "stored-customer-v2"])
def test_a_stored_customer_of_an_earlier_format_carries_on_as_a_fold_that_never_stopped(
    name: str, codec: Codec
) -> None:
    """The events after the fixture's cut, applied to the state read from it, give the state
    and outputs of one fold over all of them."""
    facts = expected()
    stored = StoredCustomer.from_bytes(bytes.fromhex((FIXTURES / f"{name}.hex").read_text()))
    events = customer_events(codec)
    done = facts["events_applied"]
    assert 0 < done < len(events)
    state = stored.state
    outputs: list[OutputEvent] = []
    for event in events[done:]:
        state, emitted = apply(state, event, PROGRAM)
        outputs.extend(emitted)
    reference = fold(events)
    assert reference is not None
    assert state == reference
    once: list[OutputEvent] = []
    replayed = fold(events[:done])
    assert replayed is not None
    for event in events[done:]:
        replayed, emitted = apply(replayed, event, PROGRAM)
        once.extend(emitted)
    assert outputs == once and outputs  # some outputs after the cut, the same ids


def test_the_current_format_writes_what_it_reads() -> None:
    """Read from the oldest fixture and written back, a customer is in the current format
    (the clock unknown), and its state bytes are what this build writes for that state."""
    stored = StoredCustomer.from_bytes(
        bytes.fromhex((FIXTURES / "stored-customer-v1.hex").read_text())
    )
    again = StoredCustomer.from_bytes(stored.to_bytes())
    assert stored.to_bytes()[0] == FORMAT
    assert again == stored
    assert state_to_bytes(stored.state) == stored.state_bytes


def test_a_format_from_a_newer_release_is_refused_by_name() -> None:
    data = bytes.fromhex((FIXTURES / "stored-customer-v2.hex").read_text())
    with pytest.raises(EnvelopeError, match="unknown stored customer format"):
        StoredCustomer.from_bytes(bytes((FORMAT + 1,)) + data[1:])


def _varints(*values: int) -> bytes:
    out = bytearray()
    for value in values:
        rest = value
        while rest >= 0x80:
            out.append((rest & 0x7F) | 0x80)
            rest >>= 7
        out.append(rest)
    return bytes(out)


def write_fixtures() -> None:  # pragma: no cover - run by hand when a format is added
    """Writes the fixtures of this build's format from the simulated customer."""
    from streams.worker.envelope import stored as envelope

    codec = make_codec(Settings())
    events = customer_events(codec)
    done = len(events) * 2 // 3
    state = fold(events[:done])
    assert state is not None
    clock = max(e.occurred_at for e in events[:done])
    # a month after the cut: P(alive), the churn level and overdue complaints have moved on
    as_of = (clock + timedelta(days=31)).replace(hour=0, minute=0, second=0, microsecond=0)
    from streams.core import next_due
    from streams.core.events import to_ms

    due = next_due(state, PROGRAM)
    due_ms = None if due is None else to_ms(due)
    offsets = (done * 3 + 7, 41)
    v2 = envelope(state, 1, offsets, due_ms, to_ms(clock)).to_bytes()
    v1 = bytes((1,)) + _varints(1, *offsets, 0 if due_ms is None else due_ms + 1)
    v1 += state_to_bytes(state)
    (FIXTURES / "stored-customer-v2.hex").write_text(v2.hex() + "\n")
    (FIXTURES / "stored-customer-v1.hex").write_text(v1.hex() + "\n")
    facts = {
        "customer": CUSTOMER,
        "events_applied": done,
        "partition": 1,
        "next_offsets": list(offsets),
        "next_due_ms": due_ms,
        "clock_ms": to_ms(clock),
        "as_of": as_of.isoformat().replace("+00:00", "Z"),
        "state": state_line(state, as_of, PROGRAM),
    }
    (FIXTURES / "stored-customer.json").write_text(json.dumps(facts, indent=2) + "\n")


if __name__ == "__main__":  # pragma: no cover
    write_fixtures()
    print(f"wrote fixtures for {sys.argv[1:] or 'the current format'} in {FIXTURES}")


def test_recent_states_give_back_what_was_stored_and_forget_beyond_two_generations() -> None:
    recent = RecentStates(capacity=2)
    states = [CustomerState(f"c-{n}", points=n) for n in range(5)]
    encoded = [state_to_bytes(state) for state in states]
    for data, state in zip(encoded, states, strict=True):
        recent.remember(data, state)
    assert len(recent._young) + len(recent._old) <= 4  # bounded
    assert recent.decode(encoded[4]) is states[4]  # the very object: not decoded again
    assert encoded[0] not in recent._young and encoded[0] not in recent._old  # forgotten
    assert recent.decode(encoded[0]) == states[0]  # decoded again, equal
