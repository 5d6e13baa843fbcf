"""`loyalty kafka start | status | logs | stop` as a user runs them, each its own process:
the broker must outlive the `start` command and really end on `stop`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from streams.broker import EmbeddedKafka, free_port
from streams.broker.embedded import is_process_alive

LOYALTY = Path(sys.executable).with_name("loyalty")


def loyalty(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LOYALTY), *arguments], capture_output=True, text=True, timeout=180, check=False
    )


@pytest.mark.broker
def test_start_status_logs_stop(kafka_libs: Path, tmp_path: Path) -> None:
    data_dir, port = tmp_path / "broker", free_port()
    where = ("--data-dir", str(data_dir))
    try:
        started = loyalty("kafka", "start", "--port", str(port), *where)
        assert started.returncode == 0, started.stderr
        assert f"bootstrap servers: 127.0.0.1:{port}" in started.stdout
        pid = int(re.search(r"pid:\s+(\d+)", started.stdout).group(1))  # type: ignore[union-attr]
        # the `start` process has exited; its broker has not
        assert is_process_alive(pid)

        again = loyalty("kafka", "start", *where)
        assert again.returncode == 0, again.stderr
        assert f"already running: pid {pid}, bootstrap servers 127.0.0.1:{port}" in again.stdout

        status = loyalty("kafka", "status", *where)
        assert status.returncode == 0
        assert f"running: pid {pid}, bootstrap servers 127.0.0.1:{port}, answers" in status.stdout

        taken = loyalty("kafka", "start", "--port", str(port), "--data-dir", str(tmp_path / "b2"))
        assert taken.returncode == 1
        assert f"client port {port} on 127.0.0.1 is already in use" in taken.stderr

        logs = loyalty("kafka", "logs", "-n", "5", *where)
        assert logs.returncode == 0
        assert len(logs.stdout.splitlines()) == 5

        stopped = loyalty("kafka", "stop", *where)
        assert stopped.returncode == 0
        assert f"stopped the broker (pid {pid})" in stopped.stdout
        assert not is_process_alive(pid)

        after = loyalty("kafka", "status", *where)
        assert after.returncode == 1
        assert "not running" in after.stdout
        assert "no broker running" in loyalty("kafka", "stop", *where).stdout
    finally:
        EmbeddedKafka(data_dir).kill()
