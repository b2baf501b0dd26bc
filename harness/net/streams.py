"""TCP stream reassembly of the first bytes of each flow direction, for naming.

One mechanism for every protocol that names a flow over TCP (TLS handshakes, HTTP/1 requests,
DNS over TCP): segments are placed by sequence number relative to the direction's start (its
SYN, else the first segment that looks like the start of a message), so out-of-order segments,
retransmissions and overlaps all land in the right place. Where copies overlap with different
bytes, **the first copy captured wins** (Zeek's rule; Wireshark's default is the same), so a later
retransmission cannot rewrite what a parser may already have read.

Bounded: only the first :data:`STREAM_CAP` bytes of a direction are kept, at most
:data:`MAX_STREAMS` directions are in progress at once (the oldest is dropped, counted), a
direction is finished as soon as its reader has what it needs, and finished directions are
ignored from the segment that finished them on (wherever reading cut its batches), remembered
for :data:`DONE_WINDOW_NS` to twice that of capture time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from harness.net import http, tls

STREAM_CAP = 32 * 1024  # bytes kept per direction: a ClientHello, a certificate chain, request headers
MAX_STREAMS = 1024  # directions in progress at once
# a finished direction is remembered (its later segments skipped unread) for 10 to 20 minutes
DONE_WINDOW_NS = 600 * 10**9
SEQ_MASK = 0xFFFFFFFF

# what a reader reports: the names it found (name, source) and DNS responses (a whole message each)
Found = Callable[[str, str], None]
Answer = Callable[[bytes], None]


def sorted_member(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Whether each of ``keys`` is in ``sorted_keys`` (binary search: cheap for a small sorted set)."""
    if not len(sorted_keys):
        return np.zeros(len(keys), bool)
    i = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[i] == keys


class _Reader:
    """Reads one direction's contiguous prefix; :meth:`feed` says how many bytes it needs next
    (0 when done)."""

    def feed(self, data: bytes, found: Found, answer: Answer) -> int:
        raise NotImplementedError


class _TlsReader(_Reader):
    """Handshake messages across records and segments: ClientHello SNI, server certificate names."""

    def feed(self, data: bytes, found: Found, answer: Answer) -> int:
        messages, need = tls.handshake_messages(data)
        for kind, body in messages:
            if kind == tls.CLIENT_HELLO:
                name = tls.handshake_sni(body)
                if name:
                    found(name, "sni")
                return 0
            if kind == tls.CERTIFICATE:
                name = tls.certificate_name(body)
                if name:
                    found(name, "certificate")
                return 0
        return need


class _HttpReader(_Reader):
    """The first request's header block; its Host names the flow."""

    def feed(self, data: bytes, found: Found, answer: Answer) -> int:
        end = data.find(b"\r\n\r\n", 0, http.MAX_HEAD)
        if end < 0 and len(data) < http.MAX_HEAD:
            return len(data) + 1
        host = http.request_host(data[: end + 4] if end >= 0 else data)
        if host:
            found(host, "http")
        return 0


class _DnsReader(_Reader):
    """DNS over TCP: messages framed by a 2-byte length, several per segment or split across."""

    def __init__(self) -> None:
        self.pos = 0

    def feed(self, data: bytes, found: Found, answer: Answer) -> int:
        while self.pos + 2 <= len(data):
            size = int.from_bytes(data[self.pos : self.pos + 2], "big")
            if self.pos + 2 + size > len(data):
                return self.pos + 2 + size
            answer(data[self.pos + 2 : self.pos + 2 + size])
            self.pos += 2 + size
        return self.pos + 2


def _reader(head: bytes, from_dns_port: bool) -> _Reader | None | int:
    """The reader for a direction starting with ``head``; None if nothing names it; or the number
    of bytes needed to decide."""
    if from_dns_port:
        return _DnsReader()
    if len(head) < 2:
        return 2
    if head[0] == tls.HANDSHAKE and head[1] == 3:
        return _TlsReader()
    if len(head) < 4:
        return 4 if head[:2] in {m[:2] for m in http.METHODS} else None
    return _HttpReader() if head[:4] in http.METHODS else None


@dataclass
class _Stream:
    base: int  # sequence number of the direction's first byte
    key: int  # the flow's hash
    dns: bool  # sent from port 53
    data: bytearray
    have: bytearray  # 1 where data holds a captured byte
    filled: int = 0  # length of the contiguous prefix
    need: int = 1  # prefix length at which the reader is tried next
    reader: _Reader | None = None


