"""Read captures end to end: flows, names (SNI, HTTP Host, DNS), the device, warnings.

Only the few packets that can carry a name are decoded in Python: DNS responses, segments
starting a TLS ClientHello (and the segments completing a split one), HTTP requests, and UDP
payloads starting like a QUIC v1/v2 Initial packet (decrypted for their ClientHello's SNI).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Self

import numpy as np

from harness.errors import InputError
from harness.net import dns, http, quic, tls
from harness.net.decode import SUPPORTED_LINKTYPES, TCP, UDP, Packets, _win, decode, link_types
from harness.net.flows import FlowAccumulator, canonical, flow_hash, packet_flows
from harness.net.framing import CHUNK, CaptureReader, Frames
from harness.net.streams import SEQ_MASK, STREAM_CAP, Streams
from harness.progress import Progress, no_progress

if TYPE_CHECKING:
    from harness.net.flow_table import Traffic

HTTP_CODES = np.array([int.from_bytes(m, "big") for m in http.METHODS], np.int64)
HTTP_FIRST = np.zeros(256, bool)
HTTP_FIRST[[m[0] for m in http.METHODS]] = True
# a flow's own names, best first (a DNS answer for its address comes after these)
DIRECT_RANK = {"sni": 0, "quic": 0, "http": 1, "certificate": 2}
RESPONSES_KEPT = 4096  # distinct DNS responses remembered at a time
MALFORMED: list[tuple[int, int, str]] = []  # the remembered result of a response that does not parse


def name_changes(
    last: dict[tuple[int, int], str], answers: Iterable[tuple[int, int, int, str]]
) -> Iterator[tuple[int, int, int, str]]:
    """The DNS answers (hi, lo, ts, name) that change their address's name: all naming needs, and
    bounded by distinct pairs. ``last`` holds each address's current name and is updated."""
    for answer in answers:
        if last.get(answer[:2]) != answer[3]:
            last[answer[:2]] = answer[3]
            yield answer


