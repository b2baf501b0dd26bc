"""TLS ClientHello: the server name (SNI), and reassembly of hellos split over TCP segments."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

HANDSHAKE = 22
CLIENT_HELLO = 1
MAX_HELLO = 1 << 16  # a ClientHello larger than this is not worth following


def record_need(payload: bytes) -> int:
    """Bytes of stream needed to hold the whole ClientHello starting this payload (>= 5)."""
    if len(payload) < 9:
        return 9
    hs_len = int.from_bytes(payload[6:9], "big")
    # the handshake may span several records: each adds a 5-byte header per 16 KiB
    return 5 + 4 + hs_len + 5 * ((4 + hs_len) // 16384)


def handshake_bytes(stream: bytes) -> bytes | None:
    """The first handshake message from a stream of TLS records, or None if incomplete."""
    out = bytearray()
    pos = 0
    while pos + 5 <= len(stream) and stream[pos] == HANDSHAKE:
        size = int.from_bytes(stream[pos + 3 : pos + 5], "big")
        out += stream[pos + 5 : pos + 5 + size]
        pos += 5 + size
        if len(out) >= 4 and len(out) >= 4 + int.from_bytes(out[1:4], "big"):
            return bytes(out[: 4 + int.from_bytes(out[1:4], "big")])
    return None


def client_hello_sni(stream: bytes) -> str | None:
    """The SNI host name of a ClientHello at the start of ``stream`` (None if absent or bad)."""
    hs = handshake_bytes(stream)
    return None if hs is None else handshake_sni(hs)


def handshake_sni(hs: bytes) -> str | None:
    """The SNI host name of one ClientHello handshake message (no record header; QUIC carries
    it like this in CRYPTO frames). None if absent, bad or not a ClientHello."""
    if not hs or hs[0] != CLIENT_HELLO:
        return None
    try:
        pos = 4 + 2 + 32
        pos += 1 + hs[pos]  # session id
        pos += 2 + struct.unpack_from("!H", hs, pos)[0]  # cipher suites
        pos += 1 + hs[pos]  # compression methods
        ext_end = pos + 2 + struct.unpack_from("!H", hs, pos)[0]
        pos += 2
        while pos + 4 <= min(ext_end, len(hs)):
            etype, elen = struct.unpack_from("!HH", hs, pos)
            pos += 4
            if etype == 0:
                body = hs[pos : pos + elen]
                p = 2
                while p + 3 <= len(body):
                    kind, size = body[p], struct.unpack_from("!H", body, p + 1)[0]
                    if kind == 0:
                        name = body[p + 3 : p + 3 + size].decode("ascii", "replace").lower().rstrip(".")
                        return name or None
                    p += 3 + size
                return None
            pos += elen
    except (IndexError, struct.error):
        return None
    return None


@dataclass
class _Partial:
    seq: int
    need: int
    key: object
    segments: dict[int, bytes] = field(default_factory=dict)


class HelloAssembler:
    """Collects the TCP segments of ClientHellos that do not fit one segment, per flow direction.

    Bounded: at most ``max_pending`` hellos in progress (oldest dropped), each at most
    :data:`MAX_HELLO` bytes and ``max_segments`` segments.
    """

    def __init__(self, max_pending: int = 1024, max_segments: int = 64) -> None:
        self.pending: dict[int, _Partial] = {}
        self.max_pending = max_pending
        self.max_segments = max_segments

    def start(self, direction_key: int, seq: int, payload: bytes, key: object) -> str | None:
        """A segment starting a hello. Returns the SNI now if the hello is complete."""
        need = record_need(payload)
        if len(payload) >= need or need > MAX_HELLO:
            self.pending.pop(direction_key, None)
            return client_hello_sni(payload)
        if len(self.pending) >= self.max_pending:
            self.pending.pop(next(iter(self.pending)))
        self.pending[direction_key] = _Partial(seq, need, key, {seq: payload})
        return None

    def add(self, direction_key: int, seq: int, payload: bytes) -> tuple[object, str | None] | None:
        """A later segment of a flow direction; (flow key, SNI or None) once the hello is done."""
        part = self.pending.get(direction_key)
        if part is None:
            return None
        offset = (seq - part.seq) & 0xFFFFFFFF
        if offset >= part.need:
            return None
        part.segments[seq] = payload
        stream = self._contiguous(part)
        if len(stream) >= part.need or len(part.segments) >= self.max_segments:
            del self.pending[direction_key]
            sni = client_hello_sni(stream)
            return part.key, sni
        # record_need may have been a lower bound when the first segment was tiny
        part.need = max(part.need, record_need(stream)) if len(stream) >= 9 else part.need
        return None

    @staticmethod
    def _contiguous(part: _Partial) -> bytes:
        out = bytearray()
        for seq, data in sorted(part.segments.items(), key=lambda kv: (kv[0] - part.seq) & 0xFFFFFFFF):
            offset = (seq - part.seq) & 0xFFFFFFFF
            if offset > len(out):
                break
            out += data[len(out) - offset :]
            if len(out) >= part.need:
                break
        return bytes(out[:MAX_HELLO])

    def keys(self) -> list[int]:
        return list(self.pending)
