"""Framing of classic pcap and pcapng files into batches of packet records, in bounded memory.

The file is mapped (a pipe: read) in fixed-size chunks. Inside a chunk, record starts are found
with numpy (a byte-pattern scan for likely record headers, then a check that each candidate's
length leads to the next one); records the scan misses fall back to a plain
one-record-at-a-time parser, so the result is exact either way. Damage stops the reader: the
packets before it are still yielded, and :attr:`CaptureReader.problem` names the file and byte
offset.
"""

from __future__ import annotations

import mmap
import os
import stat
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.errors import InputError, Place

CHUNK = 8 << 20
# Largest packet a capture may hold: tcpdump's default snap length, unless the header asks for more.
MAX_CAPLEN = 262144
MAX_SNAPLEN = 16 << 20
# Non-packet pcapng blocks (options, name tables, statistics) are read whole up to this size.
MAX_META_BLOCK = 1 << 20
# Blocks we skip without reading (unknown types) may be larger, but not absurdly so.
MAX_SKIP_BLOCK = 1 << 30
GUESS_SPAN_S = 366 * 86400  # a split's records lie within a year of the file's first one
GUESS_FIRST = 16 << 10  # bytes a guess looks at first (then 4 times as many, up to its window)
PAD = 128  # bytes readable after each chunk so fixed-width header windows never run off the end
POPULATE = getattr(mmap, "MAP_POPULATE", 0)  # a chunk's pages mapped at once, not fault by fault

PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000),
    b"\xa1\xb2\xc3\xd4": (">", 1000),
    b"\x4d\x3c\xb2\xa1": ("<", 1),
    b"\xa1\xb2\x3c\x4d": (">", 1),
}
SHB = 0x0A0D0D0A
IDB, SPB, EPB = 1, 3, 6
BYTE_ORDER_MAGIC = 0x1A2B3C4D


@dataclass
class Frames:
    """One batch of packet records; ``buf`` holds the chunk, the arrays index into it.

    ``data`` is the offset of each packet's first byte in ``buf``, ``file_offset`` the offset of
    each record in the file. Timestamps are UTC epoch nanoseconds.
    """

    buf: np.ndarray
    data: np.ndarray
    caplen: np.ndarray
    wirelen: np.ndarray
    ts_ns: np.ndarray
    linktype: np.ndarray
    file_offset: np.ndarray

    def __len__(self) -> int:
        return len(self.data)


@dataclass
class Interface:
    linktype: int
    snaplen: int
    # ts_ns = (units >> shift) * 1e9 + ((units & mask) * 1e9 >> shift) for binary resolutions,
    # units * mul // div for decimal ones; plus the interface's offset in seconds.
    mul: int = 1000
    div: int = 1
    shift: int = 0
    offset_s: int = 0


@dataclass(frozen=True)
class Section:
    """What reading a pcapng file from the middle needs: the byte order and interfaces declared
    before that point (classic pcap needs nothing: its one header is at the file's start)."""

    big: bool
    interfaces: tuple[Interface, ...]


@dataclass
class _Chunk:
    """A window of the file: ``data[:end]`` are file bytes starting at file offset ``base``, and
    at least :data:`PAD` readable bytes follow them. ``raw`` is the same bytes for ``struct``."""

    data: np.ndarray
    raw: bytearray | memoryview
    base: int
    end: int


