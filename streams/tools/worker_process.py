"""Running `loyalty worker` as a child process: for the demo, the benchmarks and the crash
tests, which need real processes they can SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

WORKER_COMMAND = ("-m", "streams.cli", "worker")


class WorkerProcess:
    """One worker with its own data directory and web port. `env` holds its LOYALTY_*
    settings (bootstrap servers, topic prefix, app id, partitions ...). `command`, the
    interpreter's arguments, is `loyalty worker` unless a benchmark runs another contender
    with the same settings."""

    def __init__(
        self,
        name: str,
        work_dir: Path,
        web_port: int,
        env: dict[str, str],
        command: Sequence[str] = WORKER_COMMAND,
    ) -> None:
        self.name = name
        self.command = tuple(command)
        self.data_dir = work_dir / name
        self.web_port = web_port
        self.env = {**os.environ, **env, "LOYALTY_DATA_DIR": str(self.data_dir),
                    "LOYALTY_WEB_PORT": str(web_port)}  # fmt: skip
        self.log_path = work_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> WorkerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, *self.command],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.starts += 1
        return self

    def ready(self) -> bool:
        try:
            # bandit B310 (file:// and custom schemes): a literal http:// URL here
            with urllib.request.urlopen(  # nosec B310
                f"http://127.0.0.1:{self.web_port}/readyz", timeout=1
            ) as response:
                return bool(json.load(response).get("ready"))
        except OSError:
            return False

    def wait_ready(self, timeout_s: float = 90.0) -> WorkerProcess:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited: see {self.log_path}")
            if self.ready():
                return self
            time.sleep(0.3)
        raise TimeoutError(f"worker {self.name} not ready after {timeout_s}s: see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL, as a crash: no shutdown, no commit, no flush."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def stop(self, timeout_s: float = 20.0) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None
