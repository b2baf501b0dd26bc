"""What correlation needs from captures: the device's packets with their endpoint, its named
flows, and the sync markers found anywhere in the capture.

Built on :mod:`harness.net` and :mod:`harness.classify`: one ``read_traffic`` pass gives the flows,
names and the device's packets (and finds the markers through its batch collector), or the
same read in parts (:func:`capture_parts`, :func:`read_capture_part`, :func:`capture_from_parts`);
``classify_flows`` gives each flow its endpoint (name, else remote address) and owner.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness.bench.markers import MAGIC, Marker, decode_marker
from harness.classify import classify_flows
from harness.errors import HarnessError, InputError
from harness.net import Packets, Traffic, parts, read_traffic
from harness.net.decode import UDP
from harness.net.flow_table import finish
from harness.progress import Progress, no_progress

# Name-service and multicast chatter is the device asking, not the device contacting a service.
SERVICE_PORTS = frozenset({53, 5353, 5355, 67, 68, 1900})


@dataclass
class DevicePackets:
    """One row per packet to or from the device, in time order; ``flow`` is the packet's row in
    :attr:`CaptureView.flows` (its remote address, port, protocol, endpoint, owner)."""

    ts_ns: np.ndarray
    length: np.ndarray
    up: np.ndarray
    endpoint: np.ndarray
    flow: np.ndarray

    def __len__(self) -> int:
        return len(self.ts_ns)


@dataclass
class CaptureView:
    """The device's packets and flows and the markers as ``(capture_ns, Marker)`` pairs in
    capture order. ``flows`` has the flow table's columns (``protocol``, ``proto``, ``remote_ip``,
    ``remote_port``, ``local_port``, names, ...) plus ``endpoint``, ``owner``, ``owner_source``,
    ``network`` and ``service``; ``endpoints`` is the classified endpoint table
    (``harness.classify.ENDPOINT_COLUMNS``)."""

    device: str | None
    packets: DevicePackets
    flows: pd.DataFrame
    markers: list[tuple[int, Marker]]
    first_ns: int
    last_ns: int
    warnings: list[str] = field(default_factory=list)
    endpoints: pd.DataFrame = field(default_factory=pd.DataFrame)


def is_service(flows: pd.DataFrame) -> pd.Series:
    """Flows that are name service, DHCP or multicast discovery rather than contact."""
    multicast = flows["remote_ip"].astype(str).str.match(r"^(22[4-9]|23\d)\.|^ff[0-9a-f]{2}:|^255\.")
    return flows["remote_port"].isin(SERVICE_PORTS) | flows["local_port"].isin(SERVICE_PORTS) | multicast


class _Seen:
    """What every batch contributes besides flows: the capture's time span and its markers (a
    :class:`harness.net.traffic.Collector`)."""

    def __init__(self) -> None:
        self.first, self.last = np.iinfo(np.int64).max, np.iinfo(np.int64).min
        self.markers: list[tuple[int, Marker]] = []

    def __call__(self, p: Packets) -> None:
        if len(p):
            self.first, self.last = min(self.first, int(p.ts_ns.min())), max(self.last, int(p.ts_ns.max()))
        self.markers.extend(_markers(p))

    def merge(self, later: _Seen) -> None:
        self.first, self.last = min(self.first, later.first), max(self.last, later.last)
        self.markers.extend(later.markers)


def read_capture(
    paths: Sequence[str | Path], device: str | None, progress: Progress = no_progress, jobs: int | None = None
) -> CaptureView:
    """Read ``paths`` once, as one capture: flows and names of ``device`` (chosen when None, with a
    warning), its packets, and every sync marker datagram whatever its addresses. ``progress``
    hears "reading captures" (bytes) and "naming endpoints"; ``jobs`` as for ``read_traffic``."""
    _check(paths)
    seen = _Seen()
    traffic = read_traffic(paths, device, device_packets=True, collector=seen, progress=progress, jobs=jobs)
    return _view(paths, traffic, seen, progress)


def capture_parts(paths: Sequence[str | Path], part_size: int = parts.MIN_PART) -> list[parts.Part]:
    """The parts :func:`read_capture_part` reads ``paths`` in (for work spread over machines)."""
    _check(paths)
    return parts.plan(list(paths), part_size)


def read_capture_part(part: parts.Part) -> parts.PartResult:
    """One part of a capture, read as :func:`read_capture` needs it (picklable both ways)."""
    return parts.read_part(part, device_packets=True, collector=_Seen())


def capture_from_parts(
    paths: Sequence[str | Path],
    device: str | None,
    plan: list[parts.Part],
    results: Sequence[parts.PartResult],
    progress: Progress = no_progress,
) -> CaptureView:
    """What :func:`read_capture` gives, from the results of :func:`read_capture_part` for every
    part of ``plan`` (:func:`capture_parts`), in order."""
    seen = _Seen()
    readout = parts.combine(plan, results, device_packets=True, collector=seen)
    return _view(paths, finish(readout, device, True), seen, progress)


def _check(paths: Sequence[str | Path]) -> None:
    if not paths:
        raise HarnessError("no capture files given")
    for path in paths:
        if not Path(path).is_file():
            raise InputError(path, "no such capture file")


def _view(paths: Sequence[str | Path], traffic: Traffic, seen: _Seen, progress: Progress) -> CaptureView:
    """The device's packets and classified flows, and the markers, of what was read."""
    if traffic.packets == 0:
        raise HarnessError(f"no packets in {', '.join(map(str, paths))}")
    progress("naming endpoints")
    table = classify_flows(traffic.flows)
    flows = table.flows.assign(service=is_service(table.flows).astype(bool))
    rows = traffic.device_packets
    assert rows is not None  # asked for above
    row_of = np.cumsum(traffic.flows["device"].to_numpy(bool)) - 1  # a device flow's row in ``flows``
    flow = row_of[rows.flow]
    keep = ~flows["service"].to_numpy(bool)[flow]
    order = np.argsort(rows.ts_ns[keep], kind="stable")
    flow = flow[keep][order]
    packets = DevicePackets(
        rows.ts_ns[keep][order],
        rows.length[keep][order],
        rows.up[keep][order],
        flows["endpoint"].to_numpy(object)[flow],
        flow,
    )
    seen.markers.sort(key=lambda pair: pair[0])
    first, last = (seen.first, seen.last) if seen.first <= seen.last else (0, 0)
    return CaptureView(
        traffic.device, packets, flows, seen.markers, first, last, list(traffic.warnings), table.endpoints
    )


def _markers(p: Packets) -> list[tuple[int, Marker]]:
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
