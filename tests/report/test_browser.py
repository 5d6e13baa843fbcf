"""The report in a real headless browser (Debian's chromium): every chart rendered, no script
error, and a screenshot saved in the test's temp dir.

`make test` installs chromium when it is missing (the Makefile's `browser` prerequisite); the
test skips only where there is no apt-get to install it with."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from streams.program import load_program
from streams.report.build import report_from_history
from streams.settings import DEFAULT_RULES
from streams.tools.replay import parse_as_of
from tests.report import handmade

# Long enough for plotly to draw every chart of a small report on a busy 2-core machine; the
# budget is virtual time, so a fast run does not wait for it.
VIRTUAL_TIME_MS = 30_000
BROWSER_TIMEOUT_S = 180


def chromium() -> str:
    path = shutil.which("chromium")
    if path is not None:
        return path
    if shutil.which("apt-get") is None:
        pytest.skip("no chromium, and no apt-get to install Debian's chromium with")
    pytest.fail("chromium is missing: `make browser` (a prerequisite of `make test`) installs it")


def run_chromium(tmp_path: Path, *args: str) -> str:
    profile = tmp_path / "chromium-profile"
    result = subprocess.run(
        [
            chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--no-first-run", f"--user-data-dir={profile}",
            f"--virtual-time-budget={VIRTUAL_TIME_MS}", *args,
        ],
        capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


class ChartScan(HTMLParser):
    """Per element id of interest: the classes of every element inside it, and its text."""

    def __init__(self, ids: set[str]) -> None:
        super().__init__()
        self.ids = ids
        self.open: list[tuple[str, int]] = []  # (id, depth where it opened)
        self.depth = 0
        self.classes: dict[str, set[str]] = {name: set() for name in ids}
        self.text: dict[str, str] = {name: "" for name in ids}

    VOID = frozenset({"meta", "br", "img", "input", "link", "hr", "path", "rect", "line",
                      "circle", "stop", "image", "use"})  # fmt: skip

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name, _ in self.open:
            self.classes[name].update((values.get("class") or "").split())
        if tag in self.VOID:
            return
        self.depth += 1
        if values.get("id") in self.ids:
            self.open.append((str(values["id"]), self.depth))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        if self.open and self.open[-1][1] == self.depth:
            self.open.pop()
        self.depth -= 1

    def handle_data(self, data: str) -> None:
        for name, _ in self.open:
            self.text[name] += data


@pytest.fixture(scope="module")
def report_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("browser")
    out = directory / "report.html"
    report_from_history(
        handmade.write(directory), load_program(DEFAULT_RULES), out,
        as_of=parse_as_of(handmade.AS_OF),
    )  # fmt: skip
    return out


def chart_ids(page: Path) -> set[str]:
    html = page.read_text()
    return {part.split('"', 1)[0] for part in html.split('data-chart="')[1:]}


def test_every_chart_renders_without_script_errors(report_page: Path, tmp_path: Path) -> None:
    ids = chart_ids(report_page)
    assert len(ids) >= 14
    dom = run_chromium(tmp_path, "--dump-dom", report_page.as_uri())
    scan = ChartScan({*ids, "report-errors"})
    scan.feed(dom)
    assert scan.text["report-errors"].strip() == "", scan.text["report-errors"]
    for chart in sorted(ids):
        # plotly draws into the div it was given: an svg of class main-svg, axes and traces
        assert "main-svg" in scan.classes[chart], f"{chart} did not render"
        assert {"plot-container", "svg-container"} <= scan.classes[chart], chart


def test_a_script_error_would_show_in_the_page(report_page: Path, tmp_path: Path) -> None:
    """The check above can fail: an error in any script lands in #report-errors."""
    broken = tmp_path / "broken.html"
    broken.write_text(
        report_page.read_text().replace("</body>", "<script>noSuchFunction();</script></body>")
    )
    dom = run_chromium(tmp_path, "--dump-dom", broken.as_uri())
    scan = ChartScan({"report-errors"})
    scan.feed(dom)
    assert "noSuchFunction" in scan.text["report-errors"]


def test_screenshot(report_page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    run_chromium(tmp_path, "--window-size=1200,4000", f"--screenshot={shot}", report_page.as_uri())
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 50_000  # charts, not a blank page
