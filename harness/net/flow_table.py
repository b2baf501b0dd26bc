"""The flow table a reading shows: flows oriented towards the device, named, in time order.

:func:`finish` turns a :class:`harness.net.traffic.Readout` into :class:`Traffic`. This is the
only part of reading captures that needs pandas (as-of joins for names, the table itself), so
that the processes reading parts of a capture start without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from harness.net import addresses
from harness.net.streams import STREAM_CAP
from harness.net.traffic import DIRECT_RANK, Readout, _Names

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
    """What a set of captures shows: one row per flow (columns :data:`FLOW_COLUMNS`; ``proto`` is
    the IP protocol number, ``protocol`` its name) and, when asked for, the device's packets."""

    flows: pd.DataFrame
    device: str | None
    packets: int
    warnings: list[str] = field(default_factory=list)
    device_packets: PacketRows | None = None


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
        return Traffic(
            pd.DataFrame({c: pd.Series(dtype=t) for c, t in FLOW_DTYPES.items()}), device, total, warnings, empty
        )
    if device is None:
        chosen = choose_device(table)
        if chosen is not None:
            device = addresses.address_text(*chosen)
            warnings.append(f"no --device given: assuming {device}, the busiest local host that is not the gateway")
    cols = _orient(table, addresses.parse_address(device) if device else None)
    name, source = _name(cols, readout.names)
    mine = _device_rows(cols, readout.rows or [], warnings) if device_packets else None
    flows = {c: cols[c] for c in FLOW_COLUMNS if c in cols} | {
        "name": pd.Series(name, dtype=object),
        "name_source": source,
    }
    return Traffic(pd.DataFrame(flows, columns=FLOW_COLUMNS, copy=False), device, total, warnings, mine)


def _device_rows(cols: dict[str, np.ndarray], rows: list[tuple[np.ndarray, ...]], warnings: list[str]) -> PacketRows:
    """The device's packets with their flow's row, from per-packet (ts, length, flow hash, a->b)."""
    ts, length, h, a2b = (np.concatenate(c) for c in zip(*rows, strict=False)) if rows else ([],) * 4
    firsts = ~pd.Series(cols["hash"]).duplicated().to_numpy()
    if not firsts.all():  # two flows with one 64-bit hash: packets go to the first of them
        warnings.append("two flows share a hash; the packets of the second are counted with the first")
    flow = np.flatnonzero(firsts)[pd.Index(cols["hash"][firsts]).get_indexer(np.asarray(h, np.uint64))]
    keep = cols["device"][flow]
    flow = flow[keep]
    up = np.asarray(a2b, bool)[keep] == cols["a_local"][flow]
    return PacketRows(np.asarray(ts, np.int64)[keep], np.asarray(length, np.int64)[keep], up, flow)


