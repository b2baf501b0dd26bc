"""`harness net` end to end against dpkt and tshark on realistic captures, and its peak memory.

    python benchmarks/net_reader.py [--packets 1000000 10000000] [--rounds 5] [--dir DIR]
                                    [--rss 100000 1000000 10000000] [--flows 1000000] [--no-tshark]
                                    [--against "dpkt framing" "dpkt decode" "tshark fields"]
                                    [--read-jobs 2]

Captures: ``benchmarks/realistic_mix.py`` (an Echo behind an access point: ~85% TLS with real
ClientHellos from Python's ssl module, DNS, NTP, SSDP, QUIC; ~665-byte packets; 1,500 servers,
~2,800 TLS connections and ~19,500 flows in all per 10^6 packets), written streaming into a
temporary folder (or ``--dir``, where files of the same name are reused).

Method. Every contestant is a whole process started from here on the same file, so start-up,
imports and output count for all of them:

- ``harness``: ``python -m harness.cli.main net FILE --device ADDR --format json`` (stdout to
  /dev/null): framing, decoding, flows, names (SNI, DNS, QUIC), classification, JSON output;
  it reads a large capture in parts on every core (its default), and its CPU time includes its
  worker processes; its classification memo (``HARNESS_CACHE_DIR``) in a temporary folder,
  warmed by one untimed run, as on a bench whose captures revisit the same endpoints;
- ``harness, no memo``: the same with ``HARNESS_CACHE_DIR=off``: every endpoint classified from
  the lists, as on a first run;
- ``dpkt framing``: ``dpkt.pcap.Reader`` and a struct unpack of each IPv4 packet's 5-tuple, the
  bare loop a hand-written reader starts from;
- ``dpkt decode``: ``dpkt.ethernet.Ethernet(buf)`` on each packet and its IP/TCP/UDP 5-tuple;
- ``tshark fields``: ``tshark -n -r FILE -T fields`` with time, addresses, protocol and ports
  (skipped with a message when tshark is not installed).

Each round runs all contestants once, in an order that alternates between rounds (harness first
in even rounds, last in odd ones), so a slow stretch of a shared machine hits both sides of a
pair. Per contestant the median wall time and CPU time (user + system of the child) over the
rounds are printed, and per round the ratio contestant / harness of the same round; the table
gives the median ratio and its range. Other engineers share this 2-core machine: paired rounds
and medians are what make the figures comparable; single runs are not.

Memory: peak RSS (VmHWM, read by the process itself at exit, since a child's ru_maxrss carries
the parent's over fork + exec) of ``harness net --jobs 1`` (one process, so one VmHWM is all of
it) on captures of each ``--rss`` size and on one with about ``--flows`` distinct flows (4-packet
TLS connections), with the MiB per 10^6 flows.

Reading alone (``--read-jobs N``): ``read_traffic`` of the first ``--packets`` capture (and of the
``--flows`` one: many TCP directions in progress at every split) in this process with ``jobs=1``
and with ``jobs=N``, alternating which goes first in each of ``--rounds`` rounds; medians and the
median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import realistic_mix

DPKT_FRAMING = """
import struct, sys, dpkt
unpack = struct.Struct("!HH").unpack_from
count = 0
with open(sys.argv[1], "rb") as fh:
    for _ts, buf in dpkt.pcap.Reader(fh):
        if buf[12:14] == b"\\x08\\x00":
            ihl = (buf[14] & 15) * 4
            _proto, _src, _dst = buf[23], buf[26:30], buf[30:34]
            sport, dport = unpack(buf, 14 + ihl)
        count += 1
print(count)
"""
DPKT_DECODE = """
import sys, dpkt
count = 0
with open(sys.argv[1], "rb") as fh:
    for _ts, buf in dpkt.pcap.Reader(fh):
        eth = dpkt.ethernet.Ethernet(buf)
        ip = eth.data
        if isinstance(ip, dpkt.ip.IP):
            l4 = ip.data
            if isinstance(l4, (dpkt.tcp.TCP, dpkt.udp.UDP)):
                _t = (ip.src, ip.dst, ip.p, l4.sport, l4.dport)
        count += 1
