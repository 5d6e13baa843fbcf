"""The comparison's own arithmetic and output, without a broker: percentiles and latencies,
ratios and targets, the result's shape, the Markdown table and its place in the README; and
the two contenders' work on one record (the limit loop, the naive Faust app's JSON state)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from faust.serializers import codecs

from bench.compare import (
    CONTENDERS,
    QUICK,
    TABLE_BEGIN,
    TABLE_END,
    ratio,
    render_markdown,
    result_name,
    resummarise,
    summarise,
    with_table,
)
from bench.latency import latency_summary, percentile
from bench.limit_loop import LimitLoop
from bench.naive_faust import JsonOutputs, state_of
from streams.broker import TopicNames
from streams.contract import make_codec
from streams.core import apply, new_customer
from streams.core.events import INPUT_EVENTS
from streams.program import load_program
from streams.settings import DEFAULT_RULES, Settings
from streams.tools.simulate import SimulationConfig, simulate


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 1001)]
    assert percentile(values, 0.5) == 500
    assert percentile(values, 0.99) == 990
    assert percentile(values, 0.999) == 999
    assert percentile([7.0], 0.999) == 7
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2
    with pytest.raises(ValueError):
        percentile([], 0.5)


def test_latency_counts_only_outputs_of_published_inputs() -> None:
    published = {f"e-{n}": 100.0 + n for n in range(100)}
    # each input's first output read 20 ms after it was sent, produced 15 ms after
    seen = {f"e-{n}": (100.0 + n + 0.020, 100.0 + n + 0.015) for n in range(100)}
    seen["due:expiry:2025-03-01T00:00:00Z"] = (500.0, 500.0)  # caused by time: not matched
    summary = latency_summary(published, seen)
    assert summary["matched"] == 100
    assert summary["p50"] == summary["p99"] == summary["p999"] == summary["max"] == 20.0
    assert summary["to_output_timestamp"]["p99"] == 15.0
    assert latency_summary(published, {}) == {"matched": 0}


def test_ratios_round_and_survive_a_zero() -> None:
    assert ratio(1132, 9000) == 0.13
    assert ratio(5, 0) is None


def run_of(eps: int, audit: bool | None = None) -> dict[str, Any]:
    run = {"app_id": "x", "events_per_s": eps, "cpu_s_per_1m_events": 1e6 / eps,
           "rss_peak_mb": 100.0, "outputs": 1234}  # fmt: skip
    if audit is not None:
        run["audit_ok"] = audit
    return run


def example_result(*, p99: float = 80.0) -> dict[str, Any]:
    return summarise(
        quick=True,
        size=QUICK,
        published=50_000,
        machine="x86_64, 2 cores",
        version="abc1234",
        date=datetime(2026, 12, 1, 12, tzinfo=UTC),
        runs={
            "limit": run_of(8000),
            "naive_faust": run_of(2000),
            "ours": run_of(4000, audit=True),
            "ours_eos": run_of(1000, audit=False),
        },
        storage={
            "customers": 10_000,
            "changelog_records": 50_000,
            "changelog_compacted": 250.0,
            "changelog_broker_disk": 1300.0,
            "rocksdb_dir": 420.0,
            "naive_faust_changelog_compacted": 900.0,
        },
        latencies={
            "offered_eps": 2000,
            "matched": 500,
            "p50": 10.0,
            "p99": p99,
            "p999": 150.0,
            "max": 160.0,
            "to_output_timestamp": {"p50": 8.0, "p99": 70.0, "p999": 140.0},
        },
        recovered={
            "customers": 20_000,
            "scenarios": {
                # ready earlier than at work again: the first new record is what counts
                "local_rocksdb": [{"start_to_ready_s": 1.0, "start_to_first_new_record_s": 4.2}],
                "local_rocksdb_static": [
                    {"start_to_ready_s": 1.0, "start_to_first_new_record_s": 3.1}
                ],
                "changelog_rocksdb": [
                    {"start_to_ready_s": 1.0, "start_to_first_new_record_s": 12.5}
                ],
            },
        },
    )


def test_the_result_holds_what_the_issue_asks_for_and_survives_json() -> None:
    result = json.loads(json.dumps(example_result()))
    assert result["events"] == 50_000 and result["customers"] == QUICK.customers
    assert set(result["throughput_eps"]) == {"limit", "naive_faust", "ours", "ours_eos"}
    assert result["ratios"] == {"ours_vs_limit": 0.5, "ours_vs_naive_faust": 2.0,
                                "eos_vs_ours": 0.25}  # fmt: skip
    assert {"offered_eps", "p50", "p99", "p999"} <= set(result["latency_ms"])
    assert result["recovery_s"]["changelog"] == 12.5
    assert result["recovery_s"]["local_rocksdb"] == 4.2
    assert result["recovery_s"]["local_rocksdb_static"] == 3.1
    assert result["recovery_s"]["customers"] == 20_000
    assert result["bytes_per_customer"] == 250.0
    assert set(result["peak_rss_mb"]) == set(result["throughput_eps"])
    assert result_name(result) == "2026-12-01-quick.json"
    assert resummarise(result) == result


def test_ratios_per_cpu_second_compare_the_processes_own_cpu_time() -> None:
    # run_of: CPU s per 1M events = 1e6 / events/s, so both views agree here
    assert example_result()["ratios_per_cpu_s"] == example_result()["ratios"]


def test_targets_say_which_hold() -> None:
    holds = {t["target"].split(" (")[0]: t["holds"] for t in example_result()["targets"]}
    assert holds == {
        "ours >= 0.5x limit": True,
        "ours >= 3x naive Faust": False,
        "exactly_once >= 0.8x ours": False,
        "p99 < 100 ms at 50% of ours' saturated rate": True,
        "recovery of 1M customers from the changelog < 60 s": None,  # 20,000 measured
        "recovery from local RocksDB < 5 s": True,
        "<= 300 bytes per customer in the changelog": True,
    }
    slow = {t["target"]: t["holds"] for t in example_result(p99=2500.0)["targets"]}
    assert slow["p99 < 100 ms at 50% of ours' saturated rate"] is False
    recovery = [t for t in example_result()["targets"] if "changelog <" in t["target"]]
    assert "only 20,000 measured" in recovery[0]["target"]


def test_the_table_has_a_row_per_contender_and_per_target() -> None:
    result = example_result()
    table = render_markdown(result)
    for contender in CONTENDERS.values():
        assert f"| {contender.title} |" in table
    assert "| 8,000 | 1.00x |" in table and "| 4,000 | 0.50x |" in table
    assert "| ok |" in table and "| FAILED |" in table
    assert "10 / 80 / 150 ms" in table
    assert "12.5 s to work again" in table and "4.2 s to work again" in table
    assert (
        "restarted at once under static membership (LOYALTY_GROUP_INSTANCE_ID) | 3.1 s to work "
        "again" in table
    )
    answers = ("| yes |", "| no |", "| not measured at this size |")
    assert sum(table.count(answer) for answer in answers) == len(result["targets"])


def test_the_table_replaces_what_is_between_the_readme_markers_only() -> None:
    readme = f"# x\n\n## Performance\n\n{TABLE_BEGIN}\nold table\n{TABLE_END}\n\n## Next\n"
    updated = with_table(readme, "| new |\n")
    assert updated == f"# x\n\n## Performance\n\n{TABLE_BEGIN}\n| new |\n{TABLE_END}\n\n## Next\n"
    assert with_table(updated, "| new |\n") == updated
    assert with_table("# no markers\n", "| new |\n") == "# no markers\n"


def test_the_limit_loop_folds_records_as_the_core_does() -> None:
    settings = Settings()
    codec = make_codec(settings)
    program = load_program(DEFAULT_RULES)
    loop = LimitLoop(program, codec, TopicNames("t"))
    events = list(simulate(SimulationConfig(customers=20, events=300, seed=3)))
    expected: dict[str, Any] = {}
    produced = []
    for schema_name, record in events:
        produced += loop.handle(codec.encode(schema_name, record))
        event = INPUT_EVENTS[schema_name](codec.decode(codec.encode(schema_name, record)).record)
        state = expected.get(event.customer_id) or new_customer(event.customer_id)
        expected[event.customer_id] = apply(state, event, program)[0]
    assert loop.customers == expected
    assert produced and {topic for topic, _, _ in produced} <= set(TopicNames("t").outputs)
    assert loop.handle(b"not avro") == []


def test_the_naive_apps_json_state_reads_back_as_the_state() -> None:
    codec = make_codec(Settings())
    program = load_program(DEFAULT_RULES)
    states: dict[str, Any] = {}
    for schema_name, record in simulate(SimulationConfig(customers=5, events=200, seed=3)):
        event = INPUT_EVENTS[schema_name](codec.decode(codec.encode(schema_name, record)).record)
        state = states.get(event.customer_id) or new_customer(event.customer_id)
        states[event.customer_id] = apply(state, event, program)[0]
    json_codec = codecs.get_codec("json")
    for state in states.values():
        assert state_of(json_codec.loads(json_codec.dumps(state))) == state
        assert state_of(state) is state


def test_the_naive_apps_json_outputs_are_read_back_for_counting() -> None:
    record = {"event_id": "e-1", "caused_by": "p-1"}
    assert JsonOutputs().decode(json.dumps(record).encode()).record == record
