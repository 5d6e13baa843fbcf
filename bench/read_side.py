"""The read side's costs, on a broker of its own and without a worker: export and audit over
a log of simulated events, and the API's page and stats functions over the same table.

    .venv/bin/python -m bench.read_side [--events 200000] [--customers 20000]

The "live" side is written straight from the reference fold (the table to its changelog
topic, the outputs to their topics), so the audit finds nothing and what is measured is the
read side alone, not a worker's throughput. Prints and writes
`bench/results/read_side-latest.json`."""

from __future__ import annotations

import json
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from confluent_kafka import Producer

from streams.broker import EmbeddedKafka, TopicNames, ensure_topics, free_port
from streams.broker.security import librdkafka_config
from streams.contract import make_codec
from streams.program import load_program
from streams.settings import Settings
from streams.tools.audit import audit, default_as_of, read_input_log, reference_fold
from streams.tools.export import changelog_topic, export
from streams.tools.publish import EventPublisher
from streams.tools.simulate import SimulationConfig, simulate
from streams.worker.envelope import StoredCustomer
from streams.worker.views import MAX_PAGE, customer_stats, customers_page

RESULTS = Path(__file__).parent / "results"
PARTITIONS = 8


def main(
    events: Annotated[int, typer.Option()] = 200_000,
    customers: Annotated[int, typer.Option()] = 20_000,
) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        broker = EmbeddedKafka(Path(scratch) / "kafka", free_port(), free_port(), detached=False)
        broker.start(timeout=120)
        try:
            result = measure(broker.bootstrap_servers, Path(scratch), events, customers)
        finally:
            broker.stop()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "read_side-latest.json").write_text(json.dumps(result, indent=2) + "\n")
    typer.echo(json.dumps(result, indent=2))


def measure(bootstrap: str, scratch: Path, events: int, customers: int) -> dict[str, object]:
    settings = Settings(
        bootstrap_servers=bootstrap,
        topic_prefix="bench",
        app_id="bench-read",
        partitions=PARTITIONS,
        clock="event",
        late_grace_seconds=0,
    )
    topics = TopicNames.from_settings(settings)
    changelog = changelog_topic(settings.app_id)
    ensure_topics(bootstrap, [*topics.all, changelog], PARTITIONS)
    codec = make_codec(settings)
    program = load_program(settings.rules)
    with EventPublisher(bootstrap, topics, codec) as publisher:
        for schema_name, record in simulate(SimulationConfig(customers, events)):
            publisher.write(schema_name, record)
    reference = reference_fold(
        read_input_log(bootstrap, topics), program, codec, topics, PARTITIONS
    )
    producer = Producer(librdkafka_config(bootstrap, {"linger.ms": 20}))
    for key, value in reference.table.items():
        partition = StoredCustomer.header_of(value).partition
        producer.produce(changelog, key=key, value=value, partition=partition)
        producer.poll(0)
    for sent in reference.outputs:
        producer.produce(sent.topic, key=sent.key, value=sent.value)
        producer.poll(0)
    producer.flush(60)
    as_of = default_as_of(settings, reference) + timedelta(days=1)

    started = time.perf_counter()
    exported = export(bootstrap, settings.app_id, program, as_of, scratch / "states.jsonl")
    export_s = time.perf_counter() - started
    assert exported.customers == len(reference.table)

    started = time.perf_counter()
    report = audit(settings, as_of)
    audit_s = time.perf_counter() - started
    assert report.ok, report.mismatches[:5]

    table = reference.table
    owned = set(range(PARTITIONS))
    started = time.perf_counter()
    cursor, pages = None, 0
    while True:
        page = customers_page(
            table.items(), owned, program, cursor=cursor, limit=MAX_PAGE, as_of=as_of
        )
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    page_walk_s = time.perf_counter() - started
    started = time.perf_counter()
    customer_stats(table.values(), owned, program, as_of)
    stats_s = time.perf_counter() - started

    return {
        "events": events,
        "customers": len(table),
        "outputs": len(reference.outputs),
        "export_s": round(export_s, 2),
        "export_customers_per_s": round(len(table) / export_s),
        "audit_s": round(audit_s, 2),
        "audit_phases_s": {phase: round(s, 2) for phase, s in report.seconds.items()},
        "audit_events_per_s": round(events / audit_s),
        "api_page_walk_s": round(page_walk_s, 2),
        "api_pages": pages,
        "api_page_ms": round(1000 * page_walk_s / pages, 1),
        "api_stats_s": round(stats_s, 2),
    }


if __name__ == "__main__":
    typer.run(main)
