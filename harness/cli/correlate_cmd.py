"""`harness activations`, `harness correlate`, `harness report`: from captures and run logs to
activations, attributed endpoints and one offline HTML report."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError
from rich.table import Table
from rich.text import Text

from harness.cli.args import seconds
from harness.cli.console import out, warn
from harness.errors import HarnessError, InputError

if TYPE_CHECKING:
    from harness.ads.result import AdsResult

# The analysis stack (pandas, scipy, matplotlib) is imported inside the commands: importing it
# here would slow every `harness` start by seconds.




def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "activations",
        help="when the device woke and streamed a request, from traffic alone",
        description="Find bursts of upstream traffic from the device to its voice endpoints (threshold "
        "learned from the capture's quiet periods): onset, end, upstream bytes, endpoints.",
    )
    p.add_argument("pcaps", nargs="+", metavar="PCAP", help="capture files, read as one capture in order")
    p.add_argument("--device", metavar="ADDR", required=True, help="the device's IP address")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.set_defaults(func=run_activations)

    p = subparsers.add_parser(
        "correlate",
        help="attribute a run's traffic to its utterances (writes RUN_DIR/analysis/)",
        description="Align the bench clock with the capture (sync markers), find activations, attribute "
        "endpoints to utterances against background traffic; writes utterances, endpoints, activations "
        "and contacts as CSV and Parquet, and summary.json, into RUN_DIR/analysis/.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--pcap", nargs="+", metavar="PCAP", help="captures to use (default: the manifest's capture files)")
    p.add_argument("--clock-offset", type=seconds(low=None), metavar="S", help="capture clock minus bench clock, seconds (skips the marker fit)")
    p.add_argument("--device", metavar="ADDR", help="the device's IP address (default: the run's --capture-device)")
    p.set_defaults(func=run_correlate)

    p = subparsers.add_parser(
        "report",
        help="one offline HTML report of a correlated run",
        description="Write a self-contained HTML report (timeline, per-utterance and per-endpoint tables, "
        "third-party and ad/tracking endpoints, warnings) and print a summary. Correlates first when "
        "RUN_DIR/analysis/ is missing.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("-o", "--output", metavar="FILE", help="where to write (default RUN_DIR/report.html)")
    p.add_argument("--ads", metavar="RESULT", help="an ads result (`harness ads --format json`) to include")
    p.set_defaults(func=run_report)


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def run_activations(args: argparse.Namespace) -> int:
    import pandas as pd

    from harness.correlate import detect_activations, read_capture
    from harness.net.addresses import parse_address

    parse_address(args.device)
    view = read_capture(args.pcaps, args.device)
    result = detect_activations(view)
    warnings = [*view.warnings, *result.warnings]
    rows = [
        {"onset": a.onset_ns / 1e9, "end": a.end_ns / 1e9, "bytes_up": a.bytes_up, "endpoints": list(a.endpoints)}
        for a in result.activations
    ]
    if args.format == "json":
        doc = {"activations": rows, "threshold": result.threshold_bps, "voice_endpoints": result.voice_endpoints, "warnings": warnings}
        out.file.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        return 0
    for message in warnings:
        warn(message)
    if args.format == "csv":
        frame = pd.DataFrame(rows, columns=["onset", "end", "bytes_up", "endpoints"])
        frame["endpoints"] = frame["endpoints"].map(";".join)
        out.file.write(frame.to_csv(index=False))
        return 0
    table = Table(title=Text(f"activations of {args.device} (threshold {result.threshold_bps:,.0f} B/s)"))
    for col, justify in (("#", "right"), ("onset (UTC)", "left"), ("duration s", "right"), ("bytes up", "right"), ("endpoints", "left")):
        table.add_column(col, justify=justify)
    for i, r in enumerate(rows, start=1):
        table.add_row(str(i), _utc(r["onset"]), f"{r['end'] - r['onset']:.2f}", f"{r['bytes_up']:,}", Text(", ".join(r["endpoints"])))
    out.print(table)
    return 0


def run_correlate(args: argparse.Namespace) -> int:
    from harness.correlate import correlate_run, read_analysis, write_analysis
    from harness.net.addresses import parse_address
    from harness.report import summary_renderable

    if args.device:
        parse_address(args.device)
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise HarnessError(f"{run_dir}: not a directory")
    result = correlate_run(run_dir, args.pcap, args.clock_offset, args.device)
    written = write_analysis(run_dir, result)
    summary, tables = read_analysis(run_dir)
    out.print(summary_renderable(summary, tables))
    out.print(Text(f"wrote {len(written)} files to {run_dir / 'analysis'}"))
    return 0


def _ads(path: str) -> AdsResult:
    from harness.ads.result import AdsResult

    try:
        return AdsResult.model_validate_json(Path(path).read_bytes())
    except OSError as exc:
        raise InputError(path, exc.strerror or "cannot read") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InputError(path, f"not an ads result: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def run_report(args: argparse.Namespace) -> int:
    from harness.correlate import correlate_run, read_analysis, write_analysis
    from harness.report import summary_renderable, write_report

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise HarnessError(f"{run_dir}: not a directory")
    ads = _ads(args.ads) if args.ads else None
    if not (run_dir / "analysis" / "summary.json").is_file():
        write_analysis(run_dir, correlate_run(run_dir))
    path = write_report(run_dir, args.output, ads)
    summary, tables = read_analysis(run_dir)
    out.print(summary_renderable(summary, tables))
    out.print(Text(f"report: {path}"))
    return 0
