"""Packet captures: a streaming pcap/pcapng reader, header decoding, naming and flows.

- :class:`CaptureReader` frames a file into batches of records (bounded memory);
- :func:`read_packets` yields decoded per-packet columns (:class:`Packets`);
- :func:`read_traffic` gives the flow table with names and the device's orientation (and, on
  request, the device's packets) as :class:`Traffic`; ``harness.classify.classify_endpoints``
  (its numpy columns) or ``classify_flows`` (its DataFrame) turns it into endpoints.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from harness.net.addresses import parse_address
from harness.net.decode import Packets, decode
from harness.net.flow_table import FLOW_COLUMNS, PacketRows, Traffic
from harness.net.framing import CaptureReader, Frames
from harness.net.traffic import read_traffic


def read_packets(path: str | Path, device: str | None = None) -> Iterator[Packets]:
    """Decoded packets of one capture in batches; damage raises the reader's InputError at the
    end, after every packet before it was yielded."""
    reader = CaptureReader(Path(path))
    dev = parse_address(device) if device else None
    for frames in reader:
        yield decode(frames, dev)
    if reader.problem is not None:
        raise reader.problem


__all__ = [
    "FLOW_COLUMNS",
    "CaptureReader",
    "Frames",
    "PacketRows",
    "Packets",
    "Traffic",
    "decode",
    "read_packets",
    "read_traffic",
]
