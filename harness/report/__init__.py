"""Reports of a correlated run: one offline HTML file and a terminal summary."""

from __future__ import annotations

from pathlib import Path

from harness.ads.result import AdsResult
from harness.correlate.run import read_analysis
from harness.files import PRIVATE_FILE, atomic_write_text
from harness.report.html import report_html
from harness.report.terminal import summary_renderable

REPORT_NAME = "report.html"


def write_report(run_dir: str | Path, path: str | Path | None = None, ads: AdsResult | None = None) -> Path:
    """Write the HTML report of ``run_dir``'s analysis (default ``RUN_DIR/report.html``)."""
    summary, tables = read_analysis(run_dir)
    target = Path(path) if path else Path(run_dir) / REPORT_NAME
    return atomic_write_text(target, report_html(summary, tables, ads), PRIVATE_FILE)


__all__ = ["REPORT_NAME", "report_html", "summary_renderable", "write_report"]
