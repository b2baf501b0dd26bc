"""Helper processes die with the bench (even after kill -9), and a run finds one that did not:
real tcpdump on loopback (root) and the real twin, started by a parent process the test kills."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from harness.capture import start_capture
from harness.children import running_from_pid_file, write_pid_file
from harness.errors import DeviceError, HarnessError
from harness.rundir.layout import RunDir
from harness.twin.config import DEFAULT_CONFIG
from harness.twin.process import TwinProcess

from conftest import require_root, require_tool

DEMO = Path(__file__).resolve().parents[1] / "utterances" / "demo.yaml"
GONE_WITHIN_S = 10.0  # a bound on waiting, not a timing claim: the signal arrives at once

PARENT_CAPTURE = """
import sys, time
from harness.capture import start_capture
handle = start_capture("lo", sys.argv[1])
print(handle._proc.pid, flush=True)
time.sleep(600)
"""

PARENT_TWIN = """
import sys, time
from pathlib import Path
from harness.rundir.layout import RunDir
from harness.twin.process import TwinProcess
twin = TwinProcess([Path(sys.argv[1])], RunDir(Path(sys.argv[2])), Path(sys.argv[3]), Path(sys.argv[4]))
twin.start()
print(twin._proc.pid, flush=True)
time.sleep(600)
"""


def _gone(pid: int) -> bool:
    """Whether ``pid`` has ended (a zombie nobody reaps counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


def _wait_gone(pid: int) -> bool:
    deadline = time.monotonic() + GONE_WITHIN_S
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return _gone(pid)


def _kill_parent_and_check_child(code: str, *args: str) -> int:
    parent = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)
    try:
        line = parent.stdout.readline()
        assert line.strip().isdigit(), f"the parent did not start its child (exit {parent.poll()})"
        child = int(line)
        assert not _gone(child)
    finally:
        parent.kill()
        parent.wait()
    try:
        assert _wait_gone(child), f"child {child} outlived its parent"
    finally:
        if not _gone(child):
            os.kill(child, signal.SIGKILL)
    return child


def test_tcpdump_dies_with_a_killed_bench_and_the_next_capture_starts(tmp_path):
    require_root()
    require_tool("tcpdump")
    folder = tmp_path / "capture"
    _kill_parent_and_check_child(PARENT_CAPTURE, str(folder))
    assert [p.name for p in folder.glob("*.pcap")], "the capture file was not written"
    with start_capture("lo", folder) as handle:  # the dead capture's pid file is not a running capture
        assert handle.running
    assert not list(folder.glob(".capture-*.pid"))


def test_a_capture_still_running_into_the_folder_is_reported(tmp_path):
    require_root()
    require_tool("tcpdump")
    folder = tmp_path / "capture"
    first = start_capture("lo", folder)
    try:
        with pytest.raises(DeviceError, match=rf"still runs into this folder.*pid {first._proc.pid}: tcpdump "):
            start_capture("lo", folder)
    finally:
        first.stop()
    start_capture("lo", folder).stop()


def test_a_pid_file_names_only_the_very_process_it_recorded(tmp_path):
    path = tmp_path / ".capture-x.pid"
    write_pid_file(path, os.getpid())
    assert running_from_pid_file(path) == os.getpid()
    path.write_text(f"{os.getpid()} 1\n")  # same number, other start time: a reused pid
    assert running_from_pid_file(path) is None
    done = subprocess.run([sys.executable, "-c", "pass"])
    write_pid_file(path, os.getpid())
    path.write_text(path.read_text().replace(str(os.getpid()), str(2**22 + 1), 1))
    assert done.returncode == 0 and running_from_pid_file(path) is None


def _twin_config(tmp_path: Path, octet: int) -> Path:
    # Addresses of its own, so twins of other tests running at the same time are not in the way.
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["network"].update(
        device=f"127.0.{octet}.2",
        resolver=f"127.0.{octet}.53",
        platform_pool=f"127.{octet}.1.0/24",
        vendor_pool=f"127.{octet}.2.0/24",
    )
    path = tmp_path / "twin.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_first_error_of_a_twin_whose_address_is_taken_is_address_in_use(tmp_path):
    config = _twin_config(tmp_path, 61)
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # what a stale twin would hold
    try:
        try:
            holder.bind(("127.0.61.53", 53))
        except PermissionError:
            holder.bind(("127.0.61.53", 53 + 10000))
        twin = TwinProcess([DEMO], RunDir(tmp_path), config, tmp_path / "synthetic.pcap")
        with pytest.raises(HarnessError) as caught:
            twin.start(timeout_s=60)
    finally:
        holder.close()
    message = str(caught.value)
    assert message.startswith(
        "the twin did not start: the twin cannot listen on 127.0.61.53:53: Address already in use"
    )
    assert "\n" not in message


def test_the_twin_dies_with_a_killed_bench(lab, tmp_path, monkeypatch):
    require_tool("espeak-ng")
    require_tool("openssl")
    monkeypatch.setenv("HARNESS_LAB_DIR", str(lab.base))
    config = _twin_config(tmp_path, 62)
    child = _kill_parent_and_check_child(
        PARENT_TWIN, str(DEMO), str(tmp_path), str(config), str(tmp_path / "synthetic.pcap")
    )
    # Its address is free again: a new twin starts.
    twin = TwinProcess([DEMO], RunDir(tmp_path / "again"), config, tmp_path / "again.pcap")
    (tmp_path / "again").mkdir()
    try:
        twin.start()
    finally:
        twin.stop()
    assert _gone(child)
