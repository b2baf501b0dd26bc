"""The flow table: grouping, merging batches in any grouping, spilling idle flows to disk and back."""

from __future__ import annotations

import gc
import stat
from pathlib import Path

import numpy as np
import pytest

from harness.net import CaptureReader, synth
from harness.net.decode import decode
from harness.net.flows import (
    FILE_SHIFT,
    KEY_COLUMNS,
    FlowAccumulator,
    _group,
    canonical,
    flow_hash,
    merge,
    packet_flows,
    rows,
)

T0 = 1_700_000_000_000_000_000
MINUTE = 60 * 10**9
DEV, GW = "10.0.0.5", "10.0.0.1"
DEV_MAC, GW_MAC = "02:00:00:00:00:05", "02:00:00:00:00:01"


def batches(paths: list[Path], chunk: int) -> list[dict[str, np.ndarray]]:
    """Per-batch flow tables of ``paths`` read as one capture, ``chunk`` bytes at a time."""
    tables = []
    for n, path in enumerate(paths):
        for frames in CaptureReader(path, chunk):
            p = decode(frames)
            keys, a2b = canonical(p)
            tables.append(packet_flows(p, keys, a2b, flow_hash(keys), n))
    return tables


def accumulate(tables: list[dict[str, np.ndarray]], acc: FlowAccumulator) -> dict[str, np.ndarray]:
    with acc:
        for t in tables:
            acc.add(dict(t))
        return acc.result()


def assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def many_short_flows(path: Path) -> None:
    """Two hours of HTTPS: 2,000 flows of up to half an hour, and an NTP flow (one 5-tuple) that
    comes back every 30 minutes."""
    rng = np.random.default_rng(7)
    frames = []
    for i in range(2000):
        t = T0 + int(rng.integers(0, 120 * MINUTE)) // 1000 * 1000
        server = f"93.184.{i % 7}.{i % 250 + 1}"
        sport = 30000 + i
        step = int(rng.integers(1, 10 * MINUTE)) // 1000 * 1000  # some flows outlast a spill
        for k in range(int(rng.integers(1, 5))):
            out = k % 2 == 0
            src, dst = (DEV, server) if out else (server, DEV)
            ports = (sport, 443) if out else (443, sport)
            macs = (DEV_MAC, GW_MAC) if out else (GW_MAC, DEV_MAC)
            tcp = synth.tcp(*ports, b"x" * (10 * k + 1))
            frames.append((t + k * step, synth.ethernet(*macs, synth.ETH_IPV4, synth.ipv4(src, dst, 6, tcp))))
    for k in range(5):
        udp = synth.udp(123, 123, b"\x23" + bytes(47))
        frames.append(
            (T0 + k * 30 * MINUTE, synth.ethernet(DEV_MAC, GW_MAC, synth.ETH_IPV4, synth.ipv4(DEV, GW, 17, udp)))
        )
    frames.sort(key=lambda f: f[0])
    path.write_bytes(synth.pcap_bytes(frames, nanos=True))


def test_spilling_idle_flows_gives_the_same_table(tmp_path: Path) -> None:
    path = tmp_path / "short.pcap"
    many_short_flows(path)
    tables = batches([path], 4096)
    whole = accumulate(tables, FlowAccumulator())
    spilling = FlowAccumulator(idle_ns=MINUTE, spill_rows=10, merge_rows=20)
    spilled = accumulate(tables, spilling)
    assert spilling.spilled > 3 and spilling.spilled_rows > 1000  # the thresholds did make it spill
    assert rows(whole) == 2001
    assert_same(whole, spilled)
    ntp = whole["b_port"] == 123
    both = whole["packets_ab"] + whole["packets_ba"]
    assert both[ntp].tolist() == [5]  # one flow, though spilled between its packets


def test_spilling_a_real_capture_gives_the_same_table(echo_captures: Path) -> None:
    paths = sorted((echo_captures / "dev").glob("*.pcap*"))[:3]
    tables = batches(paths, 64 * 1024)
    whole = accumulate(tables, FlowAccumulator())
    spilling = FlowAccumulator(idle_ns=2 * 10**9, spill_rows=5, merge_rows=10)
    assert_same(whole, accumulate(tables, spilling))
    assert spilling.spilled > 1


