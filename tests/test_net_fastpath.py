"""Naming's vectorised fast path gives what reading every segment in Python gives.

Within a batch, the segments of a TCP direction that a whole first TLS record already finished
are dropped in numpy instead of being walked one by one in Python (``_Names._after_end``). These
tests read the same captures with that path and with it switched off (it then drops nothing,
which is exactly the per-segment path) and compare flows, names and warnings, on captures with
real ClientHellos (Python's ssl module) and odd records: segments that look like a new TLS
record after the end, a reused 5-tuple, a hello cut over two segments or arriving before its
SYN, retransmissions, VLAN tags, IPv6, IPv4 fragments, records cut by the snap length, and a
torn last record.
"""

from __future__ import annotations

import ssl
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.net import read_traffic, synth, traffic
from harness.net.flow_table import Traffic
from harness.net.streams import DONE_WINDOW_NS, Streams

T0 = 1_700_000_000 * 10**9
DEV, GW = "192.168.1.20", "192.168.1.1"
DM, GM = "02:00:00:00:00:20", "02:00:00:00:00:01"
SYN, SYNACK, ACK, PSH = 0x02, 0x12, 0x10, 0x18


def hello(host: str) -> bytes:
    """The ClientHello record Python's TLS client (OpenSSL) sends for ``host``."""
    out = ssl.MemoryBIO()
    tls = ssl.create_default_context().wrap_bio(ssl.MemoryBIO(), out, server_hostname=host)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return out.read()


def server_flight() -> bytes:
    """ServerHello record, ChangeCipherSpec, then an encrypted record (TLS 1.3 shape)."""
    sh = b"\x02" + (38).to_bytes(3, "big") + b"\x03\x03" + bytes(32) + b"\x00\x13\x01\x00"
    return (
        b"\x16\x03\x03"
        + struct.pack("!H", len(sh))
        + sh
        + b"\x14\x03\x03\x00\x01\x01"
        + b"\x17\x03\x03\x00\x10"
        + bytes(16)
    )


def tcp(up: bool, server: str, port: int, data: bytes, seq: int, flags: int = PSH, vlan: bool = False) -> bytes:
    seg = synth.tcp(port, 443, data, seq=seq, flags=flags) if up else synth.tcp(443, port, data, seq=seq, flags=flags)
    ip = synth.ipv4(DEV, server, 6, seg) if up else synth.ipv4(server, DEV, 6, seg)
    return synth.ethernet(DM, GM, 0x0800, ip, vlans=[7] if vlan else []) if up else synth.ethernet(GM, DM, 0x0800, ip)


def connection(server: str, port: int, host: str, *, vlan: bool = False, extra: list[bytes] = ()) -> list[bytes]:
    """SYN, SYN-ACK, the hello, the server's flight, data both ways, and ``extra`` segments up after it."""
    ch = hello(host)
    frames = [
        tcp(True, server, port, b"", 1000, SYN, vlan),
        tcp(False, server, port, b"", 5000, SYNACK),
        tcp(True, server, port, ch, 1001, PSH, vlan),
        tcp(False, server, port, server_flight(), 5001),
    ]
    seq = 1001 + len(ch)
    for data in [b"\x17\x03\x03\x00\x20" + bytes(32), *extra, bytes(range(200)), b"\x16\x03\x01\x00\x05hello"]:
        frames.append(tcp(True, server, port, data, seq, PSH, vlan))
        frames.append(tcp(False, server, port, b"", 5100, ACK))
        seq += len(data)
    return frames


def odd_frames() -> list[bytes]:
    frames: list[bytes] = []
    frames += connection("198.51.100.1", 40001, "api.amazonalexa.com")
    frames += connection("198.51.100.2", 40002, "vlan.example.com", vlan=True)
    # a segment after the hello that looks like the start of a TLS handshake record, and a retransmitted hello
    again = hello("late.example.com")
    frames += connection("198.51.100.3", 40003, "first.example.com", extra=[b"\x16\x03\x03\x00\x04abcd", again])
    # the 5-tuple reused by a new connection with another name, in the same batch
    frames += connection("198.51.100.3", 40003, "reused.example.com")
    # a hello cut over two segments, the second first; a hello before its SYN
    ch = hello("split.example.com")
    frames += [
        tcp(True, "198.51.100.4", 40004, b"", 2000, SYN),
        tcp(True, "198.51.100.4", 40004, ch[100:], 2101),
        tcp(True, "198.51.100.4", 40004, ch[:100], 2001),
        tcp(True, "198.51.100.4", 40004, bytes(50), 2001 + len(ch)),
    ]
    early = hello("early.example.com")
    frames += [tcp(True, "198.51.100.5", 40005, early, 3001), tcp(True, "198.51.100.5", 40005, b"", 3000, SYN)]
    frames += [tcp(True, "198.51.100.5", 40005, bytes(30), 3001 + len(early))]
    # IPv6, and IPv4 fragments (only the first has ports)
    v6 = synth.tcp(40006, 443, hello("six.example.com"), seq=1)
    frames.append(synth.ethernet(DM, GM, 0x86DD, synth.ipv6("fd00::20", "2001:db8::6", 6, v6)))
    frag = bytearray(tcp(True, "198.51.100.7", 40007, hello("frag.example.com"), 7001))
    frag[20:22] = b"\x20\x00"  # more fragments
    frames.append(bytes(frag))
    tail = bytearray(synth.ethernet(DM, GM, 0x0800, synth.ipv4(DEV, "198.51.100.7", 6, b"\x16\x03" + bytes(60))))
    tail[20:22] = b"\x00\x10"  # a later fragment
    frames.append(bytes(tail))
    frames += connection("198.51.100.8", 40008, "last.example.com")
    return frames


