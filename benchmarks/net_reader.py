"""Benchmark of the capture reader: packets/s end to end against dpkt and tshark, and peak memory.

Generates a classic pcap of N packets (default 1,000,000: DNS queries and answers, TLS
ClientHellos with SNI, TCP data; Ethernet) in a temporary folder, then times in the same run:
the project's reader end to end (timestamps, 5-tuples, names, flows), dpkt's framing loop
(dpkt.pcap.Reader + struct unpack of the 5-tuple), and tshark -T fields on a 100k-packet subset
(scaled). Peak RSS is measured in subprocesses on the N-packet file and one 10x larger
(written streaming), to show memory stays flat.

    python benchmarks/net_reader.py [--packets 1000000] [--scale 10] [--skip-big]
"""

from __future__ import annotations

import argparse
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from harness.net import read_traffic, synth

DEVICE, GATEWAY = "10.0.0.2", "10.0.0.1"
DEV_MAC, GW_MAC = "02:00:00:00:00:02", "02:00:00:00:00:01"
SERVERS, CONNECTIONS = 500, 5000
# share of packets by kind: DNS query, DNS answer, ClientHello, data up, data down
MIX = {"query": 0.005, "answer": 0.005, "hello": 0.005, "up": 0.45, "down": 0.535}


def templates() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(blob of record templates: 16-byte pcap header with lengths + frame; their offsets; kinds)."""
    frames: dict[str, list[bytes]] = {k: [] for k in MIX}
    for c in range(CONNECTIONS):
        s = c % SERVERS
        server = f"198.18.{s // 250}.{s % 250 + 1}"
        host = f"host{s}.svc{s % 40}.example.com"
        port = 10000 + c

        def up(dst: str, segment: bytes, proto: int = 6) -> bytes:
            return synth.ethernet(DEV_MAC, GW_MAC, 0x0800, synth.ipv4(DEVICE, dst, proto, segment))

        def down(src: str, segment: bytes, proto: int = 6) -> bytes:
            return synth.ethernet(GW_MAC, DEV_MAC, 0x0800, synth.ipv4(src, DEVICE, proto, segment))

        edge = f"edge{s}.cdn.example.net"
        answer = synth.dns_response(host, [(host, "CNAME", edge), (edge, "A", server)], c & 0xFFFF)
        frames["hello"].append(up(server, synth.tcp(port, 443, synth.client_hello(host))))
        frames["up"].append(up(server, synth.tcp(port, 443, bytes(40))))
        frames["down"].append(down(server, synth.tcp(443, port, bytes(60))))
        frames["query"].append(up(GATEWAY, synth.udp(port, 53, synth.dns_query(host, c & 0xFFFF)), 17))
        frames["answer"].append(down(GATEWAY, synth.udp(53, port, answer), 17))
    records = [struct.pack("<IIII", 0, 0, len(f), len(f)) + f for k in MIX for f in frames[k]]
    lens = np.array([len(r) for r in records], np.int64)
    offsets = np.concatenate([[0], np.cumsum(lens)[:-1]])
    kinds = np.repeat(np.arange(len(MIX)), CONNECTIONS)
    return np.frombuffer(b"".join(records), np.uint8), offsets, kinds


def write_capture(path: Path, packets: int, seed: int = 1, chunk: int = 200_000) -> int:
    """Write a pcap of ``packets`` records built from the templates, streaming; returns its size."""
    blob, offsets, kinds = templates()
    lens = np.diff(np.append(offsets, len(blob)))
    rng = np.random.default_rng(seed)
    probs = np.array(list(MIX.values()))
    ts0 = 1_700_000_000 * 1_000_000
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for start in range(0, packets, chunk):
            n = min(chunk, packets - start)
            kind = rng.choice(len(MIX), n, p=probs)
            tpl = kind * CONNECTIONS + rng.integers(0, CONNECTIONS, n)
            size = lens[tpl]
            dest = np.concatenate([[0], np.cumsum(size)[:-1]])
            src = np.repeat(offsets[tpl] - dest, size) + np.arange(int(size.sum()))
            out = blob[src]
            us = ts0 + (start + np.arange(n)) * 100  # 10,000 packets per second
            stamp = np.stack([us // 1_000_000, us % 1_000_000], axis=1).astype("<u4").view(np.uint8).reshape(n, 8)
            out[dest[:, None] + np.arange(8)] = stamp
            fh.write(out.tobytes())
    return path.stat().st_size


def time_project(path: Path) -> tuple[float, int, int]:
    t = time.perf_counter()
    traffic = read_traffic([path], DEVICE)
    elapsed = time.perf_counter() - t
    named = int((traffic.flows["name_source"] != "none").sum())
    return elapsed, traffic.packets, named


def time_dpkt(path: Path) -> tuple[float, int]:
    import dpkt

    unpack = struct.Struct("!HH").unpack_from
    count = 0
    t = time.perf_counter()
    with open(path, "rb") as fh:
        for _ts, buf in dpkt.pcap.Reader(fh):
            if buf[12:14] == b"\x08\x00":
                ihl = (buf[14] & 15) * 4
                _proto, _src, _dst = buf[23], buf[26:30], buf[30:34]  # what a reader decodes per packet
                sport, dport = unpack(buf, 14 + ihl)
            count += 1
    return time.perf_counter() - t, count


def time_tshark(path: Path, subset: Path, n: int) -> float | None:
    tshark = shutil.which("tshark")
    if tshark is None:
        return None
    with open(path, "rb") as src, open(subset, "wb") as dst:
        dst.write(src.read(24))
        for _ in range(n):
            head = src.read(16)
            dst.write(head + src.read(struct.unpack("<I", head[8:12])[0]))
    fields = ["frame.time_epoch", "ip.src", "ip.dst", "ip.proto"]
    fields += ["tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport"]
    cmd = [tshark, "-n", "-r", str(subset), "-T", "fields"] + [x for f in fields for x in ("-e", f)]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


# VmHWM rather than getrusage's ru_maxrss: Linux carries ru_maxrss over from the parent
# across fork + exec, so a child of this (large) process would report the parent's peak.
PEAK = """
import sys
from harness.net import read_traffic
t = read_traffic([sys.argv[1]], sys.argv[2])
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print(t.packets, hwm)
"""


def peak_rss(path: Path) -> tuple[int, float]:
    done = subprocess.run([sys.executable, "-c", PEAK, str(path), DEVICE], check=True, capture_output=True, text=True)
    packets, kib = done.stdout.split()
    return int(packets), int(kib) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--scale", type=int, default=10, help="size of the memory test capture, in multiples")
    parser.add_argument("--skip-big", action="store_true", help="skip the large memory test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="net-bench-") as tmp:
        path = Path(tmp) / "bench.pcap"
        t = time.perf_counter()
        size = write_capture(path, args.packets)
        print(f"capture: {args.packets:,} packets, {size / 1e6:.0f} MB, written in {time.perf_counter() - t:.1f} s")
        ours = [time_project(path) for _ in range(3)]
        best, packets, named = min(ours)
        dpkt_s, dpkt_n = time_dpkt(path)
        assert packets == dpkt_n == args.packets, (packets, dpkt_n)
        rate = packets / best
        print(f"harness reader end to end: {rate / 1e6:.2f} M packets/s (best of 3: {best:.2f} s; {named} flows named)")
        print(
            f"dpkt framing + 5-tuple:    {dpkt_n / dpkt_s / 1e6:.2f} M packets/s ({dpkt_s:.2f} s)"
            f"  -> ratio {dpkt_s / best:.1f}x"
        )
        sub = min(100_000, args.packets)
        tshark_s = time_tshark(path, Path(tmp) / "subset.pcap", sub)
        if tshark_s is None:
            print("tshark: not installed")
        else:
            print(
                f"tshark -T fields ({sub:,}-packet subset): {sub / tshark_s / 1e6:.3f} M packets/s "
                f"-> ratio {rate / (sub / tshark_s):.0f}x"
            )
        n1, rss1 = peak_rss(path)
        print(f"peak RSS, {n1:,} packets: {rss1:.0f} MiB")
        if not args.skip_big:
            big = Path(tmp) / "big.pcap"
            path.unlink()
            size = write_capture(big, args.packets * args.scale, seed=2)
            n2, rss2 = peak_rss(big)
            print(f"peak RSS, {n2:,} packets ({size / 1e9:.1f} GB): {rss2:.0f} MiB (x{rss2 / rss1:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
