"""What the worker benchmarks share: a broker of their own (or `LOYALTY_BOOTSTRAP_SERVERS`),
simulated traffic published before a worker starts, and probes that watch a worker process
from outside, the way an operator would: its CPU time and peak RSS from /proc, its consumer
group's lag, and the end offsets of its changelog (one record per state written, so the first
one marks the first record applied).

Nothing here asserts a speed: the benchmarks print and write figures, side by side."""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from streams.broker import EmbeddedKafka, TopicNames, ensure_topics, free_port
from streams.broker.security import librdkafka_config
from streams.contract import Codec
from streams.tools.export import changelog_topic
from streams.tools.publish import EventPublisher
from streams.tools.simulate import SimulationConfig, simulate
from streams.tools.topic_census import read_topic
from streams.tools.worker_process import WORKER_COMMAND, WorkerProcess

RESULTS = Path(__file__).parent / "results"
REPO_ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class BenchBroker:
    bootstrap_servers: str
    embedded: EmbeddedKafka | None  # None: an outside broker (LOYALTY_BOOTSTRAP_SERVERS)

    def log_dir_bytes(self, topic: str) -> int | None:
        """Bytes of the topic's segment files on the broker's disk (embedded broker only)."""
        if self.embedded is None:
            return None
        kraft = self.embedded.data_dir / "kraft"
        return sum(
            segment.stat().st_size
            for partition_dir in kraft.glob(f"{topic}-*")
            if partition_dir.name.rsplit("-", 1)[0] == topic
            for segment in partition_dir.glob("*.log")
        )


@contextmanager
def bench_broker(scratch: Path) -> Iterator[BenchBroker]:
    """`LOYALTY_BOOTSTRAP_SERVERS` if set, else an embedded broker of our own, stopped after."""
    outside = os.environ.get("LOYALTY_BOOTSTRAP_SERVERS")
    if outside:
        yield BenchBroker(outside, None)
        return
    broker = EmbeddedKafka(scratch / "kafka", free_port(), free_port(), detached=False)
    broker.start(timeout=120)
    try:
        yield BenchBroker(broker.bootstrap_servers, broker)
    finally:
        broker.stop(timeout=30)


def unique_name(label: str) -> str:
    """Topic prefixes and app ids of one run, never colliding with an earlier run's."""
    return f"bench-{label}-{uuid.uuid4().hex[:6]}"


def publish_records(
    bootstrap: str, topics: TopicNames, codec: Codec, records: Iterable[tuple[str, dict[str, Any]]]
) -> tuple[int, float]:
    """Publishes (schema, record) pairs, all acknowledged; returns (count, seconds)."""
    started = time.perf_counter()
    with EventPublisher(bootstrap, topics, codec) as publisher:
        for schema_name, record in records:
            publisher.write(schema_name, record)
    if publisher.tally.failed:
        raise RuntimeError(f"{publisher.tally.failed} events not acknowledged by Kafka")
    return publisher.tally.acknowledged, time.perf_counter() - started


def publish_simulated(
    bootstrap: str, topics: TopicNames, codec: Codec, config: SimulationConfig
) -> tuple[int, float]:
    return publish_records(bootstrap, topics, codec, simulate(config))


def copy_inputs(bootstrap: str, source: TopicNames, target: TopicNames) -> int:
    """Copies the input topics record for record (partition, key, value, headers and the
    record timestamp, which orders the worker's merge of its two inputs), so that every run
    reads the same log: publishing the same events again would give other timestamps, and
    so another interleaving of purchases and feedback and other outputs."""
    writer = Producer(librdkafka_config(bootstrap, {"enable.idempotence": True, "linger.ms": 20}))
    copied = 0
    for topic, copy in ((source.purchases, target.purchases),
                            (source.feedback, target.feedback)):  # fmt: skip
        for message in read_topic(bootstrap, topic):
            _, timestamp_ms = message.timestamp()
            produce(
                writer,
                copy,
                key=message.key(),
                value=message.value(),
                headers=message.headers(),
                partition=message.partition() or 0,
                timestamp=timestamp_ms,
            )
            copied += 1
    if writer.flush(120) > 0:
        raise RuntimeError("copy of the inputs not acknowledged")
    return copied