def test_spill_folder_is_private_and_removed_also_after_an_error(tmp_path: Path) -> None:
    path = tmp_path / "short.pcap"
    many_short_flows(path)
    tables = batches([path], 4096)
    acc = FlowAccumulator(idle_ns=MINUTE, spill_rows=10, merge_rows=20)
    folders = []
    with pytest.raises(RuntimeError), acc:
        for t in tables:
            acc.add(t)
            if acc.folder is not None and not folders:
                folders.append(acc.folder)
                assert stat.S_IMODE(acc.folder.stat().st_mode) == 0o700
        assert any(acc.folder.rglob("*.npy"))
        raise RuntimeError("reading failed")
    assert folders and not folders[0].exists()
    done = FlowAccumulator(idle_ns=MINUTE, spill_rows=10, merge_rows=20)
    for t in batches([path], 4096):
        done.add(t)
    folder = done.folder
    assert folder is not None and folder.exists()
    done.result()
    assert not folder.exists()
    dropped = FlowAccumulator(idle_ns=MINUTE, spill_rows=10, merge_rows=20)  # as when reading raised
    for t in batches([path], 4096):
        dropped.add(t)
    folder = dropped.folder
    assert folder is not None and folder.exists()
    del dropped
    gc.collect()
    assert not folder.exists()


def test_merge_in_any_grouping_gives_one_table(echo_captures: Path) -> None:
    paths = sorted((echo_captures / "dev").glob("*.pcap*"))[:2]
    tables = batches(paths, 32 * 1024)
    assert len(tables) > 6
    third = len(tables) // 3
    a, b, c = tables[:third], tables[third : 2 * third], tables[2 * third :]
    left = merge([merge([merge(a), merge(b)]), merge(c)])
    right = merge([merge(a), merge([merge(b), merge(c)])])
    assert_same(left, right)
    assert_same(left, merge(tables))
    # reversed, the rows come in another order but hold the same flows, first positions included
    back = merge(tables[::-1])
    order = np.argsort(back["first_pos"], kind="stable")
    assert_same(left, {name: col[order] for name, col in back.items()})
    assert (np.diff(left["first_pos"].astype(np.int64)) > 0).all()  # in order of first packet
    assert len(set(left["first_pos"] >> np.uint64(FILE_SHIFT))) == 2  # both files


def test_narrow_columns_keep_extreme_values(tmp_path: Path) -> None:
    path = tmp_path / "ports.pcap"
    frames = [
        (T0, synth.ethernet(DEV_MAC, GW_MAC, synth.ETH_IPV4, synth.ipv4(DEV, GW, 17, synth.udp(65535, 1, b"a")))),
        (T0 + 1, synth.ethernet(DEV_MAC, GW_MAC, synth.ETH_IPV4, synth.ipv4(DEV, GW, 255, b"raw payload"))),
    ]
    path.write_bytes(synth.pcap_bytes(frames, nanos=True))
    table = merge(batches([path], 1 << 20))
    assert table["proto"].dtype == np.uint8 and table["a_port"].dtype == np.uint16
    assert sorted(table["proto"].tolist()) == [17, 255]
    assert 65535 in table["a_port"].tolist() + table["b_port"].tolist()


def test_grouping_numbers_groups_in_order_of_first_appearance_and_survives_hash_collisions() -> None:
    rng = np.random.default_rng(3)
    n = 5000
    keys = {k: rng.integers(0, 4, n).astype(np.uint64) for k in ("a_hi", "a_lo", "b_hi", "b_lo")}
    keys |= {"proto": rng.choice([6, 17], n).astype(np.uint8)}
    keys |= {"a_port": rng.integers(0, 3, n).astype(np.uint16), "b_port": np.full(n, 443, np.uint16)}
    tuples = list(zip(*(keys[k].tolist() for k in KEY_COLUMNS), strict=True))
    expected: dict[tuple, int] = {}
    for t in tuples:
        expected.setdefault(t, len(expected))
    firsts = [tuples.index(t) for t in expected]
    for h in (flow_hash(keys), np.zeros(n, np.uint64)):  # the real hash, then every row colliding
        codes, k, first = _group(keys, h)
        assert k == len(expected)
        assert codes.tolist() == [expected[t] for t in tuples]
        assert first.tolist() == firsts
