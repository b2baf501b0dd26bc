"""Share of a device's bytes that go to named endpoints and to endpoints with an owner, per capture.

    python benchmarks/net_owners.py CAPTURE_OR_FOLDER... [--device ADDR]

Folders are searched for *.pcap and *.pcapng (one level of subfolders too). Without --device the
reader picks the busiest local host of each file (printed). Ends with the byte-weighted totals
and the lowest owner share.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.classify import classify_flows
from harness.net import read_traffic


def files(args: list[str]) -> list[Path]:
    found: list[Path] = []
    for arg in map(Path, args):
        if arg.is_dir():
            found += sorted(
                p for pattern in ("*.pcap", "*.pcapng", "*/*.pcap", "*/*.pcapng") for p in arg.glob(pattern)
            )
        else:
            found.append(arg)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--device")
    args = parser.parse_args()
    total = named_bytes = owned_bytes = 0
    lowest = (2.0, "")
    print(f"{'capture':<75} {'device':<15} {'bytes':>10} {'named':>7} {'owner':>7}")
    for path in files(args.paths):
        traffic = read_traffic([path], args.device)
        table = classify_flows(traffic.flows)
        named, owned = table.owned_share()
        size = int((table.endpoints["bytes_up"] + table.endpoints["bytes_down"]).sum())
        total, named_bytes, owned_bytes = total + size, named_bytes + named * size, owned_bytes + owned * size
        lowest = min(lowest, (owned, path.name))
        print(f"{path.name:<75} {traffic.device or '-':<15} {size:>10,} {named:>7.1%} {owned:>7.1%}")
    if total:
        print(
            f"all: {total:,} bytes, {named_bytes / total:.1%} named, {owned_bytes / total:.2%} with an owner; "
            f"lowest owner share {lowest[0]:.2%} ({lowest[1]})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
