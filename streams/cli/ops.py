"""Ops side: the embedded Kafka broker and the topics."""

from __future__ import annotations

import typer

PANEL = "Ops side: broker and topics"


def register(app: typer.Typer) -> None:
    """Adds the ops commands to the root app."""
