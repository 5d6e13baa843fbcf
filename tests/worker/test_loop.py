"""The worker loop with a dict for a table and a list for Kafka: arrival order, redelivery
after a crash, and time-driven work."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from streams.broker import TopicNames
from streams.contract import Codec, make_codec
from streams.core import CustomerState
from streams.core.events import to_ms
from streams.core.tally import tally_of
from streams.program import load_program
from streams.settings import DEFAULT_RULES, Settings
from streams.tools.simulate import SimulationConfig
from streams.worker.envelope import StoredCustomer
from streams.worker.loop import DictTable, PartitionLostError, WorkerLoop
from streams.worker.ordering import Source
from streams.worker.processor import InputRecord, Outbound, Processor, expected_partition
from tests.worker.simulated import simulated_log

PARTITIONS = 3
TOPICS = TopicNames("t")


@pytest.fixture(scope="module")
def codec() -> Codec:
    return make_codec(Settings())


@pytest.fixture(scope="module")
def log(codec: Codec) -> list[InputRecord]:
    return simulated_log(
        codec, TOPICS, PARTITIONS, SimulationConfig(customers=60, events=1500, seed=5)
    )


class Harness:
    """A loop, its table and what it sent. `caught_up` says a source is caught up once the
    harness has delivered every record of it that the test will deliver."""

    def __init__(self, codec: Codec, table: DictTable | None = None) -> None:
        self.table: DictTable = DictTable() if table is None else table
        self.sent: list[Outbound] = []
        self.remaining: Counter[tuple[Source, int]] = Counter()
        self.acked: list[tuple[Source, int, int]] = []
        self.sends = 0  # calls of `send`: one per partition per flush
        processor = Processor(load_program(DEFAULT_RULES), codec, TOPICS, PARTITIONS)
        self.loop = WorkerLoop(
            processor, self.table, self._send, self._caught_up, grace_ms=0, live_clock=False,
            merge_delay_ms=0,
        )  # fmt: skip

    async def _send(self, outbound: list[Outbound], _partition: int) -> None:
        self.sends += 1
        self.sent.extend(outbound)

    def _caught_up(
        self, source: Source, partition: int, last_seen: int | None, _as_of_ms: int
    ) -> bool:
        return self.remaining[(source, partition)] == 0

    def _ack_for(self, record: InputRecord) -> Callable[[], None]:
        return lambda: self.acked.append((record.source, record.partition, record.offset))

    def feed(
        self, records: list[InputRecord], *, batched: bool = False, flush: bool = True
    ) -> None:
        """Delivers `records`; `batched`: as the worker does under load (another record is
        always ready), flushed at the end unless `flush` is False (a crash before it)."""
        for record in records:
            self.remaining[(record.source, record.partition)] += 1

        async def run() -> None:
            for record in records:
                self.remaining[(record.source, record.partition)] -= 1
                await self.loop.on_record(record, self._ack_for(record), more_coming=batched)
            if flush:
                await self.loop.flush()

        asyncio.run(run())

    def output_ids(self) -> Counter[str]:
        return Counter(sent.event_id for sent in self.sent if sent.event_id is not None)


def interleaved(log: list[InputRecord], seed: int) -> list[InputRecord]:
    """Another arrival order the consumer could produce: each source partition stays in
    offset order, the sources interleave at random."""
    rnd = random.Random(seed)
    queues: dict[tuple[Source, int], list[InputRecord]] = {}
    for record in log:
        queues.setdefault((record.source, record.partition), []).append(record)
    out = []
    while queues:
        key = rnd.choice(sorted(queues))
        out.append(queues[key].pop(0))
        if not queues[key]:
            del queues[key]
    return out


def test_arrival_order_changes_neither_state_nor_outputs(
    codec: Codec, log: list[InputRecord]
) -> None:
    reference = Harness(codec)
    reference.feed(log)
    assert reference.loop.buffered() == 0
    assert reference.loop.counters.applied.total() == len(log)
    assert sum(reference.output_ids().values()) > 50
    for seed in (1, 2):
        other = Harness(codec)
        other.feed(interleaved(log, seed))
        assert other.table == reference.table
        assert other.output_ids() == reference.output_ids()


def test_every_record_is_acked_once_in_offset_order_per_source(
    codec: Codec, log: list[InputRecord]
) -> None:
    harness = Harness(codec)
    harness.feed(interleaved(log, 3))
    assert len(harness.acked) == len(log)
    per_source: dict[tuple[Source, int], list[int]] = {}
    for source, partition, offset in harness.acked:
        per_source.setdefault((source, partition), []).append(offset)
    for offsets in per_source.values():
        assert offsets == list(range(len(offsets)))


@pytest.mark.parametrize("crash_at", [200, 777, 1400])
def test_a_crash_and_redelivery_apply_every_record_once(
    codec: Codec, log: list[InputRecord], crash_at: int
) -> None:
    reference = Harness(codec)
    reference.feed(log)

    first = Harness(codec)
    first.feed(log[:crash_at])
    # the worker dies; its table survives (changelog), its offsets were committed only up to
    # some earlier point, so the new worker reads again from there
    committed_upto = crash_at // 2
    second = Harness(codec, table=DictTable(first.table))
    second.feed(log[committed_upto:])
    assert second.table == reference.table
    redelivered = len(log[committed_upto:crash_at])
    assert second.loop.counters.duplicates.total() == redelivered
    assert second.loop.counters.applied.total() == len(log) - crash_at
    # every output reached Kafka at least once, and nothing that was not in the reference
    assert set(first.output_ids() | second.output_ids()) == set(reference.output_ids())


def test_batches_give_the_same_states_outputs_and_acks_with_fewer_waits(
    codec: Codec, log: list[InputRecord]
) -> None:
    """Records applied in batches (each sees the states staged before it, its own customer's
    included) end as applied one by one, acked in the same order, with Kafka waited for
    once per partition per batch instead of once per record."""
    one_by_one = Harness(codec)
    one_by_one.feed(log)
    batched = Harness(codec)
    batched.feed(log, batched=True)
    assert batched.table == one_by_one.table
    # the same records, in the same order per partition (partitions are sent side by side)
    assert per_partition(batched.sent) == per_partition(one_by_one.sent)
    assert sorted(batched.acked, key=lambda a: a[1]) == sorted(one_by_one.acked, key=lambda a: a[1])
    # MAX_BATCH bounds a batch: 1,500 records and their due work make two or three of them
    assert batched.sends <= 3 * PARTITIONS < one_by_one.sends / 10


def per_partition(sent: list[Outbound]) -> dict[int, list[Outbound]]:
    grouped: dict[int, list[Outbound]] = {}
    for item in sent:
        grouped.setdefault(expected_partition(item.key or b"", PARTITIONS), []).append(item)
    return grouped


@pytest.mark.parametrize("batch_size", [7, 200])
def test_a_batch_is_flushed_when_full_whatever_is_still_to_come(
    codec: Codec, log: list[InputRecord], batch_size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("streams.worker.loop.MAX_BATCH", batch_size)
    harness = Harness(codec)
    harness.feed(log, batched=True, flush=False)
    staged = [item for p in harness.loop._partitions.values() for item in p.staged]
    assert len(harness.acked) > 0 and len(staged) < batch_size
    records_staged = sum(1 for item in staged if item.ack is not None)
    # every record is acked (flushed), waiting in the merge, or in the batch still open
    assert len(harness.acked) + harness.loop.buffered() + records_staged == len(log)


@pytest.mark.parametrize("crash_at", [333, 1400])
def test_a_crash_between_a_batchs_sends_and_its_writes_loses_nothing(
    codec: Codec, log: list[InputRecord], crash_at: int
) -> None:
    """The worker dies after a batch's outputs were acknowledged, half-way through writing
    its states (a SIGKILL): the next owner reads the batch again, applies what was not
    written, and every output reaches Kafka; the table ends as a run without the crash."""
    reference = Harness(codec)
    reference.feed(log)

    class Killed(BaseException):
        pass

    class DyingTable(DictTable):
        writes_left: int | None = None  # None: not dying yet

        def put(self, partition: int, key: bytes, value: bytes) -> None:
            if self.writes_left == 0:
                raise Killed
            if self.writes_left is not None:
                self.writes_left -= 1
            super().put(partition, key, value)

    table = DyingTable()
    first = Harness(codec, table=table)
    first.feed(log[:crash_at], batched=True, flush=False)  # the last batch is only staged
    acked, sent, stored = len(first.acked), len(first.sent), dict(table)
    table.writes_left = 5
    with pytest.raises(Killed):
        asyncio.run(first.loop.flush())
    assert len(first.acked) == acked and len(first.sent) > sent
    assert 0 < sum(stored.get(key) != value for key, value in table.items()) <= 5
    second = Harness(codec, table=DictTable(first.table))
    second.feed(log, batched=True)  # nothing was acked: all of it comes again
    assert second.table == reference.table
    assert set(first.output_ids() | second.output_ids()) == set(reference.output_ids())


def test_a_partition_lost_in_a_batch_leaves_the_others_acked(
    codec: Codec, log: list[InputRecord]
) -> None:
    harness = Harness(codec)

    async def send(outbound: list[Outbound], partition: int) -> None:
        if partition == 2:
            raise PartitionLostError("fenced")
        harness.sent.extend(outbound)

    harness.loop.send = send
    harness.feed(log[:300], batched=True)
    acked_partitions = {partition for _, partition, _ in harness.acked}
    assert acked_partitions == {0, 1}
    assert len(harness.acked) == sum(1 for r in log[:300] if r.partition != 2)
    assert all(StoredCustomer.from_bytes(v).partition != 2 for v in harness.table.values())
    assert 2 not in harness.loop._partitions  # given up: its next owner applies its records


def test_a_partition_revoked_and_assigned_again_during_a_flush_keeps_its_new_assignment(
    codec: Codec, log: list[InputRecord]
) -> None:
    """The rebalance took partition 1 away and gave it back while the batch's outputs were
    acknowledged: the batch's records of it are not acked (its next owner, this worker
    again, reads them again), and what the new assignment holds is not given up with them."""
    harness = Harness(codec)
    records = [r for r in log if r.partition == 1][:50]

    async def send(outbound: list[Outbound], partition: int) -> None:
        harness.sent.extend(outbound)
        harness.loop.revoke([partition])
        harness.loop.assign([partition])

    harness.loop.send = send
    harness.feed(records, batched=True)
    assert harness.sent and harness.acked == []
    assert 1 in harness.loop._partitions  # the new assignment stays


def test_ticks_in_live_mode_flag_silent_customers_without_their_events(
    codec: Codec, log: list[InputRecord]
) -> None:
    live = Harness(codec)
    live.loop.live_clock = True
    live.feed(log)
    before = Counter(sent.kind for sent in live.sent)
    last_event_ms = max(
        live.loop._partitions[p].clock_ms for p in range(PARTITIONS)
    )  # the simulated traffic's end
    year_later = last_event_ms + 400 * 86_400_000

    async def ticks() -> None:
        for partition in range(PARTITIONS):
            await live.loop.on_tick(partition, year_later)

    asyncio.run(ticks())
    after = Counter(sent.kind for sent in live.sent)
    assert after["ChurnRiskChanged"] > before["ChurnRiskChanged"]
    assert after["PointsExpired"] > before["PointsExpired"]
    # the same ticks in event mode move nothing
    event_mode = Harness(codec)
    event_mode.feed(log)
    sent_before = len(event_mode.sent)

    async def event_ticks() -> None:
        for partition in range(PARTITIONS):
            await event_mode.loop.on_tick(partition, year_later)

    asyncio.run(event_ticks())
    assert len(event_mode.sent) == sent_before


def purchase_records(
    codec: Codec, purchases: list[tuple[str, datetime]], partition: int
) -> list[InputRecord]:
    """Purchases of customers on `partition`, published in the order given, each received
    as it happened or, if it came late, just after the one before."""
    records = []
    received_ms = -1
    for offset, (customer_id, at) in enumerate(purchases):
        received_ms = max(received_ms + 1, to_ms(at))
        body: dict[str, Any] = {"event_id": f"p-{offset}", "customer_id": customer_id,
                                "store_id": None, "occurred_at": at, "currency": "EUR",
                                "total_minor": 1250, "items": []}  # fmt: skip
        value = codec.encode("loyalty.v1.Purchase", body)
        records.append(
            InputRecord(
                Source.PURCHASES,
                TOPICS.purchases,
                partition,
                offset,
                received_ms,
                customer_id.encode(),
                value,
            )
        )
    return records


def customers_on(partition: int, count: int) -> list[str]:
    ids = (f"c-{n}" for n in range(10_000))
    return [c for c in ids if expected_partition(c.encode(), PARTITIONS) == partition][:count]


def test_after_a_restart_due_work_happens_where_it_did_in_a_run_that_never_stopped(
    codec: Codec,
) -> None:
    """A weekly regular goes silent; another customer's purchase 300 days later moves the
    partition's clock past the regular's churn changes, then a late purchase of the regular
    arrives. The worker dies after storing the other customer but before the regular's churn
    changes were stored: the new worker must run them before it applies the late purchase,
    as the run that never stopped did, or it ends with another state and other outputs."""
    regular, other = customers_on(0, 2)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    weekly = [(regular, start + timedelta(weeks=week)) for week in range(10)]
    last_visit = weekly[-1][1]
    log = purchase_records(
        codec,
        [
            *weekly,
            (other, last_visit + timedelta(days=300)),
            (regular, last_visit + timedelta(days=3)),
        ],
        partition=0,
    )
    reference = Harness(codec)
    reference.feed(log)
    churn_changes = [s for s in reference.sent if s.kind == "ChurnRiskChanged"]
    assert churn_changes, "the regular's silence should change their churn level"

    first = Harness(codec)
    first.feed(log[:-2])

    async def dies_before_due_work(_partition: int) -> None:
        return None

    first.loop._run_due = dies_before_due_work  # type: ignore[method-assign, assignment]
    first.feed(log[-2:-1])  # the other customer stored, the regular's due work lost
    second = Harness(codec, table=DictTable(first.table))
    second.feed(log[-1:])  # offsets were committed up to the late purchase
    assert second.table == reference.table
    assert set(first.output_ids() | second.output_ids()) == set(reference.output_ids())


@pytest.mark.parametrize("limited", [True, False])
def test_an_event_centuries_ahead_of_its_receipt_moves_no_partition_clock(
    codec: Codec, limited: bool
) -> None:
    """One POS with its clock at 2400, among customers buying in 2025: applied, it took the
    partition's clock to 2400 and the due work after it expired every customer's points and
    downgraded their tiers. Refused, it is a dead letter and the clock stays in 2025."""
    regular, broken_pos_customer = customers_on(0, 2)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    log = purchase_records(
        codec,
        [
            (regular, start),
            (broken_pos_customer, datetime(2400, 1, 1, tzinfo=UTC)),
            (regular, start + timedelta(days=30)),
        ],
        partition=0,
    )
    log[1] = replace(log[1], timestamp_ms=to_ms(start + timedelta(days=1)))  # received in 2025
    harness = Harness(codec)
    if not limited:
        harness.loop.processor.max_event_time_ahead_ms = None
    event_lags: list[float | None] = []
    harness.loop.observe_latency = lambda _processing_s, lag_s: event_lags.append(lag_s)
    harness.feed(log)
    kinds = Counter(sent.kind for sent in harness.sent)
    clock = harness.loop._partitions[0].clock_ms
    if limited:
        # the refused event's time is no lag to chart: centuries below zero
        assert event_lags[1] is None and event_lags[0] is not None
        assert kinds == Counter({"DeadLetter": 1})
        assert harness.loop.counters.rejected == Counter({"EVENT_TIME_AHEAD": 1})
        assert clock == to_ms(start + timedelta(days=30))
        regular_state = StoredCustomer.from_bytes(harness.table[regular.encode()]).state
        assert regular_state.points == 2 * 12  # 12.50 twice, nothing expired
    else:  # what the limit prevents
        assert kinds["PointsExpired"] >= 1 and clock == to_ms(datetime(2400, 1, 1, tzinfo=UTC))


def test_revoked_partitions_forget_buffered_records_without_acking_them(
    codec: Codec, log: list[InputRecord]
) -> None:
    harness = Harness(codec)
    harness.remaining[(Source.FEEDBACK, 0)] = 1  # feedback of partition 0 never arrives
    purchases = [r for r in log if r.partition == 0 and r.source is Source.PURCHASES][:5]

    async def run() -> None:
        for record in purchases:
            await harness.loop.on_record(record, harness._ack_for(record))

    asyncio.run(run())
    assert harness.loop.buffered() == 5 and harness.acked == []
    harness.loop.revoke([0])
    assert harness.loop.buffered() == 0 and harness.acked == []


def test_nothing_is_written_or_acked_for_a_partition_taken_away_during_a_send(
    codec: Codec, log: list[InputRecord]
) -> None:
    harness = Harness(codec)
    partition = 1
    records = [r for r in log if r.partition == partition]
    owned = {0, 1, 2}
    writes_after_loss: list[bytes] = []

    class WatchedTable(DictTable):
        def __setitem__(self, key: bytes, value: bytes) -> None:
            if partition not in owned:
                writes_after_loss.append(key)
            super().__setitem__(key, value)

    harness.table = WatchedTable()
    harness.loop.table = harness.table

    async def send_then_lose_partition(outbound: list[Outbound], _partition: int) -> None:
        harness.sent.extend(outbound)
        owned.discard(partition)  # the rebalance happens while Kafka acknowledges

    harness.loop.send = send_then_lose_partition
    harness.loop.owns = lambda number: number in owned
    harness.feed(records)
    assert harness.sent, "the log should produce outputs on this partition"
    assert writes_after_loss == []
    acked: dict[Source, list[int]] = {}
    for source, number, offset in harness.acked:
        if number == partition:
            acked.setdefault(source, []).append(offset)
    # the record whose outputs were being acknowledged, and all after it, stay unacked for
    # the partition's next owner (each source's acks a run from its first offset); nothing
    # is buffered for a partition we do not own
    assert all(offsets == list(range(len(offsets))) for offsets in acked.values())
    assert sum(map(len, acked.values())) < len(records)
    assert harness.loop.buffered() == 0


def stored_states(table: dict[bytes, bytes]) -> list[CustomerState]:
    return [StoredCustomer.from_bytes(value).state for value in table.values()]


def test_the_program_tally_follows_every_change_and_survives_a_restart(
    codec: Codec, log: list[InputRecord]
) -> None:
    program = load_program(DEFAULT_RULES)
    whole = Harness(codec)
    whole.feed(log)
    assert whole.loop.tally() == tally_of(stored_states(whole.table), program)
    assert whole.loop.tally().customers == len(whole.table)

    # a new worker takes over half-way: it counts the stored customers once, then follows
    first = Harness(codec)
    first.feed(log[:700])
    second = Harness(codec, table=DictTable(first.table))
    second.feed(log[700:])
    assert second.loop.tally() == whole.loop.tally()


class CountingTable(DictTable):
    """A dict that counts full scans (what a RocksDB table pays per customer stored)."""

    scans = 0

    def items(self) -> Any:  # dict's own return type, counted
        self.scans += 1
        return super().items()


def test_a_new_assignment_is_indexed_in_one_scan_of_the_table(
    codec: Codec, log: list[InputRecord]
) -> None:
    first = Harness(codec)
    first.feed(log[:700])
    table = CountingTable(first.table)
    second = Harness(codec, table=table)
    second.loop.assign(range(PARTITIONS))
    second.feed(log[700:])
    assert {record.partition for record in log[700:]} == set(range(PARTITIONS))
    assert table.scans == 1
    whole = Harness(codec)
    whole.feed(log)
    assert second.loop.tally() == whole.loop.tally()
    assert second.loop.due_entries() == whole.loop.due_entries()


def test_a_revoked_partition_leaves_the_tally_and_the_due_index(
    codec: Codec, log: list[InputRecord]
) -> None:
    harness = Harness(codec)
    harness.feed(log)
    kept = [
        s
        for s in stored_states(harness.table)
        if expected_partition(s.customer_id.encode(), PARTITIONS) != 0
    ]
    harness.loop.revoke([0])
    assert harness.loop.tally() == tally_of(kept, load_program(DEFAULT_RULES))
    assert not harness.loop.due.has(0)


def test_the_counters_say_what_was_consumed_applied_and_sent(
    codec: Codec, log: list[InputRecord]
) -> None:
    harness = Harness(codec)
    harness.feed(log)
    counters = harness.loop.counters
    assert counters.consumed.total() == len(log)
    assert {topic for topic, _ in counters.consumed} == {"purchases", "feedback"}
    assert counters.consumed["purchases", "Purchase"] == sum(
        1
        for r in log
        if r.source is Source.PURCHASES
        and codec.decode(r.value or b"").schema_name.endswith("Purchase")
    )
    assert counters.sent == Counter(sent.kind for sent in harness.sent)
    assert counters.rewards.total() == counters.sent["RewardEarned"]
    assert counters.nps_responses.total() == counters.consumed["feedback", "NpsResponse"]


def test_a_merge_that_keeps_releasing_never_counts_as_idle(
    codec: Codec, log: list[InputRecord]
) -> None:
    """`max_idle_s` is how long the merge has been stuck, not how long it has held records:
    under a steady backlog it always holds some, and counting from then let every record go
    ahead unordered once the backlog was older than `max_idle_s`."""
    mine = [r for r in log if r.partition == 0]
    feedback = next(
        r
        for r in mine
        if r.source is Source.FEEDBACK
        and sum(
            1
            for p in mine
            if p.source is Source.PURCHASES and p.offset < 5 and p.timestamp_ms < r.timestamp_ms
        )
        >= 2
    )
    earlier = [
        p for p in mine if p.source is Source.PURCHASES and p.timestamp_ms < feedback.timestamp_ms
    ][:2]
    harness = Harness(codec)
    now = [0.0]
    harness.loop.wall_clock = lambda: now[0]
    harness.loop.max_idle_s = 30
    harness.remaining[(Source.PURCHASES, 0)] = 99  # purchases are never known to be read up
    harness.remaining[(Source.FEEDBACK, 0)] = 99

    async def at(moment: float, record: InputRecord | None) -> None:
        now[0] = moment
        if record is None:
            await harness.loop.on_tick(0, 0)
        else:
            await harness.loop.on_record(record, harness._ack_for(record))

    async def run() -> None:
        await at(0, feedback)  # waits: a purchase published before it may still come
        await at(20, earlier[0])  # goes ahead of it: progress
        await at(40, None)  # 40 s since the feedback arrived, 20 since the merge moved
        await at(41, earlier[1])
        await at(75, None)  # stuck 34 s now: the feedback goes, its source being silent

    asyncio.run(run())
    assert [(s, o) for s, _, o in harness.acked] == [
        (Source.PURCHASES, earlier[0].offset),
        (Source.PURCHASES, earlier[1].offset),
        (Source.FEEDBACK, feedback.offset),
    ]


def test_an_end_of_source_seen_before_a_record_was_published_does_not_release_it(
    codec: Codec, log: list[InputRecord]
) -> None:
    """The consumer's highwater of the other source counts only if it was fetched at least
    the merge delay after the waiting record was published: an older one (a partition Faust
    stopped fetching while its buffer was full) says nothing of feedback published since, and
    trusting it applied a crash test's records out of publish order."""
    purchase = next(r for r in log if r.partition == 0 and r.source is Source.PURCHASES)
    harness = Harness(codec)
    now = [purchase.timestamp_ms / 1000 + 5]
    harness.loop.wall_clock = lambda: now[0]
    harness.loop.merge_delay_ms = 2000
    fetched_at = {Source.PURCHASES: 0, Source.FEEDBACK: purchase.timestamp_ms + 1999}
    asked: list[int] = []

    def caught_up(source: Source, partition: int, last_seen: int | None, as_of_ms: int) -> bool:
        asked.append(as_of_ms)
        return fetched_at[source] >= as_of_ms  # the end was seen: nothing more was fetched

    harness.loop.caught_up = caught_up

    async def run() -> None:
        await harness.loop.on_record(purchase, harness._ack_for(purchase))
        assert harness.acked == []  # the feedback end it knows predates the purchase + delay
        fetched_at[Source.FEEDBACK] = purchase.timestamp_ms + 2000
        await harness.loop.on_tick(0, 0)

    asyncio.run(run())
    assert set(asked) == {purchase.timestamp_ms + 2000}
    assert harness.acked == [(Source.PURCHASES, 0, purchase.offset)]
    assert harness.loop.counters.idle_releases == 0


