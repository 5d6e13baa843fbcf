"""A real Prometheus server for a test: its own config, storage dir and free port, stopped
(and killed if it will not stop) when the test ends. Queries go through its HTTP API, the
same one Grafana uses."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from streams.broker import free_port
from tests.ops.prometheus_tools import PrometheusTools


class PrometheusQueryError(RuntimeError):
    """Prometheus refused a query (a parse error is `bad_data`)."""


class PrometheusServer:
    def __init__(self, tools: PrometheusTools, work_dir: Path, config: dict[str, Any]) -> None:
        self.tools = tools
        self.work_dir = work_dir
        self.config_path = work_dir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = work_dir / "prometheus.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> PrometheusServer:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    str(self.tools.prometheus),
                    f"--config.file={self.config_path}",
                    f"--storage.tsdb.path={self.work_dir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited: see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1):
                    return self
            except OSError:
                time.sleep(0.2)
        raise TimeoutError(f"prometheus not ready after {timeout_s}s: see {self.log_path}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def _get(self, path: str, params: dict[str, str]) -> Any:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as error:
            answer = json.load(error)
        if answer.get("status") != "success":
            raise PrometheusQueryError(f"{answer.get('errorType')}: {answer.get('error')}")
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query now: the vector's samples (`metric` labels, `value` [t, "v"])."""
        data = self._get("/api/v1/query", {"query": expr})
        if data["resultType"] != "vector":
            raise PrometheusQueryError(f"{expr!r} is a {data['resultType']}, not a vector")
        result: list[dict[str, Any]] = data["result"]
        return result

    def label_values(self, label: str, match: str) -> list[str]:
        """What Grafana's `label_values(match, label)` variable query lists."""
        values: list[str] = self._get(f"/api/v1/label/{label}/values", {"match[]": match})
        return values

    def targets_up(self) -> list[str]:
        data = self._get("/api/v1/targets", {"state": "active"})
        return [t["scrapeUrl"] for t in data["activeTargets"] if t["health"] == "up"]

    def rule_health(self) -> dict[str, str]:
        """Rule name -> "ok" or its last evaluation error."""
        data = self._get("/api/v1/rules", {})
        health = {}
        for group in data["groups"]:
            for rule in group["rules"]:
                health[rule["name"]] = rule.get("lastError") or rule["health"]
        return health
