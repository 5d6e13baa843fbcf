"""Replay: fold a file of POS events through the core, offline, and write every customer's
state as of a moment. Marketing's "what if the gold threshold were 1,000?" over real history.

Events are applied in event-time order (stable for equal times, so file order breaks ties);
events after `as_of` are left out, and every customer is then advanced to `as_of`, so the
time-driven outputs (expiry, warnings, downgrades, churn levels) up to that moment happen too.
Rows that cannot be events and events that break the contract are counted and reported with
their line, as the worker would dead-letter them; duplicates are ignored, as the worker does.

Two engines give the same files, byte for byte: `python` (this module, the streams/core fold)
and `native` (the Rust extension built from native/, about 15 times faster: see
`streams.tools.replay_native`). `auto` takes the native one when it is built."""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal, TextIO

from streams.contract.event_files import ParsedRow, RowError, count_rows, read_event_file
from streams.core import (
    INPUT_EVENTS,
    CustomerState,
    InputEvent,
    OutputEvent,
    Program,
    RuleViolation,
    advance,
    apply,
    describe,
    new_customer,
)

Progress = Callable[[int], None]
ProgressFactory = Callable[[str, int | None], AbstractContextManager[Progress]]
Engine = Literal["auto", "native", "python"]
ENGINES: tuple[Engine, ...] = ("auto", "native", "python")


def parse_as_of(text: str) -> datetime:
    """An ISO-8601 date (its midnight UTC) or date-time (naive = UTC) as an aware datetime."""
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither an ISO date (2026-01-01) nor a date-time (2026-01-01T12:00:00Z)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Problem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class ReplaySummary:
    rows: int = 0
    applied: int = 0
    duplicates: int = 0
    after_as_of: int = 0
    customers: int = 0
    outputs: dict[str, int] = field(default_factory=dict)
    rejected_rows: list[Problem] = field(default_factory=list)
    violations: list[Problem] = field(default_factory=list)

    def describe(self) -> str:
        lines = [
            f"{self.rows:,} rows: {self.applied:,} applied, {self.duplicates:,} duplicates "
            f"ignored, {self.after_as_of:,} after --as-of left out, "
            f"{len(self.rejected_rows):,} rows rejected, "
            f"{len(self.violations):,} contract violations",
            f"{self.customers:,} customers written",
        ]
        if self.outputs:
            counts = ", ".join(f"{name} {count:,}" for name, count in sorted(self.outputs.items()))
            lines.append(f"output events: {counts}")
        return "\n".join(lines)


def read_events(
    path: Path,
    currency: str,
    default_type: str | None,
    summary: ReplaySummary,
    progress: Progress | None = None,
) -> list[tuple[InputEvent, int]]:
    """Every event of the file with its line, in event-time order (stable for equal times)."""
    events: list[tuple[InputEvent, int]] = []
    for row in read_event_file(path, default_type=default_type, currency=currency):
        summary.rows += 1
        if progress is not None:
            progress(1)
        if isinstance(row, RowError):
            summary.rejected_rows.append(Problem(row.line, row.message))
            continue
        assert isinstance(row, ParsedRow)
        events.append((INPUT_EVENTS[row.schema_name](row.record), row.line))
    events.sort(key=_sort_key)
    return events


def _sort_key(pair: tuple[InputEvent, int]) -> datetime:
    return pair[0].occurred_at


Checkpoint = Callable[[datetime, dict[str, CustomerState]], None]