print(count)
"""
PEAK = """
import atexit, runpy, sys
sys.argv = ["harness"] + sys.argv[1:]

@atexit.register  # the command's quick exit runs exit handlers, then ends the process
def peak():
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
    print("VmHWM", hwm, file=sys.stderr, flush=True)

runpy.run_module("harness.cli.main", run_name="__main__")
"""
TSHARK_FIELDS = ["frame.time_epoch", "ip.src", "ip.dst", "ip.proto", "tcp.srcport", "tcp.dstport"]
TSHARK_FIELDS += ["udp.srcport", "udp.dstport"]


def contestants(path: Path, tshark: str | None, cache: Path) -> dict[str, tuple[list[str], dict[str, str]]]:
    """Each contestant's command and environment. ``harness`` keeps its classification memo in
    ``cache`` (warmed by an untimed run first: a lab's captures revisit the same endpoints);
    ``harness, no memo`` classifies every endpoint from the lists, as a first run does."""
    py = sys.executable
    net = [py, "-m", "harness.cli.main", "net", str(path), "--device", realistic_mix.DEVICE, "--format", "json"]
    # Bytecode is written by the first (untimed) run, as on any machine after it: with this
    # setting, harness would compile its source in every run, dpkt's was compiled at its install.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cmds = {
        "harness": (net, env | {"HARNESS_CACHE_DIR": str(cache)}),
        "harness, no memo": (net, env | {"HARNESS_CACHE_DIR": "off"}),
        "dpkt framing": ([py, "-c", DPKT_FRAMING, str(path)], env),
        "dpkt decode": ([py, "-c", DPKT_DECODE, str(path)], env),
    }
    if tshark:
        fields = [x for f in TSHARK_FIELDS for x in ("-e", f)]
        cmds["tshark fields"] = ([tshark, "-n", "-r", str(path), "-T", "fields", *fields], env)
    return cmds


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall s, child CPU s) of one whole-process run; its output is discarded."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} ... failed ({proc.returncode}): {err.strip()[-400:]}")
    return wall, usage.ru_utime + usage.ru_stime


def paired(path: Path, rounds: int, tshark: str | None, only: list[str] | None = None) -> None:
    with tempfile.TemporaryDirectory(prefix="net-bench-cache-") as cache:
        cmds = contestants(path, tshark, Path(cache))
        run(*cmds["harness"])  # warms the memo; not timed
        names = [n for n in cmds if not only or n.startswith("harness") or n in only]
        times: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
        for r in range(rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                times[name].append(run(*cmds[name]))
            print(f"  round {r + 1}: " + ", ".join(f"{n} {times[n][-1][0]:.2f} s" for n in names), flush=True)
    base = times["harness"]
    print(f"  {'contestant':<18} {'wall p50':>9} {'cpu p50':>8} {'ratio wall p50 (min-max)':>26} {'ratio cpu p50':>14}")
    for name in names:
        wall = statistics.median(w for w, _ in times[name])
        cpu = statistics.median(c for _, c in times[name])
        rw = [w / b[0] for (w, _), b in zip(times[name], base, strict=True)]
        rc = [c / b[1] for (_, c), b in zip(times[name], base, strict=True)]
        span = f"{statistics.median(rw):.2f}x ({min(rw):.2f}-{max(rw):.2f})"
        print(f"  {name:<18} {wall:>8.2f}s {cpu:>7.2f}s {span:>26} {statistics.median(rc):>13.2f}x")


def peak(path: Path) -> tuple[float, float]:
    """(peak RSS MiB, wall s) of `harness net` on ``path``."""
    cmd = [sys.executable, "-c", PEAK, "net", str(path), "--device", realistic_mix.DEVICE, "--format", "json"]
    cmd += ["--jobs", "1"]
    t = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True)
    line = [x for x in done.stderr.splitlines() if x.startswith("VmHWM")][-1]
    return int(line.split()[1]) / 1024, time.perf_counter() - t


def reading(path: Path, rounds: int, jobs: int) -> None:
    """Paired rounds of read_traffic alone, jobs=1 against jobs=``jobs``."""
    from harness.net import read_traffic

    times: dict[int, list[float]] = {1: [], jobs: []}
    for r in range(rounds):
        for j in (1, jobs) if r % 2 == 0 else (jobs, 1):
            t = time.perf_counter()
            read_traffic([path], realistic_mix.DEVICE, jobs=j)
            times[j].append(time.perf_counter() - t)
        print(f"  round {r + 1}: jobs=1 {times[1][-1]:.2f} s, jobs={jobs} {times[jobs][-1]:.2f} s", flush=True)
    ratios = [a / b for a, b in zip(times[1], times[jobs], strict=True)]
    print(
        f"  read_traffic p50: jobs=1 {statistics.median(times[1]):.2f} s, jobs={jobs} "
        f"{statistics.median(times[jobs]):.2f} s; speed-up p50 {statistics.median(ratios):.2f}x "
        f"({min(ratios):.2f}-{max(ratios):.2f})"
    )


def flow_count(path: Path) -> int:
    from harness.net import read_traffic

    return len(read_traffic([path], realistic_mix.DEVICE).flows)


def capture(folder: Path, packets: int, mix: realistic_mix.Mix, flow_packets: int = 300) -> Path:
    path = folder / f"mix-{packets}-{flow_packets}.pcap"
    if not path.exists():
        t = time.perf_counter()
        size = realistic_mix.write(path.with_suffix(".tmp"), packets, flow_packets=flow_packets, mix=mix)
        path.with_suffix(".tmp").rename(path)
        print(
            f"capture {path.name}: {packets:,} packets, {size / 1e6:,.0f} MB ({size / packets:.0f} B/packet "
            f"with record headers), written in {time.perf_counter() - t:.0f} s",
            flush=True,
        )
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, nargs="*", default=[1_000_000, 10_000_000])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rss", type=int, nargs="*", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--flows", type=int, default=1_000_000, help="distinct flows of the memory test (0: skip)")
    parser.add_argument("--dir", type=Path, help="keep the captures here (reused when present)")
    parser.add_argument("--no-tshark", action="store_true")
    parser.add_argument("--read-jobs", type=int, default=0, help="also time read_traffic alone, jobs=1 vs this")
    parser.add_argument(
        "--against", nargs="*", choices=("dpkt framing", "dpkt decode", "tshark fields"), help="default: all"
    )
    args = parser.parse_args()
    tshark = None if args.no_tshark else shutil.which("tshark")
    if not tshark and not args.no_tshark:
        print("tshark: not installed, skipped (Debian: apt-get install tshark)")
    mix = realistic_mix.Mix()
    with tempfile.TemporaryDirectory(prefix="net-bench-") as tmp:
        folder = args.dir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for n in args.packets:
            path = capture(folder, n, mix)
            print(f"{n:,} packets: {args.rounds} paired rounds, whole processes", flush=True)
            paired(path, args.rounds, tshark, args.against)
        if args.read_jobs and args.packets:
            print(f"read_traffic alone, {args.packets[0]:,} packets, {args.rounds} paired rounds:", flush=True)
            reading(capture(folder, args.packets[0], mix), args.rounds, args.read_jobs)
        print("peak RSS of harness net --jobs 1 (VmHWM):")
        small = None
        for n in sorted(args.rss):
            path = capture(folder, n, mix)
            rss, wall = peak(path)
            flows = flow_count(path)
            small = small or (rss, flows)
            print(f"  {n:>12,} packets, {flows:>9,} flows: {rss:7.0f} MiB ({wall:.1f} s)", flush=True)
        if args.flows:
            path = capture(folder, args.flows * 4, mix, flow_packets=4)
            rss, wall = peak(path)
            flows = flow_count(path)
            print(f"  {args.flows * 4:>12,} packets, {flows:>9,} flows: {rss:7.0f} MiB ({wall:.1f} s)")
            if small and flows > small[1]:
                per = (rss - small[0]) / (flows - small[1]) * 1e6
                print(f"  memory per 10^6 flows (above the smallest run): {per:.0f} MiB")
            if args.read_jobs:
                print(f"read_traffic alone, {flows:,} flows, {args.rounds} paired rounds:", flush=True)
                reading(path, args.rounds, args.read_jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