def produce(producer: Producer, topic: str, **record: Any) -> None:
    """`producer.produce`, waiting for deliveries to drain while its local queue is full."""
    while True:
        try:
            producer.produce(topic, **record)
            break
        except BufferError:
            producer.poll(0.05)
    producer.poll(0)


# ---- a worker process watched from outside -----------------------------------------------------


def worker_env(
    bootstrap: str, prefix: str, app_id: str, partitions: int, **settings: str
) -> dict[str, str]:
    """A benchmarked worker's LOYALTY_* settings: the defaults but for the event clock, so
    that the simulated past is replayed as it happened, not fast-forwarded to today by the
    wall-clock tick (which would make the run measure a year of due work at once)."""
    env = {
        "LOYALTY_BOOTSTRAP_SERVERS": bootstrap,
        "LOYALTY_TOPIC_PREFIX": prefix,
        "LOYALTY_APP_ID": app_id,
        "LOYALTY_PARTITIONS": str(partitions),
        "LOYALTY_CLOCK": "event",
    }
    env.update({f"LOYALTY_{name.upper()}": value for name, value in settings.items()})
    return env


class BenchWorker(WorkerProcess):
    """A WorkerProcess that may run the worker's code of a given commit (`source`, a `git
    archive` of it) instead of the working tree's, so that a benchmark measures one known
    version while the tree is being edited; or, with `module`, another contender (a module
    of bench/ run with `python -m`, reading the same LOYALTY_* settings), watched alike."""

    def __init__(
        self,
        name: str,
        work_dir: Path,
        env: Mapping[str, str],
        source: Path | None,
        module: str | None = None,
    ) -> None:
        if source is not None:
            env = {**env, "PYTHONPATH": str(source)}
        command = WORKER_COMMAND if module is None else ("-m", module)
        super().__init__(name, work_dir, free_port(), dict(env), command)
        self.source = source

    def start(self) -> BenchWorker:
        # `python -m` puts the current directory first on sys.path, before PYTHONPATH
        with contextlib.chdir(self.source or Path.cwd()):
            super().start()
        return self


def new_worker(
    work_dir: Path,
    name: str,
    env: Mapping[str, str],
    source: Path | None = None,
    module: str | None = None,
) -> BenchWorker:
    return BenchWorker(name, work_dir, env, source, module)


def worker_source(scratch: Path, commit: str | None) -> tuple[Path | None, str]:
    """The worker's code to run: the working tree (None) or an export of `commit`; and what
    it is, for the results (a commit id, `+dirty` when the tree's streams/ has changes)."""
    if commit is None:
        head = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--", "streams", "schemas", "loyalty-program.toml")
        return None, f"{head}+dirty" if dirty else head
    revision = _git("rev-parse", "--short", commit)
    source = scratch / f"source-{revision}"
    source.mkdir()
    archive = subprocess.run(
        ["git", "archive", revision, "streams", "schemas", "loyalty-program.toml"],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    return source, revision


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=REPO_ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()


def worker_pid(worker: WorkerProcess) -> int:
    if worker.process is None:
        raise RuntimeError(f"worker {worker.name} is not running")
    return worker.process.pid


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process (all its threads), from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # the command name (field 2) may hold spaces: count fields after its closing parenthesis
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLOCK_TICKS_PER_S


def rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident set size in MB, from /proc/<pid>/status."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


def is_ready(worker: WorkerProcess) -> bool:
    """/readyz answers 200 (recovered, not rebalancing)."""
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{worker.web_port}/readyz", timeout=1
        ) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


