"""Program side: check the rules file, replay history through the core, fit the churn model.
Help texts avoid square brackets: the root app renders rich markup, which swallows them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from streams.cli import churn, report
from streams.cli.options import Rules, load_settings

PANEL = "Program: rules and analysis"
SHOWN_PROBLEMS = 10
EXIT_BAD_RULES = 1

# Help texts as one line per paragraph: rich keeps a docstring's line breaks.
REPLAY_HELP = (
    "Replay an event file through the loyalty rules and write every customer's state.\n\n"
    "Events are folded in event-time order (file order for equal times) through the same "
    "core the worker runs, then every customer is advanced to --as-of.\n\n"
    "Try other rules with --rules my-rules.toml: what if the gold threshold were 1,000?"
)
CHECK_HELP = (
    "Validate a rules file and print the program in words.\n\n"
    "A wrong file gets a line naming the key and why, and exit status 1."
)

rules_app = typer.Typer(
    name="rules",
    help="The loyalty program's rules file: check it and read it in words.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Adds the program commands to the root app: `rules check`, `replay`, `churn ...`
    (streams/cli/churn.py) and `report` (streams/cli/report.py)."""
    app.add_typer(rules_app, name="rules", rich_help_panel=PANEL)
    app.command(rich_help_panel=PANEL, help=REPLAY_HELP)(replay)
    churn.register(app, panel=PANEL)
    report.register(app, panel=PANEL)


@rules_app.command("check", help=CHECK_HELP)
def check(
    path: Annotated[Path, typer.Argument(help="the rules file (TOML)", show_default=False)],
) -> None:
    """Validate a rules file and print the program in words.

    A wrong file gets a line naming the key and why, and exit status 1.
    """
    from streams.program import ProgramError, describe_program, load_program

    try:
        program = load_program(path)
    except ProgramError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(EXIT_BAD_RULES) from None
    typer.echo(describe_program(program))


def replay(
    events: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, help="CSV or JSON Lines event file; .gz ok"),
    ],
    as_of: Annotated[
        str,
        typer.Option(
            "--as-of",
            help="advance every customer to this moment: an ISO date (its midnight UTC) or "
            "date-time; later events are left out",
            show_default=False,
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="write one JSON line per customer here")],
    events_out: Annotated[
        Path | None,
        typer.Option("--events-out", help="also write the output events as JSON lines"),
    ] = None,
    event_type: Annotated[
        str | None,
        typer.Option(
            "--type",
            help="the kind of every row in a file without a type column: purchase, return, "
            "nps, complaint_opened or complaint_resolved",
        ),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="auto (native when built, else python), native (the Rust engine, about 15 "
            "times faster) or python; both write the same files",
        ),
    ] = "auto",
    rules: Rules = None,
) -> None:
    """Replay an event file through the loyalty rules and write every customer's state.

    Events are folded in event-time order (file order for equal times) through the same
    core the worker runs, then every customer is advanced to --as-of.

    Try other rules with --rules my-rules.toml: what if the gold threshold were 1,000?
    """
    from rich.console import Console

    from streams.program import ProgramError, load_program
    from streams.tools.progress import progress_bar
    from streams.tools.replay import ENGINES, parse_as_of
    from streams.tools.replay import replay as run_replay
    from streams.tools.replay_native import NativeUnsupportedError

    if engine not in ENGINES:
        raise typer.BadParameter(
            f"{engine!r} is not one of {', '.join(ENGINES)}", param_hint="--engine"
        )
    settings = load_settings(rules=rules)
    try:
        moment = parse_as_of(as_of)
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

    try:
        summary = run_replay(
            events, program, moment, out, events_out=events_out, default_type=event_type,
            progress=bars, engine=engine, notice=console.print,
        )  # fmt: skip
    except NativeUnsupportedError as refusal:
        typer.echo(f"error: the native engine refuses this input: {refusal}", err=True)
        raise typer.Exit(EXIT_BAD_RULES) from None
    except ValueError as error:  # an unknown --type or file type
        raise typer.BadParameter(str(error)) from None
    for title, problems in (
        ("rejected row", summary.rejected_rows),
        ("contract violation", summary.violations),
    ):
        for problem in problems[:SHOWN_PROBLEMS]:
            console.print(f"[yellow]{title}[/] {events}:{problem}", highlight=False)
        if len(problems) > SHOWN_PROBLEMS:
            console.print(f"... and {len(problems) - SHOWN_PROBLEMS:,} more {title}s")
    typer.echo(summary.describe())
