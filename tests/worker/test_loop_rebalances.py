"""The worker loop driven by a model of Faust's consumer through random rebalances, crashes
and end-of-recovery seeks, against the reference fold of the same log: every state and every
output as if nothing had happened, every record acked.

The model commits, per source partition, the run of offsets acked from the committed one
(as Faust does), and goes back to the committed offsets at every rebalance and crash. A
rebalance first lets the loop flush while the rebalance fence is closed (its batch is given
up: nothing written, nothing acked). At the end of recovery Faust may deliver records before
its seek and only the last of them again after it (its fetcher overwrote the sought read
offset, see `commit_offsets`): the model does that too."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable

import pytest

from streams.broker import TopicNames
from streams.contract import Codec, make_codec
from streams.program import load_program
from streams.settings import DEFAULT_RULES, Settings
from streams.tools.simulate import SimulationConfig
from streams.worker.loop import DictTable, WorkerLoop
from streams.worker.ordering import Source
from streams.worker.processor import InputRecord, Outbound, Processor
from tests.worker.simulated import simulated_log

PARTITIONS = 3
TOPICS = TopicNames("t")
Key = tuple[Source, int]


@pytest.fixture(scope="module")
def codec() -> Codec:
    return make_codec(Settings())


@pytest.fixture(scope="module")
def log(codec: Codec) -> list[InputRecord]:
    return simulated_log(
        codec, TOPICS, PARTITIONS, SimulationConfig(customers=40, events=1200, seed=11)
    )


class FaustModel:
    """The log per source partition, what was delivered, acked and committed."""

    def __init__(self, log: list[InputRecord]) -> None:
        self.records: dict[Key, list[InputRecord]] = {}
        for record in log:
            self.records.setdefault((record.source, record.partition), []).append(record)
        self.position = dict.fromkeys(self.records, 0)  # the next offset to deliver
        self.committed = dict.fromkeys(self.records, 0)
        self.acked: dict[Key, set[int]] = {key: set() for key in self.records}
        # Faust's read offset after its last seek (None from an assignment until its seek)
        self.start: dict[Key, int | None] = dict(self.committed)

    def ack_for(self, record: InputRecord) -> Callable[[], None]:
        return lambda: self.acked[(record.source, record.partition)].add(record.offset)

    def commit(self) -> None:
        for key, acked in self.acked.items():
            while self.committed[key] in acked:
                self.committed[key] += 1

    def assigned(self) -> None:
        """A new assignment: fetching starts from the committed offsets, and records flow
        before Faust's end-of-recovery seek."""
        self.commit()
        self.position = dict(self.committed)
        self.start = dict.fromkeys(self.records)

    def seek(self, *, raced: bool) -> None:
        """The end-of-recovery seek. Raced: the fetcher's batch in flight overwrote the read
        offset, so what was delivered stays delivered and only the last record of each
        partition comes again; else everything from the committed offsets comes again."""
        self.commit()
        self.start = dict(self.committed)
        if raced:
            self.position = {key: max(self.committed[key], self.position[key] - 1)
                             for key in self.records}  # fmt: skip
        else:
            self.position = dict(self.committed)

    def pending(self) -> list[Key]:
        return [key for key, records in self.records.items() if self.position[key] < len(records)]

    def deliver(self, key: Key) -> InputRecord:
        record = self.records[key][self.position[key]]
        self.position[key] += 1
        return record

    def caught_up(self, source: Source, partition: int, last_seen: int | None, _as_of: int) -> bool:
        key = (source, partition)
        seen = self.start.get(key) if last_seen is None else last_seen + 1
        return seen is not None and seen >= len(self.records.get(key, []))


class Worker:
    """A loop on the surviving table (the changelog), fenced or not, owning `partitions`."""

    def __init__(self, codec: Codec, model: FaustModel, table: DictTable) -> None:
        self.model = model
        self.fenced = False
        self.partitions: set[int] = set(range(PARTITIONS))
        self.sent: list[Outbound] = []
        processor = Processor(load_program(DEFAULT_RULES), codec, TOPICS, PARTITIONS)
        self.loop = WorkerLoop(
            processor, table, self._send, model.caught_up, grace_ms=0, live_clock=False,
            merge_delay_ms=0, owns=self.owns,
        )  # fmt: skip

    def owns(self, partition: int) -> bool:
        return not self.fenced and partition in self.partitions

    async def _send(self, outbound: list[Outbound], _partition: int) -> None:
        self.sent.extend(outbound)


