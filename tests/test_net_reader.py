"""The capture reader on hand-built files: formats, byte orders, link types, headers, chunking."""

from __future__ import annotations

import ipaddress
import os
import struct
import threading
from pathlib import Path

import numpy as np
import pytest

from harness.net import CaptureReader, read_packets, synth
from harness.net.addresses import address_text, parse_address
from harness.net.decode import decode

T0 = 1_700_000_000_123_456_789
DEV, SRV = "10.1.2.3", "93.184.216.34"
M1, M2 = "02:00:00:00:00:01", "02:00:00:00:00:02"


def frame(i: int = 0, payload: bytes = b"hello") -> bytes:
    return synth.ethernet(M1, M2, synth.ETH_IPV4, synth.ipv4(DEV, SRV, 6, synth.tcp(40000 + i, 443, payload)))


def packets_of(path: Path, device: str | None = DEV, chunk: int | None = None) -> list[dict]:
    rows = []
    if chunk is None:
        batches = list(read_packets(path, device))
    else:
        reader = CaptureReader(path, chunk=chunk)
        batches = [decode(f, parse_address(device)) for f in reader]
        assert reader.problem is None
    for p in batches:
        for i in range(len(p)):
            rows.append(
                {
                    "ts": int(p.ts_ns[i]),
                    "src": address_text(p.src_hi[i], p.src_lo[i]) if p.ip_version[i] else None,
                    "dst": address_text(p.dst_hi[i], p.dst_lo[i]) if p.ip_version[i] else None,
                    "proto": int(p.proto[i]),
                    "sport": int(p.sport[i]),
                    "dport": int(p.dport[i]),
                    "length": int(p.length[i]),
                    "src_mac": int(p.src_mac[i]),
                    "dir": int(p.direction[i]),
                    "payload": bytes(p.buf[p.payload[i] : p.payload[i] + p.payload_len[i]]),
                }
            )
    return rows


