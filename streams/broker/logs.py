"""Reading the broker's log file: the last lines, and following it as it grows."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path


def last_lines(path: Path, count: int) -> list[str]:
    """The last `count` lines of `path` (without line ends); none if the file is missing."""
    if count <= 0 or not path.is_file():
        return []
    with path.open(encoding="utf-8", errors="replace") as log:
        return [line.rstrip("\n") for line in deque(log, maxlen=count)]


def follow(
    path: Path,
    *,
    poll_seconds: float = 0.5,
    keep_going: Callable[[], bool] = lambda: True,
) -> Iterator[str]:
    """Lines appended to `path` from now on, as `tail -F` does: waits for the file to appear
    and reopens it when log4j rolls it over (the file shrinks or is replaced)."""
    position = path.stat().st_size if path.is_file() else 0
    identity = _identity(path)
    while keep_going():
        if _identity(path) != identity or (path.is_file() and path.stat().st_size < position):
            identity, position = _identity(path), 0
        if path.is_file():
            with path.open("rb") as log:
                log.seek(position)
                chunk = log.read()
            # Hold back a partial last line until its end is written.
            complete, newline, _partial = chunk.rpartition(b"\n")
            if newline:
                position += len(complete) + 1
                for line in complete.split(b"\n"):
                    yield line.decode("utf-8", errors="replace")
        time.sleep(poll_seconds)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino
