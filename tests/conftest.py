"""Shared fixtures: one real Kafka broker per test session, and unique topics per test.

    @pytest.mark.broker
    def test_something(kafka_bootstrap: str, loyalty_topics: TopicNames) -> None:
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        producer.produce(loyalty_topics.purchases, key=b"c-1", value=b"...")

- `kafka_bootstrap` (session): "127.0.0.1:<port>" of the session's broker, started on the
  first test that asks for it and stopped when the session ends (also on failure or Ctrl-C).
- `embedded_kafka` (session): that broker's `EmbeddedKafka`. Do not stop, kill or restart it:
  every other test shares it. A test that needs to break a broker takes `kafka_factory`.
- `kafka_factory` (function): `kafka_factory()` starts an extra broker on free ports in a temp
  dir and returns its `EmbeddedKafka` (started); all of them are killed when the test ends.
- `topic_names` (function): a `TopicNames` with a prefix of this test alone; nothing created.
- `loyalty_topics` (function): the same names, created on the session broker with
  `TEST_PARTITIONS` partitions each.

Tests that use a broker carry `@pytest.mark.broker`, so `pytest -m "not broker"` skips
them without starting one.
"""

from __future__ import annotations

import atexit
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from streams.broker import EmbeddedKafka, TopicNames, ensure_topics, fetch_kafka, free_port
from streams.broker.embedded import SecureListeners
from streams.paths import xdg_cache_dir

# Small enough to create in a blink, more than one so that keying by customer id matters.
TEST_PARTITIONS = 4

# Brokers started by this session, so that even an exit pytest does not tear down cleanly
# (a KeyboardInterrupt in the wrong place, sys.exit from a plugin) leaves no JVM behind.
_started: list[EmbeddedKafka] = []


@atexit.register
def _kill_leftover_brokers() -> None:
    for broker in _started:
        broker.kill()


def start_test_broker(
    data_dir: Path,
    secure: SecureListeners | None = None,
    overrides: Mapping[str, str] | None = None,
) -> EmbeddedKafka:
    """A broker tied to this session (killed at exit whatever happens), started."""
    broker = EmbeddedKafka(
        data_dir,
        port=free_port(),
        controller_port=free_port(),
        detached=False,
        secure=secure,
        overrides=overrides,
    )
    _started.append(broker)
    try:
        broker.start(timeout=120)
    except BaseException:
        broker.kill()
        raise
    return broker


@pytest.fixture(scope="session")
def kafka_libs() -> Path:
    """The Kafka jars, fetched with Maven on first use (seconds; `make test` does it first)."""
    return fetch_kafka(xdg_cache_dir())


@pytest.fixture(scope="session")
def embedded_kafka(
    kafka_libs: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmbeddedKafka]:
    broker = start_test_broker(tmp_path_factory.mktemp("kafka-session"))
    try:
        yield broker
    finally:
        broker.stop(timeout=15)


@pytest.fixture(scope="session")
def kafka_bootstrap(embedded_kafka: EmbeddedKafka) -> str:
    return embedded_kafka.bootstrap_servers


@pytest.fixture
def kafka_factory(
    kafka_libs: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[], EmbeddedKafka]]:
    mine: list[EmbeddedKafka] = []

    def start_another() -> EmbeddedKafka:
        broker = start_test_broker(tmp_path_factory.mktemp("kafka-extra"))
        mine.append(broker)
        return broker

    try:
        yield start_another
    finally:
        for broker in mine:
            broker.kill()


@pytest.fixture
def topic_names(request: pytest.FixtureRequest) -> TopicNames:
    # The test's name makes a stray topic traceable; the random tail keeps reruns apart.
    readable = re.sub(r"[^a-zA-Z0-9]+", "-", request.node.name)[:40].strip("-")
    return TopicNames(f"t-{readable}-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def loyalty_topics(kafka_bootstrap: str, topic_names: TopicNames) -> TopicNames:
    ensure_topics(kafka_bootstrap, topic_names.all, TEST_PARTITIONS)
    return topic_names
