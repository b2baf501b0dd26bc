"""One real run of the demo persona's utterances against the twin in a private lab: real
espeak-ng, PortAudio through PulseAudio, pocketsphinx, loopback sockets and (as root) tcpdump.

The persona is the demo's with shorter gaps and answer limits so the run takes about two
minutes; its utterances are unchanged, so the hearing rate is the demo persona's.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from harness.bench.options import RunOptions
from harness.jsonl import read_jsonl
from harness.rundir.manifest import read_manifest
from harness.net import read_traffic
from harness.twin.config import DEFAULT_CONFIG, load_config
from harness.twin.grammar import request_words
from harness.twin.session import run_with_twin

from conftest import require_tool

pytestmark = pytest.mark.lab
DEMO = Path(__file__).resolve().parents[1] / "utterances" / "demo.yaml"
TOLERANCE_NS = 50_000_000
DEVICE = "127.0.0.42"


@pytest.fixture(scope="module")
def twin_run(lab, tmp_path_factory):
    require_tool("espeak-ng")
    require_tool("openssl")
    folder = tmp_path_factory.mktemp("twin")
    data = yaml.safe_load(DEMO.read_text())
    data["session"] = {"gap_s": 1, "max_answer_s": 8, "answer_timeout_s": 6, "retries": 0}
    script = folder / "demo-short.yaml"
    script.write_text(yaml.safe_dump(data))
    # Its own device address, so other loopback tests running at the same time stay out of the capture.
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["network"]["device"] = DEVICE
    twin_config = folder / "twin.yaml"
    twin_config.write_text(yaml.safe_dump(config))
    mp = pytest.MonkeyPatch()
    mp.setenv("HARNESS_LAB_DIR", str(lab.base))
    try:
        options = RunOptions(scripts=[script], runs_dir=folder / "runs", twin_config=twin_config, quiet_lead_s=0.0,
                             capture_tail_s=2.0)  # fmt: skip
        result = run_with_twin(options, Console(file=io.StringIO()))
    finally:
        mp.undo()
    assert result.status == 0
    events = list(read_jsonl(result.run.events))
    truth = list(read_jsonl(result.run.truth))
    print(f"\ntwin run: {result.seconds:.0f} s, {result.run.root}")
    return result, events, truth


def _turns(events):
    ended = {(e["plan_index"], e["turn"], e["attempt"]): e for e in events if e["event"] == "utterance_ended"}
    return [(e, ended[(e["plan_index"], e["turn"], e["attempt"])]) for e in events if e["event"] == "utterance_started"]


def test_twin_hears_the_demo_persona(twin_run):
    _, events, truth = twin_run
    requests = [r for r in truth if r["record"] == "request"]
    turns = _turns(events)
    heard = 0
    for started, ended in turns:
        expected = request_words(started["text"], "Alexa")
        heard += any(r["text"] == expected and ended["onset_wall_ns"] - 1e9 <= r["onset_ns"] <= ended["end_wall_ns"] + 1e9
                     for r in requests)  # fmt: skip
    rate = heard / len(turns)
    print(f"hearing rate: {heard}/{len(turns)} = {rate:.0%}")
    assert len(turns) == 9 and rate >= 0.9


def test_bench_detects_the_twins_answers(twin_run):
    _, events, truth = twin_run
    answers = [e for e in events if e["event"] == "answer"]
    spoken = [r for r in truth if r["record"] == "answer"]
    assert len(answers) >= 8
    for heard in answers:
        said = [s for s in spoken if abs(s["onset_wall_ns"] - heard["onset_wall_ns"]) < TOLERANCE_NS]
        assert len(said) == 1, heard
    long_one = [e for e in answers if e["too_long"]]
    assert long_one and any(e["event"] == "stop_spoken" for e in events)
    assert any(s["cut"] for s in spoken)  # the stop phrase cut the long answer short


def _capture(result):
    manifest = read_manifest(result.run)
    assert manifest.captures and manifest.settings.capture_device == DEVICE
    assert all(c.synthetic == result.synthetic for c in manifest.captures)
    return read_traffic([result.run.resolve(c.path) for c in manifest.captures], device=DEVICE)


def test_truth_matches_the_capture_flow_for_flow(twin_run):
    result, _, truth = twin_run
    flows = [r for r in truth if r["record"] == "flow"]
    captured = _capture(result).flows
    captured = captured[captured["device"]]
    keys = {(r.protocol, r.local_port, r.remote_ip, r.remote_port): r for r in captured.itertuples()}
    assert len(keys) == len(flows)
    for flow in flows:
        row = keys[(flow["protocol"], flow["src_port"], flow["dst_ip"], flow["dst_port"])]
        assert abs(row.first_ns - flow["first_ns"]) < TOLERANCE_NS and abs(row.last_ns - flow["last_ns"]) < TOLERANCE_NS
        if flow["app"] == "tls":
            assert (row.name, row.name_source) == (flow["endpoint"], "sni")


def test_capture_has_dns_and_sni_for_every_endpoint(twin_run):
    result, _, truth = twin_run
    config = load_config()
    started = next(r for r in truth if r["record"] == "twin_started")
    captured = _capture(result).flows
    sni = set(captured.loc[captured["name_source"] == "sni", "name"])
    named = set(captured["name"].dropna())
    expected = {config.voice.endpoint, config.voice.metrics_endpoint, "api.fitbit.test", "api.bigsky.test",
                "media.jeopardy.test", "dts.podtrac.com", "chrt.fm", "device-metrics-us.amazon.com",
                "kindle-time.amazon.com"}  # fmt: skip
    assert expected <= sni
    assert "ntp-g7g.amazon.com" in named  # named from the DNS answer: NTP carries no name
    lookups = {r["endpoint"] for r in truth if r["record"] == "flow" and r["app"] == "dns"}
    assert expected | {"ntp-g7g.amazon.com"} <= lookups
    assert set(started["addresses"]) >= expected


def test_background_flows_follow_the_schedule(twin_run):
    _, _, truth = twin_run
    config = load_config()
    first = next(r for r in truth if r["record"] == "twin_started")["t_ns"]
    last = next(r for r in truth if r["record"] == "twin_stopped")["t_ns"]
    span = (last - first) / 1e9
    flows = [r for r in truth if r["record"] == "flow" and r["cause"]["kind"] == "background" and r["app"] != "dns"]
    for item in config.background:
        count = sum(f["endpoint"] == item.name and f["purpose"] == item.purpose for f in flows)
        if item.kind == "keepalive":
            assert count == 1  # one long-lived connection
            continue
        low = int((span - item.first_s) // (item.every_s + item.jitter_s))
        high = int((span - item.first_s) // (item.every_s - item.jitter_s)) + 1
        assert low <= count <= high, (item.name, count, low, high)
    causes = {json.dumps(r["cause"], sort_keys=True) for r in truth if r["record"] == "flow"}
    assert any('"request"' in c for c in causes)
