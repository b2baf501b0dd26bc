"""UDP sync markers: one small datagram per utterance onset, to be found again in a capture.

A capture taken at the access point stamps packets with the capture host's clock; a marker
carries the bench's own instants, so the two timelines can be tied together.

Payload (big-endian, 37 bytes + the run id)::

    offset  size  field
    0       4     magic b"HRNS"
    4       1     format version (1)
    5       1     n = length of the run id in bytes (UTF-8)
    6       n     run id
    6+n     8     seq of the utterance_started event the marker belongs to (u64)
    14+n    8     onset of the utterance, UTC epoch ns, bench clock (i64)
    22+n    8     when the datagram was sent, UTC epoch ns, bench clock (i64)
    30+n    4     plan index (u32)
    34+n    2     attempt (u16)
    36+n    1     turn: 0 the utterance, k its k-th follow-up (u8)
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass

from harness.errors import HarnessError

MAGIC = b"HRNS"
VERSION = 1
_HEAD = struct.Struct(">4sBB")
_TAIL = struct.Struct(">QqqIHB")


@dataclass(frozen=True)
class Marker:
    run_id: str
    seq: int
    onset_wall_ns: int
    sent_wall_ns: int
    plan_index: int
    attempt: int
    turn: int


def encode_marker(marker: Marker) -> bytes:
    run_id = marker.run_id.encode("utf-8")
    if len(run_id) > 255:
        raise ValueError("run id longer than 255 bytes")
    tail = _TAIL.pack(
        marker.seq, marker.onset_wall_ns, marker.sent_wall_ns, marker.plan_index, marker.attempt, marker.turn
    )
    return _HEAD.pack(MAGIC, VERSION, len(run_id)) + run_id + tail


def decode_marker(payload: bytes) -> Marker | None:
    """The marker in a datagram's payload, or None when it is not one (wrong magic, version, size)."""
    if len(payload) < _HEAD.size:
        return None
    magic, version, n = _HEAD.unpack_from(payload)
    if magic != MAGIC or version != VERSION or len(payload) != _HEAD.size + n + _TAIL.size:
        return None
    try:
        run_id = payload[_HEAD.size : _HEAD.size + n].decode("utf-8")
    except UnicodeDecodeError:
        return None
    seq, onset, sent, index, attempt, turn = _TAIL.unpack_from(payload, _HEAD.size + n)
    return Marker(run_id, seq, onset, sent, index, attempt, turn)


def parse_target(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6); raises :class:`HarnessError` on anything else."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise HarnessError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


class MarkerSender:
    """Sends markers over UDP from a socket opened once (sending must be quick: it runs at onset)."""

    def __init__(self, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.destination = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        self._address = (host, port)
        self._sock = socket.socket(family, socket.SOCK_DGRAM)

    def send(
        self, run_id: str, seq: int, onset_wall_ns: int, plan_index: int, attempt: int, turn: int
    ) -> tuple[Marker, bytes]:
        """Send one marker; returns it (with its send time) and the exact payload sent."""
        marker = Marker(run_id, seq, onset_wall_ns, time.time_ns(), plan_index, attempt, turn)
        payload = encode_marker(marker)
        self._sock.sendto(payload, self._address)
        return marker, payload

    def close(self) -> None:
        self._sock.close()
