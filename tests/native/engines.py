"""Both replay engines over one file: the files and summaries they write, side by side."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from streams.contract.event_files import record_to_row
from streams.core import (
    ComplaintOpened,
    ComplaintResolved,
    InputEvent,
    NpsResponse,
    Program,
    Purchase,
    Return,
)
from streams.tools.replay import ReplaySummary, replay

SCHEMA_OF: dict[type, str] = {
    Purchase: "loyalty.v1.Purchase",
    Return: "loyalty.v1.Return",
    NpsResponse: "loyalty.v1.NpsResponse",
    ComplaintOpened: "loyalty.v1.ComplaintOpened",
    ComplaintResolved: "loyalty.v1.ComplaintResolved",
}


def record_of(event: InputEvent) -> dict[str, Any]:
    """The contract's record of a core input event (what the simulator writes)."""
    record = {field.name: getattr(event, field.name) for field in dataclasses.fields(event)}
    if "items" in record:
        record["items"] = [dataclasses.asdict(item) for item in record["items"]]
    return record


def row_of(event: InputEvent) -> dict[str, Any]:
    """The JSON Lines row `EventFileWriter` writes for the event."""
    return record_to_row(SCHEMA_OF[type(event)], record_of(event))


@dataclass(frozen=True)
class Replayed:
    summary: ReplaySummary
    states: bytes
    outputs: bytes


def replay_with(
    engine: str,
    events: Path,
    program: Program,
    as_of: datetime,
    scratch: Path,
    default_type: str | None = None,
) -> Replayed:
    out = scratch / engine / "states.jsonl"
    events_out = scratch / engine / "outputs.jsonl"
    summary = replay(
        events,
        program,
        as_of,
        out,
        events_out=events_out,
        default_type=default_type,
        engine=engine,  # type: ignore[arg-type]
    )
    return Replayed(summary, out.read_bytes(), events_out.read_bytes())


def assert_engines_agree(
    events: Path,
    program: Program,
    as_of: datetime,
    scratch: Path,
    default_type: str | None = None,
) -> Replayed:
    """Replays with both engines; the state lines, the output events and the summaries are
    the same (the files byte for byte). Returns the native replay."""
    native = replay_with("native", events, program, as_of, scratch, default_type)
    python = replay_with("python", events, program, as_of, scratch, default_type)
    assert native.summary == python.summary
    if native.states != python.states:
        _first_difference("state lines", native.states, python.states)
    if native.outputs != python.outputs:
        _first_difference("output events", native.outputs, python.outputs)
    return native


def _first_difference(what: str, native: bytes, python: bytes) -> None:
    for number, (ours, theirs) in enumerate(
        zip(native.splitlines(), python.splitlines(), strict=False), start=1
    ):
        if ours != theirs:
            raise AssertionError(
                f"{what} differ at line {number}:\n native {ours!r}\n python {theirs!r}"
            )
    raise AssertionError(
        f"{what}: {len(native.splitlines())} native lines, {len(python.splitlines())} python"
    )
