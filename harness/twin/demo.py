"""The whole pipeline on the demo persona: a twin run, its correlation and its report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.bench.options import RunOptions
from harness.correlate import correlate_run
from harness.report import write_report
from harness.rundir.analysis import Summary, write_analysis
from harness.twin.session import TwinRun, run_with_twin


@dataclass(frozen=True)
class DemoResult:
    run: TwinRun
    summary: Summary | None
    report: Path | None


def run_demo(script: Path, runs_dir: Path, config: Path | None, quiet_s: float, console: Any) -> DemoResult:
    """Run ``script`` against the twin with ``quiet_s`` of background on both sides, its answers
    checked; when the run finished, correlate it (one clock: the twin's capture is stamped by the
    bench's host) and report."""
    options = RunOptions(
        scripts=[script],
        runs_dir=runs_dir,
        capture_tail_s=quiet_s,
        twin=True,
        twin_config=config,
        quiet_lead_s=quiet_s,
        transcribe=True,  # the demo shows the answer checks too
    )
    result = run_with_twin(options, console)
    if result.status != 0:
        return DemoResult(result, None, None)
    correlation = correlate_run(result.run.root, clock_offset=0.0)
    write_analysis(result.run, correlation.summary, correlation.tables)
    return DemoResult(result, correlation.summary, write_report(result.run))
