"""`loyalty demo`, the main job, against the real broker."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from streams.broker import TopicNames, free_port
from streams.broker.client import broker_answers

pytestmark = pytest.mark.broker


def run_demo(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", "demo", "--duration", "2", "--rate", "300", *args],
        env={**os.environ, "COLUMNS": "200", **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_demo_on_a_running_broker_sends_reads_back_and_leaves_the_broker_alone(
    kafka_bootstrap: str, topic_names: TopicNames
) -> None:
    result = run_demo(
        {"LOYALTY_BOOTSTRAP_SERVERS": kafka_bootstrap, "LOYALTY_TOPIC_PREFIX": topic_names.prefix}
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"using the Kafka broker at {kafka_bootstrap}" in result.stdout
    assert "sent 600 events" in result.stdout
    assert "acknowledged by Kafka: 600/600" in result.stdout
    # the read-back table counts exactly what was sent, split over the two input topics
    lines = result.stdout.splitlines()
    rows = [line for line in lines if line.startswith(("│ purchases.v1", "│ feedback.v1"))]
    counts = [int(line.split("│")[2].replace(",", "")) for line in rows]
    assert sum(counts) == 600, result.stdout
    # and the worker it started turned the traffic into loyalty events
    produced = next(line for line in lines if "the worker produced:" in line)
    assert any(kind in produced for kind in ("RewardEarned", "TierChanged", "ChurnRiskChanged"))
    assert "stopped the worker" in result.stdout
    assert broker_answers(kafka_bootstrap)
    # the worker's metrics address, and figures read back from it: every record it read
    assert re.search(r"metrics +http://127\.0\.0\.1:\d+/metrics", result.stdout)
    assert "read back from http://127.0.0.1:" in result.stdout
    read = next(line for line in lines if "input records read" in line)
    assert int(read.split("│")[2].replace(",", "")) == 600, result.stdout


def test_demo_starts_its_own_broker_when_none_answers_and_stops_it(tmp_path: Path) -> None:
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    cache = tmp_path / "cache"
    real_cache = Path(os.environ.get("LOYALTY_CACHE_DIR") or Path.home() / ".cache/loyalty-streams")
    # share the fetched jars, keep the broker's data in the test's directory
    cache.mkdir()
    for jars in real_cache.glob("kafka-*"):
        (cache / jars.name).symlink_to(jars)
    result = run_demo({"LOYALTY_BOOTSTRAP_SERVERS": bootstrap, "LOYALTY_CACHE_DIR": str(cache)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"started Kafka at {bootstrap}" in result.stdout
    assert "stopped the Kafka broker the demo started" in result.stdout
    assert "acknowledged by Kafka: 600/600" in result.stdout
    assert not broker_answers(bootstrap)
    assert (cache / "broker" / "server.properties").exists()
