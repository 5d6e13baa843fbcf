"""Ops side: the embedded Kafka broker and the topics."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from streams.cli.options import BootstrapServers, Partitions, TopicPrefix, load_settings

if TYPE_CHECKING:
    from streams.broker import EmbeddedKafka

PANEL = "Ops side: broker and topics"

kafka_app = typer.Typer(
    help="Run a local Apache Kafka broker (KRaft, one node) from jars fetched with Maven.",
    no_args_is_help=True,
)
topics_app = typer.Typer(
    help="Create and list the loyalty topics (one partition count for all, keyed by customer).",
    no_args_is_help=True,
)

BrokerDataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar="LOYALTY_KAFKA_DATA_DIR",
        help="the broker's data directory \\[default: <cache>/broker]",
        show_default=False,
    ),
]


def register(app: typer.Typer) -> None:
    """Adds the ops commands to the root app."""
    app.add_typer(kafka_app, name="kafka", rich_help_panel=PANEL)
    app.add_typer(topics_app, name="topics", rich_help_panel=PANEL)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def _broker(
    data_dir: Path | None, port: int | None = None, controller_port: int | None = None
) -> EmbeddedKafka:
    from streams.broker import BrokerError, EmbeddedKafka
    from streams.broker.embedded import default_data_dir

    settings = load_settings()
    try:
        return EmbeddedKafka(
            data_dir or default_data_dir(settings.cache_dir),
            port,
            controller_port,
            cache_dir=settings.cache_dir,
        )
    except BrokerError as error:
        raise _fail(str(error)) from error


@kafka_app.command()
def fetch() -> None:
    """Fetch Apache Kafka's jars from Maven Central into the cache (once; needs mvn, java)."""
    from streams.broker import KAFKA_VERSION, BrokerError, fetch_kafka
    from streams.broker.fetch import is_fetched

    cache_dir = load_settings().cache_dir
    if is_fetched(cache_dir):
        typer.echo(f"Apache Kafka {KAFKA_VERSION} already in {fetch_kafka(cache_dir)}")
        return
    typer.echo(f"fetching Apache Kafka {KAFKA_VERSION} with Maven...")
    began = time.monotonic()
    try:
        libs = fetch_kafka(cache_dir)
    except BrokerError as error:
        raise _fail(str(error)) from error
    typer.echo(f"Apache Kafka {KAFKA_VERSION} in {libs} ({time.monotonic() - began:.1f} s)")


@kafka_app.command()
def start(
    port: Annotated[
        int | None,
        typer.Option(
            help="client port on 127.0.0.1 \\[default: the data dir's last, else 9092]",
            show_default=False,
        ),
    ] = None,
    controller_port: Annotated[
        int | None,
        typer.Option(
            help="KRaft controller port \\[default: fixed when the data dir is made, a free port]",
            show_default=False,
        ),
    ] = None,
    data_dir: BrokerDataDir = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the broker")] = 60.0,
) -> None:
    """Start a broker in the background and wait until it answers."""
    from streams.broker import KAFKA_VERSION, BrokerAlreadyRunningError, BrokerError
    from streams.broker.fetch import is_fetched

    broker = _broker(data_dir, port, controller_port)
    if not is_fetched(broker.cache_dir):
        typer.echo(f"fetching Apache Kafka {KAFKA_VERSION} with Maven first...")
    began = time.monotonic()
    try:
        bootstrap = broker.start(timeout)
    except BrokerAlreadyRunningError as running:
        typer.echo(
            f"already running: pid {running.pid}, bootstrap servers {running.bootstrap_servers}"
        )
        return
    except BrokerError as error:
        raise _fail(str(error)) from error
    typer.echo(f"Apache Kafka {KAFKA_VERSION} ready in {time.monotonic() - began:.1f} s")
    typer.echo(f"bootstrap servers: {bootstrap}")
    typer.echo(f"pid:               {broker.pid()}")
    typer.echo(f"data:              {broker.data_dir}")
    typer.echo(f"log:               {broker.log_file}")
    typer.echo(f"stop it with:      loyalty kafka stop --data-dir {broker.data_dir}")


@kafka_app.command()
def stop(
    data_dir: BrokerDataDir = None,
    timeout: Annotated[
        float, typer.Option(help="seconds to wait after SIGTERM before SIGKILL")
    ] = 30.0,
) -> None:
    """Stop the broker of a data directory (SIGTERM, then SIGKILL after --timeout)."""
    broker = _broker(data_dir)
    pid = broker.pid()
    if not broker.stop(timeout):
        typer.echo(f"no broker running for {broker.data_dir}")
        return
    typer.echo(f"stopped the broker (pid {pid}) of {broker.data_dir}")


