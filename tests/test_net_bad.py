"""Damaged captures: one clear line naming file and byte offset, packets before the damage kept."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from harness.cli.main import main
from harness.net import synth

T0 = 1_700_000_000 * 10**9


def frames(n: int) -> list[tuple[int, bytes]]:
    return [
        (
            T0 + i * 10**6,
            synth.ethernet(
                "02:00:00:00:00:02",
                "02:00:00:00:00:01",
                0x0800,
                synth.ipv4("10.0.0.2", "198.51.100.1", 6, synth.tcp(1000 + i, 443, b"data")),
            ),
        )
        for i in range(n)
    ]


def record_offsets(data: bytes) -> list[int]:
    offsets, pos = [], 24
    while pos < len(data):
        offsets.append(pos)
        pos += 16 + struct.unpack_from("<I", data, pos + 8)[0]
    return offsets


def run_json(capsys, *args: str) -> tuple[int, dict | None, str]:
    code = main(["net", *args, "--device", "10.0.0.2", "--format", "json"])
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if code == 0 else None), captured.err


def assert_one_line_error(err: str, path: Path, offset: int, words: str) -> None:
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{path}: byte {offset}: " in err and words in err


def test_truncated_record_keeps_earlier_packets(tmp_path: Path, capsys) -> None:
    data = synth.pcap_bytes(frames(5))
    path = tmp_path / "cut.pcap"
    path.write_bytes(data[:-10])
    code, result, _ = run_json(capsys, str(path))
    assert code == 0
    (warning,) = [w for w in result["warnings"] if "truncated" in w]
    assert f"{path}: byte {record_offsets(data)[4]}: truncated record" in warning
    assert "4 packets before it" in warning
    assert result["endpoints"][0]["flows"] == 4


@pytest.mark.parametrize(
    "content,words",
    [
        (b"", "empty file"),
        (bytes(range(256)) * 4, "not a pcap or pcapng file"),
        (b"\xd4\xc3\xb2\xa2" + bytes(40), "not a pcap or pcapng file"),  # near-miss magic
        (b"\xd4\xc3\xb2\xa1" + bytes(10), "truncated pcap file header"),
    ],
)
def test_unreadable_file_exits_1_with_offset(tmp_path: Path, capsys, content: bytes, words: str) -> None:
    path = tmp_path / "bad.pcap"
    path.write_bytes(content)
    code, _, err = run_json(capsys, str(path))
    assert code == 1
    assert_one_line_error(err, path, 0, words)


def test_absurd_record_length(tmp_path: Path, capsys) -> None:
    data = bytearray(synth.pcap_bytes(frames(4)))
    third = record_offsets(bytes(data))[2]
    struct.pack_into("<I", data, third + 8, 0x7FFFFFF0)
    path = tmp_path / "absurd.pcap"
    path.write_bytes(bytes(data))
    code, result, _ = run_json(capsys, str(path))
    assert code == 0
    assert any(f"byte {third}: absurd record length 2147483632" in w for w in result["warnings"])
    assert result["endpoints"][0]["flows"] == 2


def test_absurd_length_in_first_record_is_an_error(tmp_path: Path, capsys) -> None:
    data = bytearray(synth.pcap_bytes(frames(2)))
    struct.pack_into("<I", data, 24 + 8, 0xFFFFFFFF)
    path = tmp_path / "absurd.pcap"
    path.write_bytes(bytes(data))
    code, _, err = run_json(capsys, str(path))
    assert code == 1
    assert_one_line_error(err, path, 24, "absurd record length")


def pcapng(n: int) -> tuple[bytes, list[int]]:
    head = synth.pcapng_section() + synth.pcapng_interface(1, 9)
    blocks = [synth.pcapng_packet(0, ts, f) for ts, f in frames(n)]
    offsets = [len(head) + sum(len(b) for b in blocks[:i]) for i in range(n)]
    return head + b"".join(blocks), offsets


@pytest.mark.parametrize("damage", ["trailer", "huge", "odd", "cut"])
def test_pcapng_broken_block_lengths(tmp_path: Path, capsys, damage: str) -> None:
    data, offsets = pcapng(4)
    data = bytearray(data)
    at = offsets[2]
    if damage == "trailer":
        blen = struct.unpack_from("<I", data, at + 4)[0]
        struct.pack_into("<I", data, at + blen - 4, blen + 4)
        words = "does not match its trailing copy"
    elif damage == "huge":
        struct.pack_into("<I", data, at + 4, 0x7FFFFFF0)
        words = "bad block length"
    elif damage == "odd":
        struct.pack_into("<I", data, at + 4, 45)
        words = "bad block length 45"
    else:
        data = data[: at + 20]
        words = "runs past the end of the file"
    path = tmp_path / "broken.pcapng"
    path.write_bytes(bytes(data))
    code, result, _ = run_json(capsys, str(path))
    assert code == 0
    assert any(f"{path}: byte {at}: " in w and words in w for w in result["warnings"]), result["warnings"]
    assert result["endpoints"][0]["flows"] == 2


def test_unknown_block_larger_than_file_is_damage(tmp_path: Path, capsys) -> None:
    data, _ = pcapng(2)
    block = struct.pack("<II", 0x0BAD, 1 << 28)
    path = tmp_path / "x.pcapng"
    path.write_bytes(data + block + bytes(100))
    code, result, _ = run_json(capsys, str(path))
    assert code == 0
    assert any(f"byte {len(data)}: block of {1 << 28} bytes runs past the end" in w for w in result["warnings"])


def test_bad_file_among_good_ones_is_a_warning(tmp_path: Path, capsys) -> None:
    good, bad = tmp_path / "good.pcap", tmp_path / "bad.pcap"
    good.write_bytes(synth.pcap_bytes(frames(3)))
    bad.write_bytes(b"garbage!" * 10)
    code, result, _ = run_json(capsys, str(bad), str(good))
    assert code == 0
    assert any(w.startswith(f"{bad}: byte 0: not a pcap") for w in result["warnings"])
    assert result["endpoints"][0]["flows"] == 3


def test_missing_file_and_bad_arguments(tmp_path: Path, capsys) -> None:
    assert main(["net", str(tmp_path / "nope.pcap")]) == 1
    assert "nope.pcap: cannot read" in capsys.readouterr().err
    path = tmp_path / "ok.pcap"
    path.write_bytes(synth.pcap_bytes(frames(1)))
    assert main(["net", str(path), "--device", "not-an-ip"]) == 1
    assert "not an IP address" in capsys.readouterr().err
    assert main(["net", str(path), "--flows", str(tmp_path / "f.txt")]) == 1
    with pytest.raises(SystemExit) as exc:
        main(["net", str(path), "--format", "xml"])
    assert exc.value.code == 2