class _ChunkReader:
    def __init__(self, fh, chunk: int, head: bytes) -> None:
        """``head``: the file's first bytes, already read from ``fh`` (a pipe cannot seek back)."""
        self.fh = fh
        self.chunk = chunk
        self.eof = False
        raw = bytearray(head + bytes(PAD))
        self.cur = _Chunk(np.frombuffer(raw, np.uint8), raw, 0, len(head))
        info = os.fstat(fh.fileno())
        # A regular file's chunks are mapped, not copied: copying cost as much as framing's scan.
        self.mapped = stat.S_ISREG(info.st_mode)
        self.size: int | None = info.st_size if self.mapped else None  # a pipe's is not known
        self.read = len(head)  # bytes read from a file that is not mapped

    def advance(self, keep_from: int, need: int = 0) -> _Chunk:
        """New chunk starting at buffer index ``keep_from`` of the current one, holding at least
        ``need`` bytes if the file has them."""
        old = self.cur
        if self.mapped:
            self.cur = self._map(old.base + keep_from, max(self.chunk, need))
            return self.cur
        keep = old.end - keep_from
        want = max(self.chunk, need) - keep
        raw = bytearray(keep + max(want, 0) + PAD)
        raw[:keep] = old.raw[keep_from : old.end]
        end = keep
        view = memoryview(raw)
        while end < keep + want and not self.eof:
            got = self.fh.readinto(view[end : keep + want])
            if not got:
                self.eof = True
                break
            end += got
            self.read += got
        view.release()
        self.cur = _Chunk(np.frombuffer(raw, np.uint8), raw, old.base + keep_from, end)
        return self.cur

    def _map(self, base: int, want: int) -> _Chunk:
        """``want`` bytes from file offset ``base`` (fewer at the end of the file), mapped."""
        assert self.size is not None
        end = max(min(want, self.size - base), 0)
        self.eof = base + end >= self.size
        if base + end + PAD > self.size:  # the file's last bytes: read, with zeros after them
            raw = bytearray(os.pread(self.fh.fileno(), end, base))
            end = len(raw)
            raw += bytes(PAD)
            return _Chunk(np.frombuffer(raw, np.uint8), raw, base, end)
        start = base - base % mmap.ALLOCATIONGRANULARITY
        mapped = mmap.mmap(
            self.fh.fileno(),
            base + end + PAD - start,
            mmap.MAP_SHARED | POPULATE,
            mmap.PROT_READ,
            offset=start,
        )
        # the views keep the mapping alive as long as a batch holds them
        view = memoryview(mapped)[base - start :]
        return _Chunk(np.frombuffer(view, np.uint8), view, base, end)

    def skip(self, file_offset: int) -> None:
        """Continue reading at ``file_offset`` (beyond the current chunk), dropping the chunk."""
        if not self.mapped:
            while self.read < file_offset:  # a pipe: read up to there
                got = len(self.fh.read(min(file_offset - self.read, self.chunk)))
                if not got:
                    break
                self.read += got
        self.eof = False
        self.cur = _Chunk(np.zeros(PAD, np.uint8), bytearray(PAD), file_offset, 0)


@dataclass
class CaptureReader:
    """Iterate over a capture file's packets in batches (:class:`Frames`).

    After iteration, :attr:`problem` holds the damage that stopped reading (or None),
    :attr:`packets` the number of packets yielded and :attr:`notes` one line per kind of odd field
    that was read on (as tcpdump does), naming the first place. A batch's buffer stays valid while held.

    ``start`` (a record's or block's offset, with the ``section`` in force there for pcapng) reads
    from the middle of the file; :attr:`section` is the pcapng section in force while reading.
    """

    path: Path
    chunk: int = CHUNK
    start: int = 0
    section: Section | None = None
    problem: InputError | None = None
    packets: int = 0
    notes: list[str] = field(default_factory=list)
    _state: dict = field(default_factory=dict, repr=False)

    def __iter__(self) -> Iterator[Frames]:
        try:
            fh = open(self.path, "rb")
        except OSError as exc:
            self.problem = InputError(self.path, f"cannot read: {exc.strerror or exc}")
            return
        with fh:
            head = fh.read(4)
            reader = _ChunkReader(fh, self.chunk, head)
            try:
                if head in PCAP_MAGIC:
                    frames = _classic(reader, self._note, self.start)
                elif len(head) == 4 and struct.unpack("<I", head)[0] == SHB:
                    if self.section is not None:
                        self._state.update(
                            endian=">" if self.section.big else "<", ifaces=list(self.section.interfaces)
                        )
                    frames = _pcapng(reader, self._state, self.start)
                else:
                    what = "empty file" if not head else f"not a pcap or pcapng file (magic {head.hex()})"
                    raise _Damage(0, what)
                for batch in frames:
                    self.packets += len(batch)
                    yield batch
            except _Damage as exc:
                self.problem = InputError(self.path, exc.message, Place(offset=exc.offset))

    def current_section(self) -> Section | None:
        """The pcapng section the last batch was read in (None for classic pcap, or before any)."""
        return self._state.get("batch")

    def _note(self, offset: int, message: str) -> None:
        self.notes.append(str(InputError(self.path, message, Place(offset=offset))))


