"""read_capture: one pass gives the device's packets with their flow, the flow table and the markers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.bench.markers import Marker, encode_marker
from harness.correlate import read_capture
from harness.net import synth

T0 = 1_700_000_000 * 10**9
DEV, GW, SRV, BENCH = "192.168.1.20", "192.168.1.1", "52.94.227.146", "192.168.1.5"
DM, GM, BM = "02:00:00:00:00:20", "02:00:00:00:00:01", "02:00:00:00:00:05"


def up(dst: str, seg: bytes, proto: int = 6) -> bytes:
    return synth.ethernet(DM, GM, 0x0800, synth.ipv4(DEV, dst, proto, seg))


def down(src: str, seg: bytes, proto: int = 6) -> bytes:
    return synth.ethernet(GM, DM, 0x0800, synth.ipv4(src, DEV, proto, seg))


def test_one_pass_gives_packets_flows_and_markers(tmp_path: Path) -> None:
    marker = Marker("run-1", 7, T0, T0 + 5, 3, 1, 0)
    frames = [
        down(
            GW, synth.udp(53, 5000, synth.dns_response("a.example.com", [("a.example.com", "A", "198.51.100.7")])), 17
        ),
        up("198.51.100.7", synth.tcp(1000, 443, b"hello")),
        down(SRV, synth.tcp(443, 1001, b"x" * 300)),
        synth.ethernet(
            BM, GM, 0x0800, synth.ipv4(BENCH, "192.168.1.9", 17, synth.udp(40000, 9999, encode_marker(marker)))
        ),
        up(SRV, synth.tcp(1001, 443, b"y" * 100)),
    ]
    path = tmp_path / "x.pcap"
    # written out of time order: packets come back sorted
    stamps = [T0 + 1, T0 + 2, T0 + 4, T0 + 3, T0 + 3]
    path.write_bytes(synth.pcap_bytes(list(zip(stamps, frames, strict=False)), nanos=True))
    view = read_capture([path], DEV)
    assert view.markers == [(T0 + 3, marker)]
    assert (view.first_ns, view.last_ns) == (T0 + 1, T0 + 4)
    assert {"protocol", "proto", "remote_ip", "remote_port", "local_port", "endpoint", "owner", "service"} <= set(
        view.flows
    )
    p = view.packets
    assert list(p.ts_ns) == [T0 + 2, T0 + 3, T0 + 4]  # the DNS answer is name service: left out
    assert list(p.up) == [True, True, False]
    assert list(p.endpoint) == ["a.example.com", SRV, SRV]
    rows = view.flows.iloc[p.flow]
    assert list(zip(rows["remote_ip"], rows["remote_port"], rows["proto"], rows["protocol"], strict=False)) == [
        ("198.51.100.7", 443, 6, "tcp"),
        (SRV, 443, 6, "tcp"),
        (SRV, 443, 6, "tcp"),
    ]
    assert view.flows.set_index("endpoint").loc[SRV, "owner"] == "Amazon"
    assert set(view.endpoints["endpoint_id"]) == set(view.flows["endpoint"])


def test_unsupported_link_type_gives_an_empty_table_with_all_columns(tmp_path: Path) -> None:
    path = tmp_path / "x.pcap"
    path.write_bytes(synth.pcap_bytes([(T0, b"\x00" * 40)], linktype=147))
    view = read_capture([path], DEV)
    assert len(view.packets) == 0 and view.flows.empty
    assert {"protocol", "proto", "remote_ip", "remote_port", "local_port", "endpoint", "owner", "service"} <= set(
        view.flows
    )
    assert view.packets.flow.dtype == np.int64
    assert any("link type 147" in w for w in view.warnings)


def test_real_capture_packets_agree_with_the_flow_table(echo_captures: Path) -> None:
    path = echo_captures / "tell_me_a_joke_5x30s.pcapng"
    if not path.is_file():
        pytest.skip("capture absent")
    view = read_capture([path], "192.168.86.40")
    flows = view.flows
    for column, total in (("bytes_up", view.packets.up), ("bytes_down", ~view.packets.up)):
        per_flow = np.bincount(view.packets.flow[total], weights=view.packets.length[total], minlength=len(flows))
        contact = ~flows["service"].to_numpy()
        assert np.array_equal(per_flow[contact].astype(np.int64), flows[column].to_numpy()[contact])
