"""Fetching the jars: once, atomically, and with errors that say what to install."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from streams.broker import fetch
from streams.broker.errors import KafkaFetchError
from streams.broker.fetch import BROKER_JAR, KAFKA_VERSION, fetch_kafka, is_fetched, libs_dir

POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def test_pom_names_the_same_kafka_version_as_the_code() -> None:
    # `mvn` run by hand on the pom must fetch the version the code formats and starts with.
    properties = ET.parse(fetch.POM).getroot().find("m:properties", POM_NS)
    assert properties is not None
    assert properties.findtext("m:kafka.version", namespaces=POM_NS) == KAFKA_VERSION


def test_pom_brings_the_logging_backend_maven_does_not_pull_in() -> None:
    artifacts = {
        element.text
        for element in ET.parse(fetch.POM).getroot().iterfind(".//m:artifactId", POM_NS)
    }
    assert {"kafka_2.13", "log4j-core", "log4j-slf4j-impl"} <= artifacts


@pytest.fixture
def fake_maven(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Replaces Maven by a stand-in that writes two jars; records where it wrote them."""
    runs: list[Path] = []

    def copy_dependencies(output_dir: Path) -> None:
        runs.append(output_dir)
        (output_dir / BROKER_JAR).write_bytes(b"jar")
        (output_dir / f"kafka-clients-{KAFKA_VERSION}.jar").write_bytes(b"jar")

    monkeypatch.setattr(fetch, "_require_tools", lambda: None)
    monkeypatch.setattr(fetch, "_run_maven", copy_dependencies)
    return runs


def test_first_fetch_runs_maven_and_a_second_returns_without_it(
    tmp_path: Path, fake_maven: list[Path]
) -> None:
    libs = fetch_kafka(tmp_path)
    assert libs == libs_dir(tmp_path)
    assert sorted(path.name for path in libs.iterdir()) == sorted(
        [BROKER_JAR, f"kafka-clients-{KAFKA_VERSION}.jar"]
    )
    assert is_fetched(tmp_path)
    assert fetch_kafka(tmp_path) == libs
    assert len(fake_maven) == 1
    # Maven wrote into a staging directory, not into libs/: a killed fetch leaves no half libs/.
    assert fake_maven[0] != libs


def test_a_marker_without_the_broker_jar_is_fetched_again(
    tmp_path: Path, fake_maven: list[Path]
) -> None:
    libs = fetch_kafka(tmp_path)
    (libs / BROKER_JAR).unlink()
    assert not is_fetched(tmp_path)
    fetch_kafka(tmp_path)
    assert len(fake_maven) == 2
    assert (libs / BROKER_JAR).is_file()


def test_a_failed_maven_run_leaves_nothing_that_looks_fetched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_maven(output_dir: Path) -> None:
        (output_dir / "half.jar").write_bytes(b"")
        raise KafkaFetchError("mvn failed: network unreachable")

    monkeypatch.setattr(fetch, "_require_tools", lambda: None)
    monkeypatch.setattr(fetch, "_run_maven", failing_maven)
    with pytest.raises(KafkaFetchError, match="network unreachable"):
        fetch_kafka(tmp_path)
    assert not is_fetched(tmp_path)
    assert not libs_dir(tmp_path).exists()
    assert list(fetch.kafka_home(tmp_path).glob("libs-*")) == []


def test_missing_maven_is_named_with_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(
        KafkaFetchError, match=r"Maven \(mvn\) is not on PATH.*apt-get install maven"
    ):
        fetch_kafka(tmp_path)