def reference(codec: Codec, log: list[InputRecord]) -> tuple[DictTable, Counter[str]]:
    """One worker, the log in publish order, nothing happening."""
    model = FaustModel(log)
    table = DictTable()
    worker = Worker(codec, model, table)

    async def fold() -> None:
        for record in log:
            key = (record.source, record.partition)
            model.position[key] += 1
            await worker.loop.on_record(record, model.ack_for(record))
        for partition in range(PARTITIONS):
            await worker.loop.on_tick(partition, 0)

    asyncio.run(fold())
    return table, Counter(s.event_id for s in worker.sent if s.event_id is not None)


async def drive(
    codec: Codec, log: list[InputRecord], seed: int, workers: int
) -> tuple[DictTable, Counter[str], FaustModel, Counter[str]]:
    """The log through `workers` workers of one group on one table (the changelog), with
    random rebalances and crashes: partitions move between them at every rebalance (each
    gives up all of its own first, as the eager protocol has it), and a worker killed is
    replaced by a new one, its partitions going to whoever the next assignment says.
    Returns the table, the outputs of all of them, the model, and what happened."""
    rnd = random.Random(seed)
    model = FaustModel(log)
    table = DictTable()
    members = [Worker(codec, model, table) for _ in range(workers)]
    everyone = list(members)
    happened: Counter[str] = Counter()
    recovering = False  # between an assignment and its seek

    async def rebalance(dead: Worker | None = None) -> None:
        for member in members:
            if member is not dead:
                member.fenced = True
                await member.loop.flush()  # during the rebalance: given up
                member.fenced = False
                member.loop.revoke(member.partitions)
        if dead is not None:
            replacement = Worker(codec, model, table)
            members[members.index(dead)] = replacement
            everyone.append(replacement)
        owners = [rnd.randrange(len(members)) for _ in range(PARTITIONS)]
        for index, member in enumerate(members):
            member.partitions = {p for p in range(PARTITIONS) if owners[p] == index}
            member.loop.assign(member.partitions)
        model.assigned()

    def owner_of(partition: int) -> Worker:
        return next(member for member in members if partition in member.partitions)

    await rebalance()
    recovering = True
    while model.pending() or recovering:
        roll = rnd.random()
        if roll < 0.02:
            happened["rebalance"] += 1
            await rebalance()
            recovering = True
        elif roll < 0.03:
            happened["crash"] += 1
            await rebalance(dead=rnd.choice(members))
            recovering = True
        elif recovering and (roll < 0.06 or not model.pending()):
            raced = rnd.random() < 0.5
            happened["raced seek" if raced else "seek"] += 1
            model.seek(raced=raced)
            recovering = False
        elif roll < 0.08:
            model.commit()
            partition = rnd.randrange(PARTITIONS)
            await owner_of(partition).loop.on_tick(partition, 0)
        else:
            record = model.deliver(rnd.choice(model.pending()))
            ack = model.ack_for(record)
            await owner_of(record.partition).loop.on_record(
                record, ack, more_coming=rnd.random() < 0.7
            )
    for partition in range(PARTITIONS):
        await owner_of(partition).loop.on_tick(partition, 0)
    model.commit()
    outputs = Counter(s.event_id for w in everyone for s in w.sent if s.event_id is not None)
    return table, outputs, model, happened


@pytest.fixture(scope="module")
def expected(codec: Codec, log: list[InputRecord]) -> tuple[DictTable, Counter[str]]:
    return reference(codec, log)


@pytest.mark.parametrize(
    ("workers", "seed"), [(1, seed) for seed in range(12)] + [(2, seed) for seed in range(8)]
)
def test_rebalances_crashes_and_raced_seeks_change_nothing(
    codec: Codec,
    log: list[InputRecord],
    expected: tuple[DictTable, Counter[str]],
    workers: int,
    seed: int,
) -> None:
    """One worker, and two that partitions move between."""
    expected_table, expected_outputs = expected
    table, outputs, model, happened = asyncio.run(drive(codec, log, seed, workers))
    assert happened["rebalance"] and happened["crash"] and happened["raced seek"]
    assert table == expected_table
    assert set(outputs) == set(expected_outputs)
    assert model.committed == {key: len(records) for key, records in model.records.items()}
