"""The flow table a reading shows: flows oriented towards the device, named, in time order.

:func:`finish` turns a :class:`harness.net.traffic.Readout` into :class:`Traffic`, on numpy
columns: pandas is loaded only when a caller asks for :attr:`Traffic.flows` as a DataFrame, so
``harness net`` and the processes reading parts of a capture run without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from harness.net import addresses
from harness.net.streams import STREAM_CAP
from harness.net.traffic import DIRECT_RANK, Readout, _Names

if TYPE_CHECKING:
    import pandas as pd

# name sources by code: "none", "dns", the direct ones, then each direct one borrowed from a peer
SOURCES = ["none", "dns", *DIRECT_RANK, *(s + "_peer" for s in DIRECT_RANK)]
PEER = len(DIRECT_RANK)  # a direct source's code plus PEER is the code of its "_peer" form
PROTOCOLS = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6", 132: "sctp", 2: "igmp"}
FLOW_DTYPES = {
    "protocol": object,
    "proto": np.int64,
    "local_ip": object,
    "local_port": np.int64,
    "remote_ip": object,
    "remote_port": np.int64,
    "local_mac": object,
    "remote_mac": object,
    "first_ns": np.int64,
    "last_ns": np.int64,
    "packets_up": np.int64,
    "packets_down": np.int64,
    "bytes_up": np.int64,
    "bytes_down": np.int64,
    "name": object,
    "name_source": object,
    "device": bool,
}
FLOW_COLUMNS = list(FLOW_DTYPES)


@dataclass
class PacketRows:
    """The device's packets, in capture order: ``flow`` is the row of the packet's flow in
    :attr:`Traffic.flows`, ``up`` true from the device."""

    ts_ns: np.ndarray
    length: np.ndarray
    up: np.ndarray
    flow: np.ndarray

    def __len__(self) -> int:
        return len(self.ts_ns)


@dataclass
class Traffic:
    """What a set of captures shows: one row per flow in ``columns`` (:data:`FLOW_COLUMNS`, numpy
    arrays of :data:`FLOW_DTYPES`; ``proto`` is the IP protocol number, ``protocol`` its name,
    missing names None) and, when asked for, the device's packets."""

    columns: dict[str, np.ndarray]
    device: str | None
    packets: int
    warnings: list[str] = field(default_factory=list)
    device_packets: PacketRows | None = None

    @cached_property
    def flows(self) -> pd.DataFrame:
        """The flow table as a DataFrame (built on first use; loads pandas)."""
        import pandas as pd

        # names stay objects (None where missing); the other text columns take pandas' own text dtype
        cols = self.columns | {"name": pd.Series(self.columns["name"], dtype=object)}
        return pd.DataFrame(cols, columns=FLOW_COLUMNS, copy=False)


def finish(readout: Readout, device: str | None, device_packets: bool) -> Traffic:
    """The traffic a readout shows, oriented towards ``device`` (chosen when None)."""
    if readout.total == 0 and readout.problems:
        raise readout.problems[0]
    warnings = list(readout.warnings)
    if readout.bad_dns:
        warnings.append(f"{readout.bad_dns} malformed DNS responses were skipped")
    if readout.incomplete:
        warnings.append(
            f"{readout.incomplete} TCP stream directions were left incomplete (a segment missing within "
            f"their first {STREAM_CAP // 1024} KiB, or a message cut); they named no flow"
        )
    if readout.quic_failed:
        warnings.append(
            f"{readout.quic_failed} QUIC Initial packets could not be decrypted (a server's, a capture "
            "starting mid-handshake, or damage); they named no flow"
        )
    table = readout.table
    total = readout.total
    if not table:
        empty = PacketRows(*(np.array([], t) for t in (np.int64, np.int64, bool, np.int64))) if device_packets else None
        return Traffic({c: np.array([], t) for c, t in FLOW_DTYPES.items()}, device, total, warnings, empty)
    if device is None:
        chosen = choose_device(table)
        if chosen is not None:
            device = addresses.address_text(*chosen)
            warnings.append(f"no --device given: assuming {device}, the busiest local host that is not the gateway")
    cols = _orient(table, addresses.parse_address(device) if device else None)
    name, source = _name(cols, readout.names)
    mine = _device_rows(cols, readout.rows or [], warnings) if device_packets else None
    flows = {c: cols[c] for c in FLOW_COLUMNS if c in cols} | {"name": name, "name_source": source}
    return Traffic({c: flows[c] for c in FLOW_COLUMNS}, device, total, warnings, mine)