def write(path: Path, frames: list[bytes], snap: int | None = None, torn: int = 0) -> Path:
    """A classic pcap of ``frames`` 1 ms apart; ``snap`` cuts records as a snap length does; ``torn``
    bytes are cut off the end of the file."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snap or 262144, 1))
    for i, frame in enumerate(frames):
        ts = T0 + i * 10**6
        kept = frame[:snap] if snap else frame
        out += struct.pack("<IIII", ts // 10**9, ts % 10**9 // 1000, len(kept), len(frame)) + kept
    path.write_bytes(bytes(out[: len(out) - torn]))
    return path


def both(path: Path, monkeypatch: pytest.MonkeyPatch, **kwargs) -> tuple[Traffic, Traffic, int]:
    """(fast path, per-segment path, rows the fast path dropped) of one capture."""
    dropped = []
    fast_path = traffic._Names._after_end

    def counting(self, *args):
        drop = fast_path(self, *args)
        dropped.append(int(drop.sum()))
        return drop

    monkeypatch.setattr(traffic._Names, "_after_end", counting)
    fast = read_traffic([path], DEV, **kwargs)
    monkeypatch.setattr(traffic._Names, "_after_end", lambda self, *args: np.zeros(len(args[-1]), bool))
    slow = read_traffic([path], DEV, **kwargs)
    return fast, slow, sum(dropped)


def same(fast: Traffic, slow: Traffic) -> None:
    pd.testing.assert_frame_equal(fast.flows, slow.flows)
    assert fast.warnings == slow.warnings
    assert fast.packets == slow.packets


@pytest.mark.parametrize(("snap", "torn"), [(None, 0), (None, 7), (300, 0), (96, 0)])
def test_fast_path_names_as_the_per_segment_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, snap: int | None, torn: int
) -> None:
    path = write(tmp_path / "odd.pcap", odd_frames(), snap, torn)
    fast, slow, dropped = both(path, monkeypatch)
    same(fast, slow)
    named = dict(zip(fast.flows["local_port"], fast.flows["name"], strict=True))
    if snap is None:
        assert dropped > 0  # the path was taken
        assert named[40001] == "api.amazonalexa.com"
        assert named[40002] == "vlan.example.com"
        assert named[40003] == "first.example.com"
        assert named[40004] == "split.example.com"
        assert named[40005] == "early.example.com"
        assert named[40007] == "frag.example.com"
    if torn:
        assert any("truncated record" in w for w in fast.warnings)


def test_fast_path_across_chunk_sizes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frames = [
        f for i in range(60) for f in connection(f"198.51.{i // 200}.{i % 200 + 1}", 41000 + i, f"h{i}.example.com")
    ]
    path = write(tmp_path / "many.pcap", frames)
    for chunk in (4096, 65536, 1 << 23):
        fast, slow, _ = both(path, monkeypatch, chunk=chunk)
        same(fast, slow)
        assert fast.flows["name"].notna().sum() == 60


def test_finished_directions_are_forgotten_after_two_windows() -> None:
    """Memory follows recent traffic: a direction finished long ago is no longer remembered."""
    streams = Streams(lambda *a: None, lambda *a: None)
    record = hello("x.example.com")
    for i in range(5):
        key = 1000 + i
        ts = T0 + i * (DONE_WINDOW_NS + 1)
        streams.syn(key, 10, (key,), False)
        streams.segment(key, 11, record, ts, (key,), True, False)
        streams.end_batch(ts)
        keys = np.array([key], np.uint64)
        assert streams.lookup(keys, np.array([11]), np.array([True]))[1].all()  # just finished: skipped
    remembered = np.concatenate([streams.done, streams.done_before])
    assert 1000 not in remembered.tolist()
    assert len(remembered) <= 2
