"""One real run of the demo persona's utterances against the twin in a private lab, made with the
README's rehearsal command (``harness run SCRIPT --twin``): real espeak-ng, PortAudio through
PulseAudio, pocketsphinx, loopback sockets and (as root) tcpdump; then ``harness correlate`` and
``harness report`` on it.

The persona is the demo's with shorter gaps and answer limits so the run takes about two and a
half minutes; its utterances are unchanged, so the hearing rate is the demo persona's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from harness.cli.main import main
from harness.correlate.activations import detect_activations
from harness.correlate.capture import read_capture
from harness.jsonl import read_jsonl
from harness.net import read_traffic
from harness.rundir.analysis import read_analysis
from harness.rundir.layout import RunDir
from harness.rundir.manifest import read_manifest
from harness.twin.config import DEFAULT_CONFIG, load_config
from harness.twin.grammar import request_words

from conftest import require_tool

pytestmark = pytest.mark.lab
DEMO = Path(__file__).resolve().parents[1] / "utterances" / "demo.yaml"
TOLERANCE_NS = 50_000_000
DEVICE = "127.0.0.42"


@dataclass(frozen=True)
class TwinRun:
    run: RunDir
    synthetic: bool
    events: list[dict]
    truth: list[dict]

    def records(self, kind: str) -> list[dict]:
        return [r for r in self.truth if r["record"] == kind]


@pytest.fixture(scope="module")
def twin_run(lab, tmp_path_factory) -> TwinRun:
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
        # the README's rehearsal command, with the default quiet time before and after
        status = main(
            ["run", str(script), "--twin", "--twin-config", str(twin_config), "--runs-dir", str(folder / "runs")]
        )
    finally:
        mp.undo()
    assert status == 0
    (root,) = (folder / "runs").iterdir()
    run = RunDir(root)
    synthetic = all(c.synthetic for c in read_manifest(run).captures)
    print(f"\ntwin run: {run.root}")
    return TwinRun(run, synthetic, list(read_jsonl(run.events)), list(read_jsonl(run.truth)))


def _turns(events):
    ended = {(e["plan_index"], e["turn"], e["attempt"]): e for e in events if e["event"] == "utterance_ended"}
    return [(e, ended[(e["plan_index"], e["turn"], e["attempt"])]) for e in events if e["event"] == "utterance_started"]


def test_twin_hears_the_demo_persona(twin_run):
    requests = twin_run.records("request")
    turns = _turns(twin_run.events)
    heard = 0
    for started, ended in turns:
        expected = request_words(started["text"], "Alexa")
        heard += any(
            r["text"] == expected and ended["onset_wall_ns"] - 1e9 <= r["onset_ns"] <= ended["end_wall_ns"] + 1e9
            for r in requests
        )
    rate = heard / len(turns)
    print(f"hearing rate: {heard}/{len(turns)} = {rate:.0%}")
    assert len(turns) == 9 and rate >= 0.9


def test_bench_detects_the_twins_answers(twin_run):
    answers = [e for e in twin_run.events if e["event"] == "answer"]
    spoken = twin_run.records("answer")
    assert len(answers) >= 8
    for heard in answers:
        said = [s for s in spoken if abs(s["onset_wall_ns"] - heard["onset_wall_ns"]) < TOLERANCE_NS]
        assert len(said) == 1, heard
    long_one = [e for e in answers if e["too_long"]]
    assert long_one and any(e["event"] == "stop_spoken" for e in twin_run.events)
    assert any(s["cut"] for s in spoken)  # the stop phrase cut the long answer short


def _captures(twin_run) -> list[Path]:
    manifest = read_manifest(twin_run.run)
    assert manifest.captures and manifest.settings.capture_device == DEVICE
    assert all(c.synthetic == twin_run.synthetic for c in manifest.captures)
    return [twin_run.run.resolve(c.path) for c in manifest.captures]


def test_voice_connection_predates_the_capture_and_carries_every_request(twin_run):
    (live,) = twin_run.records("twin_live")
    voice = live["voice"]
    captured = read_traffic(_captures(twin_run), device=DEVICE).flows
    row = captured[(captured["local_port"] == voice["src_port"]) & (captured["remote_ip"] == voice["dst_ip"])]
    assert len(row) == 1 and row["name"].isna().all()  # no lookup, no ClientHello in the capture: no name
    assert row["first_ns"].iat[0] > live["voice_opened_ns"]
    # one connection to the voice service in all: every upload, answer and keep-alive is on it
    assert (captured["remote_ip"] == voice["dst_ip"]).sum() == 1
    segments = twin_run.records("segment")
    assert segments and all(s["connection"] == voice for s in segments)
    wakes = {r["seq"] for r in twin_run.records("wake")}
    uploads = [s for s in segments if s["part"] == "upload"]
    assert sorted(s["cause"]["request_seq"] for s in uploads) == sorted(wakes)
    answered = {s["cause"]["request_seq"] for s in segments if s["part"] == "answer"}
    assert answered == wakes


def test_uploads_open_with_a_burst_and_stream_like_speech(twin_run):
    for upload in (s for s in twin_run.records("segment") if s["part"] == "upload"):
        seconds = (upload["last_ns"] - upload["first_ns"]) / 1e9
        stream_bps = (upload["bytes_up"] - upload["opening_bytes"]) / seconds
        assert 20_000 <= upload["opening_bytes"] <= 32_000, upload
        assert 8_000 <= stream_bps <= 12_000 and seconds >= 0.8, upload


def test_activations_are_exactly_the_twins_requests(twin_run):
    """Stop phrases and the follow-up included; metrics posts and keep-alives are not requests."""
    found = detect_activations(read_capture(_captures(twin_run), DEVICE))
    segments = twin_run.records("segment")
    keepalives = np.array([s["first_ns"] for s in segments if s["part"] == "keepalive"], np.int64)
    # a keep-alive record just before an opening starts the chain the detector sees, as on a real Echo
    onsets = [
        min([u["first_ns"], *keepalives[(keepalives < u["first_ns"]) & (keepalives > u["first_ns"] - 5e8)]])
        for u in segments
        if u["part"] == "upload"
    ]
    assert len(found.activations) == len(onsets)
    errors = np.abs(np.array([a.onset_ns for a in found.activations]) - np.sort(onsets))
    assert errors.max() < TOLERANCE_NS
    stops = [e for e in twin_run.events if e["event"] == "stop_spoken"]
    heard_stops = [r for r in twin_run.records("request") if r["text"] == "stop"]
    assert stops and len(heard_stops) >= len(stops)
    started = twin_run.records("twin_started")[0]
    metrics = load_config().voice.metrics_endpoint
    posts = [f for f in twin_run.records("flow") if f["purpose"] == "metrics" and f["cause"]["kind"] == "request"]
    assert posts and all(11_000 <= f["bytes_up"] <= 20_000 for f in posts)
    assert all(started["addresses"][metrics] not in a.endpoints for a in found.activations)


def test_truth_matches_the_capture_flow_for_flow(twin_run):
    """Every flow after the twin went live is in the capture; of its boot, the voice connection only
    (without its handshake) and not the lookup."""
    (live,) = twin_run.records("twin_live")
    flows = twin_run.records("flow")
    booted = [f for f in flows if f["first_ns"] < live["t_ns"]]
    assert sorted(f["purpose"] for f in booted) == ["dns", "voice"]
    captured = read_traffic(_captures(twin_run), device=DEVICE).flows
    captured = captured[captured["device"]]
    keys = {(r.protocol, r.local_port, r.remote_ip, r.remote_port): r for r in captured.itertuples()}
    assert len(keys) == len(flows) - 1
    for flow in flows:
        row = keys.get((flow["protocol"], flow["src_port"], flow["dst_ip"], flow["dst_port"]))
        if flow in booted:
            assert (row is None) == (flow["purpose"] == "dns")
            continue
        assert abs(row.first_ns - flow["first_ns"]) < TOLERANCE_NS and abs(row.last_ns - flow["last_ns"]) < TOLERANCE_NS
        if flow["app"] == "tls":
            assert (row.name, row.name_source) == (flow["endpoint"], "sni")


def test_capture_has_dns_and_sni_for_every_endpoint_but_the_voice_service(twin_run):
    config = load_config()
    started = twin_run.records("twin_started")[0]
    captured = read_traffic(_captures(twin_run), device=DEVICE).flows
    sni = set(captured.loc[captured["name_source"] == "sni", "name"])
    named = set(captured["name"].dropna())
    expected = {
        config.voice.metrics_endpoint,
        "api.fitbit.test",
        "api.bigsky.test",
        "media.jeopardy.test",
        "dts.podtrac.com",
        "chrt.fm",
        "device-metrics-us.amazon.com",
        "kindle-time.amazon.com",
    }
    assert expected <= sni and config.voice.endpoint not in named
    assert "ntp-g7g.amazon.com" in named  # named from the DNS answer: NTP carries no name
    lookups = {r["endpoint"] for r in twin_run.records("flow") if r["app"] == "dns"}
    assert expected | {"ntp-g7g.amazon.com", config.voice.endpoint} <= lookups
    assert set(started["addresses"]) >= expected


def test_background_follows_the_schedule(twin_run):
    config = load_config()
    first = twin_run.records("twin_live")[0]["t_ns"]
    last = twin_run.records("twin_stopped")[0]["t_ns"]
    span = (last - first) / 1e9
    flows = [r for r in twin_run.records("flow") if r["cause"]["kind"] == "background" and r["app"] != "dns"]
    keepalives = [s for s in twin_run.records("segment") if s["part"] == "keepalive"]
    for item in config.background:
        if item.kind == "keepalive":
            assert sum(f["endpoint"] == item.name for f in flows) == 1  # on the one long-lived connection
            count = len(keepalives)
        else:
            count = sum(f["endpoint"] == item.name and f["purpose"] == item.purpose for f in flows)
        low = int((span - item.first_s) // (item.every_s + item.jitter_s))
        high = int((span - item.first_s) // (item.every_s - item.jitter_s)) + 1
        assert low <= count <= high, (item.name, count, low, high)
    causes = {json.dumps(r["cause"], sort_keys=True) for r in twin_run.records("flow")}
    assert any('"request"' in c for c in causes)


def test_readme_rehearsal_attributes_the_voice_endpoint(twin_run):
    """``harness correlate`` and ``harness report`` on the rehearsal: every utterance has its
    activation on the voice service (found by shape: its name is not in the capture) and each
    skill's own endpoint is attributed to it."""
    root = str(twin_run.run.root)
    assert main(["correlate", root]) == 0
    assert main(["report", root]) == 0
    summary, tables = read_analysis(twin_run.run)
    started = twin_run.records("twin_started")[0]
    voice = started["addresses"][load_config().voice.endpoint]
    assert summary.activations.voice_endpoints == [voice] and summary.activations.voice_source == "shape"
    utterances = tables["utterances"]
    stops = [e for e in twin_run.events if e["event"] == "stop_spoken"]
    assert (utterances["kind"] == "request").sum() == 9 and (utterances["kind"] == "stop").sum() == len(stops)
    assert utterances["activation_id"].notna().all()  # the bench's stop phrases are its requests too
    assert summary.counts.activations_without_utterance == 0
    pairs = tables["attributions"]
    attributed = set(
        zip(pairs.loc[pairs["attributed"], "skill_id"], pairs.loc[pairs["attributed"], "endpoint_id"], strict=False)
    )
    own = {("fitbit", "api.fitbit.test"), ("big-sky", "api.bigsky.test"), ("jeopardy", "media.jeopardy.test")}
    assert own <= attributed
    assert twin_run.run.report.is_file()


def test_correlate_prints_json_and_the_summary_keeps_names_whole_at_80_columns(twin_run, capsys):
    """The rehearsal's long names (``unagi-na.amazon.com``, ``device-metrics-us.amazon.com``) whole
    in the summary piped at 80 columns, and ``--format json`` one document."""
    import os
    import subprocess
    import sys

    root = str(twin_run.run.root)
    assert main(["correlate", root, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["summary"]["counts"]["activations"] >= 9 and doc["analysis"].endswith("analysis")
    env = {**os.environ, "COLUMNS": "80"}
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli.main", "report", root], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    _, tables = read_analysis(twin_run.run)
    names = set(tables["attributions"].loc[tables["attributions"]["attributed"], "endpoint_id"])
    assert any(len(name) > 15 for name in names)  # long enough that an 80-column table would have cut them
    assert all(name in done.stdout for name in names) and "…" not in done.stdout
    assert max(len(line) for line in done.stdout.splitlines()) <= 80
