"""What the worker is built with follows the settings: RocksDB's memory per table partition
(not Faust's defaults: three 64 MB write buffers and a 2 GB block cache for every partition a
worker owns), its consumer's fetch wait, its limit on event times ahead of the broker's."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from faust.stores.rocksdb import RocksDBOptions

from streams.settings import Settings
from streams.worker.app import build_app, store_options
from streams.worker.kafka_transport import FETCH_MAX_WAIT_MS


def test_the_store_options_follow_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOYALTY_STORE_WRITE_BUFFER_MB", "4")
    monkeypatch.setenv("LOYALTY_STORE_BLOCK_CACHE_MB", "32")
    options = RocksDBOptions(**store_options(Settings()), use_rocksdict=True)
    assert options.write_buffer_size == 4 * 2**20
    assert options.block_cache_size == 32 * 2**20
    assert options.max_write_buffer_number == 3


def test_the_worker_s_table_is_built_with_them(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, store_write_buffer_mb=2, store_block_cache_mb=8)
    app, _loop = build_app(settings)
    table = app.tables["customers"]
    assert table.options == store_options(settings)
    assert store_options(Settings())["write_buffer_size"] < 64 * 2**20  # below Faust's


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
