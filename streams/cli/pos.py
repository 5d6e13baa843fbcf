"""POS side: publish event files, simulate shop traffic."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from streams.cli.options import BootstrapServers, Rules, SchemaRegistryUrl, load_settings

if TYPE_CHECKING:
    from rich.console import Console

    from streams.settings import Settings
    from streams.tools.publish import EventPublisher, PublishReport

PANEL = "POS side: send events"

EXIT_ROWS_REJECTED = 1
EXIT_NOT_ACKNOWLEDGED = 3
SHOWN_PROBLEMS = 20


def register(app: typer.Typer) -> None:
    """Adds the POS commands to the root app."""
    app.command(rich_help_panel=PANEL)(publish)
    app.command(rich_help_panel=PANEL)(simulate)


def _program_currency(settings: Settings) -> str:
    from streams.program import load_program

    return load_program(settings.rules).currency


def _publisher(settings: Settings, *, check_access: bool = True) -> EventPublisher:
    from streams.broker.topics import TopicNames
    from streams.contract import make_codec
    from streams.tools.publish import EventPublisher

    publisher = EventPublisher(
        settings.kafka, TopicNames.from_settings(settings), make_codec(settings)
    )
    if check_access:  # a dry run sends nothing and needs no broker
        publisher.check_access()
    return publisher


def _parse_renames(pairs: list[str]) -> dict[str, str]:
    renames = {}
    for pair in pairs:
        ours, sep, theirs = pair.partition("=")
        if not sep or not ours.strip() or not theirs.strip():
            raise typer.BadParameter(f"--map {pair!r}: write it as field=column, e.g. total=amount")
        renames[ours.strip()] = theirs.strip()
    return renames


def publish(
    path: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="CSV or JSON Lines file; .gz ok")
    ],
    event_type: Annotated[
        str | None,
        typer.Option(
            "--type",
            help="kind of every row of a file without a `type` column: purchase, return, "
            "nps, complaint_opened, complaint_resolved",
        ),
    ] = None,
    renames: Annotated[
        list[str] | None,
        typer.Option("--map", help="take a field from another column: --map customer_id=cust_no"),
    ] = None,
    strict: Annotated[
        bool, typer.Option(help="check the whole file first; send nothing if any row is bad")
    ] = False,
    dry_run: Annotated[bool, typer.Option(help="check every row, send nothing")] = False,
    errors_out: Annotated[
        Path | None, typer.Option("--errors-out", help="write every rejected row to this file")
    ] = None,
    bootstrap_servers: BootstrapServers = None,
    rules: Rules = None,
    schema_registry_url: SchemaRegistryUrl = None,
) -> None:
    """Publish a file of POS events (purchases, returns, NPS answers, complaints) to Kafka.

    Columns are the event schema's field names (docs/events.md), one event per row, its kind
    in a `type` column or given by --type. A purchase needs only customer_id, occurred_at
    (ISO-8601 or YYYYMMDD) and total (a decimal amount such as 11.77, or total_minor in minor
    units); currency defaults to the program's. Rows without event_id get one derived from the
    file's content and line, so publishing a file twice is seen downstream as duplicates.

    Exit status: 0 every row sent and acknowledged; 1 rows rejected (listed with line and
    reason, not sent); 3 events not acknowledged by Kafka.
    """
    from rich.console import Console

    from streams.contract.event_files import count_rows, read_event_file
    from streams.tools.progress import progress_bar
    from streams.tools.publish import first_problems, publish_rows

    settings = load_settings(
        bootstrap_servers=bootstrap_servers, rules=rules, schema_registry_url=schema_registry_url
    )
    console = Console(stderr=True, soft_wrap=True)
    currency = _program_currency(settings)
    mapping = _parse_renames(renames or [])
    try:
        rows = read_event_file(path, default_type=event_type, renames=mapping, currency=currency)
        total_rows = count_rows(path)
    except ValueError as error:  # unknown file type, unknown --type
        raise typer.BadParameter(str(error)) from error
    publisher = _publisher(settings, check_access=not dry_run)
    if strict or dry_run:
        problems = first_problems(rows, publisher.encode, limit=1 if strict else 10**9)
        _print_problems(path, problems, len(problems), console)
        if problems:
            console.print(f"{len(problems)} bad row(s): nothing sent")
            raise typer.Exit(EXIT_ROWS_REJECTED)
        if dry_run:
            console.print(f"{total_rows} rows checked, all good: nothing sent (--dry-run)")
            return
        rows = read_event_file(path, default_type=event_type, renames=mapping, currency=currency)
    with progress_bar(f"publishing {path.name}", total_rows, console=console) as advance:
        report = publish_rows(rows, publisher, on_row=lambda: advance(1))
    _print_report(path, report, console, errors_out)
    if not report.all_acknowledged:
        raise typer.Exit(EXIT_NOT_ACKNOWLEDGED)
    if report.rejected_count:
        raise typer.Exit(EXIT_ROWS_REJECTED)


def _print_problems(path: Path, problems: Sequence[object], count: int, console: Console) -> None:
    for problem in problems[:SHOWN_PROBLEMS]:
        console.print(f"[red]rejected[/] {path}:{problem}", highlight=False)
    if count > SHOWN_PROBLEMS:
        console.print(f"... and {count - SHOWN_PROBLEMS} more rejected rows")


def _print_report(
    path: Path, report: PublishReport, console: Console, errors_out: Path | None
) -> None:
    _print_problems(path, list(report.rejected), report.rejected_count, console)
    if errors_out is not None:
        errors_out.write_text("".join(f"{problem}\n" for problem in report.rejected))
    tally = report.tally
    console.print(
        f"{report.rows} rows: {tally.acknowledged} published and acknowledged, "
        f"{report.rejected_count} rejected, {tally.failed} failed, "
        f"{tally.outstanding} unacknowledged; {report.elapsed_s:.1f}s, "
        f"{report.events_per_second:,.0f} events/s",
        highlight=False,
    )
    for failure in tally.failures[:SHOWN_PROBLEMS]:
        console.print(f"[red]not acknowledged[/] {failure}", highlight=False)


def simulate(
    customers: Annotated[int, typer.Option(min=1, help="customers in the population")] = 1000,
    events: Annotated[int, typer.Option(min=0, help="events to produce in all")] = 10_000,
    rate: Annotated[
        float | None,
        typer.Option(min=0, help="events per second (default: as fast as possible)"),
    ] = None,
    seed: Annotated[int, typer.Option(help="the same seed gives the same traffic")] = 7,
    out: Annotated[
        Path | None,
        typer.Option(help="write the events to this .jsonl or .csv file instead of Kafka"),
    ] = None,
    bootstrap_servers: BootstrapServers = None,
    rules: Rules = None,
    schema_registry_url: SchemaRegistryUrl = None,
) -> None:
    """Simulate shop traffic: purchases, returns, NPS answers and complaints.

    Customers buy and drop out as the BG/NBD model says (Gamma purchase rates, Beta dropout),
    with baskets, returns, NPS answers and complaints, in event-time order, deterministic for
    a seed. Event times stay within a year and a half from 2025-01-01: for more events than
    the customers make in that time, they stay longer, then also visit more often (said at
    the end).

    Sends to Kafka with the same topics and encoding as `loyalty publish`, or with --out writes
    a file that `loyalty publish` and `loyalty replay` read.
    """
    from rich.console import Console

    from streams.contract.event_files import EventFileWriter
    from streams.tools.progress import progress_bar
    from streams.tools.simulate import Pace, SimulationConfig, simulate
    from streams.tools.traffic import TrafficSummary, send_traffic

    settings = load_settings(
        bootstrap_servers=bootstrap_servers, rules=rules, schema_registry_url=schema_registry_url
    )
    console = Console(stderr=True, soft_wrap=True)
    config = SimulationConfig(
        customers=customers, events=events, seed=seed, currency=_program_currency(settings)
    )
    simulation = simulate(config)
    with progress_bar("simulating", events, console=console) as advance:
        if out is not None:
            with EventFileWriter(out) as writer:
                summary = send_traffic(
                    simulation, writer, TrafficSummary(str(out)), rate_per_s=rate,
                    advance=advance,
                )  # fmt: skip
        else:
            publisher = _publisher(settings)
            summary = TrafficSummary(f"Kafka at {settings.kafka}", tally=publisher.tally)
            send_traffic(simulation, publisher, summary, rate_per_s=rate, advance=advance)
    typer.echo(summary.describe())
    if simulation.pace is not None and simulation.pace != Pace():
        typer.echo(simulation.pace.describe())
    if not summary.all_acknowledged:
        raise typer.Exit(EXIT_NOT_ACKNOWLEDGED)
