"""A state directory the worker cannot write is refused before the worker joins anything:
one line naming the directory and the cause, exit status 74 (EX_IOERR), in seconds. Run as
the real command, with no broker at all (it must not get as far as asking one)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from streams.worker.state_dir import EX_IOERR, StateDirError, check_writable, is_store_error
from tests.tmpfs import Mount, fill, tmpfs_fixture  # noqa: F401  (the `tmpfs` fixture)

NO_BROKER = "127.0.0.1:1"  # nothing listens: a worker that got past the check would say so


def run_worker(data_dir: Path, timeout_s: float = 120.0) -> tuple[int, str, float]:
    env = {**os.environ, "LOYALTY_DATA_DIR": str(data_dir), "LOYALTY_BOOTSTRAP_SERVERS": NO_BROKER}
    started = time.monotonic()
    result = subprocess.run(  # nosec B603: our own command
        [sys.executable, "-m", "streams.cli", "worker"],
        env=env, capture_output=True, text=True, timeout=timeout_s, check=False,
    )  # fmt: skip
    return result.returncode, result.stderr, time.monotonic() - started


def assert_refused(data_dir: Path, cause: str) -> None:
    code, stderr, _ = run_worker(data_dir)
    assert code == EX_IOERR, stderr[-2000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr[-2000:]
    assert str(data_dir) in errors[0] and "LOYALTY_DATA_DIR" in errors[0]
    assert cause in errors[0]
    assert "Kafka" not in stderr  # refused before any broker was asked


def test_a_file_in_place_of_the_directory(tmp_path: Path) -> None:
    in_the_way = tmp_path / "state"
    in_the_way.write_text("not a directory")
    assert_refused(in_the_way, "File exists")
    assert_refused(in_the_way / "below", "Not a directory")


def test_a_read_only_directory(tmp_path: Path, tmpfs: Mount) -> None:
    if os.geteuid() == 0:  # root writes whatever the mode bits say: a read-only mount
        read_only = tmpfs(read_only=True)
        cause = "Read-only file system"
    else:
        read_only = tmp_path / "read-only"
        read_only.mkdir(mode=0o500)
        cause = "Permission denied"
    assert_refused(read_only, cause)
    assert_refused(read_only / "worker-1", cause)


def test_a_full_disk(tmpfs: Mount) -> None:
    full = tmpfs(size="256k")
    fill(full)
    assert_refused(full, "No space left on device")


def test_the_check_leaves_nothing_behind(tmp_path: Path) -> None:
    fresh = tmp_path / "a" / "b"
    check_writable(fresh)
    assert fresh.is_dir() and list(fresh.iterdir()) == []


def test_store_errors_are_told_from_other_failures() -> None:
    # RocksDB's errors reach Python as a plain Exception with RocksDB's message
    assert is_store_error(Exception("IO error: No space left on device: While appending"))
    assert is_store_error(OSError(28, "No space left on device"))
    # a lock held by a worker still shutting down is Faust's to retry, not a disk failure
    assert not is_store_error(Exception("IO error: lock hold by current process"))
    assert not is_store_error(AssertionError("no current event"))
    error = StateDirError(Path("/data/w1"), "IO error: No space left on device")
    assert "/data/w1" in str(error) and "No space left on device" in str(error)
