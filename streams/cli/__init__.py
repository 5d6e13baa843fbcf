"""The `loyalty` command. Commands are grouped by who runs them: the POS side publishes
events, the worker side processes them, ops run the broker and topics, and the program
commands check rules and analyse history. Each command is a few lines that call into
the rooms of `streams/`."""

from __future__ import annotations

import typer

from streams.cli import ops, pos, program

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

pos.register(app)
ops.register(app)
program.register(app)


def main() -> None:
    app()


@app.command(rich_help_panel="About")
def version() -> None:
    """Print the loyalty-streams version."""
    from streams import __version__

    typer.echo(__version__)
