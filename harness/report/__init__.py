"""Reports of a correlated run: one offline HTML file and a terminal summary."""

from __future__ import annotations

from pathlib import Path

from harness.ads.result import AdsResult
from harness.files import PRIVATE_FILE, atomic_write_text
from harness.report.html import report_html
from harness.report.terminal import summary_renderable
from harness.rundir.analysis import read_analysis
from harness.rundir.layout import RunDir


def write_report(run: RunDir, path: str | Path | None = None, ads: AdsResult | None = None) -> Path:
    """Write the HTML report of the run's analysis (default: the run's ``report.html``)."""
    summary, tables = read_analysis(run)
    target = Path(path) if path else run.report
    return atomic_write_text(target, report_html(summary, tables, ads), PRIVATE_FILE)


__all__ = ["report_html", "summary_renderable", "write_report"]
