"""Worker side: run the stream processor."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from streams.cli.options import (
    BootstrapServers,
    DataDir,
    Partitions,
    Rules,
    SchemaRegistryUrl,
    WebPort,
    load_settings,
)

PANEL = "Worker side: process events"


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel=PANEL)(worker)


def worker(
    processing_guarantee: Annotated[
        Literal["at_least_once", "exactly_once"] | None,
        typer.Option(help="at_least_once (default) or exactly_once (Kafka transactions)"),
    ] = None,
    clock: Annotated[
        Literal["live", "event"] | None,
        typer.Option(
            help="live (default): wall-clock ticks move idle partitions on; "
            "event: time only from events, for deterministic replays"
        ),
    ] = None,
    store: Annotated[
        Literal["rocksdb", "memory"] | None,
        typer.Option(help="local table store: rocksdb (default) or memory (tests)"),
    ] = None,
    standby_replicas: Annotated[
        int | None, typer.Option(min=0, help="standby copies of each table partition")
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
    log_format: Annotated[
        Literal["auto", "json", "console"],
        typer.Option(help="json lines, console, or auto: console on a terminal, else json"),
    ] = "auto",
    bootstrap_servers: BootstrapServers = None,
    rules: Rules = None,
    data_dir: DataDir = None,
    web_port: WebPort = None,
    partitions: Partitions = None,
    schema_registry_url: SchemaRegistryUrl = None,
) -> None:
    """Run a stream-processing worker: inputs in, loyalty state kept, outputs out.

    Consumes the purchases and feedback topics, keeps each customer's state in a RocksDB table
    backed by a changelog, applies the loyalty rules and produces tier-change, churn-risk and
    reward events; bad input goes to the dead-letter topic. Run several with different
    --data-dir and --web-port: they share the partitions.
    """
    from faust import Worker

    from streams.worker.app import build_app, prepare_topics
    from streams.worker.logs import configure_structlog, logging_config, use_log_key
    from streams.worker.state_dir import EX_IOERR, StateDirError, check_writable

    settings = load_settings(
        bootstrap_servers=bootstrap_servers,
        rules=rules,
        data_dir=data_dir,
        web_port=web_port,
        partitions=partitions,
        schema_registry_url=schema_registry_url,
        processing_guarantee=processing_guarantee,
        clock=clock,
        store=store,
        standby_replicas=standby_replicas,
    )
    try:
        # before Kafka is asked anything: a worker that cannot keep state must not join
        check_writable(settings.data_dir)
    except StateDirError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(EX_IOERR) from None
    prepare_topics(settings)
    app, _ = build_app(settings)
    configure_structlog()
    use_log_key(settings.log_key.get_secret_value() if settings.log_key else None)
    Worker(
        app, loglevel=log_level.upper(), logging_config=logging_config(log_level, log_format)
    ).execute_from_commandline()
