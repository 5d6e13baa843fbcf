"""All of a worker's RocksDB databases, one per table partition, share one block cache and one
write buffer manager charged to it: the worker's RocksDB memory is one budget, however many
partitions it owns (issue #8), and the databases work as before."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import rocksdict
from faust.stores.rocksdb import RocksDBOptions

from streams.worker import rocksdb_memory
from streams.worker.rocksdb_memory import MemoryBudget, SharedBudgetOptions

MiB = 2**20
VALUE_BYTES = 180  # about a stored customer's state
PARTITIONS = 8


@pytest.fixture(autouse=True)
def fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts as a new worker process does, with no cache made yet, so that the
    usage it reads is its databases' alone."""
    monkeypatch.setattr(rocksdb_memory, "_shared", {})


def shared_options(
    cache_bytes: int = 4 * MiB, write_buffer_bytes: int = 2 * MiB, write_buffer_size: int = MiB
) -> SharedBudgetOptions:
    return SharedBudgetOptions(
        memory_budget_size=cache_bytes,
        write_buffer_budget_size=write_buffer_bytes,
        write_buffer_size=write_buffer_size,
        max_write_buffer_number=3,
        use_rocksdict=True,
    )


def open_partitions(options: RocksDBOptions, folder: Path, count: int) -> list[rocksdict.Rdict]:
    return [options.open(folder / f"partition-{p}") for p in range(count)]


def customers(count: int, seed: int) -> Iterator[tuple[bytes, bytes]]:
    """Random keys and values: incompressible, spread over the key space as ids hash."""
    rng = random.Random(seed)
    for _ in range(count):
        yield rng.randbytes(16), rng.randbytes(VALUE_BYTES)


def write(db: rocksdict.Rdict, count: int, seed: int) -> dict[bytes, bytes]:
    written = dict(customers(count, seed))
    for key, value in written.items():
        db.put(key, value)
    return written


def memtable_bytes(dbs: list[rocksdict.Rdict]) -> int:
    """What the databases' memtables hold once their flushes are done: RocksDB's own count,
    not the write buffer manager's (a database not charged to it would escape that one)."""

    def flushing() -> int:
        return sum(
            (db.property_int_value("rocksdb.num-running-flushes") or 0)
            + (db.property_int_value("rocksdb.mem-table-flush-pending") or 0)
            for db in dbs
        )

    deadline = time.monotonic() + 30
    while flushing() and time.monotonic() < deadline:
        time.sleep(0.01)
    return sum(db.property_int_value("rocksdb.cur-size-all-mem-tables") or 0 for db in dbs)


def test_every_store_of_the_process_gets_the_same_cache_and_write_buffer_manager() -> None:
    """Faust builds a store (and its options) per table, and more than one for some tables:
    the budget is the process's, not a store's."""
    first, second = shared_options(), shared_options()
    assert first.shared is second.shared
    assert first.shared.cache is second.shared.cache
    assert first.shared.write_buffers is second.shared.write_buffers
    assert shared_options(cache_bytes=8 * MiB).shared.cache is not first.shared.cache


def test_the_cache_and_write_buffer_manager_have_the_budget_s_sizes() -> None:
    shared = shared_options(cache_bytes=4 * MiB, write_buffer_bytes=3 * MiB).shared
    assert shared.budget == MemoryBudget(cache_bytes=4 * MiB, write_buffer_bytes=3 * MiB)
    assert shared.write_buffers.get_buffer_size() == 3 * MiB
    assert shared.write_buffers.enabled()


def test_a_budget_whose_write_buffers_exceed_the_cache_is_refused() -> None:
    with pytest.raises(ValueError, match="within the cache"):
        shared_options(cache_bytes=2 * MiB, write_buffer_bytes=3 * MiB)


def test_every_partition_s_memtables_are_charged_to_the_one_cache(tmp_path: Path) -> None:
    options = shared_options()
    shared = options.shared
    first, second = open_partitions(options, tmp_path, 2)

    write(first, 2_000, seed=1)
    after_first = shared.write_buffers.get_usage()
    write(second, 2_000, seed=2)
    after_second = shared.write_buffers.get_usage()

    assert after_first >= 2_000 * VALUE_BYTES
    assert after_second >= after_first + 2_000 * VALUE_BYTES  # the second's went in too
    # charged: the cache counts the memtables' memory as its own
    assert shared.cache.get_usage() >= after_second


