"""`loyalty report`: the program insight report for marketers, one HTML file.
Help texts avoid square brackets: the root app renders rich markup, which swallows them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from streams.cli.options import Partitions, Rules, WebPort, load_settings

EXIT_BAD_RULES = 1
EXIT_NO_WORKERS = 2

REPORT_HELP = (
    "Write the program insight report: is the loyalty program paying off?\n\n"
    "One self-contained HTML file (opens offline, prints): revenue concentration, monthly "
    "cohorts, checks and visits, tiers and stages, NPS and complaints, churn risk, customer "
    "lifetime value, points liability and breakage, each chart with a reading in words.\n\n"
    "From a history file (EVENTS), folded through the rules as `loyalty replay` does; or with "
    "--live from the running workers' API (the current state only: no months, no cohorts)."
)


def register(app: typer.Typer, *, panel: str | None = None) -> None:
    app.command(rich_help_panel=panel, help=REPORT_HELP)(report)


def report(
    events: Annotated[
        Path | None,
        typer.Argument(
            exists=True,
            dir_okay=False,
            help="CSV or JSON Lines event file; .gz ok",
            show_default=False,
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="the HTML file to write")] = Path(
        "report.html"
    ),
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="the report's moment: an ISO date (its midnight UTC) or date-time; default: "
            "the latest event (history) or the workers' own clock (--live)",
            show_default=False,
        ),
    ] = None,
    live: Annotated[
        bool, typer.Option("--live", help="read the running workers instead of a file")
    ] = False,
    worker: Annotated[
        list[str] | None,
        typer.Option(
            "--worker",
            help="a worker's base URL, once per worker (each pages only its own partitions); "
            "default http://127.0.0.1:LOYALTY_WEB_PORT",
            show_default=False,
        ),
    ] = None,
    event_type: Annotated[
        str | None,
        typer.Option("--type", help="the kind of every row in a file without a type column"),
    ] = None,
    rules: Rules = None,
    web_port: WebPort = None,
    partitions: Partitions = None,
) -> None:
    from rich.console import Console

    from streams.program import ProgramError, load_program
    from streams.report.build import report_from_history, report_from_workers
    from streams.report.live import LiveReadError
    from streams.tools.progress import progress_bar
    from streams.tools.replay import parse_as_of

    if (events is None) == (not live):
        raise typer.BadParameter("give an event file, or --live for the running workers")
    settings = load_settings(rules=rules, web_port=web_port, partitions=partitions)
    try:
        moment = None if as_of is None else parse_as_of(as_of)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--as-of") from None
    try:
        program = load_program(settings.rules)
    except ProgramError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(EXIT_BAD_RULES) from None
    console = Console(stderr=True, soft_wrap=True)

    def bars(label: str, total: int | None):  # type: ignore[no-untyped-def]
        return progress_bar(label, total, console=console)

    if events is not None:
        try:
            summary = report_from_history(
                events, program, out, as_of=moment, default_type=event_type, progress=bars
            )
        except ValueError as error:  # an unknown --type or file type, an empty file
            raise typer.BadParameter(str(error)) from None
    else:
        workers = worker or [f"http://127.0.0.1:{settings.web_port}"]
        try:
            summary = report_from_workers(
                workers,
                settings.partitions,
                program,
                out,
                as_of=moment,
                progress=bars,
                token=settings.api_token.get_secret_value() if settings.api_token else None,
            )
        except LiveReadError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(EXIT_NO_WORKERS) from None
    typer.echo(summary.describe())
