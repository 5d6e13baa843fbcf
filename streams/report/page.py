"""One self-contained HTML page: plotly.js and the styles inlined (it opens offline and can be
mailed on), one section per question, each chart with its reading under it, the numbers in
tables that open on a click and print. A script error anywhere is written into the page
(`#report-errors`), so a broken page says so instead of showing empty boxes."""

from __future__ import annotations

from datetime import datetime
from html import escape

from plotly.offline import get_plotlyjs

from streams.report.charts import Section

STYLE = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       margin: 0 auto; max-width: 1100px; padding: 24px; color: #222; line-height: 1.45; }
header { border-bottom: 2px solid #4C78A8; margin-bottom: 16px; }
h1 { margin: 0 0 4px; font-size: 26px; }
h2 { margin: 32px 0 2px; font-size: 20px; color: #4C78A8; }
.question { margin: 0 0 8px; color: #666; font-style: italic; }
.meta { color: #555; font-size: 14px; }
.chart { width: 100%; min-height: 360px; }
.reading { margin: 4px 0 18px; padding: 6px 10px; background: #F4F7FB;
           border-left: 4px solid #4C78A8; }
.note { margin: 4px 0 10px; }
nav a { margin-right: 12px; font-size: 14px; }
table.numbers { border-collapse: collapse; font-size: 12px; margin: 6px 0 16px; }
table.numbers th, table.numbers td { border-bottom: 1px solid #ddd; padding: 2px 8px;
                                     text-align: right; }
details summary { cursor: pointer; color: #4C78A8; font-size: 13px; }
#report-errors { color: #b00; white-space: pre-wrap; }
#report-errors:empty { display: none; }
@media print {
  body { max-width: none; padding: 0; }
  nav, details summary { display: none; }
  details > *:not(summary) { display: block; }
  section, .chart { break-inside: avoid; page-break-inside: avoid; }
}
"""

# Before anything else, so that an error in plotly.js itself is caught too.
ERROR_HOOK = """
window.reportErrors = [];
window.addEventListener("error", function (event) {
  var text = (event.message || "error") + " at " + (event.filename || "?") + ":" +
             (event.lineno || "?");
  window.reportErrors.push(text);
  var box = document.getElementById("report-errors");
  if (box) { box.textContent += text + "\\n"; }
});
"""

PLOT_CONFIG = {"displaylogo": False, "responsive": True}


def render(
    sections: list[Section],
    *,
    title: str,
    as_of: datetime,
    source: str,
    customers: int,
    mode_note: str,
) -> str:
    """The whole page as one string."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        f"<style>{STYLE}</style>",
        f"<script>{ERROR_HOOK}</script>",
        f'<script type="text/javascript">{get_plotlyjs()}</script>',
        "</head><body>",
        '<pre id="report-errors"></pre>',
        "<header>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">As of {escape(as_of.isoformat().replace("+00:00", "Z"))} · '
        f"{customers:,} customers · from {escape(source)}</p>",
        f'<p class="meta">{escape(mode_note)}</p>',
        "<nav>"
        + "".join(f'<a href="#{s.section_id}">{escape(s.title)}</a>' for s in sections)
        + "</nav>",
        "</header>",
    ]
    for section in sections:
        parts.append(f'<section id="{section.section_id}">')
        parts.append(f"<h2>{escape(section.title)}</h2>")
        parts.append(f'<p class="question">{escape(section.question)}</p>')
        for chart in section.charts:
            div = chart.figure.to_html(
                full_html=False,
                include_plotlyjs=False,
                div_id=chart.chart_id,
                config=PLOT_CONFIG,
                default_width="100%",
            )
            parts.append(f'<div class="chart-box" data-chart="{chart.chart_id}">{div}</div>')
            parts.append(
                f'<p class="reading" data-for="{chart.chart_id}">{escape(chart.reading)}</p>'
            )
        for note in section.notes:
            parts.append(f'<p class="note">{escape(note)}</p>')
        for caption, table in section.tables:
            parts.append(f"<details><summary>The numbers: {escape(caption)}</summary>")
            parts.append(table.to_html(classes="numbers", border=0, na_rep=""))
            parts.append("</details>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)