def choose_device(table: dict[str, np.ndarray]) -> tuple[int, int] | None:
    """The local unicast address with most bytes to non-local peers (else most bytes),
    skipping the gateway (local addresses behind the MAC that carries non-local traffic)."""
    side = pd.DataFrame(
        {
            "hi": np.concatenate([table["a_hi"], table["b_hi"]]),
            "lo": np.concatenate([table["a_lo"], table["b_lo"]]),
            "mac": np.concatenate([table["a_mac"], table["b_mac"]]),
            "sent": np.concatenate([table["packets_ab"], table["packets_ba"]]),
            "bytes": np.concatenate([table["bytes_ab"] + table["bytes_ba"]] * 2),
        }
    )
    local = addresses.is_local(side["hi"].to_numpy(), side["lo"].to_numpy())
    peer_local = np.concatenate([local[len(local) // 2 :], local[: len(local) // 2]])
    remote_macs = side["mac"][~local & (side["mac"] != 0)]
    gateway_mac = remote_macs.mode().iloc[0] if len(remote_macs) else None
    ok = local & addresses.is_unicast(side["hi"].to_numpy(), side["lo"].to_numpy()) & (side["sent"] > 0).to_numpy()
    if gateway_mac is not None:
        ok &= (side["mac"] != gateway_mac).to_numpy()
    cand = side[ok].assign(outside=np.where(peer_local[ok], 0, side["bytes"][ok]))
    if cand.empty:
        return None
    score = cand.groupby(["hi", "lo"])[["outside", "bytes"]].sum().sort_values(["outside", "bytes"], ascending=False)
    hi, lo = score.index[0]
    return int(hi), int(lo)


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
    columns, best evidence first: the flow's own SNI (TLS or QUIC) or HTTP Host; the DNS answer
    for its remote address current at the flow's start (or, failing that, first given while the
    flow lasted); the server certificate's name; a name another flow to the same address learned
    directly, nearest in time (source ``<source>_peer``).

    Works on integer codes of names and sources (-1: none) rather than on text columns."""
    n = len(cols["hash"])
    vocab: dict[str, int] = {}
    direct, direct_source = _direct_names(cols["hash"], names, vocab)
    name = np.full(n, -1, np.int64)
    source = np.zeros(n, np.int64)  # "none"
    order = pd.DataFrame(
        {"r_hi": cols["r_hi"], "r_lo": cols["r_lo"], "first_ns": cols["first_ns"], "row": np.arange(n)}, copy=False
    ).sort_values("first_ns")
    strong = np.isin(direct_source, [SOURCES.index(s) for s in ("sni", "quic", "http")])
    _fill(name, source, np.where(strong, direct, -1), direct_source)
    if names.answers:
        ans = pd.DataFrame(names.answers, columns=["r_hi", "r_lo", "ts", "found"])
        ans["found"] = [vocab.setdefault(x, len(vocab)) for x in ans["found"].tolist()]
        before = _asof(order, ans, "backward")
        after = _asof(order, ans, "forward")
        late = after["found"].where(after["ts"].to_numpy() <= cols["last_ns"][after["row"].to_numpy()])
        found = np.full(n, -1, np.int64)
        found[before["row"].to_numpy()] = before["found"].fillna(late).fillna(-1).to_numpy(np.int64)
        del before, after, late
        _fill(name, source, found, SOURCES.index("dns"))
    _fill(name, source, direct, direct_source)
    if (direct >= 0).any():
        rows = order["row"].to_numpy()
        peers = order.assign(found=direct[rows], source=direct_source[rows] + PEER)
        peers = peers[peers["found"] >= 0].rename(columns={"first_ns": "ts"}).drop(columns="row")
        near = _asof(order, peers, "nearest")
        at = near["row"].to_numpy()
        found = np.full(n, -1, np.int64)
        found[at] = near["found"].fillna(-1).to_numpy(np.int64)
        peer = np.zeros(n, np.int64)
        peer[at] = near["source"].fillna(0).to_numpy(np.int64)
        _fill(name, source, found, peer)
    texts = np.array([*vocab, None], dtype=object)  # code -1: the last entry, None
    return texts[name], np.array(SOURCES, dtype=object)[source]


def _direct_names(hashes: np.ndarray, names: _Names, vocab: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Each flow's own name and source as codes (-1 and 0, "none", where it has none), flows given
    by their hashes; names get codes in ``vocab``."""
    keys = np.fromiter(names.flow_names, np.uint64, len(names.flow_names))
    at = pd.Index(keys).get_indexer(hashes)
    pairs = list(names.flow_names.values())
    found = np.array([vocab.setdefault(p[0], len(vocab)) for p in pairs] + [-1], np.int64)[at]
    source = np.array([SOURCES.index(p[1]) for p in pairs] + [0], np.int64)[at]
    return found, source


def _asof(order: pd.DataFrame, found: pd.DataFrame, direction: str) -> pd.DataFrame:
    """For each flow (sorted by start), the address's entry of ``found`` nearest its start in ``direction``."""
    found = found.astype({"r_hi": np.uint64, "r_lo": np.uint64}).sort_values("ts", kind="stable")
    return pd.merge_asof(order, found, left_on="first_ns", right_on="ts", by=["r_hi", "r_lo"], direction=direction)


def _fill(name: np.ndarray, source: np.ndarray, found: np.ndarray, how: np.ndarray | int) -> None:
    """Name the flows still unnamed (code -1) that ``found`` (a name code per flow, -1 where
    none) names, with source code ``how`` (one, or one per flow)."""
    hit = (found >= 0) & (name < 0)
    name[hit] = found[hit]
    source[hit] = how if isinstance(how, int) else how[hit]