class _Damage(Exception):
    def __init__(self, offset: int, message: str) -> None:
        self.offset = offset
        self.message = message
        super().__init__(message)


# ---------------------------------------------------------------------------------------------
# Shared chain-following over candidate record starts


class _Stop(Exception):
    """A metadata block that ends the current batch: continue at ``next_pos`` (or seek there)."""

    def __init__(self, next_pos: int, seek: bool = False) -> None:
        self.next_pos = next_pos
        self.seek = seek


Slow = Callable[[int], tuple[int, int]]


def _chain(cand: np.ndarray, nxt: np.ndarray, pos: int, end: int, slow: Slow):
    """Record starts from ``pos``: runs of candidates whose length leads to the next candidate.

    ``slow(pos)`` parses one record the plain way and returns (record start, or -1 for a block
    that is not a packet; next position, or -1 if the record is incomplete in this chunk); it is
    used wherever the candidates do not continue the chain. Returns (arrays of record starts,
    the position where framing stopped, the _Stop or _Damage that stopped it or None).
    """
    out: list[np.ndarray] = []
    singles: list[int] = []

    def flush() -> None:
        if singles:
            out.append(np.array(singles, np.int64))
            singles.clear()

    breaks = np.flatnonzero(nxt[:-1] != cand[1:])  # chain runs end at these candidate indices
    while pos < end:
        i = int(np.searchsorted(cand, pos))
        if i < len(cand) and cand[i] == pos:
            k = int(np.searchsorted(breaks, i))
            last = int(breaks[k]) if k < len(breaks) else len(cand) - 1
            flush()
            if nxt[last] <= end:
                out.append(cand[i : last + 1])
                pos = int(nxt[last])
                continue
            if last > i:
                out.append(cand[i:last])
            pos = int(cand[last])  # a complete-looking run ending in a record cut by the chunk
            break
        try:
            start, newpos = slow(pos)
        except (_Stop, _Damage) as stop:
            flush()
            return out, (stop.next_pos if isinstance(stop, _Stop) else pos), stop
        if newpos < 0:
            break
        if start >= 0:
            singles.append(start)
        pos = newpos
    flush()
    return out, pos, None


def rows_at(buf: np.ndarray, idx: np.ndarray, width: int) -> np.ndarray:
    """The ``width`` bytes at each offset in ``idx`` (each within ``buf``) as an (n, width) uint8
    array. Each row is copied whole, as one item of a byte-strided view: over twice as fast as
    indexing a sliding window view, which copies byte by byte."""
    rows = np.ndarray(shape=(len(buf) - width + 1,), dtype=f"V{width}", buffer=buf, strides=(1,))
    return rows[idx].view(np.uint8).reshape(-1, width)


def _u32(b: np.ndarray, idx: np.ndarray, big: bool) -> np.ndarray:
    return _words(b, idx, 1, big).ravel()


def _words(b: np.ndarray, idx: np.ndarray, count: int, big: bool) -> np.ndarray:
    """``count`` consecutive 32-bit words at each offset in ``idx``, as an (n, count) int64 array."""
    return rows_at(b, idx, 4 * count).view(">u4" if big else "<u4").astype(np.int64)