class _Names:
    """Names learned while reading: per-flow (SNI, HTTP Host, certificate) and time-stamped DNS answers."""

    def __init__(self) -> None:
        # by flow hash (as the device's packets are); equal (name, source) pairs share one tuple
        self.flow_names: dict[int, tuple[str, str]] = {}
        self._pairs: dict[tuple[str, str], tuple[str, str]] = {}
        self.answers: list[tuple[int, int, int, str]] = []  # (hi, lo, ts, name)
        self._last: dict[tuple[int, int], str] = {}
        self.streams = Streams(self.name_flow, self.dns_answer)
        self.quic = quic.InitialReader()
        self.bad_dns = 0
        self._responses: dict[bytes, list[tuple[int, int, str]]] = {}  # a response's form -> (hi, lo, name)
        # QUIC Initials (flow hash, datagram) kept in order to be read later instead of now (reading
        # in parts: a connection's state spans parts, and reading them is cheap)
        self.held: list[tuple[int, bytes]] | None = None

    def name_flow(self, key: int, name: str | None, source: str) -> None:
        if not name:
            return
        old = self.flow_names.get(key)
        if old is None or DIRECT_RANK[source] < DIRECT_RANK[old[1]]:
            pair = (name, source)
            self.flow_names[key] = self._pairs.setdefault(pair, pair)

    def dns_answer(self, ts: int, payload: bytes) -> None:
        # A resolver repeats its responses byte for byte but for the ID: parse each form once.
        found = self._responses.get(payload[2:])
        if found is None:
            try:
                found = [(a >> 64, a & ((1 << 64) - 1), name) for a, name in dns.parse_response(payload)]
            except dns.Malformed:
                found = MALFORMED
            if len(self._responses) >= RESPONSES_KEPT:
                self._responses.clear()
            self._responses[payload[2:]] = found
        if found is MALFORMED:
            self.bad_dns += 1
            return
        self.answers.extend(name_changes(self._last, [(hi, lo, ts, name) for hi, lo, name in found]))

    def scan(self, p: Packets, a2b: np.ndarray, h: np.ndarray) -> None:
        """Find and decode the packets of this batch that can carry a name: UDP DNS responses,
        QUIC Initials, and TCP segments within the first bytes of their direction."""
        ip = p.ip_rows()  # row i of a2b/h is packet ip[i]
        proto, sport = p.proto[ip], p.sport[ip]
        plen, pay = p.payload_len[ip], p.payload[ip]
        dns_rows = (proto == UDP) & (sport == 53) & (plen >= 12)
        syn_all = (p.tcp_flags[ip] & 0x02) != 0
        tcp_rows = np.flatnonzero((proto == TCP) & ((plen > 0) | syn_all))
        dk = _dirkey(h, a2b, tcp_rows)
        syn = syn_all[tcp_rows]
        has_data = plen[tcp_rows] > 0
        w = _win(p.buf, pay[tcp_rows], 4)
        # segments that may begin a direction seen without its SYN: a TLS handshake record, an HTTP
        # request, DNS from port 53
        from_53 = sport[tcp_rows] == 53
        starts = has_data & (((w[:, 0] == tls.HANDSHAKE) & (w[:, 1] == 3)) | from_53 | HTTP_FIRST[w[:, 0]])
        maybe_http = starts & (w[:, 0] != tls.HANDSHAKE) & ~from_53
        if maybe_http.any():
            first4 = np.ascontiguousarray(w[maybe_http]).view(">u4").ravel().astype(np.int64)
            starts[maybe_http] = np.isin(first4, HTTP_CODES)
        opened = syn | starts
        seq = np.zeros(len(dk), np.int64)
        live = self.streams.active_or_new(dk, dk[opened])
        seq[live] = _seq(p.buf, p.l4[ip][tcp_rows[live]])
        inside, done = self.streams.lookup(dk, seq, live)
        tcp_todo = ~done & (syn | (has_data & inside))
        tcp_todo &= ~self._after_end(p, pay[tcp_rows], plen[tcp_rows], sport[tcp_rows], dk, seq, syn, starts, tcp_todo)
        udp_rows = np.flatnonzero((proto == UDP) & (plen >= quic.MIN_PACKET))
        wq = _win(p.buf, pay[udp_rows], 5)
        version = np.ascontiguousarray(wq[:, 1:5]).view(">u4").ravel()
        initial = ((wq[:, 0] & 0xF0 == 0xC0) & (version == quic.V1)) | (
            (wq[:, 0] & 0xF0 == 0xD0) & (version == quic.V2)
        )
        todo = np.zeros(len(h), np.int8)
        todo[udp_rows[initial]] = 5
        todo[dns_rows] = 1
        todo[tcp_rows[tcp_todo]] = 3
        rows = np.flatnonzero(todo)
        if not len(rows):
            return
        at = np.full(len(h), -1, np.int64)
        at[tcp_rows] = np.arange(len(tcp_rows))
        t = np.maximum(at[rows], 0)  # rows that are not TCP read an unused value
        mem = memoryview(p.buf)
        kinds, begin, sizes = todo[rows].tolist(), pay[rows].tolist(), plen[rows].tolist()
        packet = rows if isinstance(ip, slice) else ip[rows]
        ts = p.ts_ns[packet].tolist()
        dirs, seqs, syns, may_start = (col[t].tolist() if len(col) else [0] * len(t) for col in (dk, seq, syn, starts))
        from_dns = (sport[rows] == 53).tolist()
        flow_keys = h[rows].tolist()
        active = self.streams.active
        for j in range(len(kinds)):
            kind = kinds[j]
            if kind == 3 and not syns[j] and not may_start[j] and dirs[j] not in active:
                continue  # a segment of a direction not in progress that cannot open one: nothing to do
            data = bytes(mem[begin[j] : begin[j] + sizes[j]])
            if kind == 1:
                self.dns_answer(ts[j], data)
                continue
            key = flow_keys[j]
            if kind == 5:
                if self.held is not None:
                    self.held.append((key, data))
                else:
                    self.name_flow(key, self.quic.datagram(data), "quic")
                continue
            if syns[j]:
                self.streams.syn(dirs[j], seqs[j], key, from_dns[j])
            if data:
                self.streams.segment(dirs[j], seqs[j], data, ts[j], key, may_start[j], from_dns[j])
        self.streams.end_batch(int(p.ts_ns.max()))

    def _after_end(
        self,
        p: Packets,
        pay: np.ndarray,
        plen: np.ndarray,
        sport: np.ndarray,
        dk: np.ndarray,
        seq: np.ndarray,
        syn: np.ndarray,
        starts: np.ndarray,
        todo: np.ndarray,
    ) -> np.ndarray:
        """TCP rows of ``todo`` that would do nothing: their direction certainly finished earlier in
        this batch and nothing opened it again (no SYN, nothing that may start a message).

        A direction new in this batch whose first segment with data lies at its start and holds
        a whole first TLS record that ends the handshake reader (a complete ClientHello, or a
        record followed by a non-handshake record) is finished by that segment; its later
        segments would reach Python one by one only to be ignored."""
        idx = np.flatnonzero(todo)
        drop = np.zeros(len(todo), bool)
        if not len(idx):
            return drop
        key = dk[idx]
        order = np.lexsort((idx, key))
        i, key = idx[order], key[order]
        n = len(i)
        first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        group = np.cumsum(np.r_[True, key[1:] != key[:-1]]) - 1
        pos = np.arange(n)
        fd = np.minimum.reduceat(np.where(plen[i] > 0, pos, n), first)  # first segment with data
        fs = np.minimum.reduceat(np.where(syn[i], pos, n), first)  # first SYN
        ok = fd < n
        r = i[np.minimum(fd, n - 1)]
        syn_first = fs < fd
        base = seq[i[np.minimum(fs, n - 1)]] + 1
        ok &= ~syn_first | (((seq[r] - base) & SEQ_MASK) == 0)
        ok &= starts[r] & (sport[r] != 53) & ~self.streams.is_active(key[first])
        room = np.minimum(plen[r], STREAM_CAP)
        w = _win(p.buf, pay[r], 9).astype(np.int64)
        size = (w[:, 3] << 8) | w[:, 4]
        hello = (w[:, 5] == tls.CLIENT_HELLO) & (4 + ((w[:, 6] << 16) | (w[:, 7] << 8) | w[:, 8]) <= size)
        hello &= 5 + size <= room
        after = 5 + size + 5 <= room
        nxt = p.buf[np.where(after, pay[r] + 5 + size, 0)]
        ok &= (w[:, 0] == tls.HANDSHAKE) & (w[:, 1] == 3) & (hello | (after & (nxt != tls.HANDSHAKE)))
        # until a SYN or a possible message start opens the direction again
        opens = syn[i] | starts[i]
        reopen = np.minimum.reduceat(np.where(opens & (pos > fd[group]), pos, n), first)
        drop[i[ok[group] & (pos > fd[group]) & (pos < reopen[group])]] = True
        return drop


