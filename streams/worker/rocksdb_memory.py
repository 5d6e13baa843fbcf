"""One RocksDB memory budget for the whole worker process, however many table partitions it
owns.

Faust opens one RocksDB database per table partition, each with a block cache and write
buffers (memtables) of its own, so a worker's memory grew with every partition it took over
(issue #8: an hour's soak stepped from 150 to 281 MB RSS at the takeovers). Here every
database of the process shares one block cache, and one write buffer manager charges all
their memtables to that cache: the cache's capacity is the budget of the lot, and memtables
are flushed early once all of them together reach their share of it.

The budget is soft, as RocksDB's limits are: the cache is not built with a strict capacity
limit (a full cache evicts, it never fails a read) and writes are not stalled when the
memtables pass their share (RocksDB flushes instead), so under a burst RSS can go a little
past the budget. Memory RocksDB does not charge to the cache (open files' table readers,
iterators, the allocator's slack) comes on top."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import rocksdict
from faust.stores.rocksdb import RocksDBOptions


@dataclass(frozen=True)
class MemoryBudget:
    """Bytes of the shared block cache, and the part of them memtables may take."""

    cache_bytes: int
    write_buffer_bytes: int

    def __post_init__(self) -> None:
        if not 0 < self.write_buffer_bytes <= self.cache_bytes:
            raise ValueError(
                f"the write buffers' share ({self.write_buffer_bytes} bytes) must be "
                f"positive and within the cache ({self.cache_bytes} bytes) they are charged to"
            )


@dataclass(frozen=True)
class SharedMemory:
    """The cache and the write buffer manager every database of a budget is opened with."""

    budget: MemoryBudget
    cache: rocksdict.Cache
    write_buffers: rocksdict.WriteBufferManager


_shared: dict[MemoryBudget, SharedMemory] = {}
# Faust opens partitions on its event loop, but a lock costs nothing and keeps a database
# opened from another thread (Faust's web views, a test) from making a second cache
_shared_lock = threading.Lock()


def shared_memory(budget: MemoryBudget) -> SharedMemory:
    """The process's cache and write buffer manager for `budget`, made on first use. A worker
    has one budget (its settings), so one of each; a process holding several budgets (tests)
    has one pair per budget."""
    with _shared_lock:
        shared = _shared.get(budget)
        if shared is None:
            cache = rocksdict.Cache(budget.cache_bytes)
            write_buffers = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
                budget.write_buffer_bytes, False, cache
            )
            shared = _shared[budget] = SharedMemory(budget, cache, write_buffers)
        return shared


def usage() -> dict[str, int]:
    """Bytes of the process's budgets (summed, in the rare process with several): `budget`,
    the caches' capacity; `used`, what the cache holds now, memtables charged to it included;
    `pinned`, the part of it in use and not evictable (blocks being read, L0's index and
    filter blocks, memtables). Empty before the first database opens (or under the memory
    store): nothing is budgeted."""
    with _shared_lock:
        budgets = list(_shared.values())
    if not budgets:
        return {}
    return {
        "budget": sum(shared.budget.cache_bytes for shared in budgets),
        "used": sum(shared.cache.get_usage() for shared in budgets),
        "pinned": sum(shared.cache.get_pinned_usage() for shared in budgets),
    }


class SharedBudgetOptions(RocksDBOptions):
    """Faust's options for a table partition's database, except for memory: the process's
    shared cache and write buffer manager instead of a cache of the database's own."""

    def __init__(
        self, *, memory_budget_size: int, write_buffer_budget_size: int, **faust_options: Any
    ) -> None:
        super().__init__(**faust_options)
        if not self.use_rocksdict:
            raise ValueError("a shared memory budget needs the rocksdict driver")
        self.budget = MemoryBudget(memory_budget_size, write_buffer_budget_size)
        # Faust's own field, so that whoever reads it sees the cache the databases use
        self.block_cache_size = memory_budget_size

    @property
    def shared(self) -> SharedMemory:
        return shared_memory(self.budget)

    def as_options(self) -> rocksdict.Options:
        options: rocksdict.Options = super().as_options()
        shared = self.shared
        options.set_write_buffer_manager(shared.write_buffers)
        # replaces Faust's table factory, the one holding a cache of this database's own
        options.set_block_based_table_factory(self._table_factory(shared.cache))
        return options

    def _table_factory(self, cache: rocksdict.Cache) -> rocksdict.BlockBasedOptions:
        table = rocksdict.BlockBasedOptions()
        # Faust's bloom filter and index, as its own table factory has them
        table.set_bloom_filter(self.bloom_filter_size, block_based=True)
        table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        table.set_block_cache(cache)
        # index and filter blocks grow with the data a worker holds: in the cache, they
        # count against the budget instead of beside it; those of the newest files (L0,
        # read on every lookup) stay pinned there rather than evicted and read again
        table.set_cache_index_and_filter_blocks(True)
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)
        return table