def _pattern(buf: np.ndarray, pos: int, span: int, byte_values: dict[int, int]) -> np.ndarray:
    """Positions p in [pos, pos+span) where buf[p+k] == v for every k: v in ``byte_values``.

    The first two keys (adjacent, the most selective pair) are compared as 16-bit words (even
    and odd positions separately), which halves the work of the scan.
    """
    (k0, v0), (k1, v1), *rest = byte_values.items()
    if k1 != k0 + 1:
        raise ValueError("the first two pattern bytes must be adjacent")
    word = np.array([v0, v1], np.uint8).view("<u2")[0]
    found = []
    for parity in (0, 1):
        first = pos + k0 + parity
        count = (span - parity + 1) // 2
        if count <= 0:
            continue
        pairs = buf[first : first + 2 * count].view("<u2")
        found.append(np.flatnonzero(pairs == word) * 2 + (first - k0))
    cand = np.sort(np.concatenate(found)) if found else np.empty(0, np.int64)
    for k, v in rest:
        cand = cand[buf[cand + k] == v]
    return cand


# ---------------------------------------------------------------------------------------------
# Classic pcap


def _classic(reader: _ChunkReader, note: Callable[[int, str], None], start: int = 0) -> Iterator[Frames]:
    ch = reader.advance(0)
    if ch.end < 24:
        raise _Damage(0, "truncated pcap file header")
    endian, mul = PCAP_MAGIC[bytes(ch.raw[:4])]
    big = endian == ">"
    _, _, _, _, snaplen, linktype = struct.unpack_from(endian + "HHiIII", ch.raw, 4)
    linktype &= 0xFFFF  # upper bits carry FCS information
    limit = _record_limit(snaplen)
    frac_limit = 1_000_000 if mul == 1000 else 1_000_000_000
    rec = struct.Struct(endian + "IIII")
    # the two high bytes of ts_sec: equal in neighbouring records, rare elsewhere
    high = (2, 3) if not big else (0, 1)
    pos = 24
    if start > pos:
        reader.skip(start)
        ch = reader.advance(0)
        pos = 0
    noted = False
    while True:
        buf, end, raw, base = ch.data, ch.end, ch.raw, ch.base

        def slow(p: int) -> tuple[int, int]:
            if p + 16 > end:
                return -1, -1
            _, frac, caplen, _ = rec.unpack_from(raw, p)
            if caplen > limit:
                raise _Damage(base + p, f"absurd record length {caplen} (limit {limit})")
            if p + 16 + caplen > end:
                return -1, -1
            return p, p + 16 + caplen

        span = end - pos - 15
        if span > 0:
            cand = _pattern(buf, pos, span, {k: int(buf[pos + k]) for k in high})
            words = _words(buf, cand, 4, big)
            ok = words[:, 2] <= limit
            cand = cand[ok]
            nxt = cand + 16 + words[ok, 2]
        else:
            cand = nxt = np.empty(0, np.int64)
        parts, pos, stop = _chain(cand, nxt, pos, end, slow)
        if parts:
            frames, fraction = _classic_frames(ch, np.concatenate(parts), big, mul, linktype)
            odd = np.flatnonzero(fraction >= frac_limit)
            if len(odd) and not noted:
                unit = "microseconds" if mul == 1000 else "nanoseconds"
                note(
                    int(frames.file_offset[odd[0]]),
                    f"timestamp fraction of {int(fraction[odd[0]])} {unit} is out of "
                    "range; read on, carrying it into the seconds (noted once per file)",
                )
                noted = True
            yield frames
        if stop is not None:
            raise stop
        if reader.eof:
            if pos < end:
                raise _Damage(base + pos, f"truncated record ({end - pos} bytes left at end of file)")
            return
        need = 16 + int(rec.unpack_from(raw, pos)[2]) if pos + 16 <= end else 0
        ch = reader.advance(pos, need)
        pos = 0


def _record_limit(snaplen: int) -> int:
    """The largest record length believed in a classic pcap file with this snap length."""
    return max(MAX_CAPLEN, min(snaplen, MAX_SNAPLEN))


def _classic_frames(ch: _Chunk, starts: np.ndarray, big: bool, mul: int, linktype: int) -> tuple[Frames, np.ndarray]:
    """The batch's frames and each record's timestamp fraction as written (it may be out of range)."""
    words = _words(ch.data, starts, 4, big)
    frames = Frames(
        buf=ch.data,
        data=starts + 16,
        caplen=words[:, 2],
        wirelen=words[:, 3],
        ts_ns=words[:, 0] * 1_000_000_000 + words[:, 1] * mul,
        linktype=np.full(len(starts), linktype, np.int32),
        file_offset=starts + ch.base,
    )
    return frames, words[:, 1]