def _device_rows(cols: dict[str, np.ndarray], rows: list[tuple[np.ndarray, ...]], warnings: list[str]) -> PacketRows:
    """The device's packets with their flow's row, from per-packet (ts, length, flow hash, a->b)."""
    ts, length, h, a2b = (np.concatenate(c) for c in zip(*rows, strict=False)) if rows else ([],) * 4
    hashes, first = np.unique(cols["hash"], return_index=True)
    if len(hashes) < len(cols["hash"]):  # two flows with one 64-bit hash: packets go to the first of them
        warnings.append("two flows share a hash; the packets of the second are counted with the first")
    flow = first[np.searchsorted(hashes, np.asarray(h, np.uint64))] if len(hashes) else np.empty(0, np.int64)
    keep = cols["device"][flow]
    flow = flow[keep]
    up = np.asarray(a2b, bool)[keep] == cols["a_local"][flow]
    return PacketRows(np.asarray(ts, np.int64)[keep], np.asarray(length, np.int64)[keep], up, flow)


def choose_device(table: dict[str, np.ndarray]) -> tuple[int, int] | None:
    """The local unicast address with most bytes to non-local peers (else most bytes; of equal
    ones the lowest address), skipping the gateway (local addresses behind the MAC that carries
    most non-local traffic, the lowest MAC of equal ones)."""
    hi = np.concatenate([table["a_hi"], table["b_hi"]])
    lo = np.concatenate([table["a_lo"], table["b_lo"]])
    mac = np.concatenate([table["a_mac"], table["b_mac"]])
    sent = np.concatenate([table["packets_ab"], table["packets_ba"]])
    size = np.concatenate([table["bytes_ab"] + table["bytes_ba"]] * 2).astype(np.int64)
    local = addresses.is_local(hi, lo)
    half = len(local) // 2
    peer_local = np.concatenate([local[half:], local[:half]])
    remote_macs, seen = np.unique(mac[~local & (mac != 0)], return_counts=True)
    ok = local & addresses.is_unicast(hi, lo) & (sent > 0)
    if len(remote_macs):
        ok &= mac != remote_macs[np.argmax(seen)]
    if not ok.any():
        return None
    hi, lo, size, outside = hi[ok], lo[ok], size[ok], np.where(peer_local[ok], 0, size[ok])
    host, first = addresses.codes(hi, lo)
    u_hi, u_lo = hi[first], lo[first]
    sums = [np.zeros(len(first), np.int64) for _ in range(2)]
    np.add.at(sums[0], host, outside)
    np.add.at(sums[1], host, size)
    best = np.lexsort((u_lo, u_hi, -sums[1], -sums[0]))[0]
    return int(u_hi[best]), int(u_lo[best])