def test_records_let_go_after_the_longest_wait_are_counted(
    codec: Codec, log: list[InputRecord]
) -> None:
    purchase = next(r for r in log if r.partition == 0 and r.source is Source.PURCHASES)
    harness = Harness(codec)
    now = [0.0]
    harness.loop.wall_clock = lambda: now[0]
    harness.loop.max_idle_s = 30
    harness.remaining[(Source.FEEDBACK, 0)] = 1  # feedback is never known to be read up

    async def run() -> None:
        await harness.loop.on_record(purchase, harness._ack_for(purchase))
        now[0] = 29
        await harness.loop.on_tick(0, 0)
        assert harness.acked == []
        now[0] = 31
        await harness.loop.on_tick(0, 0)

    asyncio.run(run())
    assert harness.acked == [(Source.PURCHASES, 0, purchase.offset)]
    assert harness.loop.counters.idle_releases == 1


def test_a_rewind_of_the_consumer_mid_buffer_applies_every_record_once(
    codec: Codec, log: list[InputRecord]
) -> None:
    """Faust seeks back to the committed offsets when it finds its flow stopped, with no
    rebalance: records the merge holds come again, and earlier ones already applied too."""
    reference = Harness(codec)
    reference.feed(log)
    harness = Harness(codec)
    half = len(log) // 2
    for source in Source:  # partition 1 seems to have more of both: its tail waits
        harness.remaining[(source, 1)] += 1
    harness.feed(log[:half])
    assert harness.loop.buffered() > 0
    rewound = [r for r in log[:half] if r.partition == 1][-40:]  # read again from there
    for source in Source:
        harness.remaining[(source, 1)] -= 1
    harness.feed(rewound + log[half:])
    assert harness.table == reference.table
    assert set(harness.output_ids()) == set(reference.output_ids())


