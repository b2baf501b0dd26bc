"""Reading captures in parts (several processes, byte ranges) gives exactly what one pass gives.

Parts are forced tiny so that many splits fall inside TLS handshakes, DNS and QUIC exchanges;
each comparison is against ``jobs=1``, the one-pass reader: flows, names, warnings, packet counts,
the device's packets and what a collector saw.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_net_fastpath import DEV, odd_frames, write

from harness.cli.main import main
from harness.correlate.capture import _Seen, capture_from_parts, capture_parts, read_capture, read_capture_part
from harness.net import parts, read_traffic, synth
from harness.net.flow_table import Traffic, finish
from harness.net.framing import CaptureReader, Interface, Section, guess_record

T0 = 1_700_000_000 * 10**9


def one_pass(paths: list[Path], device: str | None = None) -> Traffic:
    return read_traffic(paths, device, jobs=1, device_packets=True)


def in_parts(paths: list[Path], part_size: int, device: str | None = None) -> tuple[Traffic, list[parts.PartResult]]:
    """Traffic of ``paths`` read part by part in this process, with the parts' results."""
    plan = parts.plan(paths, part_size)
    results = [parts.read_part(p, device_packets=True) for p in plan]
    return finish(parts.combine(plan, results, device_packets=True), device, True), results


def assert_same(a: Traffic, b: Traffic) -> None:
    pd.testing.assert_frame_equal(a.flows, b.flows)
    assert (a.device, a.packets, a.warnings) == (b.device, b.packets, b.warnings)
    for name in ("ts_ns", "length", "up", "flow"):
        np.testing.assert_array_equal(getattr(a.device_packets, name), getattr(b.device_packets, name))


def record_starts(path: Path) -> set[int]:
    return {int(o) for frames in CaptureReader(path) for o in frames.file_offset}


def test_real_captures_in_tiny_parts(echo_captures: Path) -> None:
    files = sorted(echo_captures.glob("*.pcap*")) + sorted((echo_captures / "dev").glob("*.pcap*"))
    assert len(files) >= 2
    splits = carried = 0
    for path in files:
        reference = one_pass([path])
        traffic, results = in_parts([path], 24 << 10)
        assert_same(reference, traffic)
        splits += len(results) - 1
        carried += sum(bool(r.left) for r in results[:-1])
    # the splits did cut TCP directions in progress (handshakes) that had to be followed
    assert splits > 1000 and carried > 20


def test_real_captures_by_several_processes(echo_captures: Path) -> None:
    files = sorted((echo_captures / "dev").glob("*.pcap"))[:6] + sorted(echo_captures.glob("*.pcapng"))
    reference = one_pass(files)  # several files read as one capture: names state crosses files too
    assert_same(reference, read_traffic(files, jobs=2, part_size=64 << 10, device_packets=True))


def test_odd_captures_split_everywhere(tmp_path: Path) -> None:
    path = write(tmp_path / "odd.pcap", odd_frames())
    reference = one_pass([path], DEV)
    named = set(reference.flows["name"].dropna())
    assert {"api.amazonalexa.com", "split.example.com", "early.example.com"} <= named
    for size in (300, 700, 1500, 4000):
        assert_same(reference, in_parts([path], size, DEV)[0])
    assert_same(reference, read_traffic([path], DEV, jobs=2, part_size=500, device_packets=True))


