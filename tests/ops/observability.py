"""The ops files as the tests read them: the dashboard's panels and queries, the rule files,
the metric names docs/metrics.md documents, and Grafana's variables replaced by real values
so that Prometheus itself can run a panel's query."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
OPS = REPO_ROOT / "ops"
PROMETHEUS_CONFIG = OPS / "prometheus" / "prometheus.yml"
RULES_DIR = OPS / "prometheus" / "rules"
RULE_TESTS_DIR = OPS / "prometheus" / "tests"
DASHBOARD = OPS / "grafana" / "dashboards" / "loyalty-streams.json"
DATASOURCES = OPS / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = OPS / "grafana" / "provisioning" / "dashboards" / "loyalty.yml"
METRICS_DOC = REPO_ROOT / "docs" / "metrics.md"

# The scrape job the rules expect (LoyaltyWorkerDown keys on it): Compose and the tests use it.
WORKER_JOB = "loyalty-worker"

# A short run gives Prometheus seconds of samples, not the minutes Grafana's
# $__rate_interval would be (4 scrape intervals at least): the live test uses this instead.
TEST_RATE_INTERVAL = "15s"


@dataclass(frozen=True)
class PanelQuery:
    panel_id: int
    panel_title: str
    row: str
    ref_id: str
    expr: str  # as written in the dashboard, variables and all

    @property
    def name(self) -> str:
        return f"{self.row} / {self.panel_title} / {self.ref_id}"


@dataclass(frozen=True)
class Rule:
    group: str
    name: str  # the alert's or the recorded series' name
    kind: str  # "alert" or "record"
    expr: str
    body: dict[str, Any]


def load_dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panel_queries(dashboard: dict[str, Any]) -> list[PanelQuery]:
    """Every target of every panel, with the row it sits under (panels follow their row)."""
    queries = []
    row = ""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            row = panel["title"]
            continue
        for target in panel.get("targets", []):
            queries.append(
                PanelQuery(panel["id"], panel["title"], row, target["refId"], target["expr"])
            )
    return queries


def load_rules() -> list[Rule]:
    rules = []
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for body in group["rules"]:
                kind = "alert" if "alert" in body else "record"
                rules.append(Rule(group["name"], body[kind], kind, body["expr"], body))
    return rules


def substitute(expr: str, job: str = WORKER_JOB, rate_interval: str = TEST_RATE_INTERVAL) -> str:
    """The query Grafana would send, for one value of each variable the dashboard uses."""
    replaced = expr.replace("$__rate_interval", rate_interval).replace("${job}", job)
    replaced = replaced.replace("$job", job)
    leftover = re.search(r"\$\{?\w+", replaced)
    if leftover:
        raise ValueError(f"variable {leftover.group()} left unreplaced in {expr!r}")
    return replaced


# Metric and recorded-series names: a word of letters, digits, '_' and ':' that is not
# followed by '(' (a function) and is not inside quotes or a grouping clause.
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
_CLAUSE = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_SELECTOR_BODY = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_KEYWORDS = frozenset(("and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"))


def series_names(expr: str) -> set[str]:
    """The metric (or recorded series) names an expression selects."""
    bare = _QUOTED.sub('""', expr)
    bare = _CLAUSE.sub(" ", bare)
    bare = _SELECTOR_BODY.sub(" ", bare)
    bare = _RANGE.sub(" ", bare)
    names = set()
    for match in _NAME.finditer(bare):
        word = match.group()
        following = bare[match.end() :].lstrip()
        if word in _KEYWORDS or following.startswith("("):
            continue
        names.add(word)
    return names


def base_metric(series: str) -> str:
    """`loyalty_x_seconds` for a histogram's `loyalty_x_seconds_bucket` (or _sum, _count)."""
    return re.sub(r"_(bucket|sum|count)$", "", series)


def documented_metrics() -> dict[str, str]:
    """Metric name -> type, from the tables of docs/metrics.md."""
    documented = {}
    for line in METRICS_DOC.read_text().splitlines():
        row = re.match(r"\|\s*`((?:loyalty|process)_[a-z0-9_]+)`\s*\|\s*(\w+)\s*\|", line)
        if row:
            documented[row.group(1)] = row.group(2)
    return documented


def expand_recorded(names: set[str], rules: list[Rule]) -> set[str]:
    """Recorded series replaced by the metrics their rules read, until only metrics remain."""
    recorded = {rule.name: rule.expr for rule in rules if rule.kind == "record"}
    expanded: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        if name in recorded:
            pending.extend(series_names(recorded[name]) - expanded)
        else:
            expanded.add(name)
    return expanded