# ---------------------------------------------------------------------------------------------
# pcapng


def _resolution(value: int) -> tuple[int, int, int]:
    """(mul, div, shift) turning timestamp units into ns, for an if_tsresol option byte."""
    if value & 0x80:
        return 1, 1, value & 0x7F
    if value <= 9:
        return 10 ** (9 - value), 1, 0
    return 1, 10 ** (value - 9), 0


def _idb(body: bytes, endian: str, offset: int) -> Interface:
    if len(body) < 8:
        raise _Damage(offset, "interface description block too short")
    linktype, _, snaplen = struct.unpack_from(endian + "HHI", body, 0)
    iface = Interface(linktype=linktype, snaplen=snaplen)
    p = 8
    while p + 4 <= len(body):
        code, length = struct.unpack_from(endian + "HH", body, p)
        value = body[p + 4 : p + 4 + length]
        if code == 0:
            break
        if code == 9 and len(value) >= 1:
            iface.mul, iface.div, iface.shift = _resolution(value[0])
        elif code == 14 and len(value) == 8:
            iface.offset_s = struct.unpack(endian + "q", value)[0]
        p += 4 + ((length + 3) & ~3)
    return iface


def _check_block(p: int, blen: int, limit: int, base: int) -> None:
    if blen < 12 or blen % 4 or blen > limit:
        raise _Damage(base + p, f"bad block length {blen}")


def _check_trailer(raw, p: int, blen: int, endian: str, base: int) -> None:
    trailer = struct.unpack_from(endian + "I", raw, p + blen - 4)[0]
    if trailer != blen:
        raise _Damage(base + p, f"block length {blen} does not match its trailing copy {trailer}")


def _pcapng(reader: _ChunkReader, state: dict, start: int = 0) -> Iterator[Frames]:
    """Blocks from ``start`` (0, or a block inside a section that ``state`` describes); ``state``
    (byte order, interfaces) is kept up to date as blocks are read."""
    if start:
        reader.skip(start)
    else:
        state.update(endian="<", ifaces=[])
    ch = reader.advance(0)
    pos = 0
    size = reader.size
    while True:
        buf, end, raw, base = ch.data, ch.end, ch.raw, ch.base
        endian = state["endian"]
        ifaces: list[Interface] = state["ifaces"]
        declared = len(ifaces)  # an interface block read below comes after this chunk's records

        def slow(p: int) -> tuple[int, int]:
            if p + 12 > end:
                return -1, -1
            btype = struct.unpack_from(endian + "I", raw, p)[0]
            if btype == SHB:
                magic = bytes(raw[p + 8 : p + 12])
                order = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}.get(magic)
                if order is None:
                    raise _Damage(base + p, f"bad section byte-order magic {magic.hex()}")
                blen = struct.unpack_from(order + "I", raw, p + 4)[0]
                _check_block(p, blen, MAX_META_BLOCK, base)
                if p + blen > end:
                    return -1, -1
                _check_trailer(raw, p, blen, order, base)
                state["endian"], state["ifaces"] = order, []
                raise _Stop(p + blen)
            blen = struct.unpack_from(endian + "I", raw, p + 4)[0]
            known = btype in (EPB, SPB, IDB)
            _check_block(p, blen, MAX_META_BLOCK + MAX_SNAPLEN if known else MAX_SKIP_BLOCK, base)
            if p + blen > end:
                past = size is not None and base + p + blen > size
                if known or past:
                    if past:
                        raise _Damage(base + p, f"block of {blen} bytes runs past the end of the file")
                    return -1, -1
                raise _Stop(p + blen, seek=True)
            _check_trailer(raw, p, blen, endian, base)
            if btype == IDB:
                ifaces.append(_idb(bytes(raw[p + 8 : p + blen - 4]), endian, base + p))
                raise _Stop(p + blen)
            if btype == EPB:
                if blen < 32:
                    raise _Damage(base + p, f"enhanced packet block too short ({blen} bytes)")
                iface, _, _, caplen = struct.unpack_from(endian + "IIII", raw, p + 8)
                if iface >= len(ifaces):
                    raise _Damage(base + p, f"packet on undeclared interface {iface}")
                if caplen > blen - 32:
                    raise _Damage(base + p, f"captured length {caplen} exceeds its block")
                return p, p + blen
            if btype == SPB:
                if blen < 16:
                    raise _Damage(base + p, f"simple packet block too short ({blen} bytes)")
                if not ifaces:
                    raise _Damage(base + p, "simple packet block before any interface")
                return p, p + blen
            return -1, p + blen  # statistics, name resolution, custom or unknown: skipped

        cand, nxt = _pcapng_candidates(buf, pos, end, endian == ">", len(ifaces))
        parts, pos, stop = _chain(cand, nxt, pos, end, slow)
        if parts:
            state["batch"] = Section(endian == ">", tuple(ifaces[:declared]))
            yield _pcapng_frames(ch, np.concatenate(parts), endian == ">", ifaces)
        if isinstance(stop, _Damage):
            raise stop
        if isinstance(stop, _Stop):
            if stop.seek:
                reader.skip(base + stop.next_pos)
                ch = reader.advance(0)
                pos = 0
            else:
                pos = stop.next_pos
            continue
        if reader.eof:
            if pos < end:
                raise _Damage(base + pos, f"truncated block ({end - pos} bytes left at end of file)")
            return
        need = 0
        if pos + 8 <= end:
            need = min(int(struct.unpack_from(endian + "I", raw, pos + 4)[0]), MAX_META_BLOCK + MAX_SNAPLEN)
        ch = reader.advance(pos, need)
        pos = 0


