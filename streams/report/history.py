"""A history file folded through the core, with what the report needs over time.

The fold is `loyalty replay`'s own (`streams.tools.replay.fold_events`): the same order, the
same duplicates and contract violations left out, the same final states. Beside it this
module records, as the fold goes:
- the input events that were applied (purchases, NPS answers, complaints), as columns;
- the output events that tell program history (TierChanged, PointsExpired, RewardEarned);
- a snapshot of every customer known so far at the end of each calendar month (UTC): its
  state advanced to the month's end, its tier, stage, points and churn level.
Everything is kept as flat columns and handed to pandas at the end; the per-customer work
is the core's own (advance, classify), once per customer and month."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from streams.contract.event_files import count_rows
from streams.core import (
    ComplaintOpened,
    ComplaintResolved,
    CustomerState,
    InputEvent,
    NpsResponse,
    OutputEvent,
    PointsExpired,
    Program,
    Purchase,
    Return,
    RewardEarned,
    TierChanged,
)
from streams.core.customer import classify
from streams.core.events import to_ms
from streams.core.rules import MS_PER_DAY
from streams.tools.replay import (
    ReplaySummary,
    fold_events,
    gc_paused,
    read_events,
    state_line,
)

Progress = Callable[[int], None]
ProgressFactory = Callable[[str, int | None], AbstractContextManager[Progress]]


@dataclass
class HistoryFrames:
    """What happened over time, one frame per kind of fact; times are UTC pandas timestamps.

    - purchases: customer_id, at, total_minor
    - returns: customer_id, at
    - nps: customer_id, at, score
    - complaints_opened / complaints_resolved: customer_id, complaint_id, at
    - tier_changes: customer_id, at, previous_tier, new_tier, direction, reason
    - points_expired: customer_id, at, points
    - rewards: customer_id, at, reward_kind
    - snapshots: month (YYYY-MM), at (the moment of the snapshot), customer_id, tier, stage,
      points, churn_level, one row per customer known by then"""

    purchases: pd.DataFrame
    returns: pd.DataFrame
    nps: pd.DataFrame
    complaints_opened: pd.DataFrame
    complaints_resolved: pd.DataFrame
    tier_changes: pd.DataFrame
    points_expired: pd.DataFrame
    rewards: pd.DataFrame
    snapshots: pd.DataFrame


def month_starts(first: datetime, as_of: datetime) -> tuple[datetime, ...]:
    """The first instant (UTC) of every month after the month of `first`, up to as_of."""
    year, month = first.year, first.month
    moments: list[datetime] = []
    while True:
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        moment = datetime(year, month, 1, tzinfo=UTC)
        if moment > as_of:
            return tuple(moments)
        moments.append(moment)


def _timestamps(ms: list[int]) -> pd.Series:
    return pd.Series(pd.to_datetime(pd.Series(ms, dtype="int64"), unit="ms", utc=True))


@dataclass
class _Recorder:
    """Columns filled during the fold."""

    program: Program
    columns: dict[str, dict[str, list[Any]]] = field(default_factory=dict)

    def column(self, table: str, name: str) -> list[Any]:
        return self.columns.setdefault(table, {}).setdefault(name, [])

    def add(self, table: str, **values: Any) -> None:
        columns = self.columns.setdefault(table, {})
        for name, value in values.items():
            columns.setdefault(name, []).append(value)

    def on_applied(self, event: InputEvent) -> None:
        at = to_ms(event.occurred_at)
        kind = type(event)
        if kind is Purchase:
            assert isinstance(event, Purchase)
            self.add(
                "purchases", customer_id=event.customer_id, at=at, total_minor=event.total_minor
            )
        elif kind is Return:
            self.add("returns", customer_id=event.customer_id, at=at)
        elif kind is NpsResponse:
            assert isinstance(event, NpsResponse)
            self.add("nps", customer_id=event.customer_id, at=at, score=event.score)
        elif kind is ComplaintOpened or kind is ComplaintResolved:
            assert isinstance(event, ComplaintOpened | ComplaintResolved)
            table = "complaints_opened" if kind is ComplaintOpened else "complaints_resolved"
            self.add(table, customer_id=event.customer_id, complaint_id=event.complaint_id, at=at)

    def on_output(self, output: OutputEvent) -> None:
        at = to_ms(output.occurred_at)
        if isinstance(output, TierChanged):
            self.add(
                "tier_changes",
                customer_id=output.customer_id,
                at=at,
                previous_tier=output.previous_tier,
                new_tier=output.new_tier,
                direction=output.direction,
                reason=output.reason,
            )
        elif isinstance(output, PointsExpired):
            self.add("points_expired", customer_id=output.customer_id, at=at, points=output.points)
        elif isinstance(output, RewardEarned):
            self.add(
                "rewards", customer_id=output.customer_id, at=at, reward_kind=output.reward_kind
            )

    def snapshot(self, moment: datetime, label: str, states: dict[str, CustomerState]) -> None:
        """Every known customer (the fold has advanced them to `moment`), classified on its
        day."""
        program = self.program
        day = to_ms(moment) // MS_PER_DAY
        ids, tiers, stages = self.column("snapshots", "customer_id"), [], []
        points, levels = self.column("snapshots", "points"), []
        for customer_id, advanced in states.items():
            ids.append(customer_id)
            tiers.append(advanced.tier)
            stages.append(classify(advanced, day, program).stage)
            points.append(advanced.points)
            levels.append(advanced.churn_level)
        self.column("snapshots", "tier").extend(tiers)
        self.column("snapshots", "stage").extend(stages)
        self.column("snapshots", "churn_level").extend(levels)
        self.column("snapshots", "month").extend([label] * len(tiers))
        self.column("snapshots", "at").extend([to_ms(moment)] * len(tiers))

    def frames(self) -> HistoryFrames:
        program = self.program
        schemas: dict[str, dict[str, str]] = {
            "purchases": {"customer_id": "str", "at": "int64", "total_minor": "int64"},
            "returns": {"customer_id": "str", "at": "int64"},
            "nps": {"customer_id": "str", "at": "int64", "score": "int64"},
            "complaints_opened": {"customer_id": "str", "complaint_id": "str", "at": "int64"},
            "complaints_resolved": {"customer_id": "str", "complaint_id": "str", "at": "int64"},
            "tier_changes": {
                "customer_id": "str",
                "at": "int64",
                "previous_tier": "str",
                "new_tier": "str",
                "direction": "str",
                "reason": "str",
            },
            "points_expired": {"customer_id": "str", "at": "int64", "points": "int64"},
            "rewards": {"customer_id": "str", "at": "int64", "reward_kind": "str"},
            "snapshots": {
                "month": "str",
                "at": "int64",
                "customer_id": "str",
                "tier": "int64",
                "stage": "str",
                "points": "int64",
                "churn_level": "int64",
            },
        }
        frames: dict[str, pd.DataFrame] = {}
        for table, schema in schemas.items():
            columns = self.columns.get(table, {})
            frame = pd.DataFrame(
                {
                    name: pd.Series(columns.get(name, []), dtype=dtype)
                    for name, dtype in schema.items()
                }
            )
            frame["at"] = (
                _timestamps(frame["at"].tolist())
                if len(frame)
                else frame["at"].astype("datetime64[ms, UTC]")
            )
            frames[table] = frame
        snapshots = frames["snapshots"]
        snapshots["tier"] = pd.Categorical.from_codes(
            snapshots["tier"].to_numpy(), categories=list(program.tier_names)
        )
        snapshots["churn_level"] = pd.Categorical.from_codes(
            snapshots["churn_level"].to_numpy(), categories=list(program.churn_level_names)
        )
        return HistoryFrames(**frames)


@dataclass
class FoldedHistory:
    """The fold's result: the customers as `loyalty replay` writes them, and history."""

    customers: pd.DataFrame
    history: HistoryFrames
    summary: ReplaySummary
    as_of: datetime


