"""Flow aggregation: packets grouped by canonical 5-tuple, with counts and bytes each way.

A flow's sides are ordered canonically (the smaller address/port is side ``a``) so both
directions of a conversation land in one flow; orientation towards a device happens later.
Grouping hashes the 5-tuple into one 64-bit key per packet (one column to sort) and then
checks every group against its full 5-tuple, falling back to exact grouping on a collision.
Tables are dicts of numpy columns, as narrow as the values allow (protocol uint8, ports uint16);
``first_pos`` is where the flow's first packet lies in the input (file number and byte offset), so
tables merged in any order and grouping hold the same rows, which sorting by it puts in one order.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path

import numpy as np

from harness.net.decode import Packets
from harness.net.streams import DONE_WINDOW_NS

KEY_COLUMNS = ("proto", "a_hi", "a_lo", "b_hi", "b_lo", "a_port", "b_port")
SUM_COLUMNS = ("packets_ab", "packets_ba", "bytes_ab", "bytes_ba")
# a flow's first packet: (file number << FILE_SHIFT) | byte offset in its file
FILE_SHIFT = 44
KEY_DTYPES = {"proto": np.uint8, "a_port": np.uint16, "b_port": np.uint16}
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


def _factorize(cols: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(group code of each row, first row of each group) of the rows' values in ``cols``, groups
    numbered in order of first appearance (numpy alone: reading processes start without pandas)."""
    n = len(cols[0])
    order = np.lexsort(cols[::-1]) if len(cols) > 1 else np.argsort(cols[0])
    new = np.zeros(n, bool)
    new[:1] = True
    for col in cols:
        ordered = col[order]
        new[1:] |= ordered[1:] != ordered[:-1]
    starts = np.flatnonzero(new)
    first = np.minimum.reduceat(order, starts) if n else order
    rank = np.argsort(first)
    relabel = np.empty(len(starts), np.int64)
    relabel[rank] = np.arange(len(starts))
    codes = np.empty(n, np.int64)
    codes[order] = relabel[np.cumsum(new) - 1]
    return codes, first[rank]


