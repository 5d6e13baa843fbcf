"""The main job in one command, for a first look: `loyalty demo` (`make demo`)."""

from __future__ import annotations

from typing import Annotated

import typer

from streams.cli.options import BootstrapServers, Partitions, Rules, load_settings

PANEL = "Start here"


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel=PANEL)(demo)


def demo(
    duration: Annotated[
        float,
        typer.Option(
            min=0,
            help="seconds of simulated traffic; 0: until Ctrl-C or the end of the simulated "
            "year and a half",
        ),
    ] = 60.0,
    rate: Annotated[float, typer.Option(min=1, help="events per second")] = 500.0,
    customers: Annotated[int, typer.Option(min=1, help="customers in the simulation")] = 2000,
    seed: Annotated[int, typer.Option(help="the same seed gives the same traffic")] = 7,
    keep_broker: Annotated[
        bool, typer.Option(help="leave the broker the demo started running afterwards")
    ] = False,
    bootstrap_servers: BootstrapServers = None,
    rules: Rules = None,
    partitions: Partitions = None,
) -> None:
    """Run the main job: broker, topics, a worker, simulated POS traffic, a live summary.

    Starts a Kafka broker if none answers at the bootstrap address, creates this run's topics
    (demo-<time>.*), starts a worker, sends simulated POS traffic with a live view of the
    events going in and the tier, churn and reward events coming out, waits for the worker to
    catch up, then reads back and decodes what landed in Kafka. Stops what it started.
    """
    from rich.console import Console

    from streams.tools.demo import DemoOptions, run_demo

    settings = load_settings(
        bootstrap_servers=bootstrap_servers, rules=rules, partitions=partitions
    )
    options = DemoOptions(
        duration_s=duration, rate=rate, customers=customers, seed=seed, keep_broker=keep_broker
    )
    result = run_demo(settings, options, Console())
    typer.echo(result.traffic.describe())
    outputs = ", ".join(f"{count} {kind}" for kind, count in sorted(result.outputs.items()))
    typer.echo(f"the worker produced: {outputs or 'nothing'} (topics {result.topic_prefix}.*)")
    if not result.traffic.all_acknowledged:
        raise typer.Exit(3)