class KafkaProbe:
    """End offsets and a group's committed offsets, over clients kept open so that polling
    every few hundred milliseconds costs the machine (and the measured worker) little."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.admin = AdminClient(librdkafka_config(bootstrap))
        self.consumer = Consumer(
            librdkafka_config(bootstrap, {"group.id": f"bench-probe-{uuid.uuid4().hex[:6]}"})
        )
        self._partitions: dict[str, list[int]] = {}

    def close(self) -> None:
        self.consumer.close()

    def partitions(self, topic: str) -> list[int]:
        """The topic's partitions ([] while it does not exist yet, as a changelog before the
        worker created it)."""
        if topic not in self._partitions:
            metadata = self.admin.list_topics(topic, timeout=10).topics.get(topic)
            if metadata is None or metadata.error is not None or not metadata.partitions:
                return []
            if any(p.leader < 0 for p in metadata.partitions.values()):
                return []  # just created: not every partition has a leader yet
            self._partitions[topic] = sorted(metadata.partitions)
        return self._partitions[topic]

    def watermarks(self, topic: str) -> dict[int, tuple[int, int]]:
        return {p: self.watermark(TopicPartition(topic, p)) for p in self.partitions(topic)}

    def watermark(self, tp: TopicPartition) -> tuple[int, int]:
        """(low, high); retried while a new topic's leader is still being settled."""
        for attempt in range(50):
            try:
                low, high = self.consumer.get_watermark_offsets(tp, timeout=10)
                return low, high
            except KafkaException as error:
                if not error.args[0].retriable() and attempt > 5:
                    raise
                time.sleep(0.1)
        raise TimeoutError(f"no watermarks for {tp.topic} [{tp.partition}]")

    def end_offsets(self, topic: str) -> int:
        """Sum of the partitions' high watermarks (under transactions, markers included)."""
        return sum(high for _, high in self.watermarks(topic).values())

    def records(self, topic: str) -> int:
        """Records the topic holds now (high minus low watermark, summed)."""
        return sum(high - low for low, high in self.watermarks(topic).values())

    def lag(self, group: str, topics: Iterable[str]) -> int:
        """Records of `topics` the group has not committed yet (all, where it committed none)."""
        wanted = [TopicPartition(t, p) for t in topics for p in self.partitions(t)]
        request = [ConsumerGroupTopicPartitions(group, wanted)]
        answer = self.admin.list_consumer_group_offsets(request)[group].result()
        committed = {(tp.topic, tp.partition): tp.offset for tp in answer.topic_partitions}
        behind = 0
        for tp in wanted:
            low, high = self.watermark(tp)
            done = committed.get((tp.topic, tp.partition), -1)
            behind += high - (done if done >= 0 else low)
        return behind

    def group_members(self, group: str) -> int:
        description = self.admin.describe_consumer_groups([group])[group].result()
        return len(description.members)

    def wait_group_empty(self, group: str, timeout_s: float = 60.0) -> float:
        """Waits until a SIGKILLed member's session has expired; returns the seconds waited."""
        started = time.monotonic()
        while self.group_members(group) > 0:
            if time.monotonic() - started > timeout_s:
                raise TimeoutError(f"group {group} still has members after {timeout_s}s")
            time.sleep(0.2)
        return time.monotonic() - started


@dataclass
class Timeline:
    """Moments of one worker run, in seconds from its start, with its CPU seconds at each."""

    started: float = field(default_factory=time.perf_counter)
    marks: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)

    def mark(self, name: str, pid: int) -> None:
        if name not in self.marks:
            self.marks[name] = time.perf_counter() - self.started
            self.cpu[name] = cpu_seconds(pid)


@dataclass
class Watched:
    """What watching a worker from its start to lag zero saw."""

    timeline: Timeline
    changelog_end: int  # the changelog's (or the progress topics') summed end offsets at lag zero
    last_state_write_s: float  # when the changelog last grew, from the worker's start
    rss_mb: float
    rss_peak_mb: float