def _group(keys: dict[str, np.ndarray], h: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
    """(group code of each row, number of groups, first row of each group)."""
    codes, first = _factorize([h])
    if any((col != col[first][codes]).any() for col in keys.values()):  # a hash collision
        codes, first = _factorize([keys[k] for k in KEY_COLUMNS])
    return codes, len(first), first


def packet_flows(
    p: Packets, keys: dict[str, np.ndarray], a2b: np.ndarray, h: np.ndarray, file_no: int = 0
) -> dict[str, np.ndarray]:
    """Per-flow aggregates of one batch (IP packets only); ``file_no`` is the number of the
    batch's file among those read as one capture (it orders flows of different files)."""
    ip = p.ip_rows()
    length = p.length[ip]
    ts = p.ts_ns[ip]
    a_mac = np.where(a2b, p.src_mac[ip], p.dst_mac[ip])
    b_mac = np.where(a2b, p.dst_mac[ip], p.src_mac[ip])
    codes, k, first = _group(keys, h)
    w_ab = a2b.astype(np.float64)
    table = {name: col[first].astype(KEY_DTYPES.get(name, col.dtype), copy=False) for name, col in keys.items()}
    table["hash"] = h[first]
    table["first_pos"] = p.file_offset[ip][first].astype(np.uint64) | np.uint64(file_no << FILE_SHIFT)
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


def rows(table: dict[str, np.ndarray]) -> int:
    """Number of flows of a table."""
    return len(table["hash"]) if table else 0


def merge(tables: list[dict[str, np.ndarray]], *, consume: bool = False) -> dict[str, np.ndarray]:
    """Combine flow tables: sums add up, first/last (time and position) take min/max, MACs a
    non-zero one. Rows come in order of first appearance in ``tables``. ``consume``: empty
    ``tables`` (and their dicts) while copying, so that each column is held about once."""
    if len(tables) == 1:
        return tables.pop() if consume else tables[0]
    names = list(tables[0])
    cat = {name: np.concatenate([t.pop(name) if consume else t[name] for t in tables]) for name in names}
    if consume:
        tables.clear()
    codes, k, first = _group({key: cat[key] for key in KEY_COLUMNS}, cat["hash"])
    if k == len(codes):  # no flow in two tables: the concatenation is the result
        return cat
    out = {}
    for name in names:
        col = cat.pop(name)
        if name in SUM_COLUMNS:
            out[name] = np.bincount(codes, weights=col, minlength=k).astype(np.int64)
        elif name in ("first_ns", "first_pos"):
            out[name] = np.full(k, np.iinfo(col.dtype).max, col.dtype)
            np.minimum.at(out[name], codes, col)
        elif name in ("last_ns", "a_mac", "b_mac"):  # a MAC: the non-zero one (0 is unknown)
            out[name] = np.full(k, np.iinfo(col.dtype).min, col.dtype)
            np.maximum.at(out[name], codes, col)
        else:
            out[name] = col[first]
    return out


def take(table: dict[str, np.ndarray], index: np.ndarray) -> dict[str, np.ndarray]:
    """The rows ``index`` (indices or a mask) of a table."""
    return {name: col[index] for name, col in table.items()}


class FlowAccumulator:
    """Running flow table over many batches.

    Batches are merged once ``merge_rows`` rows more than twice the last merge's are held. Flows
    idle for ``idle_ns`` of capture time (twice the time finished TCP directions are remembered)
    are moved out of memory at a merge of more than ``spill_rows`` rows: written as .npy columns to
    a private temporary folder, read back only by :meth:`result`. Memory then grows with the
    flows in flight, not with all flows seen; a flow that comes back after being spilled is merged
    with its spilled part at the end, so the result does not depend on the thresholds. Use as a
    context manager (or call :meth:`close`) so the folder is removed whatever happens.
    """

    def __init__(self, idle_ns: int = 2 * DONE_WINDOW_NS, spill_rows: int = 200_000, merge_rows: int = 200_000) -> None:
        self.tables: list[dict[str, np.ndarray]] = []
        self.rows = 0
        self.compacted = 0
        self.idle_ns = idle_ns
        self.spill_rows = spill_rows
        self.merge_rows = merge_rows
        self.latest_ns = np.iinfo(np.int64).min
        self.folder: Path | None = None
        self.spilled = 0  # files written
        self.spilled_rows = 0

    def __enter__(self) -> FlowAccumulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, table: dict[str, np.ndarray]) -> None:
        if not rows(table):
            return
        self.tables.append(table)
        self.rows += rows(table)
        self.latest_ns = max(self.latest_ns, int(table["last_ns"].max()))
        if self.rows > 2 * self.compacted + self.merge_rows:  # merged tables grow geometrically
            self.tables = [merge(self.tables, consume=True)]
            if rows(self.tables[0]) > self.spill_rows:
                self._spill()
            self.rows = self.compacted = rows(self.tables[0])

    def _spill(self) -> None:
        """Write the idle flows of the (single, merged) table to disk and keep the others."""
        table = self.tables[0]
        idle = table["last_ns"] < self.latest_ns - self.idle_ns
        if not idle.any():
            return
        if self.folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix="harness-flows-"))  # mode 0700
            # removed also when an error drops the accumulator without close()
            self._remove = weakref.finalize(self, shutil.rmtree, self.folder, True)
        part = self.folder / str(self.spilled)
        part.mkdir()
        for name, col in take(table, idle).items():
            np.save(part / f"{name}.npy", col)
        self.spilled += 1
        self.spilled_rows += int(idle.sum())
        self.tables = [take(table, ~idle)]

    def result(self) -> dict[str, np.ndarray]:
        """All flows, in order of first packet; removes the spilled files."""
        parts = []
        for i in range(self.spilled):
            part = self.folder / str(i)
            parts.append({f.stem: np.load(f) for f in sorted(part.glob("*.npy"))})
        self.close()
        tables = parts + self.tables
        self.tables = []
        if not tables:
            return {}
        table = merge(tables, consume=True)
        if self.spilled:  # spilled flows came first: back to the order of first packet
            table = take(table, np.argsort(table["first_pos"], kind="stable"))
        return table

    def close(self) -> None:
        """Remove the spilled files (the flows in them are lost)."""
        if self.folder is not None:
            self._remove()
            self.folder = None
