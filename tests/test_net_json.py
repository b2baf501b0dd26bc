"""``harness net --format json`` on numpy alone: the same endpoints as the DataFrame route that
correlation takes, and pandas never loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from harness.classify import classify_flows
from harness.net import read_traffic, synth
from harness.rundir.tables import conform, conform_records

REPO = Path(__file__).resolve().parents[1]
DEV, DEV_MAC, GW_MAC = "192.168.1.20", "02:00:00:00:00:20", "02:00:00:00:00:01"
# the command as its console script runs it, saying at exit which libraries it loaded
COMMAND = """
import atexit, sys
atexit.register(lambda: print(sorted({"pandas", "pyarrow", "rich"} & set(sys.modules)), file=sys.stderr))
from harness.cli.main import entry
entry()
"""


def _capture(path: Path) -> Path:
    frames, ts = [], 1_700_000_000 * 10**9
    answer = synth.dns_response("cdn.example", [("cdn.example", "A", "52.94.0.24")])  # names one address by DNS
    frames.append(
        synth.ethernet(GW_MAC, DEV_MAC, 0x0800, synth.ipv4("192.168.1.1", DEV, 17, synth.udp(53, 5353, answer)))
    )
    for i in range(40):
        server = f"52.94.0.{i % 25}"  # several names per address, names borrowed from peers, none
        if i % 3:
            payload = synth.tcp(40000 + i, 443, synth.client_hello(f"host{i % 7}.example"))
        else:
            payload = synth.tcp(40000 + i, 443, b"\x17\x03\x03\x00\x05hello")
        frames.append(synth.ethernet(DEV_MAC, GW_MAC, 0x0800, synth.ipv4(DEV, server, 6, payload)))
        back = synth.tcp(443, 40000 + i, b"\x17\x03\x03\x00\x03abc")
        frames.append(synth.ethernet(GW_MAC, DEV_MAC, 0x0800, synth.ipv4(server, DEV, 6, back)))
    frames.append(
        synth.ethernet(DEV_MAC, GW_MAC, 0x0800, synth.ipv4(DEV, "9.9.9.9", 17, synth.udp(5353, 53, b"q" * 20)))
    )
    path.write_bytes(synth.pcap_bytes((ts + i * 10**7, f) for i, f in enumerate(frames)))
    return path


def test_json_route_loads_no_pandas_and_agrees_with_the_dataframe_route(tmp_path: Path) -> None:
    capture = _capture(tmp_path / "c.pcap")
    env = {**os.environ, "PYTHONPATH": str(REPO), "HARNESS_CACHE_DIR": str(tmp_path / "cache")}
    args = ["net", str(capture), "--format", "json", "-q"]
    done = subprocess.run([sys.executable, "-c", COMMAND, *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[-1] == "[]"  # neither pandas nor pyarrow, nor rich for progress not shown
    doc = json.loads(done.stdout)

    traffic = read_traffic([capture])
    table = classify_flows(traffic.flows).endpoints  # the route correlation takes, shaped as net's table was
    renamed = table.rename(columns={"first_ns": "first_capture_ns", "last_ns": "last_capture_ns"})
    frame = conform("endpoints", renamed.assign(run_id="")).drop(columns="run_id")
    assert doc["endpoints"] == json.loads(frame.to_json(orient="records"))
    assert doc["device"] == DEV and len(doc["endpoints"]) > 5
    assert {e["named"] for e in doc["endpoints"]} == {True, False}
    assert {"sni", "sni_peer", "dns"} <= {s for e in doc["endpoints"] for s in e["name_sources"]}
    shares = classify_flows(traffic.flows).owned_share()
    assert (doc["summary"]["named_share"], doc["summary"]["owned_share"]) == shares


def test_records_follow_the_table_rules() -> None:
    rows = [
        {"run_id": "r", "endpoint_id": "a.example", "named": True, "name_sources": ("sni", "dns")}
        | {"addresses": np.array(["1.2.3.4"], dtype=object), "owner": None, "owner_source": float("nan")}
        | {"network": "Amazon", "registrable_domain": "example", "organization": None, "party": "unknown"}
        | {"category": "other", "ad_or_tracking": np.False_, "lists": None, "flows": np.int64(3)}
        | {"bytes_up": 10, "bytes_down": 20, "first_capture_ns": 1, "last_capture_ns": 2}
    ]
    records = conform_records("endpoints", rows, drop=["run_id"])
    frame = conform("endpoints", pd.DataFrame(rows)).drop(columns="run_id")
    assert records == json.loads(frame.to_json(orient="records"))
    assert records[0]["owner"] == "" and records[0]["lists"] == [] and records[0]["addresses"] == ["1.2.3.4"]
    assert list(records[0]) == list(frame.columns)
