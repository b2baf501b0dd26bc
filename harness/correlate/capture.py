"""What correlation needs from captures: the device's packets with their endpoint, its named
flows, and the sync markers found anywhere in the capture.

Built on :mod:`harness.net`: ``read_traffic`` for flows and names, ``read_packets`` for
per-packet times; a packet's endpoint is the name of its flow (else the remote address).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness.bench.markers import MAGIC, Marker, decode_marker
from harness.errors import HarnessError, InputError
from harness.net import read_packets, read_traffic
from harness.net.addresses import texts
from harness.net.decode import UDP

# Name-service and multicast chatter is the device asking, not the device contacting a service.
SERVICE_PORTS = frozenset({53, 5353, 5355, 67, 68, 1900})
_JOIN = ["proto", "remote_ip", "remote_port", "local_port"]


@dataclass
class DevicePackets:
    """One row per packet to or from the device, in time order."""

    ts_ns: np.ndarray
    length: np.ndarray
    up: np.ndarray
    endpoint: np.ndarray

    def __len__(self) -> int:
        return len(self.ts_ns)


@dataclass
class CaptureView:
    """The device's packets and flows (``flows`` has an ``endpoint`` column) and the markers
    as ``(capture_ns, Marker)`` pairs in capture order."""

    device: str | None
    packets: DevicePackets
    flows: pd.DataFrame
    markers: list[tuple[int, Marker]]
    first_ns: int
    last_ns: int
    warnings: list[str] = field(default_factory=list)


def endpoint_names(flows: pd.DataFrame) -> pd.Series:
    """A flow's endpoint: its learned name, else its remote address."""
    return flows["name"].fillna(flows["remote_ip"]).astype(str)


def is_service(flows: pd.DataFrame) -> pd.Series:
    """Flows that are name service, DHCP or multicast discovery rather than contact."""
    multicast = flows["remote_ip"].astype(str).str.match(r"^(22[4-9]|23\d)\.|^ff[0-9a-f]{2}:|^255\.")
    return flows["remote_port"].isin(SERVICE_PORTS) | flows["local_port"].isin(SERVICE_PORTS) | multicast


def read_capture(paths: Sequence[str | Path], device: str | None) -> CaptureView:
    """Read ``paths`` as one capture: flows and names of ``device`` (chosen when None, with a
    warning), its packets, and every sync marker datagram whatever its addresses."""
    if not paths:
        raise HarnessError("no capture files given")
    for path in paths:
        if not Path(path).is_file():
            raise InputError(path, "no such capture file")
    traffic = read_traffic(paths, device)
    if traffic.packets == 0:
        raise HarnessError(f"no packets in {', '.join(map(str, paths))}")
    warnings = list(traffic.warnings)
    flows = traffic.flows[traffic.flows["device"]].copy()
    flows["endpoint"] = endpoint_names(flows)
    flows["service"] = is_service(flows)
    frames: list[pd.DataFrame] = []
    markers: list[tuple[int, Marker]] = []
    first, last = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    for path in paths:
        try:
            for p in read_packets(path, traffic.device):
                if len(p):
                    first, last = min(first, int(p.ts_ns.min())), max(last, int(p.ts_ns.max()))
                markers.extend(_markers(p))
                mine = np.flatnonzero(p.direction != 0)
                if not len(mine):
                    continue
                up = p.direction[mine] > 0
                frames.append(
                    pd.DataFrame(
                        {
                            "ts_ns": p.ts_ns[mine],
                            "length": p.length[mine].astype(np.int64),
                            "up": up,
                            "proto": p.proto[mine],
                            "remote_ip": texts(np.where(up, p.dst_hi[mine], p.src_hi[mine]), np.where(up, p.dst_lo[mine], p.src_lo[mine])),
                            "remote_port": np.where(up, p.dport[mine], p.sport[mine]),
                            "local_port": np.where(up, p.sport[mine], p.dport[mine]),
                        }
                    )
                )
        except InputError:
            pass  # read_traffic already turned this damage into a warning and kept what came before
    packets = _packets(frames, flows)
    markers.sort(key=lambda pair: pair[0])
    if first > last:
        first = last = 0
    return CaptureView(traffic.device, packets, flows.reset_index(drop=True), markers, first, last, warnings)


def _packets(frames: list[pd.DataFrame], flows: pd.DataFrame) -> DevicePackets:
    if not frames:
        empty = np.array([], np.int64)
        return DevicePackets(empty, empty, np.array([], bool), np.array([], object))
    table = pd.concat(frames, ignore_index=True)
    keys = flows.assign(proto=flows["protocol"].map({"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58}).fillna(-1).astype(np.int64))
    keys = keys[_JOIN + ["endpoint", "service"]].drop_duplicates(_JOIN)
    table = table.merge(keys, how="left", on=_JOIN)
    table["endpoint"] = table["endpoint"].fillna(table["remote_ip"])
    table = table[~table["service"].fillna(False).astype(bool)].sort_values("ts_ns", kind="stable")
    return DevicePackets(
        table["ts_ns"].to_numpy(np.int64),
        table["length"].to_numpy(np.int64),
        table["up"].to_numpy(bool),
        table["endpoint"].to_numpy(object),
    )


def _markers(p) -> list[tuple[int, Marker]]:
    """Sync markers in a batch: UDP payloads that start with the marker magic and decode."""
    udp = np.flatnonzero((p.proto == UDP) & (p.payload_len >= 6 + 31))
    if not len(udp):
        return []
    start = p.payload[udp]
    head = np.stack([p.buf[np.minimum(start + i, len(p.buf) - 1)] for i in range(4)], axis=1)
    hits = udp[(head == np.frombuffer(MAGIC, np.uint8)).all(axis=1)]
    found = []
    for i in hits:
        payload = p.buf[p.payload[i] : p.payload[i] + p.payload_len[i]].tobytes()
        marker = decode_marker(payload)
        if marker is not None:
            found.append((int(p.ts_ns[i]), marker))
    return found
