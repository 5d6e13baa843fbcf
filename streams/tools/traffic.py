"""Sending simulated traffic somewhere: to Kafka through the publisher, or to a file that
`loyalty publish` and `loyalty replay` read, paced to a rate, with a summary of what went."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from streams.tools.publish import DeliveryTally, paced


class EventSink(Protocol):
    """EventPublisher (Kafka) or EventFileWriter (a file)."""

    def write(self, schema_name: str, record: Mapping[str, Any]) -> None: ...

    def flush(self) -> object: ...


@dataclass
class TrafficSummary:
    destination: str
    events: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    customers: set[str] = field(default_factory=set)
    first_at: datetime | None = None
    last_at: datetime | None = None
    elapsed_s: float = 0.0
    tally: DeliveryTally | None = None

    @property
    def all_acknowledged(self) -> bool:
        tally = self.tally
        return tally is None or (tally.acknowledged == tally.sent and tally.failed == 0)

    def describe(self) -> str:
        kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(self.by_kind.items()))
        span = (
            f"event time {self.first_at:%Y-%m-%d} .. {self.last_at:%Y-%m-%d}"
            if self.first_at and self.last_at
            else "no events"
        )
        rate = self.events / self.elapsed_s if self.elapsed_s > 0 else 0.0
        lines = [
            f"sent {self.events} events to {self.destination} in {self.elapsed_s:.1f}s "
            f"({rate:,.0f} events/s): {kinds or 'none'}",
            f"{len(self.customers)} customers, {span}",
        ]
        if self.tally is not None:
            lines.append(
                f"acknowledged by Kafka: {self.tally.acknowledged}/{self.tally.sent}"
                + (f", {self.tally.failed} failed" if self.tally.failed else "")
            )
        return "\n".join(lines)


def send_traffic(
    events: Iterable[tuple[str, dict[str, Any]]],
    sink: EventSink,
    summary: TrafficSummary,
    *,
    rate_per_s: float | None = None,
    advance: Callable[[int], None] | None = None,
) -> TrafficSummary:
    """Writes every event to the sink (paced if a rate is given) and fills the summary."""
    started = time.perf_counter()
    for schema_name, record in paced(events, rate_per_s):
        sink.write(schema_name, record)
        summary.events += 1
        summary.by_kind[schema_name.rsplit(".", 1)[-1]] += 1
        summary.customers.add(record["customer_id"])
        if summary.first_at is None:
            summary.first_at = record["occurred_at"]
        summary.last_at = record["occurred_at"]
        if advance is not None:
            advance(1)
    sink.flush()
    summary.elapsed_s = time.perf_counter() - started
    return summary
