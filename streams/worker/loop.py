"""The worker's processing loop for the partitions it owns, apart from Faust: records in, the
event-time merge, the processor, the table, sends, acks and time-driven work. The Faust agent
hands it records and ticks; tests hand it the same through fakes.

Records are applied in batches. Applying a record only stages its outcome: its outputs, and
its customer's new state, which the next record of that customer reads. A flush then commits
what is staged, in an order that keeps every record applied once or not at all: every output
(and dead letter) of the batch is sent and acknowledged by Kafka first, then the customers'
new states are written to the table (whose changelog writes reach the producer before any
record is acked), then the batch's records are acked in order. A crash anywhere in between
leaves each record unapplied or applied, never half: if a state write is lost the record is
read again, applied again and its outputs sent again with the same ids; if it is not lost the
record's offset is behind the customer's mark and is skipped. Awaiting Kafka once per batch,
not once per record, is what lets one worker keep up (issue #7: one round trip per record
capped it near 100 records a second). The agent flushes whenever Faust has no further record
ready, so a lone record waits for nothing but its own round trip."""

from __future__ import annotations

import asyncio
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


class StateTable(Protocol):
    """The part of the customer table (or a `DictTable`, in tests) the loop uses."""

    def get(self, key: bytes) -> bytes | None: ...

    def put(self, partition: int, key: bytes, value: bytes) -> None:
        """Stores a customer of an input partition (whose changelog partition it goes to)."""

    def items(self) -> Iterable[tuple[bytes, bytes]]: ...


class DictTable(dict[bytes, bytes]):
    """A table in memory: the reference fold's and the tests'."""

    def put(self, partition: int, key: bytes, value: bytes) -> None:
        self[key] = value


# produce and wait until acknowledged; the input partition the records come from
Send = Callable[[list[Outbound], int], Awaitable[None]]
Ack = Callable[[], object]
# Whether a source of a partition had nothing more to read as of a wall time: given the last
# offset the loop has seen of it (None: none since the partition was assigned) and the wall
# time (ms) the consumer's view of the source's end must date from at least
CaughtUp = Callable[[Source, int, int | None, int], bool]


log = structlog.get_logger(__name__)


class PartitionLostError(Exception):
    """Raised by `send` when the partition's outputs can no longer be produced by this worker
    (under exactly_once: its transaction was fenced by the partition's next owner)."""


# Awaited after a batch's state writes, before its records are acked: the table's changelog
# writes are with the producer when it returns, but for the partitions it returns, taken away
# first: of those, as many writes as it says went, in order, and the rest were dropped (see
# `customer_table`)
HandOver = Callable[[], Awaitable[dict[int, int]]]


async def _nothing_to_hand_over() -> dict[int, int]:
    return {}


# Called once per input record done: seconds since it reached the worker, and seconds since
# its event time (None without an event), both when its outputs were acknowledged.
ObserveLatency = Callable[[float, float | None], None]

MAX_STORE_LABELS = 50  # label values per metric stay bounded whatever the store count
INDEX_YIELD_EVERY = 2000  # customers scanned between yields to the event loop
# Outcomes staged before a flush, whatever is still to come: bounds what a crash makes the
# partition's next owner apply again, and the memory a clock jump's due work takes (a jump
# of a year makes every customer of the partition due at once)
MAX_BATCH = 1000


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
    # records that went ahead after `max_idle_s` without knowing the other source's end: the
    # order of those may differ from the reference's (a rising count is worth an alert)
    idle_releases: int = 0
    # assignments received (rebalances this worker took part in): a worker restarted under
    # static membership comes back without one, the other workers' count stands still
    assignments: int = 0
    _stores: set[str] = field(default_factory=set)

    def store_label(self, store_id: str | None) -> str:
        """The store's id for the first MAX_STORE_LABELS stores seen, then `other`."""
        if store_id is None:
            return "unknown"
        if store_id in self._stores or len(self._stores) < MAX_STORE_LABELS:
            self._stores.add(store_id)
            return store_id
        return "other"


