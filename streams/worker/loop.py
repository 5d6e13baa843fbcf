"""The worker's processing loop for the partitions it owns, apart from Faust: records in, the
event-time merge, the processor, the table, sends, acks and time-driven work. The Faust agent
hands it records and ticks; tests hand it the same through fakes.

Order of effects, per record: outputs (and dead letters) are sent and acknowledged by Kafka
first, then the customer's new state is written to the table (whose changelog Faust flushes
before it commits offsets), then the input record is acked. A crash anywhere in between leaves
the record unapplied or applied, never half: if the state write is lost the record is read
again, applied again and its outputs sent again with the same ids; if it is not lost the
record's offset is behind the customer's mark and is skipped."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import structlog

from streams.core import CustomerState, NpsResponse
from streams.core.customer import nps_class
from streams.core.events import from_ms, to_ms
from streams.core.tally import Tally, facts_of
from streams.worker.due_index import DueIndex
from streams.worker.envelope import StoredCustomer
from streams.worker.logs import customer_ref, redacted
from streams.worker.ordering import PartitionMerge, Pending, Source
from streams.worker.processor import Checked, InputRecord, Outbound, Outcome, Processor


class CustomerTable(Protocol):
    """The part of a Faust table (or a dict, in tests) the loop uses."""

    def get(self, key: bytes) -> bytes | None: ...

    def __setitem__(self, key: bytes, value: bytes) -> None: ...

    def items(self) -> Iterable[tuple[bytes, bytes]]: ...


# produce and wait until acknowledged; the input partition the records come from
Send = Callable[[list[Outbound], int], Awaitable[None]]
Ack = Callable[[], object]
# Whether a source of a partition has nothing more to read right now, given the last offset
# the loop has seen of it (None: none since the partition was assigned)
CaughtUp = Callable[[Source, int, int | None], bool]


log = structlog.get_logger(__name__)

# Called once per input record done: seconds since it reached the worker, and seconds since
# its event time (None without an event), both when its outputs were acknowledged.
ObserveLatency = Callable[[float, float | None], None]

MAX_STORE_LABELS = 50  # label values per metric stay bounded whatever the store count


@dataclass
class LoopCounters:
    """What the loop has done since it started: the metrics read these at each scrape."""

    consumed: Counter[tuple[str, str]] = field(default_factory=Counter)  # (topic, kind)
    applied: Counter[str] = field(default_factory=Counter)  # by topic
    duplicates: Counter[str] = field(default_factory=Counter)  # by topic
    rejected: Counter[str] = field(default_factory=Counter)  # by error kind
    dead_letters: int = 0
    sent: Counter[str] = field(default_factory=Counter)  # by output kind
    rewards: Counter[str] = field(default_factory=Counter)  # by reward kind
    nps_responses: Counter[tuple[str, str]] = field(default_factory=Counter)  # (store, class)
    due_runs: int = 0
    _stores: set[str] = field(default_factory=set)

    def store_label(self, store_id: str | None) -> str:
        """The store's id for the first MAX_STORE_LABELS stores seen, then `other`."""
        if store_id is None:
            return "unknown"
        if store_id in self._stores or len(self._stores) < MAX_STORE_LABELS:
            self._stores.add(store_id)
            return store_id
        return "other"


@dataclass
class _Partition:
    # per record: the record checked, its ack, and when it reached the worker (wall seconds)
    merge: PartitionMerge[tuple[Checked, Ack, float]] = field(default_factory=PartitionMerge)
    clock_ms: int = 0  # the latest event time applied here (or the wall clock, when live)
    last_seen: dict[Source, int] = field(default_factory=dict)
    waiting_since: float | None = None  # wall time since the merge last released a record


