"""Reading what the workers hold and produce: one customer, every customer, the output
topics, the workers' progress, and the audit against a reference fold of the input log."""

from __future__ import annotations

import typer

PANEL = "Ops side: inspect and audit"


def register(app: typer.Typer) -> None:
    """Adds the inspection commands to the root app."""
