"""The RocksDB memory bench measures what it says: both variants keep every state written
(its last write), and the shared one runs on the budget it was given."""

from __future__ import annotations

import pytest

from bench.rocksdb_memory import VARIANTS, ratios, run_variant

ARGS = {"write_buffer_mb": 1, "block_cache_mb": 1, "memory_mb": 4}


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_variant_reads_back_the_last_state_of_every_customer(variant: str) -> None:
    run = run_variant(variant, partitions=3, customers=2_000, rounds=2, value_bytes=180,
                      args=ARGS)  # fmt: skip
    assert run["variant"] == variant
    assert run["wrong_reads"] == 0
    assert run["memtables_mb"] > 0
    assert 0 < run["start_rss_mb"] <= run["final_rss_mb"] <= run["peak_rss_mb"]


def test_the_ratios_are_shared_over_per_partition() -> None:
    per_partition = {"start_rss_mb": 60.0, "peak_rss_mb": 160.0, "final_rss_mb": 140.0}
    shared = {"start_rss_mb": 60.0, "peak_rss_mb": 110.0, "final_rss_mb": 100.0}
    assert ratios(shared, per_partition) == {
        "peak_rss": 0.69, "final_rss": 0.71, "peak_above_start": 0.5, "final_above_start": 0.5,
    }  # fmt: skip