def test_pcapng_sections_and_interfaces_across_parts(tmp_path: Path) -> None:
    frames = odd_frames()
    body = synth.pcapng_section() + synth.pcapng_interface(1, 9)
    for i, frame in enumerate(frames[: len(frames) // 2]):
        body += synth.pcapng_packet(0, T0 + i * 10**6, frame)
    # a new section in the other byte order halfway: parts guessed after it start in the wrong one
    body += synth.pcapng_section(big=True) + synth.pcapng_interface(1, 6, big=True)
    for i, frame in enumerate(frames[len(frames) // 2 :]):
        body += synth.pcapng_packet(0, (T0 + 10**9 + i * 10**6) // 1000, frame, big=True)
    path = tmp_path / "x.pcapng"
    path.write_bytes(body)
    reference = one_pass([path], DEV)
    for size in (400, 1000, 3000):
        assert_same(reference, in_parts([path], size, DEV)[0])


def fake_chain_capture(path: Path) -> tuple[int, int]:
    """A classic pcap whose middle packet's payload holds a chain of fake record headers; returns
    (where the fake chain starts, the file size)."""
    fake = b""
    for _ in range(20):  # 16-byte record headers, each leading to the next
        fake += struct.pack("<IIII", T0 // 10**9, 0, 8, 8) + bytes(8)
    frames = []
    for i in range(40):
        payload = fake if i == 20 else bytes([i]) * 40
        ip = synth.ipv4("192.168.1.20", "198.51.100.1", 17, synth.udp(5000 + i, 53000, payload))
        frames.append((T0 + i * 10**6, synth.ethernet("02:00:00:00:00:20", "02:00:00:00:00:01", 0x0800, ip)))
    data = synth.pcap_bytes(frames)
    path.write_bytes(data)
    return data.index(fake), len(data)


def test_wrong_split_guess_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "fake.pcap"
    fake_at, _ = fake_chain_capture(path)
    assert fake_at not in record_starts(path)
    # a split just before the fake chain, whose guess landed in the payload
    plan = [parts.Part(0, str(path), 0, fake_at - 1, follow=(str(path), None)), parts.Part(0, str(path), fake_at, None)]
    results = [parts.read_part(p, device_packets=True) for p in plan]
    assert results[0].next_start in record_starts(path)  # the reader says where the next record really is
    assert results[1].total == 20 + 19  # the fake records read as packets: not to be used
    reference = one_pass([path])
    assert reference.packets == 40
    assert_same(reference, finish(parts.combine(plan, results, device_packets=True), None, True))


def test_guess_finds_the_next_record_and_can_be_fooled(tmp_path: Path) -> None:
    path = tmp_path / "fake.pcap"
    fake_at, _ = fake_chain_capture(path)
    starts = sorted(record_starts(path))
    assert guess_record(path, starts[5] + 3, None) == starts[6]
    assert guess_record(path, fake_at - 1, None) == fake_at  # a payload can fool the guess
    assert fake_at not in starts


def test_guess_is_not_fooled_by_a_stream_of_alike_packets(tmp_path: Path) -> None:
    # fixed-size packets of alike content (an audio stream) repeat with the record's period: a
    # chain of records can be read from inside them unless the timestamps are checked too
    dev_mac, gw_mac = "02:00:00:00:00:20", "02:00:00:00:00:01"
    frame = synth.ethernet(
        gw_mac, dev_mac, 0x0800, synth.ipv4("203.0.113.50", DEV, 6, synth.tcp(443, 40000, bytes(100)))
    )
    path = tmp_path / "stream.pcap"
    path.write_bytes(synth.pcap_bytes((1_700_000_000 * 10**9 + i * 20 * 10**6, frame) for i in range(4000)))
    starts = sorted(record_starts(path))
    for offset in range(24, starts[-10], 4999):  # a chain of 8 records must follow
        assert guess_record(path, offset, None) == next(s for s in starts if s >= offset)


def test_guess_finds_records_longer_than_its_first_look(tmp_path: Path) -> None:
    # 9 KB jumbo frames: a chain of 8 records spans 72 KB, past the first 16 and 64 KiB looked at
    frame = synth.ethernet(
        "02:00:00:00:00:01",
        "02:00:00:00:00:20",
        0x0800,
        synth.ipv4("203.0.113.50", DEV, 17, synth.udp(443, 40000, bytes(9000))),
    )
    path = tmp_path / "jumbo.pcap"
    path.write_bytes(synth.pcap_bytes((1_700_000_000 * 10**9 + i * 10**6, frame) for i in range(60)))
    starts = sorted(record_starts(path))
    for offset in (starts[3] + 1, starts[20] + 5000):
        assert guess_record(path, offset, None) == next(s for s in starts if s >= offset)
    assert guess_record(path, starts[3] + 1, None, window=16 << 10) is None  # no chain of 8 fits there


def test_reading_processes_start_without_pandas() -> None:
    # parts are read by forked processes: pandas (0.3 s to load) or the cipher and certificate
    # library (0.08 s; few packets need it) would delay every one of them
    code = "import sys, harness.net, harness.net.parts; print(sorted({'pandas', 'cryptography'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("where", [0.3, 0.7])
def test_damage_in_the_middle(tmp_path: Path, where: float) -> None:
    path = write(tmp_path / "odd.pcap", odd_frames())
    data = bytearray(path.read_bytes())
    starts = sorted(record_starts(path))
    bad = starts[int(len(starts) * where)]
    data[bad + 8 : bad + 12] = struct.pack("<I", 10**8)  # an absurd record length
    path.write_bytes(bytes(data))
    reference = one_pass([path], DEV)
    assert any(f"byte {bad}: absurd record length" in w for w in reference.warnings)
    for size in (300, 1000, 5000):
        assert_same(reference, in_parts([path], size, DEV)[0])


def test_torn_end_and_several_files(tmp_path: Path) -> None:
    a = write(tmp_path / "a.pcap", odd_frames(), torn=7)
    b = write(tmp_path / "b.pcap", odd_frames()[::-1])
    reference = one_pass([a, b], DEV)
    assert any("truncated record" in w for w in reference.warnings)
    assert_same(reference, in_parts([a, b], 600, DEV)[0])


def test_capture_view_from_parts_matches_one_pass(tmp_path: Path) -> None:
    path = write(tmp_path / "odd.pcap", odd_frames())
    reference = read_capture([path], DEV, jobs=1)
    plan = capture_parts([path], 800)
    assert len(plan) > 5
    view = capture_from_parts([path], DEV, plan, [read_capture_part(p) for p in plan])
    pd.testing.assert_frame_equal(reference.flows, view.flows)
    assert (reference.first_ns, reference.last_ns, reference.markers) == (view.first_ns, view.last_ns, view.markers)
    np.testing.assert_array_equal(reference.packets.ts_ns, view.packets.ts_ns)


def test_collector_merge_keeps_span_and_markers() -> None:
    early, late = _Seen(), _Seen()
    early.first, early.last, late.first, late.last = 5, 9, 7, 12
    early.markers, late.markers = [(5, "a")], [(8, "b")]
    early.merge(late)
    assert (early.first, early.last, early.markers) == (5, 12, [(5, "a"), (8, "b")])


def test_a_part_cut_before_a_new_section_reports_the_section_of_its_records(tmp_path: Path) -> None:
    frames = odd_frames()
    head = synth.pcapng_section() + synth.pcapng_interface(1, 9)
    little = b"".join(synth.pcapng_packet(0, T0 + i, f) for i, f in enumerate(frames))
    big = synth.pcapng_section(big=True) + synth.pcapng_interface(1, 9, big=True)
    big += b"".join(synth.pcapng_packet(0, T0 + 100 + i, f, big=True) for i, f in enumerate(frames))
    path = tmp_path / "x.pcapng"
    path.write_bytes(head + little + big)
    starts = sorted(record_starts(path))
    # the part ends at the little-endian section's last record; its read reaches the new section
    part = parts.Part(0, str(path), 0, starts[len(frames) - 1], follow=(str(path), None))
    result = parts.read_part(part)
    assert result.next_start == starts[len(frames) - 1]
    # the section of the records before the new one, not the big-endian one framed after them
    assert result.next_section == Section(False, (Interface(1, 262144, 1, 1, 0),))
    assert parts.first_section(path) == result.next_section
    reference = one_pass([path], DEV)
    traffic, results = in_parts([path], 300, DEV)
    assert len(results) > 5
    assert_same(reference, traffic)


def test_progress_reports_the_bytes_of_the_parts_read(tmp_path: Path) -> None:
    path = write(tmp_path / "odd.pcap", odd_frames())
    heard: list[tuple[str, float, float | None]] = []
    read_traffic([path], DEV, jobs=2, part_size=2000, progress=lambda *a: heard.append(a))
    done = [d for step, d, _ in heard if step == "reading captures"]
    assert len(done) > 3 and done == sorted(done) and done[-1] == path.stat().st_size
    assert {total for _, _, total in heard} == {path.stat().st_size}


def test_net_command_jobs_option(tmp_path: Path, capsys) -> None:
    path = write(tmp_path / "odd.pcap", odd_frames())
    outputs = []
    for jobs in ("1", "2"):
        assert main(["net", str(path), "--device", DEV, "--format", "json", "--jobs", jobs]) == 0
        outputs.append(json.loads(capsys.readouterr().out))
    assert outputs[0] == outputs[1] and outputs[0]["endpoints"]
    with pytest.raises(SystemExit) as usage:
        main(["net", str(path), "--jobs", "0"])
    assert usage.value.code == 2 and "--jobs: must be >= 1" in capsys.readouterr().err


def _jobs_here(path: str) -> int:
    return parts.default_jobs([path])


def test_default_jobs_all_cores_for_large_inputs_one_for_small_or_in_a_pool_worker(tmp_path: Path) -> None:
    large = tmp_path / "large.pcap"
    with open(large, "wb") as fh:
        fh.truncate(parts.LARGE)  # sparse: only its size is looked at
    assert parts.default_jobs([large]) == len(os.sched_getaffinity(0))
    assert parts.default_jobs([write(tmp_path / "small.pcap", odd_frames())]) == 1
    with multiprocessing.get_context("fork").Pool(1) as pool:  # a daemonic process may not start any
        assert pool.map(_jobs_here, [str(large)]) == [1]
