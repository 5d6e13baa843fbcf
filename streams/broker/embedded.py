"""One Apache Kafka node (KRaft, combined broker and controller) run from the cached jars.

A data directory holds everything of one broker:

    broker.json         ports and cluster id chosen when the directory was formatted
    server.properties   written anew at every start
    log4j2.properties   the broker's logging: to logs/server.log
    kraft/              the log dirs (topics and the metadata log)
    logs/server.log     what the broker logs; logs/kafka.out its stdout and stderr
    broker.pid          the running JVM, while it runs

The JVM runs in a session of its own, so it outlives the command that started it and a
Ctrl-C in that terminal does not reach it; `stop` ends it by its pid. Several brokers run
side by side on different ports and data directories."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path

from streams.broker.client import admin_client, answers_metadata, broker_answers
from streams.broker.errors import (
    BrokerAlreadyRunningError,
    BrokerError,
    BrokerStartError,
    PortInUseError,
)
from streams.broker.fetch import KAFKA_VERSION, fetch_kafka, file_lock
from streams.broker.logs import last_lines
from streams.paths import xdg_cache_dir

HOST = "127.0.0.1"
DEFAULT_PORT = 9092
DEFAULT_HEAP = "512m"

# Every internal topic gets one replica and a minimum ISR of one: there is only one broker,
# and the defaults (3) would leave consumer groups and transactions waiting for replicas
# that never come. Few partitions for them: creating 50 costs seconds on two cores.
BROKER_DEFAULTS: dict[str, str] = {
    "num.partitions": "1",
    "default.replication.factor": "1",
    "min.insync.replicas": "1",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "8",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "8",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "share.coordinator.state.topic.num.partitions": "1",
    # Consumers in tests and the demo join one by one; the default 3 s pause before the
    # first rebalance only slows every start.
    "group.initial.rebalance.delay.ms": "0",
    # Topics are made by `loyalty topics create` (one partition count for all, so they are
    # co-partitioned by customer id); a typo in a topic name must fail, not make a new topic.
    "auto.create.topics.enable": "false",
    # After a crash (kill), the restarted broker cannot register until the controller has
    # expired the dead one's session: 9 s by default, which every crash test would wait.
    "broker.heartbeat.interval.ms": "500",
    "broker.session.timeout.ms": "3000",
    "num.network.threads": "2",
    "num.io.threads": "4",
    "num.recovery.threads.per.data.dir": "1",
    "log.cleaner.threads": "1",
}

JVM_OPTIONS = (
    # C1 only: on two cores the C2 compiler's work at start-up competes with the broker
    # (and the tests) for CPU; this roughly halves start-to-ready under load, and a local
    # broker's throughput is never what limits a Python worker.
    "-XX:TieredStopAtLevel=1",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)

LOG4J2 = """\
status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = {log_file}
appender.file.filePattern = {log_file}.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


SCRAM_MECHANISM = "SCRAM-SHA-512"


@dataclass(frozen=True)
class SecureListeners:
    """Two listeners beside the plaintext one (which the broker itself and its readiness check
    keep using on the loopback): SASL_SSL with SCRAM-SHA-512 on `sasl_ssl_port`, and mutual
    TLS (a client certificate required; the principal is `User:CN=<its common name>`) on
    `mtls_port`. `keystore_file` holds the broker's private key and certificate chain in
    one PEM file (Kafka's `ssl.keystore.type=PEM`); `ca_file` the CA clients' certificates
    must chain to. The SCRAM users are written into the metadata log when the data
    directory is formatted (`kafka-storage format --add-scram`), so a new directory takes
    them and a restarted one keeps those it has."""

    ca_file: Path
    keystore_file: Path
    sasl_ssl_port: int
    mtls_port: int
    scram_users: Mapping[str, str] = field(default_factory=dict)

    def listeners(self) -> dict[str, str]:
        return {"SASL_SSL": str(self.sasl_ssl_port), "SSL": str(self.mtls_port)}

    def properties(self) -> dict[str, str]:
        pem_stores = {
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.keystore_file),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ca_file),
        }
        return {
            **{f"listener.name.sasl_ssl.{key}": value for key, value in pem_stores.items()},
            **{f"listener.name.ssl.{key}": value for key, value in pem_stores.items()},
            "listener.name.ssl.ssl.client.auth": "required",
            "listener.name.sasl_ssl.sasl.enabled.mechanisms": SCRAM_MECHANISM,
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
        }

    def format_arguments(self) -> list[str]:
        arguments = []
        for name, password in self.scram_users.items():
            arguments += ["--add-scram", f"{SCRAM_MECHANISM}=[name={name},password={password}]"]
        return arguments


