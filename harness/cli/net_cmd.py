"""`harness net`: the device's endpoints in one or more captures, named and classified."""

from __future__ import annotations

import argparse
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from harness.cli.args import add_format, add_quiet, whole
from harness.errors import HarnessError
from harness.files import atomic_write_bytes

if TYPE_CHECKING:
    import pandas as pd

    from harness.termtable import WholeNames

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
    add_format(p)
    add_quiet(p)
    p.add_argument("--flows", metavar="FILE", help="also write the flow table (.parquet or .csv)")
    p.add_argument(
        "--jobs",
        type=whole(1),
        metavar="N",
        help="processes reading parts of the captures at once (default: every core; one for captures under 64 MiB)",
    )
    p.set_defaults(func=run, quick_exit=True)


def endpoint_records(endpoints: list[dict]) -> list[dict]:
    """Classified endpoints (``harness.classify.classify_endpoints``) as rows of the analysis
    contract's endpoint table, plain values (no run: no ``run_id``)."""
    from harness.rundir.tables import conform_records

    named = ({**e, "first_capture_ns": e["first_ns"], "last_capture_ns": e["last_ns"]} for e in endpoints)
    return conform_records("endpoints", named, drop=["run_id"])


def endpoint_frame(records: list[dict]) -> pd.DataFrame:
    """:func:`endpoint_records` as the endpoint table's DataFrame (its dtypes)."""
    import pandas as pd

    from harness.rundir.tables import conform

    return conform("endpoints", pd.DataFrame(records).assign(run_id="")).drop(columns="run_id")


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
    from harness.cli.console import print_csv, print_json, progress, warn
    from harness.net import read_traffic
    from harness.net.addresses import parse_address

    if args.device:
        parse_address(args.device)
    if args.flows and Path(args.flows).suffix not in (".parquet", ".csv"):
        raise HarnessError(f"{args.flows}: --flows must end in .parquet or .csv")
    with progress(args.quiet) as report:
        traffic = read_traffic(args.pcaps, args.device, progress=report, jobs=args.jobs)
        report("naming endpoints")
        from harness.classify.endpoint_table import classify_endpoints, owned_share

        endpoints = endpoint_records(classify_endpoints(traffic.columns))
    warnings = list(traffic.warnings)
    if traffic.device is None:
        warnings.append("no local host found to take as the device")
    elif not traffic.columns["device"].any():
        warnings.append(f"no traffic of {traffic.device} in the capture")
    named, owned = owned_share(endpoints)
    summary = {
        "bytes": sum(e["bytes_up"] + e["bytes_down"] for e in endpoints),
        "named_share": named,
        "owned_share": owned,
    }
    if args.flows:
        write_flows(traffic.flows, Path(args.flows))
    if args.format == "json":
        print_json({"device": traffic.device, "endpoints": endpoints, "summary": summary, "warnings": warnings})
        return 0
    for message in warnings:
        warn(message)
    frame = endpoint_frame(endpoints)
    if args.format == "csv":
        print_csv(frame)
        return 0
    from harness.cli.console import out  # the terminal console (rich) only for a table

    out.print(_table(frame, traffic.device, out.width))
    out.print(
        f"{summary['bytes']:,} bytes of the device: {named:.1%} to named endpoints, "
        f"{owned:.1%} to endpoints with an owner"
    )
    return 0


def _when(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")


# the columns a terminal narrower than WIDE_TERMINAL gets (with a caption saying so)
NARROW_COLUMNS = ("name", "party", "category", "ad/track", "bytes up", "bytes down")
WIDE_TERMINAL = 160


def _table(frame: pd.DataFrame, device: str | None, width: int) -> WholeNames:
    """The endpoints, names whole: every column on a wide terminal, the essential ones on a narrow
    one (piped output counts as 80 columns unless COLUMNS says more)."""
    from rich.table import Table

    from harness.cli.console import plain
    from harness.termtable import keep_names

    columns = {
        "name": ("left", lambda r: r["endpoint_id"]),
        "named by": ("left", lambda r: ",".join(r["name_sources"])),
        "owner": ("left", lambda r: r["owner"] or ""),
        "owner from": ("left", lambda r: r["owner_source"] or ""),
        "network": ("left", lambda r: r["network"] or ""),
        "domain": ("left", lambda r: r["registrable_domain"] or ""),
        "organization": ("left", lambda r: r["organization"] or ""),
        "party": ("left", lambda r: r["party"].replace("_", " ")),
        "category": ("left", lambda r: r["category"]),
        "ad/track": ("center", lambda r: "yes" if r["ad_or_tracking"] else ""),
        "flows": ("right", lambda r: str(r["flows"])),
        "bytes up": ("right", lambda r: f"{r['bytes_up']:,}"),
        "bytes down": ("right", lambda r: f"{r['bytes_down']:,}"),
        "first seen (UTC)": ("left", lambda r: _when(r["first_capture_ns"])),
        "last seen (UTC)": ("left", lambda r: _when(r["last_capture_ns"])),
    }
    shown = list(columns) if width >= WIDE_TERMINAL else list(NARROW_COLUMNS)
    table = Table(title=f"endpoints of {device}" if device else "endpoints")
    if len(shown) < len(columns):
        table.caption = (
            f"{len(columns) - len(shown)} more columns on a terminal of {WIDE_TERMINAL} columns, or with --format csv"
        )
    for name in shown:
        table.add_column(name, justify=columns[name][0])
    for r in frame.to_dict("records"):
        table.add_row(*(plain(columns[name][1](r)) for name in shown))
    return keep_names(table, 0)
