"""The Grafana dashboard and its provisioning, without Grafana: the JSON is a dashboard a
current Grafana loads (rows, panels with ids, positions and PromQL targets), its data source
is the provisioned one, it shows every metric the workers export, and each of its queries is
PromQL that Prometheus parses. tests/ops/test_dashboard_live.py runs the queries for real."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ops.observability import (
    DASHBOARD,
    DASHBOARD_PROVIDERS,
    DATASOURCES,
    documented_metrics,
    expand_recorded,
    load_dashboard,
    load_rules,
    panel_queries,
    series_names,
    substitute,
)
from tests.ops.prometheus_tools import PrometheusTools, run_promtool

ROWS = ["Processor health", "Loyalty program", "Feedback"]
GRID_WIDTH = 24
# Grafana 11.3 writes schemaVersion 40, Grafana 12 41: older dashboards are migrated on load,
# newer ones may not load in an older Grafana.
SCHEMA_VERSIONS = range(39, 42)

# What issue 6 and the brief list per row, as (what, a metric or recorded series the panel
# must query).
ROW_CONTENTS = {
    "Processor health": [
        ("input rate by topic/kind", "job_topic_kind:loyalty_events_consumed:rate5m"),
        ("rejected by reason", "job_reason:loyalty_events_rejected:rate5m"),
        ("output rate by kind", "job_kind:loyalty_output_events:rate5m"),
        ("processing latency p50", "job:loyalty_processing_latency_seconds:p50_5m"),
        ("processing latency p99", "job:loyalty_processing_latency_seconds:p99_5m"),
        ("event-time lag p99", "job:loyalty_event_time_lag_seconds:p99_5m"),
        ("consumer lag by partition", "loyalty_consumer_lag_records"),
        ("recovery", "loyalty_recovery_remaining_records"),
        ("due index", "loyalty_due_index_entries"),
        ("table size", "loyalty_table_customers"),
        ("workers ready", "loyalty_worker_ready"),
    ],
    "Loyalty program": [
        ("customers by tier", "loyalty_customers_by_tier"),
        ("customers by stage", "loyalty_customers_by_stage"),
        ("customers by loyalty type", "loyalty_customers_by_loyalty_type"),
        ("at churn risk by level", "loyalty_customers_at_churn_risk"),
        ("points liability", "loyalty_points_liability_points"),
        ("rewards issued rate", "job_kind:loyalty_rewards_issued:rate5m"),
        ("repeat purchase rate", "job:loyalty_repeat_purchase:ratio"),
        ("average check", "job_currency:loyalty_average_check:ratio"),
    ],
    "Feedback": [
        ("NPS overall", "job:loyalty_nps:score"),
        ("NPS per store", "job_store:loyalty_nps:score1d"),
        ("open complaints", "loyalty_complaints_open"),
        ("overdue complaints", "loyalty_complaints_overdue"),
    ],
}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard()


def content_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def test_the_dashboard_is_a_current_grafana_dashboard(dashboard: dict[str, Any]) -> None:
    assert dashboard["schemaVersion"] in SCHEMA_VERSIONS
    assert dashboard["uid"] == "loyalty-streams"  # links to it survive re-provisioning
    assert dashboard["title"]
    assert dashboard.get("id") is None  # provisioning assigns the database id
    # ends with a newline and is what json.dumps would indent: editable in a diff
    assert DASHBOARD.read_text().endswith("}\n")


def test_rows_are_the_three_the_issue_lists_in_order(dashboard: dict[str, Any]) -> None:
    rows = [panel for panel in dashboard["panels"] if panel["type"] == "row"]
    assert [row["title"] for row in rows] == ROWS
    assert dashboard["panels"][0]["type"] == "row"  # no panel above the first row
    for row in rows:
        assert not row["collapsed"] and row["panels"] == []  # its panels follow it


def test_every_panel_has_a_title_an_id_a_position_and_promql(dashboard: dict[str, Any]) -> None:
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    assert all(isinstance(i, int) and i > 0 for i in ids)
    for panel in content_panels(dashboard):
        where = f"panel {panel['id']}"
        assert panel.get("title", "").strip(), f"{where} has no title"
        assert panel["type"] in {"timeseries", "stat", "bargauge", "gauge", "table"}, where
        targets = panel.get("targets", [])
        assert targets, f"{panel['title']}: no query"
        ref_ids = [t["refId"] for t in targets]
        assert len(ref_ids) == len(set(ref_ids)), f"{panel['title']}: refIds repeat"
        for target in targets:
            assert target.get("expr", "").strip(), f"{panel['title']} {target['refId']}"
        assert panel.get("description", "").strip(), f"{panel['title']}: no description"


def test_panels_sit_on_the_grid_without_overlapping(dashboard: dict[str, Any]) -> None:
    taken: dict[tuple[int, int], str] = {}
    previous_y = -1
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert set(grid) >= {"h", "w", "x", "y"}, panel["title"]
        assert grid["w"] > 0 and grid["h"] > 0
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= GRID_WIDTH, panel["title"]
        # listed top to bottom, so that each panel falls under the row before it
        assert grid["y"] >= previous_y, f"{panel['title']} is listed out of order"
        previous_y = grid["y"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in taken, f"{panel['title']} overlaps {taken[(x, y)]}"
                taken[(x, y)] = panel["title"]


def test_each_row_shows_what_the_issue_asks_of_it(dashboard: dict[str, Any]) -> None:
    used_by_row: dict[str, set[str]] = {row: set() for row in ROWS}
    for query in panel_queries(dashboard):
        used_by_row[query.row] |= series_names(query.expr)
    for row, contents in ROW_CONTENTS.items():
        missing = [what for what, series in contents if series not in used_by_row[row]]
        assert not missing, f"row {row!r} lacks {missing}"


def test_every_exported_metric_is_on_the_dashboard(dashboard: dict[str, Any]) -> None:
    """Through a recording rule or directly; and nothing the workers do not export."""
    rules = load_rules()
    recorded = {rule.name for rule in rules if rule.kind == "record"}
    used: set[str] = set()
    for query in panel_queries(dashboard):
        names = series_names(query.expr)
        undefined = {n for n in names if ":" in n} - recorded
        assert not undefined, f"{query.name} reads {undefined}, recorded by no rule"
        used |= expand_recorded(names, rules)
    metrics = {name.removesuffix("_bucket") for name in used} - {"up"}
    documented = set(documented_metrics())
    assert metrics - documented == set(), "queried but not in docs/metrics.md"
    assert documented - metrics == set(), "exported but on no panel"


def test_the_datasource_is_the_provisioned_prometheus(dashboard: dict[str, Any]) -> None:
    (provisioned,) = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    assert provisioned["type"] == "prometheus"
    assert provisioned["url"] == "http://prometheus:9090"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    chooser = variables["datasource"]
    assert chooser["type"] == "datasource" and chooser["query"] == "prometheus"
    assert chooser["current"]["value"] == provisioned["uid"]
    templated = {"type": "prometheus", "uid": "${datasource}"}
    for panel in content_panels(dashboard):
        assert panel["datasource"] == templated, panel["title"]
        for target in panel["targets"]:
            assert target.get("datasource", templated) == templated, panel["title"]
    assert variables["job"]["datasource"] == templated


def test_dashboards_are_provisioned_from_where_compose_mounts_them() -> None:
    (provider,) = yaml.safe_load(DASHBOARD_PROVIDERS.read_text())["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_variables_are_replaced_before_prometheus_sees_a_query(dashboard: dict[str, Any]) -> None:
    # only the variables substitute() knows appear, so the live test runs what Grafana would
    used = {
        variable
        for query in panel_queries(dashboard)
        for variable in re.findall(r"\$\{?(\w+)", query.expr)
    }
    assert used <= {"job", "__rate_interval"}
    assert substitute('rate(x{job=~"$job"}[$__rate_interval])') == (
        'rate(x{job=~"loyalty-worker"}[15s])'
    )
    with pytest.raises(ValueError, match="__range"):
        substitute("increase(x[$__range])")


def job_variable_query(dashboard: dict[str, Any]) -> tuple[str, str]:
    """(selector, label) of the `job` variable's `label_values(selector, label)`."""
    (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "job"]
    found = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", variable["query"]["query"])
    assert found, variable["query"]
    assert variable["definition"] == variable["query"]["query"]
    return found.group(1), found.group(2)


def test_every_dashboard_query_is_promql_prometheus_parses(
    dashboard: dict[str, Any], prometheus_tools: PrometheusTools, tmp_path: Path
) -> None:
    """promtool parses only rule files offline: each query becomes a recording rule."""
    queries = panel_queries(dashboard)
    rules = [
        {"record": f"dashboard:panel_{q.panel_id}:{q.ref_id}", "expr": substitute(q.expr)}
        for q in queries
    ]
    # the `job` variable's label_values(selector, label): its selector is PromQL too
    selector, label = job_variable_query(dashboard)
    rules.append({"record": f"dashboard:variable:{label}", "expr": selector})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = run_promtool(prometheus_tools, "check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules)} rules found" in done.stdout