@dataclass(frozen=True)
class BrokerRecord:
    """A data directory's facts, kept in `broker.json`: the cluster id and controller port fixed
    when it was formatted (the controller endpoint is written into the KRaft voter set, so it
    cannot change later), and the client port of the last start."""

    cluster_id: str
    port: int
    controller_port: int
    kafka_version: str


@dataclass(frozen=True)
class BrokerStatus:
    data_dir: Path
    running: bool
    pid: int | None
    port: int | None
    controller_port: int | None
    answers: bool
    log_file: Path

    @property
    def bootstrap_servers(self) -> str | None:
        return None if self.port is None else f"{HOST}:{self.port}"


def default_data_dir(cache_dir: Path | None = None) -> Path:
    return (cache_dir or xdg_cache_dir()) / "broker"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the JVM binds: sockets of a broker just stopped, left in TIME_WAIT, do not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
        return True


def new_cluster_id() -> str:
    """A cluster id as Kafka's `Uuid.randomUuid` makes them: URL-safe base64 of 16 random
    bytes without padding, never starting with '-' (the tools would read it as a flag)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class EmbeddedKafka:
    """A single-node Kafka on 127.0.0.1 with its data in `data_dir`.

    `port` is the client port (default: the one this data directory used last, else 9092);
    `controller_port` the KRaft controller's (default: the one fixed at format, else a free
    port). `detached=False` ties the JVM to this process: it gets SIGTERM when we die, even
    by SIGKILL, which suits test sessions; the CLI's brokers are detached."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        controller_port: int | None = None,
        *,
        cache_dir: Path | None = None,
        heap: str = DEFAULT_HEAP,
        detached: bool = True,
        overrides: Mapping[str, str] | None = None,
        secure: SecureListeners | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.secure = secure
        self.cache_dir = cache_dir or xdg_cache_dir()
        self.heap = heap
        self.detached = detached
        self.overrides = dict(overrides or {})
        record = self.record()
        self.port = port if port is not None else record.port if record else DEFAULT_PORT
        if record and controller_port is not None and controller_port != record.controller_port:
            raise BrokerError(
                f"{self.data_dir} was formatted with controller port {record.controller_port}; "
                f"it cannot move to {controller_port} (drop --controller-port, or use a new "
                f"data directory)"
            )
        self._requested_controller_port = controller_port
        self._process: subprocess.Popen[bytes] | None = None

    # -- where things are -------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def sasl_ssl_bootstrap_servers(self) -> str:
        """The SASL_SSL listener's address (a broker started with `secure` listeners only)."""
        if self.secure is None:
            raise BrokerError("this broker has no SASL_SSL listener (start it with `secure`)")
        return f"{HOST}:{self.secure.sasl_ssl_port}"

    @property
    def mtls_bootstrap_servers(self) -> str:
        """The mutual-TLS listener's address (a broker started with `secure` listeners only)."""
        if self.secure is None:
            raise BrokerError("this broker has no mutual-TLS listener (start it with `secure`)")
        return f"{HOST}:{self.secure.mtls_port}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "logs" / "server.log"

    @property
    def stdout_file(self) -> Path:
        return self.data_dir / "logs" / "kafka.out"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def controller_port(self) -> int | None:
        record = self.record()
        return record.controller_port if record else self._requested_controller_port

    @property
    def _record_file(self) -> Path:
        return self.data_dir / "broker.json"

    @property
    def _server_properties(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def _log_dirs(self) -> Path:
        return self.data_dir / "kraft"

    def record(self) -> BrokerRecord | None:
        """The format-time facts of this data directory, or None if it is not formatted."""
        if not self._record_file.is_file():
            return None
        return BrokerRecord(**json.loads(self._record_file.read_text()))

    # -- lifecycle --------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> str:
        """Starts the broker and waits until it answers a metadata request; returns the
        bootstrap servers. Raises BrokerAlreadyRunningError if this data directory's broker runs."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Two `start`s on one data directory at once: the second waits, then sees the first's
        # broker running.
        with file_lock(self.data_dir / "start.lock"):
            pid = self.pid()
            if pid is not None:
                raise BrokerAlreadyRunningError(pid, self.bootstrap_servers)
            if not port_is_free(self.port):
                raise PortInUseError(self.port, "client", "--port")
            libs = fetch_kafka(self.cache_dir)
            record = self._format(libs)
            self._record_file.write_text(json.dumps(asdict(record), indent=2) + "\n")
            self._write_config(record)
            self._launch(libs)
        self._wait_until_ready(timeout)
        return self.bootstrap_servers

    def stop(self, timeout: float = 30.0) -> bool:
        """Asks the broker to shut down (SIGTERM: a controlled shutdown that flushes its logs),
        then SIGKILLs it after `timeout` seconds. Returns whether it was running."""
        pid = self.pid()
        if pid is None:
            return False
        _signal(pid, signal.SIGTERM)
        if not self._wait_for_exit(pid, timeout):
            _signal(pid, signal.SIGKILL)
            self._wait_for_exit(pid, 10.0)
        self.pid_file.unlink(missing_ok=True)
        return True

    def kill(self) -> bool:
        """Ends the broker at once with SIGKILL, as a crash would: no flush, no controlled
        shutdown; the next start recovers its logs. Returns whether it was running."""
        pid = self.pid()
        if pid is None:
            return False
        _signal(pid, signal.SIGKILL)
        self._wait_for_exit(pid, 10.0)
        self.pid_file.unlink(missing_ok=True)
        return True

    def restart(self, timeout: float = 60.0) -> str:
        """Stops the broker and starts it again on the same data and ports."""
        self.stop()
        return self.start(timeout)

    def is_running(self) -> bool:
        return self.pid() is not None

    def pid(self) -> int | None:
        """The pid of this data directory's running broker, if any. A pid file whose process
        is gone, or was reused by another program, counts as not running."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if is_process_alive(pid) and self._is_our_broker(pid):
            return pid
        return None

    def status(self, timeout: float = 2.0) -> BrokerStatus:
        pid = self.pid()
        return BrokerStatus(
            data_dir=self.data_dir,
            running=pid is not None,
            pid=pid,
            port=self.port if self.record() else None,
            controller_port=self.controller_port,
            answers=pid is not None and broker_answers(self.bootstrap_servers, timeout),
            log_file=self.log_file,
        )

    # -- the steps of start -----------------------------------------------------------

    def _format(self, libs: Path) -> BrokerRecord:
        record = self.record()
        if record is not None:
            if record.kafka_version != KAFKA_VERSION:
                raise BrokerError(
                    f"{self.data_dir} was formatted by Kafka {record.kafka_version}, this is "
                    f"{KAFKA_VERSION}; start it with a new --data-dir"
                )
            if not port_is_free(record.controller_port):
                raise PortInUseError(
                    record.controller_port,
                    "controller (fixed when this data dir was made)",
                    "a new --data-dir",
                )
            return BrokerRecord(
                record.cluster_id, self.port, record.controller_port, record.kafka_version
            )
        if (self._log_dirs / "meta.properties").exists():
            raise BrokerError(
                f"{self._log_dirs} holds Kafka data without {self._record_file.name}; "
                f"choose another --data-dir"
            )
        controller_port = self._requested_controller_port or free_port()
        if not port_is_free(controller_port):
            raise PortInUseError(controller_port, "controller", "--controller-port")
        record = BrokerRecord(new_cluster_id(), self.port, controller_port, KAFKA_VERSION)
        self._write_config(record)
        # A previous format that died half-way leaves a directory without meta.properties.
        shutil.rmtree(self._log_dirs, ignore_errors=True)
        result = subprocess.run(
            [
                *self._java(libs, heap="256m"),
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                record.cluster_id,
                "--config",
                str(self._server_properties),
                # One voter, this node: a dynamic KRaft quorum that needs no voter list.
                "--standalone",
                *(self.secure.format_arguments() if self.secure else []),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BrokerStartError(
                f"formatting {self._log_dirs} failed (exit {result.returncode}):\n"
                + (result.stdout + result.stderr).strip()
            )
        return record

    def _write_config(self, record: BrokerRecord) -> None:
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        client_ports = {"PLAINTEXT": str(self.port)}
        client_ports |= self.secure.listeners() if self.secure else {}
        advertised = ",".join(f"{name}://{HOST}:{port}" for name, port in client_ports.items())
        listeners = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "listeners": f"{advertised},CONTROLLER://{HOST}:{record.controller_port}",
            "advertised.listeners": advertised,
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            # each client listener is named after its protocol; the controller's is plaintext
            "listener.security.protocol.map": ",".join(
                [*(f"{name}:{name}" for name in client_ports), "CONTROLLER:PLAINTEXT"]
            ),
            "controller.quorum.bootstrap.servers": f"{HOST}:{record.controller_port}",
            "log.dirs": str(self._log_dirs),
        }
        secure = self.secure.properties() if self.secure else {}
        properties = {**listeners, **secure, **BROKER_DEFAULTS, **self.overrides}
        self._server_properties.write_text(
            "# Written by loyalty-streams at every start; edits are overwritten.\n"
            + "".join(f"{key}={value}\n" for key, value in properties.items())
        )
        (self.data_dir / "log4j2.properties").write_text(LOG4J2.format(log_file=self.log_file))

    def _java(self, libs: Path, heap: str) -> list[str]:
        return [
            shutil.which("java") or "java",
            f"-Xmx{heap}",
            *JVM_OPTIONS,
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.log_file.parent}",
            "-cp",
            f"{libs}/*",
        ]

    def _launch(self, libs: Path) -> None:
        command = [*self._java(libs, self.heap), "kafka.Kafka", str(self._server_properties)]
        setpriv = shutil.which("setpriv")
        if not self.detached and setpriv:
            # setpriv execs java (same pid) with a parent-death signal, so a test session
            # killed outright does not leave a broker behind.
            command = [setpriv, "--pdeathsig", "TERM", *command]
        with self.stdout_file.open("ab") as out:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{self._process.pid}\n")

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        process = self._process
        assert process is not None
        admin = None
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise BrokerStartError(
                    f"the broker exited with code {process.returncode} while starting.\n"
                    + self._log_excerpt()
                )
            if _accepts_connections(self.port):
                admin = admin or admin_client(self.bootstrap_servers)
                if answers_metadata(admin, min(2.0, max(0.1, deadline - time.monotonic()))):
                    return
            time.sleep(0.1)
        self.kill()
        raise BrokerStartError(
            f"the broker did not answer at {self.bootstrap_servers} within {timeout:.0f} s; "
            f"stopped it.\n" + self._log_excerpt()
        )

    def _log_excerpt(self) -> str:
        lines = [f"--- {self.stdout_file}", *last_lines(self.stdout_file, 10)]
        lines += [f"--- {self.log_file}", *last_lines(self.log_file, 20)]
        return "\n".join(lines)

    # -- processes --------------------------------------------------------------------

    def _is_our_broker(self, pid: int) -> bool:
        try:
            arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return b"kafka.Kafka" in arguments and str(self._server_properties).encode() in arguments

    def _wait_for_exit(self, pid: int, timeout: float) -> bool:
        if self._process is not None and self._process.pid == pid:
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not is_process_alive(pid):
                return True
            time.sleep(0.05)
        return not is_process_alive(pid)


def is_process_alive(pid: int) -> bool:
    """Whether `pid` runs. A zombie (exited, not yet reaped) does not; if it is our own child,
    reap it here, since the `start` that made it may have been in this same process."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state in ("Z", "X"):
        with suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


def _signal(pid: int, signum: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, signum)


def _accepts_connections(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((HOST, port)) == 0