@dataclass(slots=True)
class _Staged:
    """An outcome applied but not committed: a record's (with its ack), or due work's."""

    outcome: Outcome
    key: bytes | None
    checked: Checked | None = None
    ack: Ack | None = None
    received_s: float = 0.0  # when the record reached the worker (wall seconds)


@dataclass
class _Partition:
    # per record: the record checked, its ack, and when it reached the worker (wall seconds)
    merge: PartitionMerge[tuple[Checked, Ack, float]] = field(default_factory=PartitionMerge)
    clock_ms: int = 0  # the latest event time applied here (or the wall clock, when live)
    last_seen: dict[Source, int] = field(default_factory=dict)
    released_upto: dict[Source, int] = field(default_factory=dict)  # highest offset staged
    waiting_since: float | None = None  # wall time since the merge last released a record
    staged: list[_Staged] = field(default_factory=list)  # in the order applied
    # the staged states in the order applied, each written, none merged: a crash part way
    # through a batch's writes must leave the changelog holding the states of a run of
    # records from the batch's first on, so that no record not yet applied is older than
    # the partition clock the next owner restores (its time-driven work would run ahead of
    # that record: a churn warning its purchase prevents, say)
    writes: list[tuple[bytes, bytes]] = field(default_factory=list)
    # each customer's newest staged state: what the next record of theirs is applied to
    unwritten: dict[bytes, bytes] = field(default_factory=dict)


