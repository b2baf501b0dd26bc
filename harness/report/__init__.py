"""Reports of a run: one offline HTML file and a terminal summary."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.ads.result import AdsResult
from harness.files import PRIVATE_FILE, atomic_write_text
from harness.report.audio import AUDIO_CAP_BYTES, read_answers
from harness.report.html import report_html
from harness.report.terminal import summary_renderable
from harness.rundir.analysis import Summary, read_analysis
from harness.rundir.layout import RunDir


def write_report(
    run: RunDir,
    path: str | Path | None = None,
    ads: AdsResult | None = None,
    analysis: tuple[Summary, dict[str, pd.DataFrame]] | None = None,
    audio_cap_bytes: int = AUDIO_CAP_BYTES,
) -> Path:
    """Write the HTML report of the run (default: the run's ``report.html``) from ``analysis``
    (default: the one in the run's ``analysis/``), with the answers the run heard (their audio
    embedded up to ``audio_cap_bytes`` of base64 text)."""
    summary, tables = analysis or read_analysis(run)
    target = Path(path) if path else run.report
    return atomic_write_text(
        target, report_html(summary, tables, ads, read_answers(run, audio_cap_bytes)), PRIVATE_FILE
    )


__all__ = ["report_html", "summary_renderable", "write_report"]
