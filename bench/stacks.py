"""Reading py-spy's collapsed stacks (`py-spy record --format raw`): which functions the worker
spends its own time in, and which part of the stack (Faust, aiokafka, our codec, our core,
the table) holds the time, inclusive of what it calls.

A collapsed stack is one line per distinct stack, root first, frames separated by `;`, then a
space and the number of samples: `<module> (x.py:3);main (x.py:9);step (y.py:4) 17`. py-spy
writes a frame as `function (file:line)`, prefixed by `process ...;thread ...;` frames when
asked to; those are not code and are skipped."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

# The part of the stack a frame belongs to, by its file: first match wins, so the more
# specific paths come first.
AREAS: tuple[tuple[str, str], ...] = (
    ("streams/contract/", "our codec (streams.contract)"),
    ("fastavro/", "fastavro"),
    ("streams/core/", "our core (streams.core)"),
    ("streams/worker/", "our worker shell (streams.worker)"),
    ("streams/program/", "our program rules"),
    ("streams/cli/", "streams.cli (the entry point)"),
    ("streams/", "streams (other)"),
    ("faust/tables/", "faust tables"),
    ("faust/stores/", "faust stores (table writes)"),
    ("rocksdict", "rocksdict"),
    ("faust/transport/", "faust transport (consumer, producer)"),
    ("faust/", "faust (other)"),
    ("aiokafka/", "aiokafka"),
    ("kafka/", "kafka-python (aiokafka's protocol)"),
    ("mode/", "mode (faust's services)"),
    ("aiohttp/", "aiohttp"),
    ("selectors.py", "epoll wait (the event loop idle)"),
    ("asyncio/", "asyncio"),
    ("uvloop", "uvloop"),
)
OTHER = "other"
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


@dataclass(frozen=True, slots=True)
class Frame:
    function: str
    file: str

    @property
    def name(self) -> str:
        """`function (file)`, the file shortened to what follows site-packages/ or the repo."""
        return f"{self.function} ({short_path(self.file)})"

    @property
    def area(self) -> str:
        return area_of(self.file)


@dataclass(frozen=True)
class StackProfile:
    samples: int
    own: Counter[Frame]  # samples where the frame is the innermost one
    area_own: Counter[str]  # own samples per area
    area_inclusive: Counter[str]  # samples with the area anywhere on the stack

    def top_own(self, n: int = 15) -> list[tuple[str, str, int, float]]:
        """(function, area, samples, share of all samples) by own time, most first."""
        return [
            (frame.name, frame.area, count, count / self.samples)
            for frame, count in self.own.most_common(n)
        ]


def short_path(path: str) -> str:
    for marker in ("site-packages/", "/work/main/", "python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def area_of(path: str) -> str:
    for fragment, area in AREAS:
        if fragment in path:
            return area
    return OTHER


def parse_frame(text: str) -> Frame | None:
    """A frame of code, or None for py-spy's `process`/`thread` pseudo-frames."""
    match = _FRAME.match(text.strip())
    if match is None or text.startswith(("process ", "thread ")):
        return None
    return Frame(match["function"], match["file"])


def read_collapsed(lines: Iterable[str]) -> StackProfile:
    own: Counter[Frame] = Counter()
    area_own: Counter[str] = Counter()
    area_inclusive: Counter[str] = Counter()
    samples = 0
    for line in lines:
        stack, _, count_text = line.rstrip("\n").rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in (parse_frame(t) for t in stack.split(";")) if f is not None]
        if not frames:
            continue
        samples += count
        own[frames[-1]] += count
        area_own[frames[-1].area] += count
        for area in {frame.area for frame in frames}:
            area_inclusive[area] += count
    return StackProfile(samples, own, area_own, area_inclusive)