def fold_events(
    events: list[tuple[InputEvent, int]],
    program: Program,
    as_of: datetime,
    summary: ReplaySummary,
    on_output: Callable[[OutputEvent], None] | None = None,
    progress: Progress | None = None,
    *,
    on_applied: Callable[[InputEvent], None] | None = None,
    checkpoints: tuple[datetime, ...] = (),
    on_checkpoint: Checkpoint | None = None,
) -> dict[str, CustomerState]:
    """Every customer's state after their events up to as_of, advanced to as_of.

    For history over time (`loyalty report`): `on_applied` sees every event that changed a
    state, and at each moment of `checkpoints` (ascending; those after as_of are ignored),
    before the first event at or after it, every state is advanced to it, as a worker does
    at due times, and `on_checkpoint(moment, states)` is called. The core makes that change
    nothing: advance(advance(s, t1), t2) == advance(s, t2) and `apply` advances first, so the
    final states and the output events (same ids, each stamped with its due time) are the
    ones without checkpoints; only the order in which `on_output` sees them differs."""
    states: dict[str, CustomerState] = {}
    pending = [moment for moment in checkpoints if moment <= as_of]
    next_checkpoint = 0
    for event, line in events:
        if progress is not None:
            progress(1)
        if event.occurred_at > as_of:
            summary.after_as_of += 1
            continue
        while next_checkpoint < len(pending) and event.occurred_at >= pending[next_checkpoint]:
            _checkpoint(states, pending[next_checkpoint], program, summary, on_output)
            if on_checkpoint is not None:
                on_checkpoint(pending[next_checkpoint], states)
            next_checkpoint += 1
        customer_id = event.customer_id
        state = states.get(customer_id)
        if state is None:
            state = new_customer(customer_id)
        try:
            new_state, outputs = apply(state, event, program)
        except RuleViolation as violation:
            summary.violations.append(Problem(line, violation.reason))
            continue
        if new_state is state:
            summary.duplicates += 1
            continue
        summary.applied += 1
        states[customer_id] = new_state
        if on_applied is not None:
            on_applied(event)
        if outputs:
            _count(outputs, summary, on_output)
    for moment in pending[next_checkpoint:]:
        _checkpoint(states, moment, program, summary, on_output)
        if on_checkpoint is not None:
            on_checkpoint(moment, states)
    for customer_id, state in states.items():
        states[customer_id], outputs = advance(state, as_of, program)
        if outputs:
            _count(outputs, summary, on_output)
    summary.customers = len(states)
    return states


def _checkpoint(
    states: dict[str, CustomerState],
    moment: datetime,
    program: Program,
    summary: ReplaySummary,
    on_output: Callable[[OutputEvent], None] | None,
) -> None:
    for customer_id, state in states.items():
        advanced, outputs = advance(state, moment, program)
        if advanced is not state:
            states[customer_id] = advanced
        if outputs:
            _count(outputs, summary, on_output)


def _count(
    outputs: tuple[OutputEvent, ...],
    summary: ReplaySummary,
    on_output: Callable[[OutputEvent], None] | None,
) -> None:
    for output in outputs:
        name = type(output).__name__
        summary.outputs[name] = summary.outputs.get(name, 0) + 1
        if on_output is not None:
            on_output(output)


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


def state_line(state: CustomerState, as_of: datetime, program: Program) -> dict[str, Any]:
    """One customer's replay line: the fields issue 4 asks for first, then the rest."""
    view = describe(state, as_of, program)
    return {
        "customer_id": view.customer_id,
        "tier": view.tier,
        "points": view.points,
        "lifetime_spend_minor": view.lifetime_spend_minor,
        "rolling_spend_minor": view.rolling_spend_minor,
        "visits": view.visits,
        "first_visit": _iso(view.first_visit),
        "last_visit": _iso(view.last_visit),
        "stage": view.stage,
        "category": view.category,
        "nps_class": view.nps_class,
        "p_alive": view.p_alive,
        "churn_level": view.churn_level,
        "churn_reasons": list(view.churn_reasons),
        "loyalty_type": view.loyalty_type,
        "frequency": view.frequency,
        "attitude": view.attitude,
        "nps_score": view.nps_score,
        "receipts": view.receipts,
        "average_check_minor": view.average_check_minor,
        "open_complaints": view.open_complaints,
        "overdue_complaints": view.overdue_complaints,
        "punch_cards": view.punch_cards,
        "requalify_at": _iso(view.requalify_at),
        "currency": program.currency,
        "as_of": _iso(as_of),
    }


def output_line(output: OutputEvent) -> dict[str, Any]:
    """An output event as a JSON line: its schema, its topic role, then its record."""
    record = {name: _iso(value) for name, value in output.to_record().items()}
    return {"schema": output.SCHEMA, "topic": output.TOPIC_ROLE, **record}


# json.dumps(value, separators=(",", ":")) builds a new encoder at every call; one made once
# writes the same text
_to_json = json.JSONEncoder(separators=(",", ":")).encode


