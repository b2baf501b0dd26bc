"""`harness activations`, `harness correlate`, `harness report`: from captures and run logs to
activations, attributed endpoints and one offline HTML report."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from harness.cli.args import add_format, add_quiet, seconds
from harness.errors import InputError, first_problem

if TYPE_CHECKING:
    import pandas as pd

    from harness.ads.result import AdsResult
    from harness.rundir.analysis import Summary

# The analysis stack (pandas, scipy, matplotlib) is imported inside the commands: importing it
# here would slow every `harness` start by seconds.


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "activations",
        help="when the device woke and streamed a request, from traffic alone",
        description="Find the device's requests by their shape on its voice connection (an opening burst, "
        "then a stream of small audio records): onset, end, upstream bytes, bursts, confidence, endpoints.",
    )
    p.add_argument("pcaps", nargs="+", metavar="PCAP", help="capture files, read as one capture in order")
    p.add_argument("--device", metavar="ADDR", required=True, help="the device's IP address")
    add_format(p)
    add_quiet(p)
    p.set_defaults(func=run_activations)

    p = subparsers.add_parser(
        "correlate",
        help="attribute a run's traffic to its utterances (writes RUN_DIR/analysis/)",
        description="Align the bench clock with the capture (sync markers, else the utterance onsets), "
        "find activations, attribute "
        "endpoints to utterances against background traffic; writes utterances, endpoints, activations "
        "and contacts as CSV and Parquet, and summary.json, into RUN_DIR/analysis/.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--pcap", nargs="+", metavar="PCAP", help="captures to use (default: the manifest's capture files)")
    p.add_argument(
        "--clock-offset",
        type=seconds(low=None),
        metavar="S",
        help="capture clock minus bench clock, seconds (skips the marker and onset fits)",
    )
    p.add_argument("--device", metavar="ADDR", help="the device's IP address (default: the run's --capture-device)")
    add_format(p, csv=False)
    add_quiet(p)
    p.set_defaults(func=run_correlate)

    p = subparsers.add_parser(
        "report",
        help="one offline HTML report of a run (correlated, or its timings and answers without a capture)",
        description="Write a self-contained HTML report (timeline, per-utterance and per-endpoint tables, "
        "third-party and ad/tracking endpoints, per-skill views, answers with audio, warnings) and print a "
        "summary. Correlates first when RUN_DIR/analysis/ is missing; a run without a capture gets a report "
        "of its timings and answers.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("-o", "--output", metavar="FILE", help="where to write (default RUN_DIR/report.html)")
    p.add_argument("--ads", metavar="RESULT", help="an ads result (`harness ads --format json`) to include")
    add_format(p, csv=False)
    add_quiet(p)
    p.set_defaults(func=run_report)


def _utc(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


ACTIVATION_FIELDS = [
    "activation_id",
    "onset_capture_ns",
    "end_capture_ns",
    "bytes_up",
    "bursts",
    "confidence",
    "endpoint_ids",
]


def run_activations(args: argparse.Namespace) -> int:
    from rich.table import Table

    from harness.cli.console import out, plain, print_csv, print_json, progress, warn
    from harness.correlate import detect_activations, read_capture
    from harness.correlate.run import activation_table
    from harness.net.addresses import parse_address
    from harness.termtable import keep_names

    parse_address(args.device)
    with progress(args.quiet) as report:
        view = read_capture(args.pcaps, args.device, report)
        report("finding activations")
        result = detect_activations(view)
    warnings = [*view.warnings, *result.warnings]
    frame = activation_table("", result, {})[ACTIVATION_FIELDS]
    if args.format == "json":
        print_json(
            {
                "device": view.device,
                "activations": json.loads(frame.to_json(orient="records")),
                "threshold_bps": result.threshold_bps,
                "voice_endpoints": result.voice_endpoints,
                "voice_source": result.voice_source,
                "warnings": warnings,
            }
        )
        return 0
    for message in warnings:
        warn(message)
    if args.format == "csv":
        print_csv(frame)
        return 0
    table = Table(title=plain(f"activations of {args.device} (voice endpoints: {result.voice_source})"))
    columns = (
        ("#", "right"),
        ("onset (UTC)", "left"),
        ("duration s", "right"),
        ("bytes up", "right"),
        ("confidence", "right"),
        ("endpoints", "left"),
    )
    for col, justify in columns:
        table.add_column(col, justify=justify)
    for r in frame.itertuples(index=False):
        table.add_row(
            str(r.activation_id),
            _utc(r.onset_capture_ns),
            f"{(r.end_capture_ns - r.onset_capture_ns) / 1e9:.2f}",
            f"{r.bytes_up:,}",
            f"{r.confidence:.2f}",
            plain(", ".join(r.endpoint_ids)),
        )
    out.print(keep_names(table, 5))
    return 0


def _print_summary(fmt: str, summary: Summary, tables: dict[str, pd.DataFrame], note: str, **where: str) -> None:
    """A correlated run's summary: the terminal tables and ``note``, or with ``fmt`` json the
    summary document plus ``where`` (the files written)."""
    from rich.text import Text

    from harness.cli.console import out, print_json
    from harness.report import summary_renderable

    if fmt == "json":
        print_json({"summary": summary.model_dump(mode="json"), **where})
        return
    out.print(summary_renderable(summary, tables))
    out.print(Text(note))


def run_correlate(args: argparse.Namespace) -> int:
    from harness.cli.console import progress
    from harness.correlate import correlate_run
    from harness.net.addresses import parse_address
    from harness.rundir.analysis import write_analysis
    from harness.rundir.layout import RunDir

    if args.device:
        parse_address(args.device)
    run = RunDir.existing(args.run_dir)
    with progress(args.quiet) as report:
        result = correlate_run(run.root, args.pcap, args.clock_offset, args.device, progress=report)
    written = write_analysis(run, result.summary, result.tables)
    note = f"wrote {len(written)} files to {run.analysis}"
    _print_summary(args.format, result.summary, result.tables, note, analysis=str(run.analysis))
    return 0


def _ads(path: str) -> AdsResult:
    from pydantic import ValidationError

    from harness.ads.result import AdsResult

    try:
        return AdsResult.model_validate_json(Path(path).read_bytes())
    except OSError as exc:
        raise InputError(path, exc.strerror or "cannot read") from None
    except ValidationError as exc:
        raise InputError(path, f"not an ads result: {first_problem(exc)}") from None


def run_report(args: argparse.Namespace) -> int:
    from harness.cli.console import progress
    from harness.correlate import correlate_run
    from harness.correlate.run import has_capture, timings_only
    from harness.report import write_report
    from harness.rundir.analysis import has_analysis, read_analysis, write_analysis
    from harness.rundir.layout import RunDir

    run = RunDir.existing(args.run_dir)
    ads = _ads(args.ads) if args.ads else None
    if has_analysis(run):
        summary, tables = read_analysis(run)
    elif not has_capture(run):
        # a bench run without --capture: its timings and answers, nothing written to analysis/
        summary, tables = timings_only(run.root)
    else:
        with progress(args.quiet) as report:
            result = correlate_run(run.root, progress=report)
        write_analysis(run, result.summary, result.tables)
        summary, tables = read_analysis(run)
    path = write_report(run, args.output, ads, (summary, tables))
    _print_summary(args.format, summary, tables, f"report: {path}", report=str(path))
    return 0