@kafka_app.command()
def status(data_dir: BrokerDataDir = None) -> None:
    """Say whether the broker of a data directory runs and answers (exit 1 if not)."""
    state = _broker(data_dir).status()
    if not state.running:
        typer.echo(f"not running ({state.data_dir})")
        raise typer.Exit(1)
    answer = "answers" if state.answers else "does NOT answer a metadata request"
    typer.echo(f"running: pid {state.pid}, bootstrap servers {state.bootstrap_servers}, {answer}")
    typer.echo(f"controller port {state.controller_port}; data {state.data_dir}")
    typer.echo(f"log {state.log_file}")
    if not state.answers:
        raise typer.Exit(1)


@kafka_app.command()
def logs(
    data_dir: BrokerDataDir = None,
    lines: Annotated[int, typer.Option("--lines", "-n", help="how many last lines")] = 50,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="keep printing new lines (Ctrl-C ends)")
    ] = False,
) -> None:
    """Print the end of the broker's log."""
    from streams.broker.logs import follow as follow_log
    from streams.broker.logs import last_lines

    log_file = _broker(data_dir).log_file
    if not log_file.is_file() and not follow:
        raise _fail(f"no broker log at {log_file}; has this broker been started?")
    for line in last_lines(log_file, lines):
        typer.echo(line)
    if follow:
        try:
            for line in follow_log(log_file):
                typer.echo(line)
        except KeyboardInterrupt:
            pass


@topics_app.command("create")
def create_topics(
    bootstrap_servers: BootstrapServers = None,
    partitions: Partitions = None,
    topic_prefix: TopicPrefix = None,
) -> None:
    """Create the input, output and dead-letter topics; existing ones with the right
    partition count are kept, a wrong count is an error."""
    from streams.broker import BrokerError, TopicNames, ensure_topics

    settings = load_settings(
        bootstrap_servers=bootstrap_servers, partitions=partitions, topic_prefix=topic_prefix
    )
    try:
        names = TopicNames(settings.topic_prefix)
        outcomes = ensure_topics(
            settings.kafka,
            names.all,
            settings.partitions,
            settings.replication_factor,
            configs=names.configs,
        )
    except (BrokerError, ValueError) as error:
        raise _fail(str(error)) from error
    for name, outcome in outcomes.items():
        typer.echo(f"{outcome.value:8} {name} ({settings.partitions} partitions)")


@topics_app.command("list")
def list_topics(bootstrap_servers: BootstrapServers = None) -> None:
    """List the broker's topics (Kafka's internal ones left out) with their partitions."""
    from streams.broker import BrokerError
    from streams.broker import list_topics as broker_topics

    settings = load_settings(bootstrap_servers=bootstrap_servers)
    try:
        counts = broker_topics(settings.kafka)
    except BrokerError as error:
        raise _fail(str(error)) from error
    if not counts:
        typer.echo(f"no topics at {settings.bootstrap_servers}")
    for name, count in counts.items():
        typer.echo(f"{name}\t{count}")


@topics_app.command("acls")
def topic_acls(
    topic_prefix: TopicPrefix = None,
    app_id: Annotated[
        str | None,
        typer.Option(
            "--app-id", help="the workers' app id \\[env LOYALTY_APP_ID]", show_default=False
        ),
    ] = None,
    worker: Annotated[str, typer.Option(help="the workers' principal")] = "User:loyalty-worker",
    publisher: Annotated[
        str, typer.Option(help="the POS publishers' principal")
    ] = "User:loyalty-publisher",
    reader: Annotated[
        str, typer.Option(help="audit, tail, export and status's principal")
    ] = "User:loyalty-audit",
) -> None:
    """Print the kafka-acls.sh commands that grant each component what it needs and no more
    (README, "Security"). Principals: User:<SCRAM user>, or User:CN=<cert CN> for mTLS."""
    from streams.broker import TopicNames
    from streams.tools.acls import Component, grants, kafka_acls_lines

    settings = load_settings(topic_prefix=topic_prefix, app_id=app_id)
    needs = grants(TopicNames(settings.topic_prefix), settings.app_id)
    principals: dict[Component, str] = {
        "worker": worker,
        "publisher": publisher,
        "reader": reader,
    }
    for component, principal in principals.items():
        typer.echo(f"# {component}")
        for line in kafka_acls_lines(principal, needs[component]):
            typer.echo(line)