def watch_until_idle(
    worker: BenchWorker,
    probe: KafkaProbe,
    group: str,
    inputs: Iterable[str],
    *,
    timeout_s: float,
    poll_s: float,
    changelog_from: int = 0,
    progress_topics: Iterable[str] | None = None,
    on_start: Callable[[int], None] | None = None,
    on_first_applied: Callable[[int], None] | None = None,
    until: Callable[[], bool] | None = None,
) -> Watched:
    """Starts the worker and watches it: `ready` (/readyz 200), `first_applied` (its
    changelog grew past `changelog_from`: a state was written, so a record was applied) and
    `lag_zero` (the group committed everything), or until `until()` says so (marked
    `stopped`). `progress_topics` stand for the changelog for a contender that keeps none
    (its output topics: a record applied shows there first). Leaves the worker running."""
    inputs = list(inputs)
    progress = [changelog_of(group)] if progress_topics is None else list(progress_topics)
    timeline = Timeline()
    worker.start()
    pid = worker_pid(worker)
    if on_start is not None:
        on_start(pid)
    deadline = time.monotonic() + timeout_s
    changelog_end, last_write = changelog_from, 0.0
    while True:
        time.sleep(poll_s)
        ensure_alive(worker)
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{worker.name}: not idle after {timeout_s}s: see {keep_log(worker)}"
            )
        if "ready" not in timeline.marks and is_ready(worker):
            timeline.mark("ready", pid)
        end = sum(probe.end_offsets(topic) for topic in progress)
        if end > changelog_end:
            changelog_end, last_write = end, time.perf_counter() - timeline.started
            if "first_applied" not in timeline.marks:
                timeline.mark("first_applied", pid)
                if on_first_applied is not None:
                    on_first_applied(pid)
        if until is not None and until():
            timeline.mark("stopped", pid)
        elif "first_applied" in timeline.marks and probe.lag(group, inputs) == 0:
            timeline.mark("lag_zero", pid)
            timeline.mark("ready", pid)  # for a run too short to have seen it
        else:
            continue
        rss_now, rss_peak = rss_mb(pid)
        return Watched(timeline, changelog_end, last_write, rss_now, rss_peak)


def ensure_alive(worker: WorkerProcess) -> None:
    if not worker.alive():
        raise RuntimeError(f"worker {worker.name} died: see {keep_log(worker)}")


def keep_log(worker: WorkerProcess) -> Path:
    """A copy of the worker's log under bench/results/tmp/ (not committed), since the scratch
    directory it was written to goes when the run ends."""
    kept = RESULTS / "tmp" / worker.log_path.name
    kept.parent.mkdir(parents=True, exist_ok=True)
    if worker.log_path.exists():
        shutil.copyfile(worker.log_path, kept)
    return kept


def topics_of(
    prefix: str, partitions: int, bootstrap: str, *, as_the_worker_makes_them: bool = False
) -> TopicNames:
    """Our topics under `prefix`; `as_the_worker_makes_them`: with its configs (the inputs
    stamped with the broker's append time), else the broker's defaults (the records' own
    timestamps, which copies of a log keep)."""
    topics = TopicNames(prefix)
    configs = topics.configs if as_the_worker_makes_them else None
    ensure_topics(bootstrap, topics.all, partitions, configs=configs)
    return topics


def changelog_of(app_id: str) -> str:
    return changelog_topic(app_id)


# ---- py-spy, from outside the project's dependencies --------------------------------------------


def py_spy() -> str | None:
    """py-spy from $PY_SPY, the PATH, or `.tools/py-spy/bin` (a venv of its own:
    `python3 -m venv .tools/py-spy && .tools/py-spy/bin/pip install py-spy`)."""
    for candidate in (
        os.environ.get("PY_SPY"),
        shutil.which("py-spy"),
        str(REPO_ROOT / ".tools" / "py-spy" / "bin" / "py-spy"),
    ):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


class Profiler:
    """`py-spy record` attached to a running worker, as collapsed stacks (`--format raw`),
    sampling without pausing it (`--nonblocking`), for `duration_s` or until stopped (SIGINT,
    on which py-spy writes what it has)."""

    def __init__(
        self, executable: str, pid: int, output: Path, duration_s: int, rate: int = 100
    ) -> None:
        self.output = output
        self.process = subprocess.Popen(
            [executable, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw",
             "--nonblocking", "--duration", str(duration_s), "--output", str(output)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip

    def done(self) -> bool:
        return self.process.poll() is not None

    def stop(self) -> Path:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            _, stderr = self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, stderr = self.process.communicate()
        if not self.output.exists():
            raise RuntimeError(f"py-spy wrote no profile: {stderr.decode(errors='replace')}")
        return self.output


def keep_profile(collapsed: Path) -> Path:
    """A gzip of the collapsed stacks beside the results (a few hundred KB instead of a few
    MB; `gunzip` it and open it in speedscope, or feed it to flamegraph.pl)."""
    kept = RESULTS / f"{collapsed.stem}.collapsed.gz"
    kept.write_bytes(gzip.compress(collapsed.read_bytes(), mtime=0))
    return kept


def scratch_dir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="loyalty-bench-")
