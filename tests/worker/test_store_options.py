"""What the worker is built with follows the settings: RocksDB's memory, one budget for all the
table partitions a worker owns (not Faust's defaults: three 64 MB write buffers and a 2 GB
block cache for every partition), its consumer's fetch wait, its limit on event times ahead
of the broker's."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from streams.settings import Settings
from streams.worker import rocksdb_memory
from streams.worker.app import build_app, store_options
from streams.worker.kafka_transport import FETCH_MAX_WAIT_MS
from streams.worker.rocksdb_memory import MemoryBudget, SharedBudgetOptions
from streams.worker.state_dir import FailStopRocksDBStore

MiB = 2**20


def test_the_store_options_follow_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOYALTY_STORE_WRITE_BUFFER_MB", "4")
    monkeypatch.setenv("LOYALTY_STORE_MEMORY_MB", "48")
    options = SharedBudgetOptions(**store_options(Settings()), use_rocksdict=True)
    assert options.write_buffer_size == 4 * MiB
    assert options.max_write_buffer_number == 3
    # half of the budget for the write buffers, the whole of it for the cache they charge
    assert options.budget == MemoryBudget(cache_bytes=48 * MiB, write_buffer_bytes=24 * MiB)
    assert options.block_cache_size == 48 * MiB


def test_the_worker_s_partitions_share_the_budget_of_its_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rocksdb_memory, "_shared", {})  # a fresh process: nothing made yet
    settings = Settings(data_dir=tmp_path, store_write_buffer_mb=2, store_memory_mb=32)
    app, _loop = build_app(settings)
    table = app.tables["customers"]
    assert table.options == store_options(settings)
    store = table.data  # type: ignore[attr-defined]  # Faust's CollectionT lists no `data`
    assert isinstance(store, FailStopRocksDBStore)
    assert isinstance(store.rocksdb_options, SharedBudgetOptions)
    assert store.rocksdb_options.write_buffer_size == 2 * MiB
    shared = store.rocksdb_options.shared
    assert shared.budget == MemoryBudget(cache_bytes=32 * MiB, write_buffer_bytes=16 * MiB)
    assert shared.write_buffers.get_buffer_size() == 16 * MiB

    partitions = [store._open_for_partition(p) for p in range(2)]
    charged = shared.write_buffers.get_usage()
    for p, db in enumerate(partitions):
        # enough for memtables to take more blocks of memory (what is charged) than they start with
        for customer in range(2_000):
            db.put(customer.to_bytes(4, "big"), bytes(180))
        assert db.get((1_999).to_bytes(4, "big")) == bytes(180)
        assert shared.write_buffers.get_usage() > charged, f"partition {p} not charged"
        charged = shared.write_buffers.get_usage()


def test_the_defaults_are_well_below_faust_s() -> None:
    defaults = store_options(Settings())
    assert defaults["write_buffer_size"] < 64 * MiB
    assert defaults["memory_budget_size"] <= 128 * MiB  # Faust: 2 GB of cache per partition


def test_a_write_buffer_larger_than_the_write_buffers_share_is_refused() -> None:
    Settings(store_memory_mb=16, store_write_buffer_mb=8)  # exactly the half: fine
    with pytest.raises(ValidationError, match="store_write_buffer_mb"):
        Settings(store_memory_mb=16, store_write_buffer_mb=9)


def test_the_old_cache_per_partition_setting_is_reported_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOYALTY_STORE_BLOCK_CACHE_MB", "16")
    with capture_logs() as logs:
        app, _loop = build_app(Settings(data_dir=tmp_path))
    ignored = [entry for entry in logs if entry["event"] == "setting_ignored"]
    assert [entry["setting"] for entry in ignored] == ["LOYALTY_STORE_BLOCK_CACHE_MB"]
    assert ignored[0]["instead"] == "LOYALTY_STORE_MEMORY_MB"
    assert "block_cache_size" not in (app.tables["customers"].options or {})


def test_without_the_old_setting_nothing_is_reported(tmp_path: Path) -> None:
    with capture_logs() as logs:
        build_app(Settings(data_dir=tmp_path))
    assert not [entry for entry in logs if entry["event"] == "setting_ignored"]


def test_the_worker_s_consumer_fetches_quiet_partitions_often(tmp_path: Path) -> None:
    """The merge waits for a fresh view of a quiet input's end: the broker must not hold a
    fetch of quiet partitions for Faust's 1.5 s."""

    async def fetch_wait_ms() -> int:
        app, _loop = build_app(Settings(data_dir=tmp_path))
        thread = app.consumer._thread  # type: ignore[attr-defined]
        consumer = thread._create_worker_consumer(app.transport)
        return int(consumer._fetch_max_wait_ms)

    assert asyncio.run(fetch_wait_ms()) == FETCH_MAX_WAIT_MS <= 100


def test_the_worker_refuses_events_as_far_ahead_as_the_settings_say(tmp_path: Path) -> None:
    """`loyalty audit` reads the same setting: a worker on another limit would disagree."""
    settings = Settings(data_dir=tmp_path, max_event_time_ahead_seconds=600)
    _app, loop = build_app(settings)
    assert loop.processor.max_event_time_ahead_ms == 600_000
