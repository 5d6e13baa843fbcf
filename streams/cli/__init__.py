"""The `loyalty` command. Commands are grouped by who runs them: the POS side publishes
events, the worker side processes them, ops run the broker and topics, and the program
commands check rules and analyse history. Each command is a few lines that call into
the rooms of `streams/`."""

from __future__ import annotations

import typer

from streams.cli import demo, inspect, ops, pos, program, worker

app = typer.Typer(
    name="loyalty",
    help=(
        "loyalty-streams: keeps per-customer loyalty state (points, tier, punch cards, NPS, "
        "churn risk) from POS events in Kafka and emits tier, churn and reward events.\n\n"
        "Every command reads its settings from flags or LOYALTY_* environment variables "
        "(LOYALTY_BOOTSTRAP_SERVERS, LOYALTY_RULES, LOYALTY_DATA_DIR, LOYALTY_WEB_PORT, "
        "LOYALTY_PARTITIONS, SCHEMA_REGISTRY_URL)."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)

demo.register(app)
pos.register(app)
worker.register(app)
ops.register(app)
inspect.register(app)
program.register(app)


# Kafka refused us or did not answer: our one-line message, no traceback
EXIT_KAFKA_UNAVAILABLE = 2


def main() -> None:
    from streams.broker.errors import BrokerError

    try:
        app()
    except BrokerError as error:
        typer.echo(f"error: {error}", err=True)
        raise SystemExit(EXIT_KAFKA_UNAVAILABLE) from None


def _print_version(value: bool) -> None:
    if value:
        from streams import __version__

        typer.echo(f"loyalty-streams {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """loyalty-streams: per-customer loyalty state from POS events in Kafka."""
