"""`harness net`: the device's endpoints in one or more captures, named and classified."""

from __future__ import annotations

import argparse
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import HarnessError
from harness.files import atomic_write_bytes

if TYPE_CHECKING:
    import pandas as pd
    from rich.table import Table

# The reader and classifier (numpy, pandas, filter lists) are imported inside the functions:
# importing them here would slow every `harness` start.


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "net",
        help="endpoints of the device in packet captures, named and classified",
        description="Read pcap/pcapng captures, name the device's endpoints (TLS SNI, HTTP Host, DNS answers, "
        "QUIC, server certificates) and classify them (owner, organisation, party, category, ad/tracking).",
    )
    p.add_argument("pcaps", nargs="+", metavar="PCAP", help="capture files, read as one capture in order")
    p.add_argument("--device", metavar="ADDR", help="the device's IP address (default: the busiest local host)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("--flows", metavar="FILE", help="also write the flow table (.parquet or .csv)")
    p.set_defaults(func=run)


def endpoint_frame(endpoints: pd.DataFrame) -> pd.DataFrame:
    """Classified endpoints (``harness.classify.classify_flows``) as the analysis contract's endpoint
    table, busiest first (no run: no ``run_id``)."""
    from harness.rundir.analysis import conform

    named = endpoints.rename(columns={"first_ns": "first_capture_ns", "last_ns": "last_capture_ns"}).assign(run_id="")
    return conform("endpoints", named).drop(columns="run_id")


def write_flows(flows: pd.DataFrame, path: Path) -> None:
    """The flow table as Parquet or CSV, written atomically."""
    buf = io.BytesIO()
    if path.suffix == ".parquet":
        flows.to_parquet(buf, index=False)
    elif path.suffix == ".csv":
        flows.to_csv(buf, index=False)
    else:
        raise HarnessError(f"{path}: --flows must end in .parquet or .csv")
    atomic_write_bytes(path, buf.getvalue())


def run(args: argparse.Namespace) -> int:
    from harness.classify import classify_flows
    from harness.cli.console import out, print_csv, print_json, warn
    from harness.net import read_traffic
    from harness.net.addresses import parse_address

    if args.device:
        parse_address(args.device)
    if args.flows and Path(args.flows).suffix not in (".parquet", ".csv"):
        raise HarnessError(f"{args.flows}: --flows must end in .parquet or .csv")
    traffic = read_traffic(args.pcaps, args.device)
    warnings = list(traffic.warnings)
    if traffic.device is None:
        warnings.append("no local host found to take as the device")
    elif not traffic.flows["device"].any():
        warnings.append(f"no traffic of {traffic.device} in the capture")
    table = classify_flows(traffic.flows)
    frame = endpoint_frame(table.endpoints)
    named, owned = table.owned_share()
    summary = {
        "bytes": int((frame["bytes_up"] + frame["bytes_down"]).sum()),
        "named_share": named,
        "owned_share": owned,
    }
    if args.flows:
        write_flows(traffic.flows, Path(args.flows))
    if args.format == "json":
        print_json(
            {
                "device": traffic.device,
                "endpoints": json.loads(frame.to_json(orient="records")),
                "summary": summary,
                "warnings": warnings,
            }
        )
        return 0
    for message in warnings:
        warn(message)
    if args.format == "csv":
        print_csv(frame)
        return 0
    out.print(_table(frame, traffic.device))
    out.print(
        f"{summary['bytes']:,} bytes of the device: {named:.1%} to named endpoints, "
        f"{owned:.1%} to endpoints with an owner"
    )
    return 0


def _when(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _table(frame: pd.DataFrame, device: str | None) -> Table:
    from rich.table import Table

    table = Table(title=f"endpoints of {device}" if device else "endpoints")
    rows = frame.to_dict("records")
    # names stay whole (up to 40 characters); the other columns give way on narrow terminals
    table.add_column("name", min_width=min(40, max((len(r["endpoint_id"]) for r in rows), default=4)), overflow="fold")
    for col, justify in (
        ("named by", "left"),
        ("owner", "left"),
        ("owner from", "left"),
        ("network", "left"),
        ("domain", "left"),
        ("organization", "left"),
        ("party", "left"),
        ("category", "left"),
        ("ad/track", "center"),
        ("flows", "right"),
        ("bytes up", "right"),
        ("bytes down", "right"),
        ("first seen (UTC)", "left"),
        ("last seen (UTC)", "left"),
    ):
        table.add_column(col, justify=justify)
    for r in rows:
        table.add_row(
            r["endpoint_id"],
            ",".join(r["name_sources"]),
            r["owner"] or "",
            r["owner_source"] or "",
            r["network"] or "",
            r["registrable_domain"] or "",
            r["organization"] or "",
            r["party"],
            r["category"],
            "yes" if r["ad_or_tracking"] else "",
            str(r["flows"]),
            f"{r['bytes_up']:,}",
            f"{r['bytes_down']:,}",
            _when(r["first_capture_ns"]),
            _when(r["last_capture_ns"]),
        )
    return table
