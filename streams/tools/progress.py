"""Progress for long work: a bar with a count and a rate, on stderr, quiet when not a terminal
except for a final line, so logs of CI and scripts stay readable."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

# Redraw every this many items: rich's own update is cheap, but not free per event.
_UPDATE_EVERY = 1000


class RateColumn(ProgressColumn):
    """Items per second, measured by rich over its recent samples."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed or 0:>9,.0f} {self.unit}/s", style="progress.data.speed")


@contextmanager
def progress_bar(
    label: str, total: int | None, unit: str = "events", console: Console | None = None
) -> Iterator[Callable[[int], None]]:
    """Yields `advance(n)`; call it as work is done. Renders only on a terminal."""
    console = console or Console(stderr=True)
    columns = (
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(unit),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
        task = progress.add_task(label, total=total)
        pending = 0

        def advance(count: int = 1) -> None:
            nonlocal pending
            pending += count
            if pending >= _UPDATE_EVERY:
                progress.advance(task, pending)
                pending = 0

        yield advance
        progress.advance(task, pending)
