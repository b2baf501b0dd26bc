"""Capture control: target and filter validation, command quoting, and real tcpdump on loopback."""

from __future__ import annotations

import shlex
import socket
import stat
import struct
import time
from pathlib import Path

import pytest

from harness.capture import (
    check_filter,
    combine_filters,
    device_filter,
    parse_capture_spec,
    start_capture,
)
from harness.capture.spec import SshTarget
from harness.capture.tcpdump import remote_start_command, ssh_argv, tcpdump_argv
from harness.errors import DeviceError, HarnessError
from harness.files import sha256_file

from conftest import require_root, require_tool

PORT = 47_913


def test_local_and_ssh_specs():
    assert parse_capture_spec("eth0").ssh is None
    spec = parse_capture_spec("ssh://root@ap.lan:2222/wlan0")
    assert (spec.interface, spec.ssh) == ("wlan0", SshTarget("root", "ap.lan", 2222))
    assert str(spec) == "ssh://root@ap.lan:2222/wlan0"
    assert parse_capture_spec("ssh://[fd00::1]/br-lan").ssh.host == "fd00::1"


@pytest.mark.parametrize(
    "spec",
    [
        "-w",
        "eth0;reboot",
        "eth 0",
        "a" * 16,
        "",
        "eth0/x",
        "$(id)",
        "ssh://-oProxyCommand=sh/eth0",
        "ssh://root@-x/eth0",
        "ssh://root@ap/eth0;reboot",
        "ssh://ro`ot@ap/eth0",
        "ssh://root@ap/",
        "ssh://root:pw@ap/eth0",
        "ssh://root@ap/eth0?x=1",
    ],
)
def test_hostile_specs_are_rejected(spec):
    with pytest.raises(HarnessError):
        parse_capture_spec(spec)


def test_device_filters():
    assert device_filter("AA-BB-CC-DD-EE-FF") == "ether host aa:bb:cc:dd:ee:ff"
    assert device_filter("192.168.86.40") == "host 192.168.86.40"
    assert device_filter("fd00::1") == "host fd00::1"
    with pytest.raises(HarnessError):
        device_filter("192.168.86.400")
    with pytest.raises(HarnessError):
        device_filter("aa:bb:cc:dd:ee")
    assert combine_filters("10.0.0.1", "tcp port 443") == "(host 10.0.0.1) and (tcp port 443)"
    assert combine_filters(None, None) is None


def test_filters_are_compiled_by_tcpdump():
    require_tool("tcpdump")
    assert check_filter("udp and host 127.0.0.3") == "udp and host 127.0.0.3"
    with pytest.raises(HarnessError, match="syntax error"):
        check_filter("hst 127.0.0.3")
    with pytest.raises(HarnessError):
        check_filter("-w /etc/passwd")


def test_remote_command_quotes_every_argument():
    hostile = "host 10.0.0.1 and $(reboot) `id` ; rm -rf / 'x'"
    argv = tcpdump_argv("wlan0", "/tmp/d/cap.pcap", hostile, 5, None, None)
    command = remote_start_command("/tmp/d", argv)
    # The remote shell sees exactly our arguments: the filter stays one word.
    words = shlex.split(command)
    assert words[-1] == hostile and words[-2] == "--"
    assert "$(reboot)" not in command.replace(shlex.quote(hostile), "")
    ssh = ssh_argv(SshTarget("root", "ap.lan", 2222), command)
    assert ssh[-3:] == ["--", "root@ap.lan", command]
    assert "BatchMode=yes" in ssh