class Streams:
    """Reassembles flow directions and hands their contiguous prefix to the protocol readers.

    Directions are identified by an integer key (flow hash and direction bit); names go to
    ``found(flow_hash, name, source)``, DNS-over-TCP responses to ``answer(ts_ns, message)``.
    """

    def __init__(self, found: Callable[[int, str, str], None], answer: Callable[[int, bytes], None]) -> None:
        self.found = found
        self.answer = answer
        self.active: dict[int, _Stream] = {}
        # sorted keys of finished directions, in two generations of DONE_WINDOW_NS capture time each
        self.done = np.empty(0, np.uint64)
        self.done_before = np.empty(0, np.uint64)
        self.generation_ns: int | None = None
        self._finished: set[int] = set()  # finished in this batch: ignored from then on, as the done ones
        self.dropped = 0  # directions dropped unfinished: too many in progress

    def active_or_new(self, keys: np.ndarray, opening: np.ndarray) -> np.ndarray:
        """Rows whose direction is in progress or opens in this batch (``opening``: keys of its SYNs
        and possible message starts): only these need a sequence number."""
        return sorted_member(np.unique(opening), keys) | self.is_active(keys)

    def is_active(self, keys: np.ndarray) -> np.ndarray:
        """Whether each direction key is in progress."""
        if not self.active:
            return np.zeros(len(keys), bool)
        return sorted_member(np.sort(np.fromiter(self.active, np.uint64, len(self.active))), keys)

    def lookup(self, keys: np.ndarray, seq: np.ndarray, live: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(worth reading: a ``live`` row whose segment may start inside the kept prefix, finished) per row."""
        done = sorted_member(self.done, keys) | sorted_member(self.done_before, keys)
        inside = live.copy()
        if self.active:
            act = np.fromiter(self.active, np.uint64, len(self.active))
            base = np.fromiter((s.base for s in self.active.values()), np.int64, len(self.active))
            order = np.argsort(act)
            act, base = act[order], base[order]
            i = np.minimum(np.searchsorted(act, keys), len(act) - 1)
            hit = act[i] == keys
            inside &= ~hit | (((seq - base[i]) & SEQ_MASK) < STREAM_CAP)
        return inside, done

    def syn(self, dkey: int, seq: int, key: int, from_dns_port: bool) -> None:
        """A SYN: the direction's data starts at ``seq + 1``."""
        if dkey not in self.active and dkey not in self._finished:
            self._open(dkey, (seq + 1) & SEQ_MASK, key, from_dns_port)

    def segment(
        self, dkey: int, seq: int, payload: bytes, ts: int, key: int, starts: bool, from_dns_port: bool
    ) -> None:
        """A segment with payload; ``starts`` says it may begin the direction (no SYN seen)."""
        stream = self.active.get(dkey)
        if stream is None:
            if not starts or dkey in self._finished:
                return
            stream = self._open(dkey, seq, key, from_dns_port)
        offset = (seq - stream.base) & SEQ_MASK
        if offset >= STREAM_CAP:
            return
        self._place(stream, offset, payload[: STREAM_CAP - offset])
        if stream.filled >= stream.need:
            self._read(dkey, stream, ts)

    def end_batch(self, ts_ns: int) -> None:
        """Make this batch's finished directions known to :meth:`lookup`; ``ts_ns`` is the batch's
        latest capture time. Directions finished more than one to two windows ago are forgotten,
        so memory follows the traffic of the last minutes, not every flow ever seen."""
        if self.generation_ns is None:
            self.generation_ns = ts_ns
        if ts_ns - self.generation_ns > DONE_WINDOW_NS:
            self.done_before, self.done = self.done, np.empty(0, np.uint64)
            self.generation_ns = ts_ns
        if self._finished:
            new = np.unique(np.fromiter(self._finished, np.uint64, len(self._finished)))
            new = new[~sorted_member(self.done, new)]
            # merged into place: a union would sort every finished key again in every batch
            self.done = np.insert(self.done, np.searchsorted(self.done, new), new)
            self._finished.clear()

    def incomplete(self) -> int:
        """Directions holding bytes whose reader never got what it needed (a gap, a cut message)."""
        return self.dropped + len(self.incomplete_keys())

    def incomplete_keys(self) -> np.ndarray:
        """The directions in progress that hold bytes (those :meth:`incomplete` counts besides the dropped)."""
        return np.array([k for k, s in self.active.items() if s.data], np.uint64)

    def finished_keys(self) -> np.ndarray:
        """The finished directions still remembered (sorted)."""
        return np.union1d(
            np.union1d(self.done, self.done_before), np.fromiter(self._finished, np.uint64, len(self._finished))
        )

    def _open(self, dkey: int, base: int, key: int, from_dns_port: bool) -> _Stream:
        if len(self.active) >= MAX_STREAMS:
            old_key = next(iter(self.active))
            if self.active.pop(old_key).filled:
                self.dropped += 1
        stream = _Stream(base, key, from_dns_port, bytearray(), bytearray())
        self.active[dkey] = stream
        return stream

    @staticmethod
    def _place(stream: _Stream, offset: int, payload: bytes) -> None:
        end = offset + len(payload)
        if offset == stream.filled == len(stream.data):  # the next bytes in order: most segments
            stream.data += payload
            stream.have += b"\x01" * len(payload)
            stream.filled = end
            return
        if end > len(stream.data):
            grow = end - len(stream.data)
            stream.data += bytes(grow)
            stream.have += bytes(grow)
        if offset >= stream.filled and stream.have.find(1, offset, end) < 0:
            stream.data[offset:end] = payload
            stream.have[offset:end] = b"\x01" * len(payload)
        else:  # overlaps bytes already captured: fill only the holes (the first copy wins)
            have = np.frombuffer(stream.have, np.uint8, end - offset, offset) == 0
            data = np.frombuffer(stream.data, np.uint8, end - offset, offset).copy()
            data[have] = np.frombuffer(payload, np.uint8)[have]
            stream.data[offset:end] = data.tobytes()
            stream.have[offset:end] = b"\x01" * len(payload)
        if offset <= stream.filled:
            hole = stream.have.find(0, stream.filled)
            stream.filled = len(stream.have) if hole < 0 else hole

    def _read(self, dkey: int, stream: _Stream, ts: int) -> None:
        prefix = bytes(stream.data[: stream.filled])
        if stream.reader is None:
            chosen = _reader(prefix, stream.dns)
            if isinstance(chosen, int):
                stream.need = chosen
                return
            if chosen is None:
                return self._finish(dkey)
            stream.reader = chosen
        need = stream.reader.feed(
            prefix, lambda name, source: self.found(stream.key, name, source), lambda msg: self.answer(ts, msg)
        )
        if need == 0 or need > STREAM_CAP:
            self._finish(dkey)
        else:
            stream.need = need

    def _finish(self, dkey: int) -> None:
        del self.active[dkey]
        self._finished.add(dkey)
