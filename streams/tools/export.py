"""`loyalty export`: every customer's state as of a moment, one JSON line each, the same fields
as `loyalty replay` writes (`streams.tools.replay.state_line`), in customer-id order.

Where the states come from: the customer table's changelog topic (`<app_id>-customers-changelog`,
compacted, raw bytes: the customer id as key, the stored envelope as value), read from the
beginning to its end with a plain consumer, the latest value of each key winning. Not the
workers' HTTP API, because:
- it is the table's durable copy, the one every worker recovers from, so it holds every
  partition whether or not a worker runs, is recovering, or is being rebalanced; paging over
  HTTP would need every owner up and a stable assignment for the whole walk;
- it needs no list of worker addresses (Kafka knows the topic; nobody knows the web ports);
- it is one sequential read, not a request per page and a proxy hop per partition.
What it does not see is a write a worker has made to its local store but not yet produced to
the changelog: Faust flushes the changelog before it commits input offsets, so once
`loyalty status --wait-idle` says the group is idle, the changelog holds everything. Under
exactly-once the changelog is written in transactions and read here `read_committed`.
The e2e tests check that the pages of the workers' API give the same lines."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from streams.broker.security import KafkaTarget
from streams.core import Program, advance
from streams.tools.replay import state_line
from streams.tools.topic_census import read_topic
from streams.worker.envelope import CUSTOMER_TABLE, EnvelopeError, StoredCustomer

# The Faust table's name in streams/worker/app.py; Faust names its changelog after it.

Progress = Callable[[int], None]


class ExportError(RuntimeError):
    """Nothing to export from: the message says what is missing and what to do."""


def changelog_topic(app_id: str) -> str:
    return f"{app_id}-{CUSTOMER_TABLE}-changelog"


@dataclass
class StoredTable:
    """The customer table as its changelog has it: key -> envelope bytes."""

    customers: dict[bytes, bytes] = field(default_factory=dict)
    records: int = 0  # changelog records read (compaction keeps some superseded ones)


def read_customer_table(
    kafka: KafkaTarget, app_id: str, progress: Progress | None = None
) -> StoredTable:
    """The latest stored value of every customer, from the changelog topic."""
    from streams.broker.topics import list_topics

    topic = changelog_topic(app_id)
    if topic not in list_topics(kafka):
        raise ExportError(
            f"no changelog topic {topic} at {kafka}: no worker with app id "
            f"{app_id!r} has run there (set LOYALTY_APP_ID / --app-id to the workers' one)"
        )
    table = StoredTable()
    for message in read_topic(kafka, topic):
        table.records += 1
        if progress is not None:
            progress(1)
        key, value = message.key(), message.value()
        if key is None:
            continue
        if value is None:  # a tombstone: the key was deleted
            table.customers.pop(key, None)
        else:
            table.customers[key] = value
    return table


@dataclass(frozen=True, slots=True)
class ExportedCustomer:
    customer_id: str
    line: dict[str, Any] | None  # None: the stored bytes could not be read
    problem: str | None = None


def export_lines(
    customers: dict[bytes, bytes], as_of: datetime, program: Program
) -> Iterator[ExportedCustomer]:
    """Each stored customer, in id order, advanced to as_of and described as replay does."""
    for key in sorted(customers):
        customer_id = key.decode(errors="replace")
        try:
            state = StoredCustomer.from_bytes(customers[key]).state
            state, _ = advance(state, as_of, program)
        except (EnvelopeError, ValueError) as error:
            yield ExportedCustomer(customer_id, None, f"stored state unreadable: {error}")
            continue
        yield ExportedCustomer(customer_id, state_line(state, as_of, program))


@dataclass
class ExportSummary:
    customers: int = 0
    unreadable: list[str] = field(default_factory=list)  # customer ids
    changelog_records: int = 0
    seconds: float = 0.0

    def describe(self) -> str:
        rate = self.customers / self.seconds if self.seconds else 0.0
        text = (
            f"{self.customers:,} customers written ({self.changelog_records:,} changelog records "
            f"read) in {self.seconds:.1f} s, {rate:,.0f} customers/s"
        )
        if self.unreadable:
            text += f"; {len(self.unreadable)} unreadable: {', '.join(self.unreadable[:10])}"
        return text


def export(
    kafka: KafkaTarget,
    app_id: str,
    program: Program,
    as_of: datetime,
    out: Path,
    progress: Progress | None = None,
) -> ExportSummary:
    started = time.monotonic()
    table = read_customer_table(kafka, app_id, progress)
    summary = ExportSummary(changelog_records=table.records)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as stream:
        for exported in export_lines(table.customers, as_of, program):
            if exported.line is None:
                summary.unreadable.append(exported.customer_id)
                continue
            stream.write(json.dumps(exported.line, separators=(",", ":")) + "\n")
            summary.customers += 1
    summary.seconds = time.monotonic() - started
    return summary
