"""Publisher throughput and broker start-up, on a broker of its own.

    .venv/bin/python -m bench.publish [--events 200000] [--customers 20000]

Prints and writes `bench/results/publish-latest.json`: broker start-to-ready seconds, file
parse+encode rate (no Kafka), and end-to-end `loyalty publish` rate (parse, encode, produce,
acknowledged), all on the same simulated file."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

from streams.broker import EmbeddedKafka, TopicNames, ensure_topics, free_port
from streams.contract import make_codec
from streams.contract.event_files import EventFileWriter, read_event_file
from streams.settings import Settings
from streams.tools.publish import EventPublisher, encoded_rows, publish_rows
from streams.tools.simulate import SimulationConfig, simulate

RESULTS = Path(__file__).parent / "results"


def main(
    events: Annotated[int, typer.Option()] = 200_000,
    customers: Annotated[int, typer.Option()] = 20_000,
) -> None:
    codec = make_codec(Settings())
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "traffic.jsonl"
        with EventFileWriter(path) as writer:
            for schema_name, record in simulate(SimulationConfig(customers, events)):
                writer.write(schema_name, record)

        started = time.perf_counter()
        encoded = sum(1 for _ in encoded_rows(read_event_file(path, currency="EUR"), codec.encode))
        parse_encode_eps = encoded / (time.perf_counter() - started)

        broker = EmbeddedKafka(Path(scratch) / "kafka", free_port(), free_port(), detached=False)
        started = time.perf_counter()
        broker.start(timeout=120)
        broker_ready_s = time.perf_counter() - started
        try:
            topics = TopicNames("bench")
            ensure_topics(broker.bootstrap_servers, topics.all, 8)
            publisher = EventPublisher(broker.bootstrap_servers, topics, codec)
            # a fresh broker makes the first idempotent producer wait for its coordinator
            # (seconds): warm up with one record so the figure is the publisher's own
            warm_up = TopicNames("warm-up")
            ensure_topics(broker.bootstrap_servers, warm_up.all, 1)
            with EventPublisher(broker.bootstrap_servers, warm_up, codec) as first:
                first.write(*next(iter(simulate(SimulationConfig(1, 1)))))
            report = publish_rows(read_event_file(path, currency="EUR"), publisher)
            assert report.all_acknowledged and report.tally.acknowledged == events
        finally:
            broker.stop()
    result = {
        "events": events,
        "customers": customers,
        "broker_start_to_ready_s": round(broker_ready_s, 2),
        "parse_encode_eps": round(parse_encode_eps),
        "publish_eps": round(report.events_per_second),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "publish-latest.json").write_text(json.dumps(result, indent=2) + "\n")
    typer.echo(json.dumps(result, indent=2))


if __name__ == "__main__":
    typer.run(main)
