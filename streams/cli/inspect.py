"""Reading what the workers hold and produce: one customer, every customer, the output
topics, the workers' progress, and the audit against a reference fold of the input log."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from streams.cli.options import (
    BootstrapServers,
    Partitions,
    Rules,
    SchemaRegistryUrl,
    TopicPrefix,
    WebPort,
    load_settings,
)

if TYPE_CHECKING:
    from datetime import datetime

PANEL = "Ops side: inspect and audit"

EXIT_MISMATCH = 1
EXIT_NOT_FOUND = 1
EXIT_UNREACHABLE = 2
EXIT_NOT_IDLE = 1

AppId = Annotated[
    str | None,
    typer.Option(
        "--app-id",
        help="the workers' app id (their consumer group) \\[env LOYALTY_APP_ID; "
        "default loyalty-worker]",
        show_default=False,
    ),
]
AsOf = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        help="evaluate time-dependent fields (P(alive), churn level, expiry) at this ISO date "
        "or date-time (UTC when no offset)",
        show_default=False,
    ),
]


def register(app: typer.Typer) -> None:
    """Adds the inspection commands to the root app."""
    for command in (customer, export, tail, status, audit):
        app.command(rich_help_panel=PANEL)(command)


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _as_of(text: str | None) -> datetime | None:
    from streams.tools.replay import parse_as_of

    if text is None:
        return None
    try:
        return parse_as_of(text)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--as-of") from error


def customer(
    customer_id: Annotated[str, typer.Argument(help="the customer id")],
    as_of: AsOf = None,
    worker: Annotated[
        str | None,
        typer.Option(
            "--worker",
            help="a worker's base URL, e.g. http://127.0.0.1:6067 \\[default: "
            "http://127.0.0.1:<web port>]",
            show_default=False,
        ),
    ] = None,
    web_port: WebPort = None,
) -> None:
    """Show one customer's state, asked of a worker's API (any worker: it asks the owner).

    Prints the JSON the worker answers: `state` (the fields of `loyalty replay`, evaluated at
    --as-of, by default at the partition's clock) with its partition, next offsets and next
    due moment. Exit status 1 for an unknown customer, 2 when no worker answers.
    """
    import urllib.error
    import urllib.parse
    import urllib.request

    _as_of(as_of)  # a bad value is the user's to fix before any request
    settings = load_settings(web_port=web_port)
    base = worker or f"http://127.0.0.1:{settings.web_port}"
    if urllib.parse.urlsplit(base).scheme not in ("http", "https"):
        raise typer.BadParameter(f"--worker {base}: give the worker's http:// or https:// URL")
    url = f"{base.rstrip('/')}/customers/{urllib.parse.quote(customer_id, safe='')}"
    if as_of:
        url += "?" + urllib.parse.urlencode({"as_of": as_of})
    token = settings.api_token
    headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
    try:
        request = urllib.request.Request(url, headers=headers)
        # bandit B310 (file:// and custom schemes): the scheme was checked above
        with urllib.request.urlopen(request, timeout=15) as response:  # nosec B310
            body = json.load(response)
    except urllib.error.HTTPError as error:
        try:
            message = json.load(error).get("error", error.reason)
        except ValueError:
            message = error.reason
        code = EXIT_NOT_FOUND if error.code == 404 else EXIT_UNREACHABLE
        raise _fail(str(message), code) from None
    except (urllib.error.URLError, OSError) as error:
        raise _fail(
            f"no worker answers at {base} ({error}); start one with `loyalty worker` or give "
            "--worker / --web-port",
            EXIT_UNREACHABLE,
        ) from error
    typer.echo(json.dumps(body, indent=2))


def export(
    out: Annotated[
        Path, typer.Option("--out", help="JSON Lines file to write, one customer a line")
    ],
    as_of: AsOf = None,
    bootstrap_servers: BootstrapServers = None,
    rules: Rules = None,
    app_id: AppId = None,
) -> None:
    """Write every customer's state (all workers, all partitions) as of a moment.

    The same fields as `loyalty replay`, in customer-id order. Read from the customer table's
    changelog topic in Kafka, so it needs no running worker; run `loyalty status --wait-idle`
    first for a state that includes everything published. --as-of defaults to now.
    """
    from datetime import UTC, datetime

    from streams.program import load_program
    from streams.tools.export import ExportError
    from streams.tools.export import export as export_states
    from streams.tools.progress import progress_bar

    settings = load_settings(bootstrap_servers=bootstrap_servers, rules=rules, app_id=app_id)
    moment = _as_of(as_of) or datetime.now(UTC)
    program = load_program(settings.rules)
    try:
        with progress_bar("reading the changelog", None, unit="records") as advance:
            summary = export_states(settings.kafka, settings.app_id, program, moment, out, advance)
    except ExportError as error:
        raise _fail(str(error)) from error
    typer.echo(f"{summary.describe()} -> {out}", err=True)
    if summary.unreadable:
        raise typer.Exit(1)


def tail(
    topic: Annotated[
        str,
        typer.Argument(
            help="tier-changes, churn-risk, rewards, dead-letter, purchases, feedback, "
            "or a full topic name"
        ),
    ],
    lines: Annotated[int, typer.Option("-n", "--lines", min=0, help="how many last records")] = 10,
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="every record from the first")
    ] = False,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="keep printing new records until Ctrl-C")
    ] = False,
    bootstrap_servers: BootstrapServers = None,
    topic_prefix: TopicPrefix = None,
    schema_registry_url: SchemaRegistryUrl = None,
) -> None:
    """Print a topic's records decoded, as JSON lines (the last 10 by default)."""
    from streams.broker.topics import TopicNames
    from streams.contract import make_codec
    from streams.tools.tail import decoded_line, resolve_topic
    from streams.tools.tail import tail as tail_topic

    settings = load_settings(
        bootstrap_servers=bootstrap_servers,
        topic_prefix=topic_prefix,
        schema_registry_url=schema_registry_url,
    )
    codec = make_codec(settings)
    name = resolve_topic(topic, TopicNames.from_settings(settings))
    try:
        for message in tail_topic(
            settings.kafka,
            name,
            last=lines,
            from_beginning=from_beginning,
            follow=follow,
        ):
            sys.stdout.write(json.dumps(decoded_line(message, codec)) + "\n")
            if follow:
                sys.stdout.flush()
    except LookupError as error:
        raise _fail(str(error)) from error
    except KeyboardInterrupt:
        pass


def status(
    wait_idle: Annotated[
        bool,
        typer.Option("--wait-idle", help="wait until the lag is zero everywhere (exit 0), or fail"),
    ] = False,
    timeout: Annotated[
        float, typer.Option(help="seconds --wait-idle waits before failing (exit 1)")
    ] = 120.0,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    bootstrap_servers: BootstrapServers = None,
    app_id: AppId = None,
    topic_prefix: TopicPrefix = None,
) -> None:
    """Show the workers' consumer group: members, committed offsets, ends and lag.

    Per input partition: the offset the group committed, the partition's end and the lag
    between them, and the member it is assigned to. --wait-idle first waits until the lag is
    zero everywhere: exit status 0 then, 1 on --timeout.
    """
    from streams.broker.topics import TopicNames
    from streams.tools.lag import wait_idle as wait_until_idle
    from streams.tools.status import group_status

    settings = load_settings(
        bootstrap_servers=bootstrap_servers, app_id=app_id, topic_prefix=topic_prefix
    )
    topics = list(TopicNames.from_settings(settings).inputs)
    if wait_idle:
        try:
            wait_until_idle(settings.kafka, settings.app_id, topics, timeout)
        except TimeoutError as error:
            raise _fail(str(error), EXIT_NOT_IDLE) from error
        except LookupError as error:
            raise _fail(f"unknown topic {error}", EXIT_NOT_IDLE) from error
    try:
        group = group_status(settings.kafka, settings.app_id, topics)
    except LookupError as error:
        raise _fail(str(error)) from error
    if as_json:
        typer.echo(json.dumps(group.as_json(), indent=2))
        return
    typer.echo(
        f"group {group.group}: {group.state.lower()}, {len(group.members)} worker(s), "
        f"lag {group.lag:,}"
    )
    for member in group.members:
        typer.echo(f"  worker {member.member_id} ({member.host}): {member.partitions} partitions")
    typer.echo(f"  {'topic':<40} {'part':>4} {'committed':>10} {'end':>10} {'lag':>8}")
    for part in group.partitions:
        committed = "-" if part.committed is None else f"{part.committed:,}"
        typer.echo(
            f"  {part.topic:<40} {part.partition:>4} {committed:>10} {part.end:>10,} {part.lag:>8,}"
        )


def audit(
    as_of: AsOf = None,
    shown: Annotated[
        int | None,
        typer.Option("--show", min=0, help="print at most this many mismatches (default all)"),
    ] = None,
    view_only: Annotated[
        bool,
        typer.Option(
            "--view-only",
            help="compare customers as replay lines (and partition, offsets) only, not in the "
            "state the view does not show (remembered ids, the order events were applied in)",
        ),
    ] = False,
    bootstrap_servers: BootstrapServers = None,
    rules: Rules = None,
    partitions: Partitions = None,
    app_id: AppId = None,
    topic_prefix: TopicPrefix = None,
    schema_registry_url: SchemaRegistryUrl = None,
) -> None:
    """Check the workers against the input log: fold every input with the core, compare.

    Reads the input topics from the beginning and folds them as a worker that never crashed
    would (same partitions, grace and clock settings as the workers: give it theirs), then
    compares every customer's state (the table's changelog, as `export` reads it, both
    advanced to --as-of) and the output topics (every expected event id produced, none
    unexpected, duplicates only as copies with the same id; none at all under exactly_once).
    Prints every mismatch (customer, field, expected, actual) and a summary. Run it when the
    workers are idle (`loyalty status --wait-idle`). Exit status 1 on any mismatch.
    """
    from streams.tools.audit import audit as run_audit
    from streams.tools.export import ExportError
    from streams.tools.progress import progress_bar

    settings = load_settings(
        bootstrap_servers=bootstrap_servers,
        rules=rules,
        partitions=partitions,
        app_id=app_id,
        topic_prefix=topic_prefix,
        schema_registry_url=schema_registry_url,
    )
    try:
        report = run_audit(settings, _as_of(as_of), progress_bar, view_only=view_only)
    except ExportError as error:
        raise _fail(str(error)) from error
    for mismatch in report.mismatches[:shown]:
        typer.echo(str(mismatch))
    if shown is not None and len(report.mismatches) > shown:
        typer.echo(f"... and {len(report.mismatches) - shown:,} more")
    typer.echo(report.summary())
    if not report.ok:
        raise typer.Exit(EXIT_MISMATCH)
