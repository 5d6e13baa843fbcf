"""Fetch Apache Kafka's jars from Maven Central into the cache, once.

Maven resolves the broker's dependency tree from the small pom beside this module
(`kafka-pom.xml`, shipped with the package) and copies the jars to
`<cache>/kafka-<version>/libs`. A marker file written last makes a second fetch return at
once, and a half-finished fetch (killed, network gone) is simply redone."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from streams.broker.errors import KafkaFetchError

# Apache Kafka 4.x: KRaft only, one combined broker+controller node; faust's client
# (aiokafka 0.14) speaks its protocol versions (see tests/broker/test_clients.py).
KAFKA_VERSION = "4.3.1"
POM = Path(__file__).with_name("kafka-pom.xml")
# The broker's own jar: a libs dir without it is no Kafka, whatever the marker says.
BROKER_JAR = f"kafka_2.13-{KAFKA_VERSION}.jar"
MARKER = "fetched.ok"


def kafka_home(cache_dir: Path) -> Path:
    """Where one Kafka version lives in the cache: `libs/` and the fetch marker."""
    return cache_dir / f"kafka-{KAFKA_VERSION}"


def libs_dir(cache_dir: Path) -> Path:
    return kafka_home(cache_dir) / "libs"


def is_fetched(cache_dir: Path) -> bool:
    home = kafka_home(cache_dir)
    return (home / MARKER).is_file() and (home / "libs" / BROKER_JAR).is_file()


def fetch_kafka(cache_dir: Path) -> Path:
    """The directory of Kafka's jars, fetching them with Maven first if needed."""
    if is_fetched(cache_dir):
        return libs_dir(cache_dir)
    home = kafka_home(cache_dir)
    home.mkdir(parents=True, exist_ok=True)
    # Two fetches at once (two terminals, parallel test sessions) must not interleave
    # their copies; the second waits and then finds the marker.
    with file_lock(home / "fetch.lock"):
        if is_fetched(cache_dir):
            return libs_dir(cache_dir)
        _require_tools()
        staging = Path(tempfile.mkdtemp(prefix="libs-", dir=home))
        try:
            _run_maven(staging)
            if not (staging / BROKER_JAR).is_file():
                raise KafkaFetchError(f"Maven finished but {BROKER_JAR} is not in {staging}")
            target = libs_dir(cache_dir)
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        jars = sorted(path.name for path in target.glob("*.jar"))
        (home / MARKER).write_text("\n".join(jars) + "\n")
        return target


def _require_tools() -> None:
    if shutil.which("mvn") is None:
        raise KafkaFetchError(
            "Maven (mvn) is not on PATH; it fetches Kafka's jars from Maven Central. "
            "Install it, e.g. `apt-get install maven`"
        )
    if shutil.which("java") is None:
        raise KafkaFetchError(
            "Java is not on PATH; Apache Kafka 4 needs Java 17 or newer. "
            "Install it, e.g. `apt-get install openjdk-17-jre-headless`"
        )


def _run_maven(output_dir: Path) -> None:
    # Run from a scratch copy of the pom so nothing is written beside the installed package.
    with tempfile.TemporaryDirectory(prefix="kafka-pom-") as scratch:
        pom = Path(scratch) / "pom.xml"
        shutil.copyfile(POM, pom)
        command = [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-Dkafka.version={KAFKA_VERSION}",
            f"-DoutputDirectory={output_dir}",
            "-DincludeScope=runtime",
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-20:])
        raise KafkaFetchError(
            f"`mvn dependency:copy-dependencies` for Kafka {KAFKA_VERSION} failed "
            f"(exit {result.returncode}):\n{tail}"
        )


@contextmanager
def file_lock(lock_path: Path) -> Iterator[None]:
    """Holds an exclusive lock on `lock_path` (made if missing) across processes."""
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