def _pcapng_candidates(buf: np.ndarray, pos: int, end: int, big: bool, n_ifaces: int):
    span = end - pos - 31
    if span <= 0 or n_ifaces == 0:
        e = np.empty(0, np.int64)
        return e, e
    # Candidate EPBs: block type 6 as four bytes, a length whose trailing copy matches, a
    # declared interface and a captured length that fits.
    cand = _pattern(buf, pos, span, {2: 0, 3: EPB, 0: 0, 1: 0} if big else {0: EPB, 1: 0, 2: 0, 3: 0})
    blen = _u32(buf, cand + 4, big)
    ok = (blen >= 32) & (blen % 4 == 0) & (cand + blen <= end) & (blen <= MAX_META_BLOCK + MAX_SNAPLEN)
    cand, blen = cand[ok], blen[ok]
    ok = (
        (_u32(buf, cand + blen - 4, big) == blen)
        & (_u32(buf, cand + 8, big) < n_ifaces)
        & (_u32(buf, cand + 20, big) <= blen - 32)
    )
    return cand[ok], cand[ok] + blen[ok]


def _pcapng_frames(ch: _Chunk, starts: np.ndarray, big: bool, ifaces: list[Interface]) -> Frames:
    # EPB words: type, length, interface, ts high, ts low, captured, original; SPB: type, length, original
    words = _words(ch.data, starts, 7, big)
    n = len(starts)
    is_epb = words[:, 0] == EPB
    iface = np.where(is_epb, words[:, 2], 0)
    units = (words[:, 3].astype(np.uint64) << np.uint64(32)) | words[:, 4].astype(np.uint64)
    ts = np.zeros(n, np.int64)
    linktype = np.zeros(n, np.int32)
    for i in np.unique(iface):
        f = ifaces[int(i)]
        sel = iface == i
        u = units[sel]
        if f.shift:
            whole = (u >> np.uint64(f.shift)).astype(np.int64)
            part = ((u & np.uint64((1 << f.shift) - 1)) * np.uint64(1_000_000_000)) >> np.uint64(f.shift)
            t = whole * 1_000_000_000 + part.astype(np.int64)
        else:
            t = u.astype(np.int64) * f.mul // f.div
        ts[sel] = t + f.offset_s * 1_000_000_000
        linktype[sel] = f.linktype
    caplen, wirelen, data = words[:, 5], words[:, 6], starts + 28
    if not is_epb.all():
        spb_caplen = np.minimum(np.minimum(words[:, 2], words[:, 1] - 16), ifaces[0].snaplen or MAX_SNAPLEN)
        caplen = np.where(is_epb, caplen, spb_caplen)
        wirelen = np.where(is_epb, wirelen, words[:, 2])
        data = np.where(is_epb, data, starts + 12)
        # simple packet blocks carry no timestamp: they take the previous packet's
        prev = np.maximum.accumulate(np.where(is_epb, np.arange(n), -1))
        ts = np.where(is_epb, ts, np.where(prev >= 0, ts[np.maximum(prev, 0)], 0))
    return Frames(
        buf=ch.data,
        data=data,
        caplen=caplen,
        wirelen=wirelen,
        ts_ns=ts,
        linktype=linktype,
        file_offset=starts + ch.base,
    )