def _udp_payloads(path: Path, port: int) -> list[bytes]:
    """UDP payloads to ``port`` in a classic pcap written by tcpdump (Ethernet link type)."""
    data = path.read_bytes()
    magic = struct.unpack_from("<I", data)[0]
    assert magic == 0xA1B23C4D, "expected a little-endian nanosecond pcap"
    payloads, offset = [], 24
    while offset + 16 <= len(data):
        _, _, caplen, _ = struct.unpack_from("<IIII", data, offset)
        frame = data[offset + 16 : offset + 16 + caplen]
        offset += 16 + caplen
        if frame[12:14] != b"\x08\x00" or frame[23] != 17:
            continue
        ihl = (frame[14] & 0x0F) * 4
        udp = frame[14 + ihl :]
        if struct.unpack_from("!H", udp, 2)[0] == port:
            payloads.append(udp[8:])
    return payloads


def _send(count: int, dst: str, size: int = 16) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        tx.bind(("127.0.0.2", 0))
        for i in range(count):
            tx.sendto(i.to_bytes(4, "big") + b"x" * (size - 4), (dst, PORT))
            if i % 20 == 19:
                # paced, as a device's traffic is: a loopback burst outruns tcpdump's writes
                time.sleep(0.002)


@pytest.fixture
def receivers():
    """Bound sockets on 127.0.0.3 and 127.0.0.4 so no ICMP 'port unreachable' is sent back."""
    socks = []
    for address in ("127.0.0.3", "127.0.0.4"):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        sock.bind((address, PORT))
        socks.append(sock)
    yield
    for sock in socks:
        sock.close()


@pytest.mark.root
def test_loopback_capture_filtered_by_device(tmp_path, receivers):
    require_root()
    require_tool("tcpdump")
    out = tmp_path / "capture"
    handle = start_capture("lo", out, device="127.0.0.3", bpf=f"udp port {PORT}")
    try:
        _send(5, "127.0.0.3")
        _send(7, "127.0.0.4")
    finally:
        files = handle.stop(tail_s=0.1)
    assert not handle.running
    assert len(files) == 1
    capture = files[0]
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert stat.S_IMODE(capture.path.stat().st_mode) == 0o600
    assert capture.sha256 == sha256_file(capture.path)
    assert capture.bytes == capture.path.stat().st_size
    assert capture.interface == "lo" and capture.started_ns < capture.stopped_ns
    payloads = _udp_payloads(capture.path, PORT)
    assert [int.from_bytes(p[:4], "big") for p in payloads] == [0, 1, 2, 3, 4]


@pytest.mark.root
def test_size_rotation_makes_several_files(tmp_path, receivers):
    require_root()
    require_tool("tcpdump")
    handle = start_capture("lo", tmp_path, device="127.0.0.3", rotate_mb=1)
    try:
        _send(3000, "127.0.0.3", size=1000)
    finally:
        files = handle.stop()
    assert len(files) >= 3
    assert all(stat.S_IMODE(f.path.stat().st_mode) == 0o600 for f in files)
    assert handle.dropped_packets == 0
    assert sum(len(_udp_payloads(f.path, PORT)) for f in files) == 3000


@pytest.mark.root
def test_time_rotation_uses_the_strftime_pattern(tmp_path, receivers):
    require_root()
    require_tool("tcpdump")
    handle = start_capture("lo", tmp_path, device="127.0.0.3", rotate_s=1)
    try:
        _send(3, "127.0.0.3")
        time.sleep(1.2)
        _send(3, "127.0.0.3")
    finally:
        files = handle.stop()
    assert len(files) >= 2
    assert all(f.path.name.endswith("Z.pcap") for f in files)
    assert sum(len(_udp_payloads(f.path, PORT)) for f in files) == 6


def test_missing_interface_and_bad_filter_are_clear_errors(tmp_path):
    require_tool("tcpdump")
    with pytest.raises(DeviceError, match="no network interface 'nosuch0'"):
        start_capture("nosuch0", tmp_path)
    with pytest.raises(HarnessError, match="capture filter"):
        start_capture("lo", tmp_path, bpf="hst 1.2.3.4")
    with pytest.raises(HarnessError, match="rotate_mb"):
        start_capture("lo", tmp_path, rotate_mb=0)
    with pytest.raises(HarnessError, match="not an interface name"):
        start_capture("lo;id", tmp_path)
