"""POS side: publish event files, simulate shop traffic."""

from __future__ import annotations

import typer

PANEL = "POS side: send events"


def register(app: typer.Typer) -> None:
    """Adds the POS commands to the root app."""
