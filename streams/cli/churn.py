"""`loyalty churn`: fit the churn model (BG/NBD) to purchase history, for `[churn.model]`.
Help texts avoid square brackets: the root app renders rich markup, which swallows them."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from streams.cli.options import Rules, load_settings

if TYPE_CHECKING:
    from streams.core.churn import TimeUnit

SHOWN_PROBLEMS = 5

churn_app = typer.Typer(
    name="churn",
    help="Churn model: fit BG/NBD parameters to purchase history.",
    no_args_is_help=True,
)


class Unit(StrEnum):
    days = "days"
    weeks = "weeks"


def register(app: typer.Typer, *, panel: str | None = None) -> None:
    """Mounts `loyalty churn ...` on the root app."""
    app.add_typer(churn_app, name="churn", rich_help_panel=panel)


def _parse_until(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date like 2025-06-30") from None


def _currency(currency: str | None, rules: Path | None) -> str:
    if currency is not None:
        return currency
    from streams.program import load_program

    settings = load_settings(rules=rules)
    try:
        return load_program(settings.rules).currency
    except (OSError, ValueError) as error:
        raise typer.BadParameter(
            f"cannot read the currency from the rules file {settings.rules} ({error}); "
            "give --currency"
        ) from error


@churn_app.command()
def fit(
    events: Annotated[
        Path, typer.Argument(help="CSV (with header) or JSON Lines file of POS events; .gz ok")
    ],
    until: Annotated[
        str,
        typer.Option(
            help="cut-off date (UTC), e.g. 2025-06-30: customers whose first visit is on or "
            "before it, their visits up to it, and their age measured to it"
        ),
    ],
    unit: Annotated[
        Unit, typer.Option(help="time unit of the model (alpha is per unit); weeks = days / 7")
    ] = Unit.weeks,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help='print only {"r", "alpha", "a", "b", "log_likelihood", "customers"}'
        ),
    ] = False,
    event_type: Annotated[
        str | None,
        typer.Option(
            "--type", help="kind of every row, for a file without a `type` column, e.g. purchase"
        ),
    ] = None,
    currency: Annotated[
        str | None,
        typer.Option(help="currency of rows that name none (default: the rules file's)"),
    ] = None,
    rules: Rules = None,
) -> None:
    """Fit the churn model's r, alpha, a, b by maximum likelihood over purchase history.

    A visit is a calendar day (UTC) with at least one purchase; returns do not remove visits.
    Prints the parameters, their log-likelihood and a ready churn.model table to paste into
    the rules file. Exit status 1 when no fit is possible (no customers, or none came back).
    """
    from rich.console import Console

    from streams.contract.event_files import count_rows
    from streams.tools.churn_fit import (
        ChurnFitError,
        fit_bg_nbd,
        fit_json,
        fit_report,
        visits_from_event_file,
    )
    from streams.tools.progress import progress_bar

    cut_off = _parse_until(until)
    time_unit: TimeUnit = "days" if unit is Unit.days else "weeks"
    row_currency = _currency(currency, rules)
    console = Console(stderr=True)
    problems: list[str] = []
    try:
        with progress_bar(f"reading {events.name}", count_rows(events), unit="rows") as advance:
            visits = visits_from_event_file(
                events,
                currency=row_currency,
                default_type=event_type,
                on_row=lambda: advance(1),
                on_error=problems.append,
            )
    except (OSError, ValueError) as error:  # missing file, unknown format
        raise typer.BadParameter(str(error), param_hint="EVENTS") from error
    for problem in problems[:SHOWN_PROBLEMS]:
        console.print(f"[yellow]skipped[/] {events}:{problem}", highlight=False, soft_wrap=True)
    if len(problems) > SHOWN_PROBLEMS:
        console.print(f"... and {len(problems) - SHOWN_PROBLEMS} more skipped rows")
    try:
        result = fit_bg_nbd(visits.histories(cut_off, time_unit), time_unit)
    except ChurnFitError as error:
        console.print(f"[red]no fit[/]: {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from error
    typer.echo(fit_json(result) if as_json else fit_report(result))
