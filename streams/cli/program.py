"""Program side: check the rules file, replay history through the core, fit the churn model."""

from __future__ import annotations

import typer

PANEL = "Program: rules and analysis"


def register(app: typer.Typer) -> None:
    """Adds the program commands to the root app."""