def test_reads_of_every_partition_are_cached_in_the_one_cache(tmp_path: Path) -> None:
    options = shared_options(cache_bytes=16 * MiB, write_buffer_bytes=8 * MiB)
    cache = options.shared.cache
    dbs = open_partitions(options, tmp_path, 2)
    written = [write(db, 5_000, seed=p) for p, db in enumerate(dbs)]
    for db in dbs:
        db.flush()  # to files: what is read next comes from blocks, through the cache

    usage = [cache.get_usage()]
    for db, states in zip(dbs, written, strict=True):
        for key, value in states.items():
            assert db.get(key) == value
        usage.append(cache.get_usage())

    data_bytes = 5_000 * VALUE_BYTES
    assert usage[1] - usage[0] >= data_bytes // 2
    assert usage[2] - usage[1] >= data_bytes // 2


def test_the_cache_holds_no_more_than_the_budget(tmp_path: Path) -> None:
    options = shared_options(cache_bytes=2 * MiB, write_buffer_bytes=MiB, write_buffer_size=MiB)
    cache = options.shared.cache
    dbs = open_partitions(options, tmp_path, PARTITIONS)
    written = [write(db, 2_000, seed=p) for p, db in enumerate(dbs)]  # 2.9 MB in all
    for db in dbs:
        db.flush()

    most = 0
    for db, states in zip(dbs, written, strict=True):
        for key in states:
            assert db.get(key) is not None
            most = max(most, cache.get_usage())

    # not strict: a block being read may take the cache a little past its capacity
    assert MiB < most <= 2 * MiB * 1.1


def test_all_partitions_memtables_together_stay_near_their_share(tmp_path: Path) -> None:
    """Eight partitions of 3 MB each, in buffers of 4 MB: on their own buffers they would
    keep all 24 MB in memory; on the shared 1 MB, flushes keep them to a few MB (the limit
    is soft, and each database keeps a memtable's first arena block, 512 KB here)."""
    per_partition = 3 * MiB // (16 + VALUE_BYTES)
    faust = RocksDBOptions(write_buffer_size=4 * MiB, block_cache_size=MiB, use_rocksdict=True)
    shared = shared_options(cache_bytes=2 * MiB, write_buffer_bytes=MiB, write_buffer_size=4 * MiB)
    held = {}
    for name, options in (("faust", faust), ("shared", shared)):
        dbs = open_partitions(options, tmp_path / name, PARTITIONS)
        for p, db in enumerate(dbs):
            write(db, per_partition, seed=p)
        held[name] = memtable_bytes(dbs)

    assert held["faust"] > 20 * MiB  # the measure sees what unbounded buffers hold
    assert held["shared"] < held["faust"] / 2


def test_a_database_on_the_shared_budget_keeps_what_is_written(tmp_path: Path) -> None:
    options = shared_options()
    db = options.open(tmp_path / "partition-0")
    states = write(db, 1_000, seed=7)
    db.delete(next(iter(states)))
    db.close()

    reopened = options.open(tmp_path / "partition-0")
    kept = dict(reopened.items())
    assert len(kept) == len(states) - 1
    assert all(states[key] == value for key, value in kept.items())
    reopened.close()


def test_only_rocksdict_can_share_a_budget() -> None:
    with pytest.raises(ValueError, match="rocksdict"):
        SharedBudgetOptions(memory_budget_size=MiB, write_buffer_budget_size=MiB,
                            use_rocksdict=False)  # fmt: skip


def test_usage_reports_the_budget_and_what_the_partitions_hold_of_it(tmp_path: Path) -> None:
    assert rocksdb_memory.usage() == {}  # no database yet: nothing budgeted, no series
    options = shared_options(cache_bytes=8 * MiB, write_buffer_bytes=4 * MiB)
    dbs = open_partitions(options, tmp_path, 2)
    for seed, db in enumerate(dbs):
        write(db, 2_000, seed=seed)

    usage = rocksdb_memory.usage()

    assert usage["budget"] == 8 * MiB
    # both partitions' memtables are charged to the one cache the metric reads
    assert usage["used"] >= 2 * 2_000 * VALUE_BYTES
    assert 0 <= usage["pinned"] <= usage["used"]