def _orient(table: dict[str, np.ndarray], device: tuple[int, int] | None) -> dict[str, np.ndarray]:
    """The flow columns (:data:`FLOW_COLUMNS` but the names, plus ``r_hi``/``r_lo``, ``hash`` and
    ``a_local``) in order of first packet time, with the device (or, without one, the local/client
    side) as the local side. Empties ``table``, one column at a time, to hold each about once."""
    order = np.argsort(table["first_ns"], kind="stable")
    for c in list(table):
        table[c] = table[c][order]
    del order
    a_hi, a_lo, b_hi, b_lo = table["a_hi"], table["a_lo"], table["b_hi"], table["b_lo"]
    if device is not None:
        a_dev = (a_hi == np.uint64(device[0])) & (a_lo == np.uint64(device[1]))
        b_dev = (b_hi == np.uint64(device[0])) & (b_lo == np.uint64(device[1]))
    else:
        a_dev = b_dev = np.zeros(len(a_hi), bool)
    a_loc, b_loc = addresses.is_local(a_hi, a_lo), addresses.is_local(b_hi, b_lo)
    a_local = np.where(a_dev | b_dev, a_dev, np.where(a_loc != b_loc, a_loc, table["a_port"] >= table["b_port"]))
    del a_hi, a_lo, b_hi, b_lo, a_loc, b_loc
    proto = table.pop("proto").astype(np.int64)
    protocol, code = np.unique(proto, return_inverse=True)
    cols = {
        "protocol": np.array([PROTOCOLS.get(int(p), str(int(p))) for p in protocol], dtype=object)[code],
        "proto": proto,
        "device": a_dev | b_dev,
        "a_local": a_local,
    }
    del protocol, code, a_dev, b_dev
    for a, b, local, remote in (
        ("a_hi", "b_hi", "l_hi", "r_hi"),
        ("a_lo", "b_lo", "l_lo", "r_lo"),
        ("a_port", "b_port", "local_port", "remote_port"),
        ("a_mac", "b_mac", "local_mac", "remote_mac"),
        ("packets_ab", "packets_ba", "packets_up", "packets_down"),
        ("bytes_ab", "bytes_ba", "bytes_up", "bytes_down"),
    ):
        x, y = table.pop(a), table.pop(b)
        cols[local], cols[remote] = np.where(a_local, x, y), np.where(a_local, y, x)
    for c in ("local_port", "remote_port"):
        cols[c] = cols[c].astype(np.int64)
    for c in ("local_mac", "remote_mac"):
        cols[c] = addresses.mac_texts(cols[c])
    cols["local_ip"] = addresses.texts(cols.pop("l_hi"), cols.pop("l_lo"))
    cols["remote_ip"] = addresses.texts(cols["r_hi"], cols["r_lo"])
    for c in ("first_ns", "last_ns", "hash"):
        cols[c] = table.pop(c)
    return cols


def _name(cols: dict[str, np.ndarray], names: _Names) -> tuple[np.ndarray, np.ndarray]:
    """Each flow's name (None where none) and name source ("none" where none) of :func:`_orient`'s
    columns (in order of first packet), best evidence first: the flow's own SNI (TLS or QUIC) or
    HTTP Host; the DNS answer for its remote address current at the flow's start (or, failing
    that, first given while the flow lasted); the server certificate's name; a name another flow
    to the same address learned directly, nearest in time (source ``<source>_peer``; of two as
    near, the earlier; of peers starting at one instant, the last in flow order at or before the
    flow's start, the first after it).

    Works on integer codes of names and sources (-1: none) rather than on text columns."""
    n = len(cols["hash"])
    vocab: dict[str, int] = {}
    direct, direct_source = _direct_names(cols["hash"], names, vocab)
    name = np.full(n, -1, np.int64)
    source = np.zeros(n, np.int64)  # "none"
    strong = np.isin(direct_source, [SOURCES.index(s) for s in ("sni", "quic", "http")])
    _fill(name, source, np.where(strong, direct, -1), direct_source)
    starts = cols["first_ns"]
    hi, lo, ts, found = zip(*names.answers, strict=True) if names.answers else ((),) * 4
    # one code per address, of the flows' remote addresses and the answers' addresses together
    code = addresses.codes(np.r_[cols["r_hi"], np.array(hi, np.uint64)], np.r_[cols["r_lo"], np.array(lo, np.uint64)])[
        0
    ]
    if names.answers:
        asof = _AsOf(code[:n], starts, code[n:], np.array(ts, np.int64))
        found_code = np.array([vocab.setdefault(x, len(vocab)) for x in found] + [-1], np.int64)
        before, after = asof.backward(), asof.forward()
        # else the first answer given while the flow lasted
        late = np.where((after >= 0) & (asof.right_ts[after] <= cols["last_ns"]), after, -1)
        _fill(name, source, found_code[asof.right_row[np.where(before >= 0, before, late)]], SOURCES.index("dns"))
    _fill(name, source, direct, direct_source)
    peers = np.flatnonzero(direct >= 0)
    if len(peers):
        at = np.r_[peers, -1][_AsOf(code[:n], starts, code[peers], starts[peers]).nearest()]  # a peer's row, or -1
        _fill(name, source, np.where(at >= 0, direct[at], -1), direct_source[at] + PEER)
    texts = np.array([*vocab, None], dtype=object)  # code -1: the last entry, None
    return texts[name], np.array(SOURCES, dtype=object)[source]