def month_label(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def fold_history(
    events_path: Path,
    program: Program,
    as_of: datetime | None,
    *,
    default_type: str | None = None,
    progress: ProgressFactory | None = None,
) -> FoldedHistory:
    """Reads and folds an event file as `loyalty replay` does, recording history; as_of
    None: the time of the latest event."""
    bars = progress or _no_progress
    summary = ReplaySummary()
    recorder = _Recorder(program)
    with gc_paused():
        with bars("reading", count_rows(events_path)) as advance_bar:
            events = read_events(events_path, program.currency, default_type, summary, advance_bar)
        if as_of is None:
            if not events:
                raise ValueError(f"{events_path} holds no event: give --as-of")
            as_of = events[-1][0].occurred_at
        checkpoints = month_starts(events[0][0].occurred_at, as_of) if events else ()

        def on_checkpoint(moment: datetime, states: dict[str, CustomerState]) -> None:
            # the month that ended at this moment
            previous = datetime.fromtimestamp(moment.timestamp() - 1, tz=UTC)
            recorder.snapshot(moment, month_label(previous), states)

        with bars("folding", len(events)) as advance_bar:
            states = fold_events(
                events,
                program,
                as_of,
                summary,
                recorder.on_output,
                advance_bar,
                on_applied=recorder.on_applied,
                checkpoints=checkpoints,
                on_checkpoint=on_checkpoint,
            )
        if states and as_of not in checkpoints:
            # the month as_of falls in, so far: the final states (already at as_of)
            recorder.snapshot(as_of, month_label(as_of), states)
        lines = [state_line(states[customer_id], as_of, program) for customer_id in sorted(states)]
    return FoldedHistory(customers_frame(lines), recorder.frames(), summary, as_of)


@contextmanager
def _no_progress(_label: str, _total: int | None) -> Iterator[Progress]:
    yield lambda _count: None


def customers_frame(lines: list[dict[str, Any]]) -> pd.DataFrame:
    """Replay lines (or the workers' page lines) as a frame, one row per customer."""
    columns = [
        "customer_id",
        "tier",
        "points",
        "lifetime_spend_minor",
        "rolling_spend_minor",
        "visits",
        "first_visit",
        "last_visit",
        "stage",
        "nps_score",
        "nps_class",
        "p_alive",
        "churn_level",
        "receipts",
        "open_complaints",
        "overdue_complaints",
    ]
    frame = pd.DataFrame(lines, columns=columns)
    for name in ("first_visit", "last_visit"):
        frame[name] = pd.to_datetime(frame[name], utc=True)
    frame["nps_score"] = frame["nps_score"].astype("Int64")
    return frame
