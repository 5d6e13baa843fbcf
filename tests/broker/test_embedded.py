"""The library API the crash and restart tests will use: restart and kill keep the data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from streams.broker import BrokerAlreadyRunningError, BrokerError, EmbeddedKafka, ensure_topics
from streams.broker.embedded import port_is_free
from tests.broker.records import consume, produce


@pytest.mark.broker
def test_restart_and_kill_keep_topics_and_records(
    kafka_factory: Callable[[], EmbeddedKafka],
) -> None:
    broker = kafka_factory()
    bootstrap = broker.bootstrap_servers
    ensure_topics(bootstrap, ["visits"], partitions=2)
    produce(bootstrap, "visits", ["before restart"])

    with pytest.raises(BrokerAlreadyRunningError):
        broker.start()

    first_pid = broker.pid()
    assert broker.restart() == bootstrap
    assert broker.pid() != first_pid
    produce(bootstrap, "visits", ["after restart"])
    assert [r.value() for r in consume(bootstrap, "visits", 2)] == [
        b"before restart",
        b"after restart",
    ]

    assert broker.kill()
    assert not broker.is_running()
    assert port_is_free(broker.port)
    assert not broker.kill()
    # a crash loses nothing the broker acknowledged: the records were in the page cache
    assert broker.start() == bootstrap
    assert [r.value() for r in consume(bootstrap, "visits", 2)] == [
        b"before restart",
        b"after restart",
    ]


@pytest.mark.broker
def test_controller_port_is_fixed_when_the_data_dir_is_made(
    embedded_kafka: EmbeddedKafka,
) -> None:
    record = embedded_kafka.record()
    assert record is not None
    same_dir = EmbeddedKafka(embedded_kafka.data_dir)
    assert same_dir.bootstrap_servers == embedded_kafka.bootstrap_servers
    assert same_dir.controller_port == record.controller_port
    with pytest.raises(
        BrokerError, match=f"formatted with controller port {record.controller_port}"
    ):
        EmbeddedKafka(Path(embedded_kafka.data_dir), controller_port=record.controller_port + 1)