def _direct_names(hashes: np.ndarray, names: _Names, vocab: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Each flow's own name and source as codes (-1 and 0, "none", where it has none), flows given
    by their hashes; names get codes in ``vocab``."""
    keys = np.fromiter(names.flow_names, np.uint64, len(names.flow_names))
    at = _lookup(keys, hashes)
    pairs = list(names.flow_names.values())
    found = np.array([vocab.setdefault(p[0], len(vocab)) for p in pairs] + [-1], np.int64)[at]
    source = np.array([SOURCES.index(p[1]) for p in pairs] + [0], np.int64)[at]
    return found, source


def _lookup(keys: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """The index in ``keys`` (distinct) of each of ``wanted``, -1 where absent."""
    if not len(keys):
        return np.full(len(wanted), -1, np.int64)
    order = np.argsort(keys)
    at = order[np.minimum(np.searchsorted(keys, wanted, sorter=order), len(keys) - 1)]
    return np.where(keys[at] == wanted, at, -1)


class _AsOf:
    """For each left entry (address code, time), the right entry of the same address nearest in
    time in a direction: indices into the right entries sorted by (address, time), the order
    of equal entries kept (``right_row`` maps them back); -1 where there is none."""

    def __init__(
        self, left_code: np.ndarray, left_ts: np.ndarray, right_code: np.ndarray, right_ts: np.ndarray
    ) -> None:
        self.right_row = np.r_[np.lexsort((right_ts, right_code)), -1]  # index -1 maps "none" to -1
        self.right_ts = right_ts[self.right_row[:-1]]
        self.right_code = right_code[self.right_row[:-1]]
        self.left_ts, self.left_code = left_ts, left_code
        # times as ranks among all of them, so that (address, time) is one sortable integer
        rank = np.unique(np.r_[left_ts, self.right_ts], return_inverse=True)[1].ravel().astype(np.int64)
        span = len(rank) + 1
        self.left_key = left_code * span + rank[: len(left_ts)]
        self.right_key = self.right_code * span + rank[len(left_ts) :]

    def backward(self) -> np.ndarray:
        """The last entry at or before each left time."""
        at = np.searchsorted(self.right_key, self.left_key, side="right") - 1
        ok = at >= 0
        ok[ok] = self.right_code[at[ok]] == self.left_code[ok]
        return np.where(ok, at, -1)

    def forward(self) -> np.ndarray:
        """The first entry at or after each left time."""
        at = np.searchsorted(self.right_key, self.left_key, side="left")
        ok = at < len(self.right_key)
        ok[ok] = self.right_code[at[ok]] == self.left_code[ok]
        return np.where(ok, at, -1)

    def nearest(self) -> np.ndarray:
        """The nearer of :meth:`backward` and :meth:`forward` (the backward one when as near);
        as rows of the right entries as given, -1 where none."""
        b, f = self.backward(), self.forward()
        ts = np.r_[self.right_ts, 0]
        pick_b = (b >= 0) & ((f < 0) | (self.left_ts - ts[b] <= ts[f] - self.left_ts))
        return self.right_row[np.where(pick_b, b, f)]


def _fill(name: np.ndarray, source: np.ndarray, found: np.ndarray, how: np.ndarray | int) -> None:
    """Name the flows still unnamed (code -1) that ``found`` (a name code per flow, -1 where
    none) names, with source code ``how`` (one, or one per flow)."""
    hit = (found >= 0) & (name < 0)
    name[hit] = found[hit]
    source[hit] = how if isinstance(how, int) else how[hit]
