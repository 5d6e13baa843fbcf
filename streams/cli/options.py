"""Flags shared by every command. Each one defaults to `None` ("not given"), so that
`Settings.load(...)` falls back to the `LOYALTY_*` environment and then to the defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from streams.settings import Settings

BootstrapServers = Annotated[
    str | None,
    typer.Option(
        "--bootstrap-servers",
        "-b",
        help="Kafka bootstrap servers \\[env LOYALTY_BOOTSTRAP_SERVERS; default 127.0.0.1:9092]",
        show_default=False,
    ),
]
Rules = Annotated[
    Path | None,
    typer.Option(
        "--rules",
        help="program rules file \\[env LOYALTY_RULES; default loyalty-program.toml]",
        show_default=False,
    ),
]
DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="local state directory \\[env LOYALTY_DATA_DIR; default under the cache]",
        show_default=False,
    ),
]
WebPort = Annotated[
    int | None,
    typer.Option(
        "--web-port", help="HTTP port \\[env LOYALTY_WEB_PORT; default 6066]", show_default=False
    ),
]
Partitions = Annotated[
    int | None,
    typer.Option(
        "--partitions",
        help="partitions per topic \\[env LOYALTY_PARTITIONS; default 8]",
        show_default=False,
    ),
]
SchemaRegistryUrl = Annotated[
    str | None,
    typer.Option(
        "--schema-registry-url",
        help="Confluent-compatible schema registry; unset = Avro single-object encoding "
        "\\[env SCHEMA_REGISTRY_URL]",
        show_default=False,
    ),
]

TopicPrefix = Annotated[
    str | None,
    typer.Option(
        "--topic-prefix",
        help="prefix of every topic name \\[env LOYALTY_TOPIC_PREFIX; default loyalty]",
        show_default=False,
    ),
]


def load_settings(**flags: object) -> Settings:
    """Settings with the given flags on top, or a one-line error naming the bad value."""
    try:
        return Settings.load(**flags)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error
