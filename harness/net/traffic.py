"""Read captures end to end: flows, names (SNI, HTTP Host, DNS), the device, warnings.

Only the few packets that can carry a name are decoded in Python: DNS responses, segments
starting a TLS ClientHello (and the segments completing a split one), HTTP requests, and UDP
payloads starting like a QUIC v1/v2 Initial packet (decrypted for their ClientHello's SNI).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness.errors import InputError
from harness.net import addresses, dns, http, quic, tls
from harness.net.decode import SUPPORTED_LINKTYPES, TCP, UDP, Packets, _win, decode
from harness.net.flows import KEY_COLUMNS, FlowAccumulator, canonical, flow_hash, packet_flows
from harness.net.framing import CHUNK, CaptureReader

HTTP_CODES = np.array([int.from_bytes(m, "big") for m in http.METHODS], np.int64)
HTTP_FIRST = np.zeros(256, bool)
HTTP_FIRST[[m[0] for m in http.METHODS]] = True
PROTOCOLS = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6", 132: "sctp", 2: "igmp"}
FLOW_COLUMNS = [
    "protocol", "local_ip", "local_port", "remote_ip", "remote_port", "local_mac", "remote_mac",
    "first_ns", "last_ns", "packets_up", "packets_down", "bytes_up", "bytes_down",
    "name", "name_source", "device",
]  # fmt: skip


@dataclass
class Traffic:
    """What a set of captures shows: one row per flow (columns :data:`FLOW_COLUMNS`)."""

    flows: pd.DataFrame
    device: str | None
    packets: int
    warnings: list[str] = field(default_factory=list)


class _Names:
    """Names learned while reading: per-flow (SNI/HTTP) and time-stamped DNS answers."""

    def __init__(self) -> None:
        self.flow_names: dict[tuple, tuple[str, str]] = {}
        self.answers: list[tuple[int, int, int, str]] = []  # (hi, lo, ts, name)
        self._last: dict[int, str] = {}
        self.hellos = tls.HelloAssembler()
        self.quic = quic.InitialReader()
        self.bad_dns = 0

    def name_flow(self, key: tuple, name: str | None, source: str) -> None:
        if not name:
            return
        old = self.flow_names.get(key)
        if old is None or (old[1] == "http" and source == "sni"):
            self.flow_names[key] = (name, source)

    def dns_answer(self, ts: int, payload: bytes) -> None:
        try:
            found = dns.parse_response(payload)
        except dns.Malformed:
            self.bad_dns += 1
            return
        for addr, name in found:
            if self._last.get(addr) != name:  # keep only changes: bounded by distinct pairs
                self._last[addr] = name
                self.answers.append((addr >> 64, addr & ((1 << 64) - 1), ts, name))

    def scan(self, p: Packets, keys: dict[str, np.ndarray], a2b: np.ndarray, h: np.ndarray) -> None:
        """Find and decode the packets of this batch that can carry a name."""
        ip = p.ip_rows()  # row i of keys/a2b/h is packet ip[i]
        proto, sport = p.proto[ip], p.sport[ip]
        plen, pay = p.payload_len[ip], p.payload[ip]
        dns_rows = ((proto == UDP) | (proto == TCP)) & (sport == 53) & (plen >= 12)
        tcp_rows = np.flatnonzero((proto == TCP) & (plen > 0))
        w = _win(p.buf, pay[tcp_rows], 9)
        hello = (w[:, 0] == 0x16) & (w[:, 1] == 3) & (w[:, 5] == 1) & (plen[tcp_rows] >= 6)
        request = HTTP_FIRST[w[:, 0]] & (plen[tcp_rows] >= 16)
        if request.any():
            first4 = np.ascontiguousarray(w[request, :4]).view(">u4").ravel().astype(np.int64)
            request[request] = np.isin(first4, HTTP_CODES)
        # hellos longer than their segment: the flow direction's next segments are needed too
        wh = w[hello]
        hs_len = (wh[:, 6].astype(np.int64) << 16) | (wh[:, 7].astype(np.int64) << 8) | wh[:, 8]
        split_rows = tcp_rows[hello][plen[tcp_rows[hello]] < 9 + hs_len]
        follow = np.concatenate([np.array(self.hellos.keys(), np.uint64), _dirkey(h, a2b, split_rows)])
        cont = np.zeros(len(tcp_rows), bool)
        if len(follow):
            cont = np.isin(_dirkey(h, a2b, tcp_rows), follow) & ~hello
        udp_rows = np.flatnonzero((proto == UDP) & (plen >= quic.MIN_PACKET))
        wq = _win(p.buf, pay[udp_rows], 5)
        version = np.ascontiguousarray(wq[:, 1:5]).view(">u4").ravel()
        initial = ((wq[:, 0] & 0xF0 == 0xC0) & (version == quic.V1)) | ((wq[:, 0] & 0xF0 == 0xD0) & (version == quic.V2))
        todo = np.zeros(len(h), np.int8)
        todo[udp_rows[initial]] = 5
        todo[dns_rows] = 1
        todo[tcp_rows[request]] = 2
        todo[tcp_rows[cont]] = 3
        todo[tcp_rows[hello]] = 4
        rows = np.flatnonzero(todo)
        if not len(rows):
            return
        mem = memoryview(p.buf)
        kinds, starts, sizes = todo[rows].tolist(), pay[rows].tolist(), plen[rows].tolist()
        packet = rows if isinstance(ip, slice) else ip[rows]
        ts, l4s, dirs = p.ts_ns[packet].tolist(), p.l4[packet].tolist(), _dirkey(h, a2b, rows).tolist()
        tcp_row = (proto[rows] == TCP).tolist()
        key_cols = [keys[k][rows].tolist() for k in KEY_COLUMNS]
        for j in range(len(kinds)):
            kind, start = kinds[j], starts[j]
            data = bytes(mem[start : start + sizes[j]])
            if kind == 1:
                self.dns_answer(ts[j], data[2:] if tcp_row[j] else data)
                continue
            key = tuple(col[j] for col in key_cols)
            if kind == 2:
                self.name_flow(key, http.request_host(data), "http")
                continue
            if kind == 5:
                self.name_flow(key, self.quic.datagram(data), "sni")
                continue
            seq = int.from_bytes(mem[l4s[j] + 4 : l4s[j] + 8], "big")
            if kind == 4:
                self.name_flow(key, self.hellos.start(dirs[j], seq, data, key), "sni")
            else:
                done = self.hellos.add(dirs[j], seq, data)
                if done is not None:
                    self.name_flow(done[0], done[1], "sni")


def _dirkey(h: np.ndarray, a2b: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """A key per flow direction: the flow hash with the direction in the low bit."""
    return (h[rows] << np.uint64(1)) | a2b[rows].astype(np.uint64)


def read_traffic(paths: Iterable[str | Path], device: str | None = None, chunk: int = CHUNK) -> Traffic:
    """Flows of all ``paths`` read as one capture, oriented towards ``device``.

    ``chunk`` is how many bytes are read at a time (memory use is a small multiple of it).
    Without a device, the busiest local host that is not the gateway is chosen (a warning says
    so). Damage in a file becomes a warning and the packets before it are kept; raises
    :class:`InputError` only when no packet could be read at all.
    """
    acc = FlowAccumulator()
    names = _Names()
    warnings: list[str] = []
    problems: list[InputError] = []
    total = 0
    unsupported: set[int] = set()
    for path in paths:
        reader = CaptureReader(Path(path), chunk)
        for frames in reader:
            for lt in np.unique(frames.linktype):
                if int(lt) not in SUPPORTED_LINKTYPES and int(lt) not in unsupported:
                    unsupported.add(int(lt))
                    warnings.append(f"{path}: link type {int(lt)} is not supported; its packets are skipped")
            p = decode(frames)
            total += len(p)
            keys, a2b = canonical(p)
            if not len(a2b):
                continue
            h = flow_hash(keys)
            acc.add(packet_flows(p, keys, a2b, h))
            names.scan(p, keys, a2b, h)
        if reader.problem is not None:
            problems.append(reader.problem)
            kept = f"; the {reader.packets} packets before it are used" if reader.packets else ""
            warnings.append(f"{reader.problem}{kept}")
    if total == 0 and problems:
        raise problems[0]
    if names.bad_dns:
        warnings.append(f"{names.bad_dns} malformed DNS responses were skipped")
    if names.quic.failed:
        warnings.append(
            f"{names.quic.failed} QUIC Initial packets could not be decrypted (a server's, a capture "
            "starting mid-handshake, or damage); they named no flow"
        )
    table = acc.result()
    if not table:
        return Traffic(pd.DataFrame(columns=FLOW_COLUMNS), device, total, warnings)
    if device is None:
        chosen = choose_device(table)
        if chosen is not None:
            device = addresses.address_text(*chosen)
            warnings.append(f"no --device given: assuming {device}, the busiest local host that is not the gateway")
    flows = _orient(table, addresses.parse_address(device) if device else None)
    _name(flows, names)
    return Traffic(flows[FLOW_COLUMNS], device, total, warnings)


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


def _orient(table: dict[str, np.ndarray], device: tuple[int, int] | None) -> pd.DataFrame:
    """Flow rows with the device (or, without one, the local/client side) as the local side."""
    a_hi, a_lo, b_hi, b_lo = table["a_hi"], table["a_lo"], table["b_hi"], table["b_lo"]
    if device is not None:
        a_dev = (a_hi == np.uint64(device[0])) & (a_lo == np.uint64(device[1]))
        b_dev = (b_hi == np.uint64(device[0])) & (b_lo == np.uint64(device[1]))
    else:
        a_dev = b_dev = np.zeros(len(a_hi), bool)
    a_loc, b_loc = addresses.is_local(a_hi, a_lo), addresses.is_local(b_hi, b_lo)
    a_local = np.where(a_dev | b_dev, a_dev, np.where(a_loc != b_loc, a_loc, table["a_port"] >= table["b_port"]))

    def pick(a, b):
        return np.where(a_local, a, b)

    flows = pd.DataFrame(
        {
            "proto": table["proto"],
            "protocol": pd.Series(table["proto"]).map(PROTOCOLS).fillna(pd.Series(table["proto"]).astype(str)),
            "l_hi": pick(a_hi, b_hi),
            "l_lo": pick(a_lo, b_lo),
            "r_hi": pick(b_hi, a_hi),
            "r_lo": pick(b_lo, a_lo),
            "local_port": pick(table["a_port"], table["b_port"]),
            "remote_port": pick(table["b_port"], table["a_port"]),
            "local_mac": addresses.mac_texts(pick(table["a_mac"], table["b_mac"])),
            "remote_mac": addresses.mac_texts(pick(table["b_mac"], table["a_mac"])),
            "first_ns": table["first_ns"],
            "last_ns": table["last_ns"],
            "packets_up": pick(table["packets_ab"], table["packets_ba"]),
            "packets_down": pick(table["packets_ba"], table["packets_ab"]),
            "bytes_up": pick(table["bytes_ab"], table["bytes_ba"]),
            "bytes_down": pick(table["bytes_ba"], table["bytes_ab"]),
            "device": a_dev | b_dev,
        }
    )
    for k in KEY_COLUMNS:
        flows["k_" + k] = table[k]
    flows["local_ip"] = addresses.texts(flows["l_hi"].to_numpy(), flows["l_lo"].to_numpy())
    flows["remote_ip"] = addresses.texts(flows["r_hi"].to_numpy(), flows["r_lo"].to_numpy())
    return flows.sort_values("first_ns", kind="stable").reset_index(drop=True)


def _name(flows: pd.DataFrame, names: _Names) -> None:
    """Fill ``name``/``name_source``: the flow's own SNI or Host, else the DNS answer for the
    remote address current at the flow's start (or, failing that, first seen during the flow)."""
    flows["name"] = None
    flows["name_source"] = "none"
    if names.answers:
        ans = pd.DataFrame(names.answers, columns=["r_hi", "r_lo", "ts", "dns_name"])
        ans["r_hi"] = ans["r_hi"].astype(np.uint64)
        ans["r_lo"] = ans["r_lo"].astype(np.uint64)
        ans = ans.sort_values("ts", kind="stable")
        left = flows[["r_hi", "r_lo", "first_ns"]].assign(row=np.arange(len(flows))).sort_values("first_ns")
        before = pd.merge_asof(left, ans, left_on="first_ns", right_on="ts", by=["r_hi", "r_lo"], direction="backward")
        after = pd.merge_asof(left, ans, left_on="first_ns", right_on="ts", by=["r_hi", "r_lo"], direction="forward")
        last = flows["last_ns"].to_numpy()[after["row"].to_numpy()]
        late = after["dns_name"].where(after["ts"].to_numpy() <= last)
        found = before["dns_name"].fillna(late)
        rows = before["row"].to_numpy()
        hit = found.notna().to_numpy()
        flows.loc[rows[hit], "name"] = found.to_numpy()[hit]
        flows.loc[rows[hit], "name_source"] = "dns"
    if names.flow_names:
        direct = pd.DataFrame(
            [(*key, name, source) for key, (name, source) in names.flow_names.items()],
            columns=[*("k_" + k for k in KEY_COLUMNS), "direct", "source"],
        )
        for k in KEY_COLUMNS:
            direct["k_" + k] = direct["k_" + k].astype(flows["k_" + k].dtype)
        merged = flows[["k_" + k for k in KEY_COLUMNS]].merge(direct, how="left", on=["k_" + k for k in KEY_COLUMNS])
        hit = merged["direct"].notna().to_numpy()
        flows.loc[hit, "name"] = merged["direct"].to_numpy()[hit]
        flows.loc[hit, "name_source"] = merged["source"].to_numpy()[hit]
