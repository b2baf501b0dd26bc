"""Flow aggregation: packets grouped by canonical 5-tuple, with counts and bytes each way.

A flow's sides are ordered canonically (the smaller address/port is side ``a``) so both
directions of a conversation land in one flow; orientation towards a device happens later.
Grouping hashes the 5-tuple into one 64-bit key per packet (fast to group with pandas) and then
checks every group against its full 5-tuple, falling back to exact grouping on a collision.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.net.decode import Packets

KEY_COLUMNS = ("proto", "a_hi", "a_lo", "b_hi", "b_lo", "a_port", "b_port")
SUM_COLUMNS = ("packets_ab", "packets_ba", "bytes_ab", "bytes_ba")
_K = [
    np.uint64(k)
    for k in (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93, 0xFF51AFD7ED558CCD)
]


def _mix(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint64(33))
    x = x * _K[4]
    return x ^ (x >> np.uint64(29))


def flow_hash(keys: dict[str, np.ndarray]) -> np.ndarray:
    """64-bit hash of each row's 5-tuple."""
    ports = (keys["proto"].astype(np.uint64) << np.uint64(32)) | (keys["a_port"].astype(np.uint64) << np.uint64(16))
    ports |= keys["b_port"].astype(np.uint64)
    h = keys["a_lo"] * _K[0] + keys["b_lo"] * _K[1] + keys["a_hi"] * _K[2] + keys["b_hi"] * _K[3] + _mix(ports)
    return _mix(h)


def canonical(p: Packets) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Canonical 5-tuple columns of each IP packet and whether it goes from side a to b."""
    ip = p.ip_rows()
    cols = {k: getattr(p, k)[ip] for k in ("src_hi", "src_lo", "dst_hi", "dst_lo", "sport", "dport", "proto")}
    s_hi, s_lo, d_hi, d_lo = cols["src_hi"], cols["src_lo"], cols["dst_hi"], cols["dst_lo"]
    sport, dport = cols["sport"], cols["dport"]
    a2b = (s_hi < d_hi) | ((s_hi == d_hi) & ((s_lo < d_lo) | ((s_lo == d_lo) & (sport <= dport))))
    keys = {
        "proto": cols["proto"],
        "a_hi": np.where(a2b, s_hi, d_hi),
        "a_lo": np.where(a2b, s_lo, d_lo),
        "b_hi": np.where(a2b, d_hi, s_hi),
        "b_lo": np.where(a2b, d_lo, s_lo),
        "a_port": np.where(a2b, sport, dport),
        "b_port": np.where(a2b, dport, sport),
    }
    return keys, a2b


def _group(keys: dict[str, np.ndarray], h: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
    """(group code of each row, number of groups, first row of each group)."""
    codes, uniques = pd.factorize(h)
    first = np.full(len(uniques), len(h), np.int64)
    np.minimum.at(first, codes, np.arange(len(h)))
    if any((col != col[first][codes]).any() for col in keys.values()):  # a hash collision
        codes, uniques = pd.MultiIndex.from_arrays([keys[k] for k in KEY_COLUMNS]).factorize()
        first = np.full(len(uniques), len(h), np.int64)
        np.minimum.at(first, codes, np.arange(len(h)))
    return codes, len(uniques), first


def packet_flows(p: Packets, keys: dict[str, np.ndarray], a2b: np.ndarray, h: np.ndarray) -> dict[str, np.ndarray]:
    """Per-flow aggregates of one batch (IP packets only)."""
    ip = p.ip_rows()
    length = p.length[ip]
    ts = p.ts_ns[ip]
    a_mac = np.where(a2b, p.src_mac[ip], p.dst_mac[ip])
    b_mac = np.where(a2b, p.dst_mac[ip], p.src_mac[ip])
    codes, k, first = _group(keys, h)
    w_ab = a2b.astype(np.float64)
    table = {name: col[first] for name, col in keys.items()}
    table["hash"] = h[first]
    table["packets_ab"] = np.bincount(codes, weights=w_ab, minlength=k).astype(np.int64)
    table["packets_ba"] = np.bincount(codes, minlength=k) - table["packets_ab"]
    table["bytes_ab"] = np.bincount(codes, weights=length * w_ab, minlength=k).astype(np.int64)
    table["bytes_ba"] = np.bincount(codes, weights=length, minlength=k).astype(np.int64) - table["bytes_ab"]
    table["first_ns"] = np.full(k, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(table["first_ns"], codes, ts)
    table["last_ns"] = np.full(k, np.iinfo(np.int64).min, np.int64)
    np.maximum.at(table["last_ns"], codes, ts)
    table["a_mac"] = a_mac[first]
    table["b_mac"] = b_mac[first]
    return table


def merge(tables: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Combine flow tables: sums add up, first/last take min/max, MACs a non-zero one."""
    if len(tables) == 1:
        return tables[0]
    cat = {name: np.concatenate([t[name] for t in tables]) for name in tables[0]}
    keys = {k: cat[k] for k in KEY_COLUMNS}
    codes, k, first = _group(keys, cat["hash"])
    out = {name: cat[name][first] for name in (*KEY_COLUMNS, "hash")}
    for name in SUM_COLUMNS:
        out[name] = np.bincount(codes, weights=cat[name], minlength=k).astype(np.int64)
    out["first_ns"] = np.full(k, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(out["first_ns"], codes, cat["first_ns"])
    out["last_ns"] = np.full(k, np.iinfo(np.int64).min, np.int64)
    np.maximum.at(out["last_ns"], codes, cat["last_ns"])
    for name in ("a_mac", "b_mac"):
        out[name] = np.zeros(k, np.uint64)
        np.maximum.at(out[name], codes, cat[name])
    return out


class FlowAccumulator:
    """Running flow table over many batches; memory grows with distinct flows, not packets."""

    def __init__(self) -> None:
        self.tables: list[dict[str, np.ndarray]] = []
        self.rows = 0
        self.compacted = 0

    def add(self, table: dict[str, np.ndarray]) -> None:
        self.tables.append(table)
        self.rows += len(table["hash"])
        if self.rows > 2 * self.compacted + 200_000:
            self.tables = [merge(self.tables)]
            self.rows = self.compacted = len(self.tables[0]["hash"])

    def result(self) -> dict[str, np.ndarray]:
        if not self.tables:
            return {}
        self.tables = [merge(self.tables)]
        return self.tables[0]
