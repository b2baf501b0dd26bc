"""`harness net`: the device's endpoints in one or more captures, named and classified."""

from __future__ import annotations

import argparse
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from harness.cli.console import out, warn
from harness.errors import HarnessError
from harness.files import atomic_write_bytes

if TYPE_CHECKING:
    import pandas as pd

# The reader and classifier (numpy, pandas, filter lists) are imported inside the functions:
# importing them here would slow every `harness` start.

FIELDS = [
    "endpoint_id", "name", "registrable_domain", "organization", "party", "category", "ad_or_tracking",
    "owner", "owner_source", "network", "flows", "bytes_up", "bytes_down", "first_seen", "last_seen",
]  # fmt: skip
EXTRA = ["addresses", "name_sources", "lists"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "net",
        help="endpoints of the device in packet captures, named and classified",
        description="Read pcap/pcapng captures, name the device's endpoints (TLS SNI, HTTP Host, "
        "DNS answers) and classify them (organisation, party, category, ad/tracking).",
    )
    p.add_argument("pcaps", nargs="+", metavar="PCAP", help="capture files, read as one capture in order")
    p.add_argument("--device", metavar="ADDR", help="the device's IP address (default: the busiest local host)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("--flows", metavar="FILE", help="also write the flow table (.parquet or .csv)")
    p.set_defaults(func=run)


def endpoint_rows(endpoints: pd.DataFrame) -> list[dict]:
    """JSON-ready endpoint dicts (``harness.classify.classify_flows`` rows), busiest first."""
    rows = []
    for ep in endpoints.to_dict("records"):
        row = {k: ep[k] for k in FIELDS if k in ep}
        row.update(flows=int(ep["flows"]), bytes_up=int(ep["bytes_up"]), bytes_down=int(ep["bytes_down"]),
                   first_seen=ep["first_ns"] / 1e9, last_seen=ep["last_ns"] / 1e9, ad_or_tracking=bool(ep["ad_or_tracking"]))  # fmt: skip
        rows.append(row | {k: list(ep[k]) for k in EXTRA})
    return rows


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
    import pandas as pd

    from harness.classify import classify_flows
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
    rows = endpoint_rows(table.endpoints)
    named, owned = table.owned_share()
    summary = {"bytes": int(sum(r["bytes_up"] + r["bytes_down"] for r in rows)), "named_share": named, "owned_share": owned}
    if args.flows:
        write_flows(traffic.flows, Path(args.flows))
    if args.format == "json":
        out.print_json(json.dumps({"device": traffic.device, "endpoints": rows, "summary": summary, "warnings": warnings}))
        return 0
    for message in warnings:
        warn(message)
    if args.format == "csv":
        frame = pd.DataFrame(rows, columns=FIELDS + EXTRA)
        for col in EXTRA:
            frame[col] = frame[col].map(" ".join)
        out.file.write(frame.to_csv(index=False))
        return 0
    out.print(_table(rows, traffic.device))
    out.print(
        f"{summary['bytes']:,} bytes of the device: {named:.1%} to named endpoints, {owned:.1%} to endpoints with an owner"
    )
    return 0


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _table(rows: list[dict], device: str | None) -> Table:
    table = Table(title=f"endpoints of {device}" if device else "endpoints")
    # names stay whole (up to 40 characters); the other columns give way on narrow terminals
    table.add_column("name", min_width=min(40, max((len(r["name"]) for r in rows), default=4)), overflow="fold")
    for col, justify in (
        ("named by", "left"), ("owner", "left"), ("owner from", "left"), ("network", "left"),
        ("domain", "left"), ("organization", "left"), ("party", "left"),
        ("category", "left"), ("ad/track", "center"), ("flows", "right"), ("bytes up", "right"),
        ("bytes down", "right"), ("first seen (UTC)", "left"), ("last seen (UTC)", "left"),
    ):  # fmt: skip
        table.add_column(col, justify=justify)
    for r in rows:
        table.add_row(
            r["name"], ",".join(r["name_sources"]), r["owner"] or "", r["owner_source"] or "", r["network"] or "",
            r["registrable_domain"] or "", r["organization"] or "", r["party"], r["category"],
            "yes" if r["ad_or_tracking"] else "", str(r["flows"]), f"{r['bytes_up']:,}", f"{r['bytes_down']:,}",
            _when(r["first_seen"]), _when(r["last_seen"]),
        )  # fmt: skip
    return table
