"""The benchmark harness's own arithmetic: bytes of a topic on the broker's disk, and the
CPU time and RSS read from /proc."""

from __future__ import annotations

import os
from pathlib import Path

from bench.harness import BenchBroker, cpu_seconds, rss_mb
from streams.broker import EmbeddedKafka


def test_a_topics_disk_bytes_are_its_own_partitions_segments_only(tmp_path: Path) -> None:
    kraft = tmp_path / "kraft"
    segments = {
        "w-customers-changelog-0": 100,
        "w-customers-changelog-7": 20,
        "w-customers-changelog-extra-0": 4000,  # another topic whose name starts the same
        "w-customers-0": 500,  # a topic whose name the changelog's starts with
    }
    for directory, size in segments.items():
        (kraft / directory).mkdir(parents=True)
        (kraft / directory / "00000000000000000000.log").write_bytes(b"x" * size)
        (kraft / directory / "00000000000000000000.index").write_bytes(b"i" * 9)
    broker = BenchBroker("127.0.0.1:1", EmbeddedKafka(tmp_path, port=1, controller_port=2))
    assert broker.log_dir_bytes("w-customers-changelog") == 120
    assert broker.log_dir_bytes("w-customers") == 500
    assert BenchBroker("127.0.0.1:1", None).log_dir_bytes("w-customers") is None


def test_this_process_cpu_time_grows_with_work_and_rss_peak_is_at_least_current() -> None:
    before = cpu_seconds(os.getpid())
    spent = os.times()
    while os.times().user + os.times().system - spent.user - spent.system < 0.05:
        sum(range(10_000))
    after = cpu_seconds(os.getpid())
    assert after >= before + 0.04  # clock ticks of 10 ms: /proc agrees with os.times
    current, peak = rss_mb(os.getpid())
    assert 1 < current <= peak
