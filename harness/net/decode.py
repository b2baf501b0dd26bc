"""Vectorised decoding of link, IP and transport headers for a batch of packet records.

Each header is read through a fixed-width window gathered at every packet's header offset at
once (numpy fancy indexing), so the cost per packet is a handful of array operations whatever
the batch size. Addresses are 128-bit, held as two uint64 columns; IPv4 addresses are stored
IPv4-mapped (::ffff:a.b.c.d).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.net.framing import Frames, rows_at

ETHERNET, NULL, RAW, RAW_BSD, RAW_OPENBSD, LOOP, SLL, SLL2, IPV4, IPV6 = 1, 0, 101, 12, 14, 108, 113, 276, 228, 229
SUPPORTED_LINKTYPES = {ETHERNET, NULL, RAW, RAW_BSD, RAW_OPENBSD, LOOP, SLL, SLL2, IPV4, IPV6}
IPV6_EXTENSIONS = np.array([0, 43, 44, 51, 60, 135, 139, 140], np.int64)
V4_MAPPED = np.uint64(0xFFFF00000000)
TCP, UDP = 6, 17


@dataclass
class Packets:
    """Decoded headers of one batch; absent fields are 0 (ports, MACs, addresses) or -1 (proto).

    ``payload``/``payload_len`` locate the transport payload in ``buf`` (valid while the batch
    is held); ``direction`` is +1 from the device, -1 to it, 0 otherwise (all 0 without a device).
    """

    buf: np.ndarray
    ts_ns: np.ndarray
    length: np.ndarray
    src_mac: np.ndarray
    dst_mac: np.ndarray
    ip_version: np.ndarray
    src_hi: np.ndarray
    src_lo: np.ndarray
    dst_hi: np.ndarray
    dst_lo: np.ndarray
    proto: np.ndarray
    sport: np.ndarray
    dport: np.ndarray
    tcp_flags: np.ndarray
    l4: np.ndarray
    payload: np.ndarray
    payload_len: np.ndarray
    file_offset: np.ndarray
    direction: np.ndarray

    def __len__(self) -> int:
        return len(self.ts_ns)

    def ip_rows(self) -> np.ndarray | slice:
        """Index of the IP packets (a plain slice when all of them are)."""
        ip = self.ip_version > 0
        return slice(None) if ip.all() else np.flatnonzero(ip)


def _win(b: np.ndarray, idx: np.ndarray, width: int) -> np.ndarray:
    """The ``width`` bytes at each offset in ``idx``, offsets moved inside ``b`` (the caller
    ignores what a moved one reads)."""
    return rows_at(b, np.clip(idx, 0, len(b) - width), width)


def _be16(w: np.ndarray, col: int) -> np.ndarray:
    return (w[:, col].astype(np.int64) << 8) | w[:, col + 1]


def _be_cols(w: np.ndarray, start: int, size: int) -> np.ndarray:
    """Big-endian unsigned integer from ``size`` (<= 8) window columns, as uint64."""
    if size in (4, 8):
        return np.ascontiguousarray(w[:, start : start + size]).view(f">u{size}").ravel().astype(np.uint64)
    cols = np.zeros((len(w), 8), np.uint8)
    cols[:, 8 - size :] = w[:, start : start + size]
    return cols.view(">u8").ravel().astype(np.uint64)


def _link(frames: Frames, sel: np.ndarray | slice, linktype: int):
    """(l3 offset, ip version hint 0/4/6, src mac, dst mac) for the selected records."""
    b = frames.buf
    d = frames.data[sel]
    n = len(d)
    zero_mac = np.zeros(n, np.uint64)
    if linktype == ETHERNET:
        # window from 2 bytes before the frame, so each MAC is the low 48 bits of 8 columns
        w = _win(b, d - 2, 24)
        mask = np.uint64((1 << 48) - 1)
        dst = _be_cols(w, 0, 8) & mask
        src = _be_cols(w, 6, 8) & mask
        et = _be16(w, 14)
        off = np.full(n, 14, np.int64)
        for tag_col in (18, 22):  # 802.1Q and an outer QinQ tag
            tagged = (et == 0x8100) | (et == 0x88A8) | (et == 0x9100)
            if not tagged.any():
                break
            et = np.where(tagged, _be16(w, tag_col), et)
            off += 4 * tagged
        return d + off, _ethertype_version(et), src, dst
    if linktype == SLL:
        w = _win(b, d, 16)
        # the header's address is the sender's whatever the packet type (incoming, outgoing, ...)
        mac = np.where(_be16(w, 4) == 6, _be_cols(w, 6, 6), zero_mac)
        return d + 16, _ethertype_version(_be16(w, 14)), mac, zero_mac
    if linktype == SLL2:
        w = _win(b, d, 20)
        mac = np.where(w[:, 11] == 6, _be_cols(w, 12, 6), zero_mac)  # the sender's, as in SLL
        return d + 20, _ethertype_version(_be16(w, 0)), mac, zero_mac
    if linktype in (NULL, LOOP):
        w = _win(b, d, 4)
        fam_be = _be_cols(w, 0, 4).astype(np.int64)
        fam_le = np.ascontiguousarray(w).view("<u4").ravel().astype(np.int64)
        fam = fam_be if linktype == LOOP else np.where(fam_le < 256, fam_le, fam_be)
        ver = np.where(fam == 2, 4, np.where(np.isin(fam, (10, 24, 28, 30)), 6, 0))
        return d + 4, ver, zero_mac, zero_mac
    if linktype in (RAW, RAW_BSD, RAW_OPENBSD, IPV4, IPV6):
        ver = (b[np.minimum(d, len(b) - 1)] >> 4).astype(np.int64)
        return d, ver, zero_mac, zero_mac
    return d, np.zeros(n, np.int64), zero_mac, zero_mac


def _ethertype_version(et: np.ndarray) -> np.ndarray:
    return np.where(et == 0x0800, 4, np.where(et == 0x86DD, 6, 0))


def link_types(frames: Frames) -> list[int]:
    """The distinct link types of a batch's records, in order (nearly always one: checked
    without a sort)."""
    lt = frames.linktype
    if len(lt) and (lt == lt[0]).all():
        return [int(lt[0])]
    return np.unique(lt).tolist()


def decode(frames: Frames, device: tuple[int, int] | None = None) -> Packets:
    """Decode link, IP and transport headers of every record in ``frames``."""
    b = frames.buf
    n = len(frames)
    rec_end = frames.data + frames.caplen
    kinds = link_types(frames)
    if len(kinds) == 1:
        l3, ver, src_mac, dst_mac = _link(frames, slice(None), kinds[0])
    else:
        l3 = np.zeros(n, np.int64)
        ver = np.zeros(n, np.int64)
        src_mac = np.zeros(n, np.uint64)
        dst_mac = np.zeros(n, np.uint64)
        for k in kinds:
            sel = np.flatnonzero(frames.linktype == k)
            l3[sel], ver[sel], src_mac[sel], dst_mac[sel] = _link(frames, sel, k)

    src_hi = np.zeros(n, np.uint64)
    src_lo = np.zeros(n, np.uint64)
    dst_hi = np.zeros(n, np.uint64)
    dst_lo = np.zeros(n, np.uint64)
    proto = np.full(n, -1, np.int64)
    l4 = np.zeros(n, np.int64)
    ip_end = rec_end.copy()
    l4_ok = np.zeros(n, bool)
    version = np.zeros(n, np.int64)

    v4 = (ver == 4) & (l3 + 20 <= rec_end)
    if v4.any():
        i4 = slice(None) if v4.all() else np.flatnonzero(v4)
        w = _win(b, l3[i4], 20)
        ok = (w[:, 0] >> 4) == 4
        ihl = (w[:, 0] & 15).astype(np.int64) * 4
        total = _be16(w, 2)
        frag = _be16(w, 6) & 0x1FFF
        src_lo[i4] = np.where(ok, _be_cols(w, 12, 4) | V4_MAPPED, 0)
        dst_lo[i4] = np.where(ok, _be_cols(w, 16, 4) | V4_MAPPED, 0)
        proto[i4] = np.where(ok, w[:, 9], -1)
        version[i4] = np.where(ok, 4, 0)
        end4 = np.where(total >= ihl, l3[i4] + total, rec_end[i4])  # 0 under segmentation offload
        ip_end[i4] = np.minimum(end4, rec_end[i4])
        l4[i4] = l3[i4] + ihl
        l4_ok[i4] = ok & (frag == 0) & (ihl >= 20)

    v6 = (ver == 6) & (l3 + 40 <= rec_end)
    if v6.any():
        i6 = np.flatnonzero(v6)
        w = _win(b, l3[i6], 40)
        ok = (w[:, 0] >> 4) == 6
        src_hi[i6] = _be_cols(w, 8, 8)
        src_lo[i6] = _be_cols(w, 16, 8)
        dst_hi[i6] = _be_cols(w, 24, 8)
        dst_lo[i6] = _be_cols(w, 32, 8)
        plen = _be16(w, 4)
        end6 = np.where(plen > 0, l3[i6] + 40 + plen, rec_end[i6])
        ip_end[i6] = np.minimum(end6, rec_end[i6])
        nh, pos, first_fragment = _ipv6_extensions(b, w[:, 6].astype(np.int64), l3[i6] + 40, ip_end[i6])
        proto[i6] = np.where(ok, nh, -1)
        version[i6] = np.where(ok, 6, 0)
        l4[i6] = pos
        l4_ok[i6] = ok & first_fragment

    sport = np.zeros(n, np.int64)
    dport = np.zeros(n, np.int64)
    flags = np.zeros(n, np.int64)
    payload = np.zeros(n, np.int64)
    ports = l4_ok & ((proto == TCP) | (proto == UDP) | (proto == 132)) & (l4 + 4 <= ip_end)
    if ports.any():
        ip = slice(None) if ports.all() else np.flatnonzero(ports)
        w = _win(b, l4[ip], 14)
        sport[ip] = _be16(w, 0)
        dport[ip] = _be16(w, 2)
        is_tcp = proto[ip] == TCP
        flags[ip] = np.where(is_tcp, w[:, 13], 0)
        header = np.where(is_tcp, (w[:, 12] >> 4).astype(np.int64) * 4, np.where(proto[ip] == UDP, 8, 0))
        payload[ip] = np.where(header > 0, l4[ip] + header, ip_end[ip])
    payload_len = np.where(ports, np.maximum(ip_end - payload, 0), 0)

    direction = np.zeros(n, np.int8)
    if device is not None:
        hi, lo = (np.uint64(x) for x in device)
        direction = ((src_hi == hi) & (src_lo == lo)).astype(np.int8) - ((dst_hi == hi) & (dst_lo == lo)).astype(
            np.int8
        )
    return Packets(
        buf=b,
        ts_ns=frames.ts_ns,
        length=frames.wirelen,
        src_mac=src_mac,
        dst_mac=dst_mac,
        ip_version=version,
        src_hi=src_hi,
        src_lo=src_lo,
        dst_hi=dst_hi,
        dst_lo=dst_lo,
        proto=proto,
        sport=sport,
        dport=dport,
        tcp_flags=flags,
        l4=l4,
        payload=payload,
        payload_len=payload_len,
        file_offset=frames.file_offset,
        direction=direction,
    )


def _ipv6_extensions(b: np.ndarray, nh: np.ndarray, pos: np.ndarray, end: np.ndarray):
    """Walk IPv6 extension headers: (upper-layer protocol, its offset, not a later fragment)."""
    first_fragment = np.ones(len(nh), bool)
    for _ in range(8):  # more chained headers than this is not a real packet
        ext = np.isin(nh, IPV6_EXTENSIONS) & (pos + 8 <= end)
        if not ext.any():
            break
        ie = np.flatnonzero(ext)
        w = _win(b, pos[ie], 4)
        kind = nh[ie]
        units = w[:, 1].astype(np.int64)
        size = np.where(kind == 44, 8, np.where(kind == 51, (units + 2) * 4, (units + 1) * 8))
        first_fragment[ie] &= ~((kind == 44) & ((_be16(w, 2) >> 3) != 0))
        nh[ie] = w[:, 0]
        pos[ie] = pos[ie] + size
    return nh, pos, first_fragment
