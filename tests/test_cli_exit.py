"""The ``harness`` command's quick exit: output, files and exit handlers are all complete."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from harness.net import synth

REPO = Path(__file__).resolve().parents[1]
DEV, DEV_MAC, GW_MAC = "192.168.1.20", "02:00:00:00:00:20", "02:00:00:00:00:01"
# runs the command as its console script does, with an exit handler of its own
COMMAND = """
import atexit, sys
marker = sys.argv.pop(1)
atexit.register(lambda: open(marker, "w").write("ran"))
from harness.cli.main import entry
entry()
"""


def _capture(path: Path, servers: int) -> Path:
    frames = []
    for i in range(servers):
        hello = synth.tcp(40000 + i, 443, synth.client_hello(f"host{i}.example"))
        frames.append(synth.ethernet(DEV_MAC, GW_MAC, 0x0800, synth.ipv4(DEV, f"52.94.{i // 250}.{i % 250}", 6, hello)))
    path.write_bytes(synth.pcap_bytes((1_700_000_000 * 10**9 + i * 10**6, f) for i, f in enumerate(frames)))
    return path


def test_harness_net_exits_quickly_with_everything_written(tmp_path: Path) -> None:
    capture = _capture(tmp_path / "c.pcap", 600)
    marker, flows = tmp_path / "exit-handler", tmp_path / "flows.parquet"
    env = {**os.environ, "PYTHONPATH": str(REPO), "HARNESS_CACHE_DIR": "off"}
    args = [str(marker), "net", str(capture), "--device", DEV, "--format", "json", "--flows", str(flows)]
    done = subprocess.run([sys.executable, "-c", COMMAND, *args], env=env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    endpoints = json.loads(done.stdout)["endpoints"]  # the whole document, not a flushed part of it
    assert len(endpoints) == 600
    assert len(pd.read_parquet(flows)) == 600
    assert marker.read_text() == "ran"


def test_a_failing_harness_net_keeps_its_exit_status(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture at all")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-c", COMMAND, str(tmp_path / "m"), "net", str(bad)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "bad.pcap" in done.stderr
    assert (tmp_path / "m").read_text() == "ran"