class WorkerLoop:
    def __init__(
        self,
        processor: Processor,
        table: CustomerTable,
        send: Send,
        caught_up: CaughtUp,
        *,
        grace_ms: int,
        live_clock: bool,
        merge_delay_ms: int = 2000,
        max_idle_s: float = 30.0,
        wall_clock: Callable[[], float] = time.time,
        owns: Callable[[int], bool] = lambda _partition: True,
        observe_latency: ObserveLatency = lambda _processing_s, _event_lag_s: None,
    ) -> None:
        self.processor = processor
        self.table = table
        self.send = send
        self.caught_up = caught_up
        self.grace_ms = grace_ms
        self.live_clock = live_clock
        self.merge_delay_ms = merge_delay_ms
        self.max_idle_s = max_idle_s
        self.wall_clock = wall_clock
        self.owns = owns
        self.observe_latency = observe_latency
        self.due = DueIndex()
        self.counters = LoopCounters()
        self._partitions: dict[int, _Partition] = {}
        # partitions whose customers are in the due index and the tallies
        self._indexed: set[int] = set()
        self._tallies: dict[int, Tally] = {}

    # ---- input ---------------------------------------------------------------------------------

    async def on_record(self, record: InputRecord, ack: Ack) -> None:
        partition = self._partition(record.partition)
        last_seen = partition.last_seen.get(record.source)
        if last_seen is not None and record.offset <= last_seen:
            # Faust went back to the committed offsets without a rebalance (it does when it
            # finds its flow stopped): what is buffered from here on comes again. Records
            # applied already are skipped by the offset marks when they do.
            dropped = partition.merge.rewind(record.source, record.offset)
            log.info("consumer_rewound", partition=record.partition, topic=record.topic,
                     offset=record.offset, last_seen=last_seen, dropped=dropped)  # fmt: skip
        partition.last_seen[record.source] = record.offset
        checked = self.processor.check(record)
        kind = "unreadable" if checked.event is None else type(checked.event).__name__
        self.counters.consumed[record.source.name.lower(), kind] += 1
        partition.merge.push(Pending(record.timestamp_ms, record.source, record.offset,
                                     (checked, ack, self.wall_clock())))  # fmt: skip
        await self._drain(record.partition)

    async def on_tick(self, partition_number: int, wall_ms: int) -> None:
        """A wall-clock tick for a partition: releases records held for a silent source
        (after `max_idle_s`), and in live mode moves the partition's clock to the wall clock
        so that silent customers get their time-driven changes without an event of theirs."""
        partition = self._partition(partition_number)
        await self._drain(partition_number)
        if self.live_clock and partition.merge.buffered() == 0:
            partition.clock_ms = max(partition.clock_ms, wall_ms)
            await self._run_due(partition_number)

    async def _drain(self, partition_number: int) -> None:
        partition = self._partitions[partition_number]
        released = False
        for pending in partition.merge.release(lambda s: self._caught_up(partition_number, s)):
            released = True
            checked, ack, received_s = pending.payload
            if not await self._apply(checked, received_s):
                self.revoke([partition_number])  # taken away meanwhile: the next owner redoes it
                return
            if self._partitions.get(partition_number) is not partition:
                return  # revoked while we awaited Kafka: nothing more here is ours to ack
            ack()
            event_ms = self.processor.event_time_ms(checked)
            if event_ms is not None:
                partition.clock_ms = max(partition.clock_ms, event_ms)
            await self._run_due(partition_number)
        # how long the merge has been stuck: since its last release, not since it was last
        # empty (under a steady backlog it never is, and after `max_idle_s` every record would
        # go ahead unordered: the join/leave test applied 481 records out of order that way)
        if partition.merge.buffered() == 0:
            partition.waiting_since = None
        elif released or partition.waiting_since is None:
            partition.waiting_since = self.wall_clock()

    def _caught_up(self, partition_number: int, source: Source) -> bool:
        """Nothing more of `source` to read on this partition that could come before the
        records waiting: the consumer has seen the end of it as of its latest fetch, and that
        fetch is recent enough, since the oldest waiting record was published at least
        `merge_delay_ms` ago (what a record published just before it took to reach us). As
        a last resort, records that have waited `max_idle_s` go ahead (as Kafka Streams'
        max.task.idle.ms), so a source the consumer cannot tell about never stalls."""
        partition = self._partitions.get(partition_number)
        if partition is None:
            return False  # revoked meanwhile: release nothing more
        oldest = partition.merge.oldest_head_ms()
        settled = oldest is None or self.wall_clock() * 1000 >= oldest + self.merge_delay_ms
        if settled and self.caught_up(source, partition_number, partition.last_seen.get(source)):
            return True
        waited = partition.waiting_since
        return waited is not None and self.wall_clock() - waited >= self.max_idle_s

    # ---- applying ------------------------------------------------------------------------------

    async def _apply(self, checked: Checked, received_s: float) -> bool:
        """Applies one record; False if its partition was taken away before it was done."""
        event = checked.event
        key = None if event is None else event.customer_id.encode()
        current = None if key is None else self.table.get(key)
        outcome = self.processor.apply(checked, current, datetime.now(UTC))
        if not await self._commit(outcome, key, checked.record.partition):
            return False
        topic = checked.record.source.name.lower()
        if outcome.duplicate:
            self.counters.duplicates[topic] += 1
        elif outcome.rejected is not None:
            self.counters.rejected[outcome.rejected.error_kind] += 1
            rejection, record = outcome.rejected, checked.record
            log.warning(
                "dead_lettered",
                reason=rejection.error_kind,
                message=redacted(rejection.message, rejection.customer_id, record.key),
                event_id=rejection.event_id,
                customer_ref=customer_ref(rejection.customer_id),
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
            )
        else:
            self.counters.applied[topic] += 1
            if isinstance(event, NpsResponse):
                answer = nps_class(event.score, self.processor.program) or "unknown"
                self.counters.nps_responses[self.counters.store_label(event.store_id), answer] += 1
        done_s = self.wall_clock()
        event_lag_s = None if event is None else done_s - to_ms(event.occurred_at) / 1000
        self.observe_latency(done_s - received_s, event_lag_s)
        return True

    async def _commit(self, outcome: Outcome, key: bytes | None, partition: int) -> bool:
        """Sends, then writes the state: unless the partition was taken away while the sends
        were acknowledged. A write after that would reach the changelog behind the next
        owner's writes and, compacted, win over them (a rebalance test lost 1,366 outputs to
        exactly that). Returns whether the outcome was committed."""
        if outcome.send:
            await self.send(outcome.send, partition)  # acknowledged before the state moves on
            self._count_sent(outcome)
        if partition not in self._partitions or not self.owns(partition):
            return False  # revoked (Faust told us) or no longer assigned (the consumer says)
        if outcome.write is not None and key is not None:
            self.table[key] = outcome.write.to_bytes()
            self.due.set(outcome.write.partition, outcome.customer_id or "", outcome.next_due_ms)
            if outcome.after is not None:
                self._count_change(partition, outcome.before, outcome.after)
        return True

    def _count_sent(self, outcome: Outcome) -> None:
        counters = self.counters
        for sent in outcome.send:
            if sent.kind == "DeadLetter":
                counters.dead_letters += 1
                continue
            counters.sent[sent.kind] += 1
            if sent.reward_kind is not None:
                counters.rewards[sent.reward_kind] += 1

    def _count_change(
        self, partition: int, before: CustomerState | None, after: CustomerState
    ) -> None:
        program = self.processor.program
        tally = self._tallies.setdefault(partition, Tally())
        tally.change(
            None if before is None else facts_of(before, program), facts_of(after, program)
        )

    async def _run_due(self, partition_number: int) -> None:
        # time-driven work waits `grace_ms` behind the clock, so an event up to that late is
        # still applied before the changes it would have prevented (a downgrade, a warning)
        partition = self._partitions.get(partition_number)
        if partition is None:
            return
        up_to_ms = partition.clock_ms - self.grace_ms
        due_customers = list(self.due.pop_due(partition_number, up_to_ms))
        for customer_id in due_customers:
            key = customer_id.encode()
            current = self.table.get(key)
            if current is None:
                continue
            outcome = self.processor.advance(current, from_ms(up_to_ms))
            if not await self._commit(outcome, key, partition_number):
                self.revoke([partition_number])
                return
            self.counters.due_runs += 1
            if self._partitions.get(partition_number) is not partition:
                return

    # ---- ownership -----------------------------------------------------------------------------

    def index_new_partitions(self) -> None:
        """After a (re)assignment: the customers stored for each partition new here go into
        the due index (from the headers) and the partition's tally (the only time states are
        counted by a scan; from then on the tally follows each change)."""
        new = set(self._partitions) - self._indexed
        if not new:
            return
        program = self.processor.program
        tallies = {partition: Tally() for partition in new}
        for key, value in self.table.items():
            partition, due_ms = StoredCustomer.header_of(value)
            tally = tallies.get(partition)
            if tally is not None:
                self.due.set(partition, key.decode(), due_ms)
                tally.count(facts_of(StoredCustomer.from_bytes(value).state, program))
        self._tallies.update(tallies)
        self._indexed.update(new)

    def tally(self) -> Tally:
        """The program's counts over the customers of the partitions this worker owns."""
        total = Tally()
        for tally in list(self._tallies.values()):
            total = total.merged(tally)
        return total

    def due_entries(self) -> int:
        return self.due.size()

    def revoke(self, partitions: Iterable[int]) -> None:
        """Partitions taken away: their buffered records were never acked, so their new owner
        reads them again."""
        for partition in partitions:
            self._partitions.pop(partition, None)
            self._indexed.discard(partition)
            self._tallies.pop(partition, None)
            self.due.drop(partition)

    def _partition(self, number: int) -> _Partition:
        """The partition's merge and clock; on its first record since it was assigned, the due
        index learns its customers from the table (recovered from the changelog by then)."""
        partition = self._partitions.get(number)
        if partition is None:
            partition = self._partitions[number] = _Partition()
        if number not in self._indexed:
            self.index_new_partitions()
        return partition

    def clock_ms(self, partition: int) -> int | None:
        """The partition's clock (latest event time applied), None before its first event."""
        state = self._partitions.get(partition)
        return state.clock_ms if state is not None and state.clock_ms else None

    def clocks_ms(self) -> dict[int, int]:
        """Each owned partition's clock, for those that have one."""
        return {n: p.clock_ms for n, p in list(self._partitions.items()) if p.clock_ms}

    def buffered(self) -> int:
        return sum(p.merge.buffered() for p in self._partitions.values())