class WorkerLoop:
    def __init__(
        self,
        processor: Processor,
        table: StateTable,
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
        hand_over: HandOver = _nothing_to_hand_over,
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
        self.hand_over = hand_over
        # Held from a record's first output send until its state write is with the producer.
        # Under exactly_once Faust commits a partition's transaction (its sends so far and the
        # offsets acked so far) whenever its commit timer fires: one firing between a record's
        # outputs and its state write commits the outputs without the state; a crash before
        # the next commit then has the next owner apply the record again and send its outputs
        # a second time (the crash test saw one output twice under read_committed). The
        # transaction manager takes this lock before it commits (see `kafka_transport`).
        self.commit_gate = asyncio.Lock()
        self.due = DueIndex()
        self.counters = LoopCounters()
        self._partitions: dict[int, _Partition] = {}
        # partitions whose customers are in the due index and the tallies
        self._indexed: set[int] = set()
        self._tallies: dict[int, Tally] = {}
        # partitions indexed whose restored clock's due work has not run yet
        self._restored: set[int] = set()

    # ---- input ---------------------------------------------------------------------------------

    async def on_record(self, record: InputRecord, ack: Ack, *, more_coming: bool = False) -> None:
        """One record read. `more_coming`: the caller has another record ready at once, so
        what this one releases may wait for the flush after that one (a batch)."""
        partition = await self._partition(record.partition)
        if partition is None:
            return  # revoked meanwhile: its next owner reads the record
        last_seen = partition.last_seen.get(record.source)
        if last_seen is not None and record.offset <= last_seen:
            # Faust went back to the committed offsets: when it finds its flow stopped, and at
            # the end of recovery after records of the new assignment were delivered (see
            # `flow_control`). What is buffered from here on comes again; records applied
            # already are skipped by the offset marks when they do.
            dropped = partition.merge.rewind(record.source, record.offset)
            log.info("consumer_rewound", partition=record.partition, topic=record.topic,
                     offset=record.offset, last_seen=last_seen, dropped=dropped)  # fmt: skip
        partition.last_seen[record.source] = record.offset
        released = partition.released_upto.get(record.source)
        if released is not None and record.offset <= released:
            # read again after a rewind, but past the merge already: done, or staged and
            # acked with its batch. Applying it again would be harmless for a customer (the
            # offset marks) but send the dead letter of an undecodable record a second time.
            return
        checked = self.processor.check(record)
        kind = "unreadable" if checked.event is None else type(checked.event).__name__
        self.counters.consumed[record.source.name.lower(), kind] += 1
        partition.merge.push(Pending(record.timestamp_ms, record.source, record.offset,
                                     (checked, ack, self.wall_clock())))  # fmt: skip
        await self._drain(record.partition)
        if not more_coming:
            await self.flush()

    async def on_tick(self, partition_number: int, wall_ms: int) -> None:
        """A wall-clock tick for a partition: releases records held for a silent source
        (after `max_idle_s`), and in live mode moves the partition's clock to the wall clock
        so that silent customers get their time-driven changes without an event of theirs."""
        partition = await self._partition(partition_number)
        if partition is None:
            return
        await self._drain(partition_number)
        if (
            self.live_clock
            and self._partitions.get(partition_number) is partition
            and partition.merge.buffered() == 0
        ):
            partition.clock_ms = max(partition.clock_ms, wall_ms)
            await self._run_due(partition_number)
        await self.flush()

    async def _drain(self, partition_number: int) -> None:
        partition = self._partitions[partition_number]
        released = False
        for pending in partition.merge.release(lambda s: self._caught_up(partition_number, s)):
            released = True
            checked, ack, received_s = pending.payload
            # the clock this record moves the partition to is stored with its write
            event_ms = self.processor.event_time_ms(checked)
            clock_ms = partition.clock_ms if event_ms is None else max(partition.clock_ms, event_ms)
            self._stage_record(partition, checked, ack, received_s, clock_ms)
            partition.released_upto[checked.record.source] = checked.record.offset
            partition.clock_ms = clock_ms
            await self._run_due(partition_number)
            await self._flush_if_full()
            if self._partitions.get(partition_number) is not partition:
                return  # lost in a flush: the next owner redoes what was not acked
        # how long the merge has been stuck: since its last release, not since it was last
        # empty (under a steady backlog it never is, and after `max_idle_s` every record would
        # go ahead unordered: the join/leave test applied 481 records out of order that way)
        if partition.merge.buffered() == 0:
            partition.waiting_since = None
        elif released or partition.waiting_since is None:
            partition.waiting_since = self.wall_clock()

    def _caught_up(self, partition_number: int, source: Source) -> bool:
        """Nothing more of `source` to read on this partition that could come before the
        records waiting: the consumer has seen the end of it in a fetch made at least
        `merge_delay_ms` after the oldest waiting record was published (what a record
        published just before it may take to reach the broker). An older view of the end
        proves nothing: a partition the consumer has not fetched for a while (Faust stops
        fetching a partition while its buffer is full) shows an end that newer records are
        already past. As a last resort, records that have waited `max_idle_s` go ahead (as
        Kafka Streams' max.task.idle.ms), so a source the consumer cannot tell about never
        stalls; those releases are counted."""
        partition = self._partitions.get(partition_number)
        if partition is None:
            return False  # revoked meanwhile: release nothing more
        oldest = partition.merge.oldest_head_ms()
        as_of_ms = (0 if oldest is None else oldest) + self.merge_delay_ms
        if self.caught_up(source, partition_number, partition.last_seen.get(source), as_of_ms):
            return True
        waited = partition.waiting_since
        if waited is not None and self.wall_clock() - waited >= self.max_idle_s:
            self.counters.idle_releases += 1
            return True
        return False

    # ---- applying: staged first, committed by `flush` -------------------------------------------

    def _stage_record(
        self, partition: _Partition, checked: Checked, ack: Ack, received_s: float, clock_ms: int
    ) -> None:
        event = checked.event
        key = None if event is None else event.customer_id.encode()
        current = None if key is None else self._current(partition, key)
        outcome = self.processor.apply(checked, current, datetime.now(UTC), clock_ms)
        self._stage(partition, _Staged(outcome, key, checked, ack, received_s))

    def _stage(self, partition: _Partition, staged: _Staged) -> None:
        partition.staged.append(staged)
        outcome, key = staged.outcome, staged.key
        if outcome.write is None or key is None:
            return
        value = outcome.write.to_bytes()
        partition.writes.append((key, value))
        partition.unwritten[key] = value
        self.due.set(outcome.write.partition, outcome.customer_id or "", outcome.next_due_ms)
        if outcome.after is not None:
            self._count_change(outcome.write.partition, outcome.before, outcome.after)

    def _current(self, partition: _Partition, key: bytes) -> bytes | None:
        """The customer as the next record of theirs must see them: staged, or stored."""
        staged = partition.unwritten.get(key)
        return staged if staged is not None else self.table.get(key)

    def _staged_count(self) -> int:
        return sum(len(p.staged) for p in self._partitions.values())

    async def _flush_if_full(self) -> None:
        if self._staged_count() >= MAX_BATCH:
            await self.flush()

    async def flush(self) -> None:
        """Commits everything staged: outputs sent and acknowledged, then the new states
        written and handed to the producer, then the records acked. A partition taken away
        meanwhile (its transaction fenced, or no longer assigned) has nothing written and
        nothing acked, and is given up: its next owner applies its records again."""
        batch = {n: p for n, p in self._partitions.items() if p.staged}
        if not batch:
            return
        async with self.commit_gate:
            lost = await self._send_all(batch)
            for number, partition in batch.items():
                if number in lost or self._partitions.get(number) is not partition:
                    lost.add(number)
                elif not self.owns(number):
                    lost.add(number)  # no longer assigned (the consumer says): nothing written
                else:
                    for key, value in partition.writes:
                        self.table.put(number, key, value)
            cut_short = await self.hand_over()
        for number, partition in batch.items():
            staged, partition.staged = partition.staged, []
            partition.writes, partition.unwritten = [], {}
            if number in lost:
                continue
            # Revoked while the writes were handed over: nothing more here is ours to ack. But
            # a record whose write went is applied (its next owner finds it so), and counted
            # here; with a batch of records written at each rebalance, that is not a few.
            ours = number not in cut_short and self._partitions.get(number) is partition
            writes_gone = cut_short.get(number)
            for item in staged:
                if writes_gone is not None:
                    if item.outcome.write is None or item.key is None or writes_gone == 0:
                        continue  # the next owner applies it again
                    writes_gone -= 1
                self._done(item, ack=ours)
            if number in cut_short:
                lost.add(number)
        # given up here, unless it was revoked meanwhile (and perhaps assigned again, with
        # records of its own buffered already: those must stay)
        self.revoke({number for number in lost if self._partitions.get(number) is batch[number]})

    async def _send_all(self, batch: dict[int, _Partition]) -> set[int]:
        """Sends the batch's outputs, each partition's into its own transaction (under
        exactly_once), and waits for all of them; returns the partitions found lost."""
        outbound = {
            number: [sent for item in partition.staged for sent in item.outcome.send]
            for number, partition in batch.items()
        }
        numbers = [number for number, sends in outbound.items() if sends]
        results = await asyncio.gather(
            *(self.send(outbound[number], number) for number in numbers), return_exceptions=True
        )
        lost = set()
        for number, result in zip(numbers, results, strict=True):
            if isinstance(result, PartitionLostError):
                log.info("partition_lost", partition=number, reason=str(result))
                lost.add(number)
            elif isinstance(result, BaseException):
                raise result
        return lost

    def _done(self, item: _Staged, *, ack: bool) -> None:
        """A committed outcome: counted, logged, and (`ack`) its record acked."""
        outcome = item.outcome
        self._count_sent(outcome)
        checked = item.checked
        if checked is None:
            self.counters.due_runs += 1
            return
        event = checked.event
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
        if ack and item.ack is not None:
            item.ack()
        done_s = self.wall_clock()
        # a refused event's time is not to be trusted (a POS clock years ahead, say)
        trusted = event is not None and outcome.rejected is None
        event_lag_s = done_s - to_ms(event.occurred_at) / 1000 if trusted and event else None
        self.observe_latency(done_s - item.received_s, event_lag_s)

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
        for customer_id in list(self.due.pop_due(partition_number, up_to_ms)):
            key = customer_id.encode()
            current = self._current(partition, key)
            if current is None:
                continue
            outcome = self.processor.advance(current, from_ms(up_to_ms), partition.clock_ms)
            self._stage(partition, _Staged(outcome, key))
            await self._flush_if_full()
            if self._partitions.get(partition_number) is not partition:
                return  # lost in the flush

    # ---- ownership -----------------------------------------------------------------------------

    def assign(self, partitions: Iterable[int]) -> None:
        """Partitions given to this worker by a rebalance: known before their first record, so
        that the first record of any of them indexes them all in one scan of the table."""
        self.counters.assignments += 1
        for number in partitions:
            self._partitions.setdefault(number, _Partition())

    async def index_new_partitions(self) -> set[int]:
        """After a (re)assignment: the customers stored for each partition new here go into
        the due index and the partition's tally (the only time states are counted by a scan;
        from then on the tally follows each change), and each partition's clock is the
        highest stored with its customers. When a customer is next due is asked of the core
        under this worker's rules, not read from the stored header: after a rules change
        (a rolling restart) the header holds the old rules' answer, and a due time the new
        rules bring forward (a shorter points expiry, say) would be missed. One scan for all
        the partitions assigned, yielding to the event loop as it goes: a table of a million
        customers takes seconds, and a loop blocked that long misses the consumer's
        heartbeats. Returns the partitions indexed."""
        new = set(self._partitions) - self._indexed
        if not new:
            return new
        self._indexed.update(new)  # a record arriving meanwhile must not start a second scan
        program = self.processor.program
        tallies = {partition: Tally() for partition in new}
        clocks = dict.fromkeys(new, 0)
        due: list[tuple[int, str, int | None]] = []
        for scanned, (key, value) in enumerate(self.table.items(), start=1):
            header = StoredCustomer.header_of(value)
            tally = tallies.get(header.partition)
            if tally is not None:
                state = StoredCustomer.from_bytes(value).state
                due.append((header.partition, key.decode(), self.processor.next_due_ms(state)))
                clocks[header.partition] = max(clocks[header.partition], header.clock_ms)
                tally.count(facts_of(state, program))
            if scanned % INDEX_YIELD_EVERY == 0:
                await asyncio.sleep(0)
        for number, tally in tallies.items():
            partition = self._partitions.get(number)
            if partition is not None:  # not revoked while the scan yielded
                self._tallies[number] = tally
                partition.clock_ms = max(partition.clock_ms, clocks[number])
        for number, customer_id, due_ms in due:
            if number in self._partitions:
                self.due.set(number, customer_id, due_ms)
        return new

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
            self._restored.discard(partition)
            self._tallies.pop(partition, None)
            self.due.drop(partition)

    async def _partition(self, number: int) -> _Partition | None:
        """The partition's merge and clock; on its first record since it was assigned, the due
        index learns its customers from the table (recovered from the changelog by then).
        None if the partition was revoked while the table was scanned."""
        if number not in self._partitions:
            self._partitions[number] = _Partition()
        if number not in self._indexed:
            self._restored.update(await self.index_new_partitions())
        if number in self._restored and number in self._partitions:
            # time-driven work of the restored clock first, as a run that never stopped did
            # it right after the record that moved the clock there. Only now, for this
            # partition: Faust writes a table change to the changelog partition of the record
            # being processed, so another partition's due work must wait for its own record
            # or tick.
            self._restored.discard(number)
            await self._run_due(number)
        return self._partitions.get(number)

    def clock_ms(self, partition: int) -> int | None:
        """The partition's clock (latest event time applied), None before its first event."""
        state = self._partitions.get(partition)
        return state.clock_ms if state is not None and state.clock_ms else None

    def clocks_ms(self) -> dict[int, int]:
        """Each owned partition's clock, for those that have one."""
        return {n: p.clock_ms for n, p in list(self._partitions.items()) if p.clock_ms}

    def buffered(self) -> int:
        return sum(p.merge.buffered() for p in self._partitions.values())