# ---------------------------------------------------------------------------------------------
# Starting in the middle of a file


def first_section(path: Path) -> Section | None:
    """The pcapng section in force at the file's first packet (None for classic pcap or a file
    without packets)."""
    reader = CaptureReader(path)
    for _ in reader:
        return reader.current_section()
    return None


def guess_record(
    path: Path, offset: int, section: Section | None, window: int = 256 << 10, chain: int = 8
) -> int | None:
    """Where the first packet record at or after ``offset`` probably starts: the first place from
    which ``chain`` candidate records lead one to the next, in the first 16 KiB there that hold
    one, or else 64 KiB, and so on up to ``window`` bytes (None if none do). Only a guess (a
    payload may hold such a chain): the reader that frames the file up to that place is the one
    that knows."""
    with open(path, "rb") as fh:
        head = fh.read(24)
        first = fh.read(16)  # a classic file's first record header
        fh.seek(offset)
        data = fh.read(window)
    size = min(GUESS_FIRST, window)
    while True:  # a small window first: the scan costs per byte, and chains are short
        found = _first_chain(head, first, data[:size], section, chain)
        if found is not None or size >= len(data):
            return None if found is None else offset + found
        size *= 4


def _first_chain(head: bytes, first: bytes, data: bytes, section: Section | None, chain: int) -> int | None:
    """:func:`guess_record` in ``data`` (the file's header and first record header given)."""
    end = len(data)
    buf = np.frombuffer(data + bytes(PAD), np.uint8)
    if head[:4] in PCAP_MAGIC and len(head) == 24:
        endian, mul = PCAP_MAGIC[head[:4]]
        big = endian == ">"
        limit = _record_limit(struct.unpack_from(endian + "I", head, 16)[0])
        cand = np.arange(max(end - 15, 0))
        caplen, wirelen = _u32(buf, cand + 8, big), _u32(buf, cand + 12, big)
        ok = (caplen <= limit) & (caplen <= wirelen)
        if len(first) == 16:
            # Fixed-size packets of alike content (an audio stream) repeat with the record's
            # period, so a chain can start inside them: a timestamp near the file's first one,
            # with a fraction in range, rules nearly all such places out.
            first_s = struct.unpack_from(endian + "I", first, 0)[0]
            ts_s, frac = _u32(buf, cand, big), _u32(buf, cand + 4, big)
            ok &= (ts_s >= first_s - GUESS_SPAN_S) & (ts_s <= first_s + GUESS_SPAN_S)
            ok &= frac < (1_000_000 if mul == 1000 else 1_000_000_000)
        cand, nxt = cand[ok], cand[ok] + 16 + caplen[ok]
    elif section is not None:
        cand, nxt = _pcapng_candidates(buf, 0, end, section.big, len(section.interfaces))
    else:
        return None
    # hop from every candidate along its chain: a place that is not a candidate leads nowhere
    after = np.full(end + 2, end + 1, np.int64)
    after[cand] = np.minimum(nxt, end + 1)
    cur = cand
    for _ in range(chain - 1):
        cur = after[cur]
    good = np.flatnonzero(after[cur] <= end)
    return int(cand[good[0]]) if len(good) else None