def test_a_rewind_sends_no_output_and_no_dead_letter_twice(
    codec: Codec, log: list[InputRecord]
) -> None:
    """Records read again after a rewind that were past the merge already (done, or staged in
    the open batch) are not applied again: an undecodable one has no offset mark to say it
    was, and would be dead-lettered twice."""
    on_1 = [index for index, r in enumerate(log) if r.partition == 1]
    bad_at = on_1[len(on_1) // 2 - 10]
    broken = list(log)
    broken[bad_at] = replace(log[bad_at], value=b"\x00 not an event")
    half = on_1[len(on_1) // 2] + 1
    harness = Harness(codec)
    harness.feed(broken[:half], batched=True, flush=False)  # the last batch still open
    rewound = [r for r in broken[:half] if r.partition == 1][-30:]  # read again from there
    assert any(r.value == b"\x00 not an event" for r in rewound)
    harness.feed(rewound + broken[half:], batched=True)
    sent = Counter(s.event_id for s in harness.sent if s.kind != "DeadLetter")
    assert sent and max(sent.values()) == 1
    assert harness.loop.counters.dead_letters == 1
    acked = Counter(harness.acked)
    assert max(acked.values()) == 1 and len(acked) == len(log)


def test_a_record_whose_state_write_was_not_handed_over_is_not_acked(
    codec: Codec, log: list[InputRecord]
) -> None:
    """The table dropped the changelog write (the partition was given up meanwhile): the
    record stays unacked for the partition's next owner, and nothing more of it is done."""
    harness = Harness(codec)

    async def hand_over() -> dict[int, int]:
        return {0: 0}  # none of partition 0's writes went

    harness.loop.hand_over = hand_over
    harness.feed(log)
    assert harness.acked and all(partition != 0 for _, partition, _ in harness.acked)
    assert harness.loop.counters.applied.total() == sum(1 for r in log if r.partition != 0)


def test_records_whose_writes_went_before_their_partition_was_lost_count_as_applied(
    codec: Codec, log: list[InputRecord]
) -> None:
    """The hand-over got 3 of partition 1's writes out before the rebalance stopped it: those
    records are applied (the next owner finds them so) and counted here, none acked; the
    rest are for the next owner. A metric that skipped them lost a batch at every rebalance."""
    harness = Harness(codec)
    records = [r for r in log if r.partition == 1][:40]
    cut: dict[int, int] = {1: 3}

    async def hand_over() -> dict[int, int]:
        return dict(cut)

    harness.loop.hand_over = hand_over
    harness.feed(records, batched=True)
    assert harness.acked == []
    assert harness.loop.counters.applied.total() == 3
    assert 1 not in harness.loop._partitions  # given up


def test_a_partition_lost_while_sending_leaves_its_record_unacked_and_unwritten(
    codec: Codec, log: list[InputRecord]
) -> None:
    """Under exactly_once a send into a fenced transaction says the partition moved: the
    record is neither written nor acked, and the worker carries on with its other partitions."""
    harness = Harness(codec)

    async def send(outbound: list[Outbound], partition: int) -> None:
        if partition == 0:
            raise PartitionLostError("fenced")
        harness.sent.extend(outbound)

    async def hand_over() -> dict[int, int]:  # the changelog writes are fenced too
        return {0: 0}

    harness.loop.send = send
    harness.loop.hand_over = hand_over
    harness.feed(log)
    assert any(record.partition == 0 for record in log)
    assert harness.acked and all(partition != 0 for _, partition, _ in harness.acked)
    assert not any(s.key and expected_partition(s.key, PARTITIONS) == 0 for s in harness.sent)


def test_restored_due_work_runs_only_for_the_partition_of_the_record_at_hand(
    codec: Codec, log: list[InputRecord]
) -> None:
    """Faust writes a table change to the changelog partition of the record being processed:
    the due work of a partition's restored clock must wait for a record or tick of its own."""
    first = Harness(codec)

    async def no_due_work(_partition: int) -> None:
        return None

    first.loop._run_due = no_due_work  # type: ignore[method-assign, assignment]
    first.feed(log)  # every customer stored with due work left undone
    second = Harness(codec, table=DictTable(first.table))
    second.loop.assign(range(PARTITIONS))
    last_of_0 = [r for r in log if r.partition == 0][-1]
    second.feed([last_of_0])  # read again: a duplicate, but the partition's due work runs
    assert second.sent, "the restored clock should have due work to do"
    assert {expected_partition(s.key or b"", PARTITIONS) for s in second.sent} == {0}


def test_no_commit_falls_between_a_records_outputs_and_its_state_write(
    codec: Codec, log: list[InputRecord]
) -> None:
    """Under exactly_once a commit of the partition's transaction between a record's outputs
    and its state write would commit the outputs alone; a crash then has the next owner apply
    the record again and send them twice. Here a commit is attempted in the middle of every
    send (as Faust's commit timer may fire there): each one must find no record half done."""
    harness = Harness(codec)
    half_done: set[bytes] = set()  # customers whose outputs are sent and state not yet written
    commits_seen: list[frozenset[bytes]] = []

    class WatchedTable(DictTable):
        def __setitem__(self, key: bytes, value: bytes) -> None:
            half_done.discard(key)
            super().__setitem__(key, value)

    harness.table = WatchedTable()
    harness.loop.table = harness.table

    async def commit() -> None:
        async with harness.loop.commit_gate:
            commits_seen.append(frozenset(half_done))

    async def send(outbound: list[Outbound], _partition: int) -> None:
        half_done.update(item.key for item in outbound if item.key is not None)
        harness.sent.extend(outbound)
        asyncio.get_running_loop().create_task(commit())
        for _ in range(3):  # Kafka's acknowledgement takes a while
            await asyncio.sleep(0)

    harness.loop.send = send
    harness.feed(log)
    assert len(commits_seen) > 100
    assert all(not half for half in commits_seen)


def test_after_a_rules_change_the_due_index_follows_the_new_rules(
    codec: Codec, log: list[InputRecord], tmp_path: Path
) -> None:
    """A worker restarted with new rules (points lapse after 30 days instead of 365) learns
    when each stored customer is next due from the new rules, not from the stored headers,
    which hold the old rules' answer."""
    before = Harness(codec)
    before.feed(log)
    rules = tmp_path / "shorter-expiry.toml"
    rules.write_text(DEFAULT_RULES.read_text().replace("expiry_days = 365", "expiry_days = 30", 1))
    program = load_program(rules)
    assert program.version != load_program(DEFAULT_RULES).version
    after = WorkerLoop(
        Processor(program, codec, TOPICS, PARTITIONS), before.table, before._send,
        before._caught_up, grace_ms=0, live_clock=False,
    )  # fmt: skip
    after.assign(range(PARTITIONS))
    asyncio.run(after.index_new_partitions())
    moved = 0
    for key, value in before.table.items():
        stored = StoredCustomer.from_bytes(value)
        wanted = after.processor.next_due_ms(stored.state)
        assert after.due._due[stored.partition].get(key.decode()) == wanted
        moved += wanted != stored.next_due_ms
    assert moved > 0  # the new rules brought some customers' due times forward