def _seq(buf: np.ndarray, l4: np.ndarray) -> np.ndarray:
    """TCP sequence numbers of the segments whose headers start at ``l4``."""
    return np.ascontiguousarray(_win(buf, l4 + 4, 4)).view(">u4").ravel().astype(np.int64)


def _dirkey(h: np.ndarray, a2b: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """A key per flow direction: the flow hash with the direction in the low bit."""
    return (h[rows] << np.uint64(1)) | a2b[rows].astype(np.uint64)


def _size(path: str | Path) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0  # the reader names the file and the problem


class Collector(Protocol):
    """Something every decoded batch is shown to (all packets, whatever their link or addresses;
    valid only during the call). Reading in parts shows each part's batches to a copy of the
    (still empty) collector and merges the copies in capture order, so its result must not
    depend on where the batches were cut."""

    def __call__(self, packets: Packets) -> None: ...

    def merge(self, later: Self) -> None:
        """Take in what ``later`` (a copy shown the batches after this one's) collected."""
        ...


class _Reading:
    """Reading records in capture order: flows, names, the device's packet rows, warnings of
    unsupported link types."""

    def __init__(self, device_packets: bool, collector: Collector | None) -> None:
        self.acc = FlowAccumulator()
        self.names = _Names()
        self.total = 0
        self.rows: list[tuple[np.ndarray, ...]] = []
        self.device_packets = device_packets
        self.collector = collector
        self.unsupported: dict[int, str] = {}  # link type -> its warning, in the order first seen
        # shown (packets, a2b, hash) of each batch: reading in parts notes the TCP directions seen
        self.watch: Callable[[Packets, np.ndarray, np.ndarray], None] | None = None

    def add(self, frames: Frames, path: str | Path, file_no: int) -> None:
        """Take in a batch of ``path``, capture number ``file_no`` of the list read."""
        for lt in link_types(frames):
            if lt not in SUPPORTED_LINKTYPES and lt not in self.unsupported:
                self.unsupported[lt] = f"{path}: link type {lt} is not supported; its packets are skipped"
        p = decode(frames)
        self.total += len(p)
        if self.collector is not None:
            self.collector(p)
        keys, a2b = canonical(p)
        if not len(a2b):
            return
        h = flow_hash(keys)
        self.acc.add(packet_flows(p, keys, a2b, h, file_no))
        self.names.scan(p, a2b, h)
        if self.watch is not None:
            self.watch(p, a2b, h)
        if self.device_packets:
            ip = p.ip_rows()
            self.rows.append((p.ts_ns[ip], p.length[ip].astype(np.int32), h, a2b))


@dataclass
class Readout:
    """What reading gave, before a device is chosen: the flow table, names, packet counts and
    the device's packet rows when asked for; ``warnings`` are the files' own (damage, notes, link
    types) in order; the counts become the summary warnings."""

    table: dict[str, np.ndarray]
    names: _Names
    total: int
    warnings: list[str]
    problems: list[InputError]
    bad_dns: int
    incomplete: int
    quic_failed: int
    rows: list[tuple[np.ndarray, ...]] | None


def read_traffic(
    paths: Iterable[str | Path],
    device: str | None = None,
    chunk: int = CHUNK,
    *,
    device_packets: bool = False,
    collector: Collector | None = None,
    progress: Progress = no_progress,
    jobs: int | None = None,
    part_size: int | None = None,
) -> Traffic:
    """Flows of all ``paths`` read as one capture, oriented towards ``device``.

    ``chunk`` is how many bytes are read at a time (memory use is a small multiple of it).
    ``device_packets``: also return the device's packets (:class:`PacketRows`; memory grows with
    the packets, 21 bytes each while reading). ``collector`` is shown every decoded batch
    (:class:`Collector`). ``progress`` hears "reading captures" with the bytes read of all files.
    ``jobs``: processes reading parts of the captures at once (default: all cores for large
    captures, else 1); ``part_size`` the bytes per part (default: from the size and ``jobs``).
    The result does not depend on either.
    Without a device, the busiest local host that is not the gateway is chosen (a warning says
    so). Damage in a file becomes a warning and the packets before it are kept; raises
    :class:`InputError` only when no packet could be read at all.
    """
    paths = list(paths)
    from harness.net import parts  # here: parts builds on this module

    if jobs is None:
        jobs = parts.default_jobs(paths)
    if jobs > 1 or part_size is not None:
        readout = parts.read(paths, chunk, jobs, part_size, device_packets, collector, progress)
    else:
        readout = read_pass(paths, chunk, device_packets, collector, progress)
    from harness.net.flow_table import finish  # here: it builds on this module

    return finish(readout, device, device_packets)


def read_pass(
    paths: list[str | Path],
    chunk: int = CHUNK,
    device_packets: bool = False,
    collector: Collector | None = None,
    progress: Progress = no_progress,
) -> Readout:
    """Read ``paths`` in one pass, in this process (``read_traffic``'s arguments)."""
    reading = _Reading(device_packets, collector)
    warnings: list[str] = []
    problems: list[InputError] = []
    sizes = [_size(path) for path in paths]
    for n, path in enumerate(paths):
        reader = CaptureReader(Path(path), chunk)
        for frames in reader:
            if len(frames):
                progress("reading captures", sum(sizes[:n]) + int(frames.file_offset[-1]), sum(sizes))
            seen = len(reading.unsupported)
            reading.add(frames, path, n)
            warnings.extend(list(reading.unsupported.values())[seen:])
        progress("reading captures", sum(sizes[: n + 1]), sum(sizes))
        warnings.extend(reader.notes)
        if reader.problem is not None:
            problems.append(reader.problem)
            warnings.append(damage_warning(reader.problem, reader.packets))
    names = reading.names
    return Readout(
        reading.acc.result(),
        names,
        reading.total,
        warnings,
        problems,
        names.bad_dns,
        names.streams.incomplete(),
        names.quic.failed,
        reading.rows if device_packets else None,
    )


def damage_warning(problem: InputError, packets: int) -> str:
    """The warning for damage that stopped a file after ``packets`` packets."""
    kept = f"; the {packets} packets before it are used" if packets else ""
    return f"{problem}{kept}"