def write_states(
    states: dict[str, CustomerState], as_of: datetime, program: Program, out: Path
) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as stream:
        for customer_id in sorted(states):
            line = state_line(states[customer_id], as_of, program)
            stream.write(_to_json(line) + "\n")


class _OutputWriter:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(self, output: OutputEvent) -> None:
        self.stream.write(_to_json(output_line(output)) + "\n")


def replay(
    events_path: Path,
    program: Program,
    as_of: datetime,
    out: Path,
    *,
    events_out: Path | None = None,
    default_type: str | None = None,
    progress: ProgressFactory | None = None,
    engine: Engine = "auto",
    notice: Callable[[str], None] | None = None,
) -> ReplaySummary:
    """Reads, folds and writes. `progress(label, total)` gives a context manager yielding an
    `advance(n)` callable (`streams.tools.progress.progress_bar`), or None for no progress.
    `engine`: `native`, `python`, or `auto` (native when built, and for input the native
    engine refuses, python); `notice(text)` hears why auto took the Python engine."""
    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r} is not one of {', '.join(ENGINES)}")
    bars = progress or _no_progress
    if engine != "python":
        from streams.tools import replay_native

        try:
            return _replay_native(events_path, program, as_of, out, events_out, default_type, bars)
        except replay_native.NativeUnsupportedError as refusal:
            if engine == "native":
                raise
            if notice is not None:
                notice(f"native replay engine: {refusal}; replaying with the Python engine")
    summary = ReplaySummary()
    with gc_paused():
        with bars("reading", count_rows(events_path)) as advance_bar:
            events = read_events(events_path, program.currency, default_type, summary, advance_bar)
        with ExitStack() as stack:
            writer = None
            if events_out is not None:
                events_out.parent.mkdir(parents=True, exist_ok=True)
                stream = stack.enter_context(events_out.open("w", encoding="utf-8"))
                writer = _OutputWriter(stream)
            with bars("folding", len(events)) as advance_bar:
                states = fold_events(events, program, as_of, summary, writer, advance_bar)
        write_states(states, as_of, program, out)
    return summary


def _replay_native(
    events_path: Path,
    program: Program,
    as_of: datetime,
    out: Path,
    events_out: Path | None,
    default_type: str | None,
    bars: ProgressFactory,
) -> ReplaySummary:
    """`replay` on the native engine: the same steps, bars and files."""
    from streams.core.events import to_ms
    from streams.tools import replay_native as native

    engine = native.new_engine(program)
    native.check_default_type(default_type)
    as_of_ms = to_ms(as_of)
    with native.refusals():
        data = native.jsonl_bytes(events_path)
        with bars("reading", native.row_total(events_path, data)) as advance_bar:
            native.read_into(engine, events_path, data, program.currency, default_type, advance_bar)
        if events_out is not None:
            events_out.parent.mkdir(parents=True, exist_ok=True)
        with bars("folding", engine.event_count()) as advance_bar:
            engine.fold(as_of_ms, None if events_out is None else str(events_out), advance_bar)
        out.parent.mkdir(parents=True, exist_ok=True)
        engine.write_states(str(out), as_of_ms, _iso(as_of))
    counts = engine.summary()
    return ReplaySummary(
        rows=counts["rows"],
        applied=counts["applied"],
        duplicates=counts["duplicates"],
        after_as_of=counts["after_as_of"],
        customers=counts["customers"],
        outputs=dict(counts["outputs"]),
        rejected_rows=[Problem(line, message) for line, message in counts["rejected_rows"]],
        violations=[Problem(line, message) for line, message in counts["violations"]],
    )


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while reading or folding. Both make millions of small
    objects and no reference cycles, and each collection would walk every event and state
    held in memory: measured, collections took a third of the fold's time. What is alive now
    is frozen out of collections until the block ends; what the block made is then moved to
    the oldest generation with it, since the first young collection after the block would
    otherwise walk all of it once (measured: a tenth of a replay)."""
    was_enabled = gc.isenabled()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
        gc.unfreeze()


@contextmanager
def _no_progress(_label: str, _total: int | None) -> Iterator[Progress]:
    yield lambda _count: None
