"""The twin's own record of its packets, written as a classic pcap where tcpdump cannot run.

Each connection is traced from the device's side as it would appear on ``lo``: the TCP
three-way handshake, one segment per send with the exact bytes sent (TLS records included, so
ClientHellos carry their SNI), the peer's data as received, and the closing FIN exchange;
UDP datagrams (DNS, NTP) are traced whole. Raw IPv4 link type, nanosecond timestamps.
"""

from __future__ import annotations

import ipaddress
import struct
import threading
from pathlib import Path

from harness.files import PRIVATE_FILE, atomic_write_bytes
from harness.net.synth import ipv4, pcap_bytes, udp

LINKTYPE_RAW = 101
SYN, FIN, PSH, ACK = 0x02, 0x01, 0x08, 0x10
MSS = 65483  # loopback's MTU (65536) minus IPv4 and TCP headers


def tcp_segment(sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes = b"") -> bytes:
    """A TCP header (no options, checksum left 0 as on loopback with offload) and its payload."""
    return (
        struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 65483, 0, 0)
        + payload
    )


class Wire:
    """Packets traced so far, as (time ns, IPv4 packet); safe to use from many threads.

    ``recording`` False: packets are dropped (connections keep their sequence numbers) until
    :meth:`record`, as a capture started later would miss them."""

    def __init__(self, recording: bool = True) -> None:
        self._packets: list[tuple[int, bytes]] = []
        self._lock = threading.Lock()
        self._ident = 0
        self._recording = recording

    def record(self) -> None:
        """Keep every packet from now on."""
        self._recording = True

    def add(self, ts_ns: int, src: str, dst: str, proto: int, segment: bytes) -> None:
        if not self._recording:
            return
        with self._lock:
            self._ident = (self._ident + 1) & 0xFFFF
            self._packets.append((ts_ns, ipv4(src, dst, proto, segment, self._ident)))

    def datagram(self, ts_ns: int, src: tuple[str, int], dst: tuple[str, int], payload: bytes) -> None:
        self.add(ts_ns, src[0], dst[0], 17, udp(src[1], dst[1], payload))

    def connection(self, local: tuple[str, int], remote: tuple[str, int]) -> TcpTrace:
        return TcpTrace(self, local, remote)

    def write(self, path: Path) -> Path:
        """Write every packet so far, in time order, as a nanosecond classic pcap (0600)."""
        with self._lock:
            packets = sorted(self._packets, key=lambda p: p[0])
        return atomic_write_bytes(path, pcap_bytes(packets, linktype=LINKTYPE_RAW, nanos=True), PRIVATE_FILE)

    def __len__(self) -> int:
        return len(self._packets)


class TcpTrace:
    """One TCP connection's packets, sequence numbers kept as the kernel would."""

    def __init__(self, wire: Wire, local: tuple[str, int], remote: tuple[str, int]) -> None:
        self.wire, self.local, self.remote = wire, local, remote
        seed = int(ipaddress.IPv4Address(local[0])) ^ (local[1] << 16) ^ remote[1]
        self.seq_out, self.seq_in = (seed * 2654435761) & 0xFFFFFFFF, (seed * 40503) & 0xFFFFFFFF

    def _out(self, ts: int, flags: int, payload: bytes = b"") -> None:
        self.wire.add(
            ts,
            self.local[0],
            self.remote[0],
            6,
            tcp_segment(self.local[1], self.remote[1], self.seq_out, self.seq_in, flags, payload),
        )
        self.seq_out += len(payload) + (1 if flags & (SYN | FIN) else 0)

    def _in(self, ts: int, flags: int, payload: bytes = b"") -> None:
        self.wire.add(
            ts,
            self.remote[0],
            self.local[0],
            6,
            tcp_segment(self.remote[1], self.local[1], self.seq_in, self.seq_out, flags, payload),
        )
        self.seq_in += len(payload) + (1 if flags & (SYN | FIN) else 0)

    def handshake(self, syn_ns: int, done_ns: int) -> None:
        self._out(syn_ns, SYN)
        self._in((syn_ns + done_ns) // 2, SYN | ACK)
        self._out(done_ns, ACK)

    def sent(self, ts: int, data: bytes) -> None:
        for start in range(0, len(data), MSS):
            self._out(ts, PSH | ACK, data[start : start + MSS])

    def received(self, ts: int, data: bytes) -> None:
        for start in range(0, len(data), MSS):
            self._in(ts, PSH | ACK, data[start : start + MSS])

    def closed(self, fin_ns: int, peer_fin_ns: int) -> None:
        self._out(fin_ns, FIN | ACK)
        self._in(peer_fin_ns, FIN | ACK)
        self._out(peer_fin_ns, ACK)