@pytest.mark.parametrize("nanos", [False, True])
@pytest.mark.parametrize("big", [False, True])
def test_classic_pcap_byte_orders_and_resolutions(tmp_path: Path, nanos: bool, big: bool) -> None:
    path = tmp_path / "x.pcap"
    path.write_bytes(synth.pcap_bytes([(T0 + i * 1000, frame(i)) for i in range(3)], nanos=nanos, big=big))
    rows = packets_of(path)
    step = 1 if nanos else 1000  # microsecond files lose the sub-microsecond digits
    assert [r["ts"] for r in rows] == [(T0 + i * 1000) // step * step for i in range(3)]
    assert [(r["src"], r["dst"], r["proto"], r["sport"], r["dport"]) for r in rows] == [
        (DEV, SRV, 6, 40000 + i, 443) for i in range(3)
    ]
    assert rows[0]["src_mac"] == 0x020000000001 and rows[0]["dir"] == 1
    assert rows[0]["payload"] == b"hello" and rows[0]["length"] == len(frame(0))


def test_chunk_boundaries_do_not_change_results(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    payloads = [rng.integers(0, 256, int(rng.integers(0, 300))).astype(np.uint8).tobytes() for _ in range(400)]
    pkts = [(T0 + i * 10_000, frame(i, payload)) for i, payload in enumerate(payloads)]
    path = tmp_path / "x.pcap"
    path.write_bytes(synth.pcap_bytes(pkts))
    whole = packets_of(path)
    assert len(whole) == 400
    for chunk in (97, 1000, 4096):
        assert packets_of(path, chunk=chunk) == whole


def _through_fifo(tmp_path: Path, data: bytes, chunk: int) -> list[dict]:
    """``packets_of`` a capture handed over a named pipe (a file that cannot be mapped)."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    writer = threading.Thread(target=fifo.write_bytes, args=(data,))
    writer.start()
    try:
        return packets_of(fifo, chunk=chunk)
    finally:
        writer.join()


@pytest.mark.parametrize("pcapng", [False, True])
def test_pipes_read_as_files_do(tmp_path: Path, pcapng: bool) -> None:
    # regular files are mapped chunk by chunk; anything else is read into buffers
    frames = [frame(i, bytes(i % 251)) for i in range(300)]
    if pcapng:
        data = synth.pcapng_section() + synth.pcapng_interface(1, 9)
        blocks = [synth.pcapng_packet(0, T0 + i, f) for i, f in enumerate(frames)]
        blocks.insert(150, synth.pcapng_unknown(size=6000))  # larger than a chunk: skipped unread
        data += b"".join(blocks)
    else:
        data = synth.pcap_bytes([(T0 + i * 1000, f) for i, f in enumerate(frames)])
    path = tmp_path / "x.pcap"
    path.write_bytes(data)
    whole = packets_of(path)
    assert len(whole) == 300
    for chunk in (500, 4096, 1 << 20):
        assert packets_of(path, chunk=chunk) == whole
        assert _through_fifo(tmp_path, data, chunk) == whole
        (tmp_path / "pipe").unlink()


def test_timestamp_high_bytes_changing_mid_capture(tmp_path: Path) -> None:
    # the fast framing scan keys on the upper bytes of ts_sec; a jump must not lose records
    stamps = [T0, T0 + 1, T0 + 70_000 * 10**9, T0 + 10**18 // 2, 5 * 10**9]
    path = tmp_path / "x.pcap"
    path.write_bytes(synth.pcap_bytes([(ts, frame(i)) for i, ts in enumerate(stamps)], nanos=True))
    assert [r["ts"] for r in packets_of(path)] == stamps


def test_pcapng_two_interfaces_with_different_resolutions(tmp_path: Path) -> None:
    us, ns, binary = 6, 9, 0x80 | 20  # 10^-6, 10^-9 and 2^-20 seconds
    data = (
        synth.pcapng_section()
        + synth.pcapng_interface(1, us)
        + synth.pcapng_interface(101, ns)
        + synth.pcapng_unknown()
        + synth.pcapng_interface(1, binary)
        + synth.pcapng_packet(0, T0 // 1000, frame(0))
        + synth.pcapng_packet(1, T0 + 5, synth.ipv4(SRV, DEV, 17, synth.udp(53, 5000, b"x" * 12)))
        + synth.pcapng_unknown(0x80000001, 8)
        + synth.pcapng_packet(2, (T0 // 10**9 << 20) + (1 << 19), frame(2))
    )
    path = tmp_path / "x.pcapng"
    path.write_bytes(data)
    rows = packets_of(path)
    assert [r["ts"] for r in rows] == [T0 // 1000 * 1000, T0 + 5, T0 // 10**9 * 10**9 + 500_000_000]
    assert rows[1]["src"] == SRV and rows[1]["proto"] == 17 and rows[1]["dir"] == -1
    assert rows[1]["src_mac"] == 0  # raw IP has no link addresses
    assert rows[2]["sport"] == 40002


def test_pcapng_sections_in_both_byte_orders_and_simple_packets(tmp_path: Path) -> None:
    data = (
        synth.pcapng_section(big=True)
        + synth.pcapng_interface(1, 9, big=True)
        + synth.pcapng_packet(0, T0, frame(0), big=True)
        + synth.pcapng_simple(frame(1), big=True)
        + synth.pcapng_section()
        + synth.pcapng_interface(1)
        + synth.pcapng_packet(0, T0 // 1000 + 1, frame(2))
    )
    path = tmp_path / "x.pcapng"
    path.write_bytes(data)
    rows = packets_of(path)
    assert [r["sport"] for r in rows] == [40000, 40001, 40002]
    assert [r["ts"] for r in rows] == [T0, T0, (T0 // 1000 + 1) * 1000]  # the SPB takes the previous time


def test_pcapng_many_packets_across_chunks(tmp_path: Path) -> None:
    body = b"".join(synth.pcapng_packet(0, T0 + i, frame(i, bytes(i % 200))) for i in range(300))
    path = tmp_path / "x.pcapng"
    path.write_bytes(synth.pcapng_section() + synth.pcapng_interface(1, 9) + body)
    whole = packets_of(path)
    assert [r["ts"] for r in whole] == [T0 + i for i in range(300)]
    assert packets_of(path, chunk=500) == whole


def _linktype_cases() -> list[tuple[int, bytes]]:
    ip4 = synth.ipv4(DEV, SRV, 17, synth.udp(5000, 53, b"q" * 12))
    ip6 = synth.ipv6("2001:db8::1", "2001:db8::2", 17, synth.udp(5000, 53, b"q" * 12))
    hop = synth.ipv6("2001:db8::1", "2001:db8::2", 17, synth.udp(5000, 53, b"q" * 12), hop_by_hop=True)
    return [
        (1, synth.ethernet(M1, M2, synth.ETH_IPV4, ip4, vlans=[7])),
        (1, synth.ethernet(M1, M2, synth.ETH_IPV4, ip4, vlans=[100, 7])),
        (1, synth.ethernet(M1, M2, synth.ETH_IPV6, hop)),
        (113, struct.pack("!HHH", 4, 1, 6) + synth.mac(M1) + b"\0\0" + struct.pack("!H", 0x0800) + ip4),
        (276, synth.sll2(M1, 0x0800, ip4)),
        (276, synth.sll2(M1, 0x86DD, ip6)),
        (101, ip4),
        (101, ip6),
        (228, ip4),
        (229, ip6),
        (0, struct.pack("<I", 2) + ip4),
        (0, struct.pack(">I", 2) + ip4),
        (0, struct.pack("<I", 30) + ip6),
        (108, struct.pack(">I", 2) + ip4),
    ]


@pytest.mark.parametrize("linktype,frame_bytes", _linktype_cases())
def test_link_types_vlan_and_ipv6(tmp_path: Path, linktype: int, frame_bytes: bytes) -> None:
    path = tmp_path / "x.pcap"
    path.write_bytes(synth.pcap_bytes([(T0, frame_bytes)], linktype=linktype))
    (row,) = packets_of(path, device=None)
    assert row["src"] in (DEV, "2001:db8::1")
    assert row["dst"] in (SRV, "2001:db8::2")
    assert (row["proto"], row["sport"], row["dport"]) == (17, 5000, 53)
    assert row["payload"] == b"q" * 12


def test_mixed_interfaces_link_types_in_one_batch(tmp_path: Path) -> None:
    ip4 = synth.ipv4(DEV, SRV, 6, synth.tcp(1, 2))
    data = (
        synth.pcapng_section()
        + synth.pcapng_interface(1, 9)
        + synth.pcapng_interface(276, 9)
        + synth.pcapng_packet(0, T0, synth.ethernet(M1, M2, 0x0800, ip4))
        + synth.pcapng_packet(1, T0 + 1, synth.sll2(M2, 0x0800, ip4))
        + synth.pcapng_packet(0, T0 + 2, synth.ethernet(M1, M2, 0x0806, bytes(28)))  # ARP: no IP
    )
    path = tmp_path / "x.pcapng"
    path.write_bytes(data)
    rows = packets_of(path)
    assert [r["src"] for r in rows] == [DEV, DEV, None]
    assert rows[1]["src_mac"] == 0x020000000002


def test_agrees_with_dpkt_on_real_captures(echo_captures: Path) -> None:
    dpkt = pytest.importorskip("dpkt")
    for path in sorted(echo_captures.glob("*.pcapng")):
        with open(path, "rb") as fh:
            expected = []
            for _ts, buf in dpkt.pcapng.Reader(fh):
                ip = dpkt.ethernet.Ethernet(buf).data
                l4 = ip.data
                expected.append((str(ipaddress.ip_address(ip.src)), ip.p, getattr(l4, "sport", 0)))
        rows = packets_of(path, device=None)
        assert [(r["src"], r["proto"], r["sport"]) for r in rows] == expected
