"""Accuracy of activation detection, endpoint attribution and marker-free clock alignment
against ground truth, beside a naive baseline (every endpoint contacted within a fixed window
after an onset belongs to it).

Default: real runs through the digital twin, one per background level. The twin behaves like an
Echo on the wire: one voice connection opened before the capture (no name in it) carries every
request as an opening burst and a speech-rate stream, answers come down on it, metrics posts
follow answers 10-15 s later (see docs/twin.md). Each level is a twin configuration written into
a temporary folder (the shipped one with its background schedule replaced, and its own loopback
addresses so it can run beside a demo or the tests); the persona is the demo's (``--script``)
with every utterance repeated (``--repeats``, shuffled) and short answer limits. The twin runs
``--quiet`` seconds before the first utterance and after the last (background only), in a
private virtual lab started here. The bench sends a sync marker to the twin's address at every
onset, so the capture holds them. Each run is correlated (clocks from the markers) and scored
against its ``truth.jsonl``; the clocks are also fitted without markers (the utterance and stop
phrase onsets against the detected activations, :func:`~harness.correlate.clock.align_onsets`
with the Echo's usual wake lag) and the two mappings compared at the run's middle (``clk ms``).

- ``low``: the shipped background (device metrics ~20 s, HTTPS time ~30 s, NTP ~60 s, the keep-alive
  on the voice connection ~22 s);
- ``high``: device metrics ~8 s and seven more endpoints with wide jitter, two of which are also
  contacted because of requests (the metrics event ``unagi-na.amazon.com``, Fitbit's tracker).

Other sources of runs with truth:

- ``RUN_DIR...``: score existing twin run directories (``truth.jsonl`` records read: ``wake``
  with ``seq``, ``wall_ns`` (``segment_onset_ns`` for a follow-up heard without the wake word);
  ``flow`` with ``cause`` {``kind``, ``request_seq``}, ``purpose``, ``endpoint``, ``app``,
  ``first_ns``; ``segment`` with ``part`` "upload" and ``first_ns``). A wake belongs to the
  latest utterance whose onset precedes it; each upload segment (one per request heard, stop
  phrases and follow-ups included) is a true activation, its first record the true onset.
- ``--synthetic``: scenes generated here in seconds, without the lab, written as real pcap
  files (Ethernet/IPv4/TCP/UDP, DNS answers, TLS ClientHellos) plus an events.jsonl written with
  the bench's EventLog and a truth.jsonl in the twin's format. Unlike twin runs, the bench clock
  is offset (+0.8 s) and drifting (+30 ppm) against the capture clock with sync markers in the
  capture, the voice connection predates the capture (no name), and some requests have a second
  upload phase. Levels: ``low`` two periodic Amazon endpoints; ``high`` nine background
  endpoints, periodic and Poisson, one rare (mean 300 s: chance coincidences); ``overlap``
  endpoints that are both caused and background (unagi every ~12 s, a skill's tracker at random).

Voice endpoints are scored by the activation figures; attribution is scored on the other
endpoints (what a skill made the device contact), as (utterance, endpoint) pairs, leaving out
the endpoint of the voice service's metrics posts too: they follow answers 10-15 s later, so
they fall in a later utterance's window, where no correlation by time can place them; how many
of them were attributed to their own request is printed beside each row.

    python benchmarks/correlate_accuracy.py [--quick] [--levels low high] [--repeats 3] [--quiet 45]
    python benchmarks/correlate_accuracy.py --synthetic [--seed 1] [--scenes 3] [--utterances 30]
    python benchmarks/correlate_accuracy.py RUN_DIR... [--details]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from rich.console import Console

from harness.bench.markers import Marker, encode_marker
from harness.correlate import correlate_run
from harness.correlate.activations import detect_activations
from harness.correlate.capture import read_capture
from harness.correlate.clock import WAKE_LAG_S, align_onsets
from harness.errors import HarnessError
from harness.jsonl import read_jsonl
from harness.net import synth
from harness.rundir.events import EventLog, StopSpoken, UtteranceEnded, UtteranceStarted, read_events
from harness.rundir.layout import RunDir

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "utterances" / "demo.yaml"
# The twin's own loopback addresses, apart from the shipped ones and those of the tests.
TWIN_NETWORK = {
    "device": "127.0.88.2",
    "resolver": "127.0.88.53",
    "platform_pool": "127.0.89.0/24",
    "vendor_pool": "127.0.90.0/24",
}
MARKER_PORT = 9999  # sync markers go to the twin's address (so the capture filter keeps them), to this port
# Extra background of the twin's "high" level, on top of the shipped schedule
# (device metrics every ~8 s instead of ~20 s).
TWIN_HIGH = [
    {"name": "api.amazonalexa.com", "every_s": 12, "jitter_s": 8, "first_s": 3, "purpose": "platform"},
    {"name": "msh.amazon.com", "every_s": 10, "jitter_s": 6, "first_s": 4, "purpose": "metrics", "bytes_up": 2000},
    {
        "name": "d3p8zr0ffa9t17.cloudfront.net",
        "every_s": 25,
        "jitter_s": 15,
        "first_s": 6,
        "purpose": "update",
        "bytes_down": 20000,
    },
    {"name": "spectrum.s3.amazonaws.com", "every_s": 40, "jitter_s": 30, "first_s": 11, "purpose": "update"},
    {"name": "softwareupdates.amazon.com", "every_s": 90, "jitter_s": 60, "first_s": 30, "purpose": "update"},
    {"name": "unagi-na.amazon.com", "every_s": 30, "jitter_s": 20, "first_s": 8, "purpose": "metrics"},
    {
        "name": "b.scorecardresearch.com",
        "every_s": 45,
        "jitter_s": 30,
        "first_s": 15,
        "purpose": "metrics",
        "bytes_up": 600,
    },
]
DEVICE, GATEWAY, BENCH, RESOLVER = "10.0.0.2", "10.0.0.1", "10.0.0.5", "10.0.0.1"
DEV_MAC, GW_MAC, BENCH_MAC = "02:00:00:00:00:02", "02:00:00:00:00:01", "02:00:00:00:00:05"
OFFSET_NS, DRIFT = 800_000_000, 30e-6
NAIVE_WINDOW_S = 10.0
MATCH_S = 2.0
SKILLS = {
    "fitbit": [("api.fitbit.test", 1.0), ("b.scorecardresearch.com", 0.6)],
    "jeopardy": [("media.jeopardy.test", 1.0), ("dts.podtrac.com", 1.0), ("chrt.fm", 0.8)],
    "weather": [("api.bigsky.test", 1.0)],
}
# Background endpoints: (name, mean period s, periodic?) per level.
LEVELS = {
    "low": [("device-metrics-us.amazon.com", 20, True), ("kindle-time.amazon.com", 30, True)],
    "high": [
        ("device-metrics-us.amazon.com", 20, True),
        ("kindle-time.amazon.com", 30, True),
        ("ntp-g7g.amazon.com", 60, True),
        ("firmware.amazon.com", 9, True),
        ("api.amazonalexa.com", 25, False),
        ("d3p8zr0ffa9t17.cloudfront.net", 40, False),
        ("spectrum.s3.amazonaws.com", 45, False),
        ("msh.amazon.com", 15, False),
        ("softwareupdates.amazon.com", 300, False),
    ],
    "overlap": [
        ("device-metrics-us.amazon.com", 20, True),
        ("kindle-time.amazon.com", 30, True),
        ("unagi-na.amazon.com", 12, True),
        ("b.scorecardresearch.com", 40, False),
    ],
}


@dataclass
class Scene:
    packets: list[tuple[int, bytes]]
    addresses: dict[str, str]
    port: int = 40000

    def ip_of(self, name: str) -> str:
        if name not in self.addresses:
            n = len(self.addresses) + 1
            self.addresses[name] = f"52.{10 + n // 200}.{n % 200}.{7 + n % 3}"
        return self.addresses[name]

    def frame(self, ts: int, src: str, dst: str, l4: bytes, proto: int) -> None:
        up = src == DEVICE
        smac, dmac = (DEV_MAC, GW_MAC) if up else (GW_MAC, DEV_MAC)
        if src == BENCH:
            smac = BENCH_MAC
        self.packets.append((ts, synth.ethernet(smac, dmac, synth.ETH_IPV4, synth.ipv4(src, dst, proto, l4))))

    def connection(self, ts: int, name: str, up: int, down: int, rng: np.random.Generator) -> None:
        """DNS lookup, then a TLS connection with ``up``/``down`` bytes of data."""
        ip = self.ip_of(name)
        self.port += 1
        sport = self.port
        self.frame(ts, DEVICE, RESOLVER, synth.udp(sport, 53, synth.dns_query(name)), 17)
        ts += int(rng.uniform(5e6, 30e6))
        self.frame(ts, RESOLVER, DEVICE, synth.udp(53, sport, synth.dns_response(name, [(name, "A", ip)])), 17)
        ts += int(rng.uniform(1e6, 5e6))
        self.frame(ts, DEVICE, ip, synth.tcp(sport, 443, flags=0x02), 6)
        ts += 20_000_000
        self.frame(ts, ip, DEVICE, synth.tcp(443, sport, flags=0x12), 6)
        self.frame(ts + 1_000_000, DEVICE, ip, synth.tcp(sport, 443, synth.client_hello(name)), 6)
        for _ in range(max(1, up // 1000)):
            ts += 15_000_000
            self.frame(ts, DEVICE, ip, synth.tcp(sport, 443, b"u" * min(up, 1000)), 6)
        for _ in range(max(1, down // 1400)):
            ts += 5_000_000
            self.frame(ts, ip, DEVICE, synth.tcp(443, sport, b"d" * 1400), 6)


def make_scene(folder: Path, level: str, count: int, seed: int) -> Path:
    """Write one synthetic run directory with events.jsonl, capture/scene.pcap and truth.jsonl."""
    rng = np.random.default_rng(seed)
    scene = Scene([], {})
    truth: list[dict] = []
    start = 1_800_000_000 * 10**9
    voice_ip = scene.ip_of("avs-alexa-na.amazon.com")
    # The voice connection predates the capture: no DNS, no ClientHello, like the real captures.
    vport = 39129
    quiet_s = 120.0
    t = start + int(quiet_s * 1e9)
    onsets = []
    for _ in range(count):
        onsets.append(t)
        t += int(rng.uniform(12, 25) * 1e9)
        if rng.random() < 0.15:
            t += int(rng.uniform(40, 90) * 1e9)  # a pause: time to learn the background
    end = t + int(quiet_s * 1e9)
    run = RunDir(folder / f"{level}-{seed}")
    run.create(run.capture)
    with EventLog(run.events, f"bench-{level}-{seed}") as log:
        for i, onset_capture in enumerate(onsets):
            skill = list(SKILLS)[i % len(SKILLS)]
            bench_onset = int((onset_capture - OFFSET_NS - start) / (1 + DRIFT)) + start
            common = {"plan_index": i, "persona_id": "synthetic", "skill_id": skill, "utterance_id": f"{skill}/{i}"}
            s = log.emit(
                UtteranceStarted(
                    **common,
                    skill_name=skill.title(),
                    text=f"Alexa, ask {skill} something",
                    audio_path="speech/x.wav",
                    audio_sha256="0" * 64,
                    duration_s=2.0,
                    cache_hit=True,
                    device="speaker",
                )
            )
            log.emit(
                UtteranceEnded(
                    **common,
                    started_seq=s.seq,
                    onset_wall_ns=bench_onset,
                    end_wall_ns=bench_onset + 2 * 10**9,
                    onset_mono_ns=0,
                    end_mono_ns=2 * 10**9,
                    latency_s=0.0,
                    device="speaker",
                    sample_rate=22050,
                    frames=44100,
                    backend="synthetic",
                )
            )
            marker = encode_marker(Marker(log.run_id, s.seq, bench_onset, bench_onset, i, 1, 0))
            seen = onset_capture + int(rng.exponential(2e6))
            scene.frame(seen, BENCH, GATEWAY, synth.udp(50000, 9999, marker), 17)
            upload = onset_capture + int(rng.uniform(0.3, 0.9) * 1e9)
            cause = {"kind": "request", "request_seq": s.seq}
            truth.append({"record": "wake", "seq": s.seq, "wall_ns": onset_capture + int(0.2e9)})
            truth.append({"record": "segment", "part": "upload", "cause": cause, "first_ns": upload})
            for k in range(4):  # the opening burst: buffered wake word and first audio, then speech-rate records
                scene.frame(upload + k * 150_000_000, DEVICE, voice_ip, synth.tcp(vport, 443, b"o" * 6000), 6)
            for k in range(int(rng.uniform(1.5, 3.0) / 0.08)):
                at = upload + 40_000_000 + k * 80_000_000
                scene.frame(at, DEVICE, voice_ip, synth.tcp(vport, 443, b"s" * 800), 6)
            answer = upload + int(3.5e9)
            for k in range(30):
                scene.frame(answer + k * 3_000_000, voice_ip, DEVICE, synth.tcp(443, vport, b"a" * 1400), 6)
            if rng.random() < 0.5:  # the report phase some requests have
                report = answer + int(rng.uniform(4, 6) * 1e9)
                for k in range(6):
                    scene.frame(report + k * 10_000_000, DEVICE, voice_ip, synth.tcp(vport, 443, b"r" * 1400), 6)
            metrics = answer + int(rng.uniform(1.0, 4.0) * 1e9)  # the request's metrics event, as the twin sends
            scene.connection(metrics, "unagi-na.amazon.com", 1500, 900, rng)
            truth.append(_flow(cause, "metrics", "unagi-na.amazon.com", metrics))
            for name, probability in SKILLS[skill]:
                if rng.random() < probability:
                    when = answer - int(rng.uniform(0.5, 3.0) * 1e9)
                    scene.connection(when, name, int(rng.uniform(500, 3000)), 4000, rng)
                    truth.append(_flow(cause, "skill", name, when))
    for name, period, periodic in LEVELS[level]:
        when = start + int(rng.uniform(0, period) * 1e9)
        while when < end:
            scene.connection(when, name, 800, 300, rng)
            truth.append(_flow({"kind": "background", "request_seq": None}, "metrics", name, when))
            gap = period * rng.uniform(0.85, 1.15) if periodic else rng.exponential(period)
            when += int(gap * 1e9)
    for k in range(int((end - start) / 30e9)):  # keep-alives on the voice connection
        scene.frame(start + int(k * 30e9), DEVICE, voice_ip, synth.tcp(vport, 443, b"k" * 120), 6)
    scene.packets.sort(key=lambda p: p[0])
    (run.capture / "scene.pcap").write_bytes(synth.pcap_bytes(scene.packets, nanos=True))
    run.truth.write_text("".join(json.dumps(r) + "\n" for r in truth))  # the parts of the twin's records scored
    return run.root


def _flow(cause: dict, purpose: str, name: str, first_ns: int) -> dict:
    return {"record": "flow", "cause": cause, "purpose": purpose, "endpoint": name, "app": "tls", "first_ns": first_ns}


def twin_config(folder: Path, level: str, seed: int) -> Path:
    """The shipped twin configuration with this level's background and the benchmark's addresses."""
    from harness.twin.config import DEFAULT_CONFIG

    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["seed"] = seed
    config["network"].update(TWIN_NETWORK)
    if level == "high":
        for item in config["background"]:
            if item["name"] == "device-metrics-us.amazon.com":
                item.update(every_s=8, jitter_s=4)
        config["background"] += TWIN_HIGH
    path = folder / f"twin-{level}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def bench_persona(folder: Path, script: Path, repeats: int, seed: int) -> Path:
    """``script`` with every utterance spoken ``repeats`` times (shuffled) and short answer limits."""
    data = yaml.safe_load(script.read_text())
    data["persona"]["id"] = f"{data['persona']['id']}-accuracy"
    data["session"] = {
        "gap_s": 2,
        "max_answer_s": 8,
        "answer_timeout_s": 6,
        "retries": 0,
        "repeats": repeats,
        "order": "shuffled",
        "seed": seed,
    }
    path = folder / "persona.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def twin_runs(
    folder: Path, levels: list[str], script: Path, repeats: int, quiet_s: float, seed: int
) -> dict[str, Path]:
    """One twin run per level in a private lab; returns the run directories."""
    from harness.audio.lab import lab_down, lab_up
    from harness.bench.options import RunOptions
    from harness.twin.session import run_with_twin

    persona = bench_persona(folder, script, repeats, seed)
    lab = lab_up(folder / "lab")
    os.environ.update({**lab.environment(), "HARNESS_LAB_DIR": str(lab.base)})
    marker = (TWIN_NETWORK["device"], MARKER_PORT)
    runs = {}
    # a socket takes the markers in, so the twin's address answers them with no ICMP of its own
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(marker)
        try:
            for level in levels:
                options = RunOptions(
                    scripts=[persona],
                    runs_dir=folder / "runs",
                    capture_tail_s=quiet_s,
                    quiet_lead_s=quiet_s,
                    marker=marker,
                    twin_config=twin_config(folder, level, seed),
                )
                result = run_with_twin(options, Console(file=io.StringIO()))
                if result.status != 0:
                    raise SystemExit(f"the {level} twin run failed (status {result.status}): {result.run.root}")
                print(
                    f"# {level}: twin run of {result.seconds:.0f} s in {result.run.root}", file=sys.stderr, flush=True
                )
                runs[level] = result.run.root
        finally:
            lab_down(lab.base)
    return runs


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def evaluate(run: Path, pcaps: list[str] | None, device: str | None) -> dict:
    truth = list(read_jsonl(RunDir(run).truth))
    # a follow-up heard without the wake word has no wake time: its speech onset stands in
    wakes = {r["seq"]: r.get("wall_ns") or r.get("segment_onset_ns") for r in truth if r.get("record") == "wake"}
    wakes = {seq: ns for seq, ns in wakes.items() if ns is not None}
    flows = [r for r in truth if r.get("record") == "flow"]
    result = correlate_run(run, pcaps, device=device)
    utterances = result.tables["utterances"]
    onsets = utterances["onset_capture_ns"].to_numpy()
    row_of = {seq: int(np.searchsorted(onsets, ns + 0.5e9) - 1) for seq, ns in wakes.items()}
    voice = set(result.detection.voice_endpoints) | {f["endpoint"] for f in flows if f["purpose"] == "voice"}
    # activations: every request's upload, matched to the nearest unmatched detection
    true_onsets = sorted(r["first_ns"] for r in truth if r.get("record") == "segment" and r["part"] == "upload")
    used, errors = set(), []
    for a in result.detection.activations:
        free = [(abs(a.onset_ns - t), j) for j, t in enumerate(true_onsets) if j not in used]
        best = min(free) if free else None
        if best and best[0] <= MATCH_S * 1e9:
            used.add(best[1])
            errors.append((a.onset_ns - true_onsets[best[1]]) / 1e9)
    act = _prf(len(used), len(result.detection.activations) - len(used), len(true_onsets) - len(used))
    # attribution: (utterance row, endpoint) pairs; voice, name lookups and the voice service's metrics
    # posts (after answers, 10-15 s late: in a later utterance's window) left out, the posts scored apart
    caused = [
        f
        for f in flows
        if f["cause"].get("kind") == "request"
        and f["cause"].get("request_seq") in row_of
        and f["purpose"] != "voice"
        and f.get("app") != "dns"
    ]
    posts = {f["endpoint"] for f in caused if f["purpose"] == "metrics"}
    truth_pairs = {(row_of[f["cause"]["request_seq"]], f["endpoint"]) for f in caused if f["endpoint"] not in posts}
    post_pairs = {(row_of[f["cause"]["request_seq"]], f["endpoint"]) for f in caused if f["endpoint"] in posts}
    attributed = {(i, e) for i, row in utterances.iterrows() for e in row["endpoint_ids"]}
    ours = {(i, e) for i, e in attributed if e not in voice | posts}
    view = read_capture(result.summary.captures, result.summary.device)
    up = view.packets.up & ~np.isin(view.packets.endpoint, list(voice | posts))
    naive = set()
    for i, onset in enumerate(onsets):
        inside = up & (view.packets.ts_ns >= onset) & (view.packets.ts_ns < onset + NAIVE_WINDOW_S * 1e9)
        naive |= {(i, e) for e in set(view.packets.endpoint[inside])}

    def score(pred: set) -> tuple[float, float, float]:
        return _prf(len(pred & truth_pairs), len(pred - truth_pairs), len(truth_pairs - pred))

    skill_of = utterances["skill_id"].tolist()
    errors_by = Counter(
        (kind, skill_of[i], e)
        for kind, pairs in (("FP", ours - truth_pairs), ("FN", truth_pairs - ours))
        for i, e in pairs
    )
    return {
        "activation": act,
        "onset_errors": errors,
        "ours": score(ours),
        "naive": score(naive),
        "background_s": result.summary.counts.background_s,
        "errors": errors_by,
        "posts": (len(post_pairs & attributed), len(post_pairs)),
        "clock_ms": _clock_difference_ms(run, view, result.summary.clock),
    }


def _clock_difference_ms(run: Path, view, clock) -> float:
    """Marker-free fit minus the run's own mapping (markers), at the median spoken onset, in ms;
    NaN when the run had no markers or the onsets do not fit."""
    if clock.method != "markers":
        return float("nan")
    logged = read_events(RunDir(run).events).events
    onsets = np.array([e.onset_wall_ns for e in logged if isinstance(e, (UtteranceEnded, StopSpoken))], np.int64)
    try:
        fit = align_onsets(onsets, [a.onset_ns for a in detect_activations(view).activations], lag_s=WAKE_LAG_S)
    except HarnessError:
        return float("nan")
    middle = np.array([int(np.median(onsets))], np.int64)
    return float((fit.to_capture_ns(middle) - clock.to_capture_ns(middle))[0] / 1e6)


def _row(label: str, runs: list[dict]) -> str:
    def pooled(key: str) -> tuple[float, float, float]:
        return tuple(float(np.mean([r[key][i] for r in runs])) for i in range(3))

    errors = np.abs(np.concatenate([r["onset_errors"] for r in runs] + [[np.nan]]))
    errors = errors[~np.isnan(errors)] if (~np.isnan(errors)).any() else errors
    a, o, n = pooled("activation"), pooled("ours"), pooled("naive")
    clock = np.array([r["clock_ms"] for r in runs])
    worst = clock[np.argmax(np.abs(clock))] if (~np.isnan(clock)).all() else float("nan")
    return (
        f"{label:<10} {a[0]:>6.3f} {a[1]:>6.3f} {a[2]:>6.3f}   "
        f"{np.median(errors) * 1000:>6.1f} {np.percentile(errors, 95) * 1000:>6.1f}"
        f"   {o[0]:>6.3f} {o[1]:>6.3f} {o[2]:>6.3f}   {n[0]:>6.3f} {n[1]:>6.3f} {n[2]:>6.3f}   {worst:>+7.1f}"
    )


def _details(runs: list[dict]) -> None:
    """Attribution errors per (kind, skill, endpoint), summed over ``runs``."""
    total = sum((r["errors"] for r in runs), Counter())
    for (kind, skill, endpoint), n in sorted(total.items()):
        print(f"    {kind} {n:>3}  {skill:<12} {endpoint}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="*", metavar="RUN_DIR", help="score these twin run directories (no new runs)")
    parser.add_argument("--device", default=None, help="device address of the given runs (default: the manifest's)")
    parser.add_argument(
        "--levels", nargs="+", default=["low", "high"], choices=["low", "high"], help="twin background levels"
    )
    parser.add_argument(
        "--script", type=Path, default=DEMO, help="persona whose utterances are repeated (default: the demo)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="passes through the persona per twin run (default 3)")
    parser.add_argument(
        "--quiet", type=float, default=45.0, help="background-only seconds before and after (default 45)"
    )
    parser.add_argument("--quick", action="store_true", help="one pass, 30 s quiet: about 3 min per level")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="leave the twin runs in DIR (default: deleted)")
    parser.add_argument("--details", action="store_true", help="list attribution errors per skill and endpoint")
    parser.add_argument("--synthetic", action="store_true", help="score generated scenes instead (no lab; seconds)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scenes", type=int, default=3, help="synthetic scenes per background level")
    parser.add_argument("--utterances", type=int, default=30, help="utterances per synthetic scene")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.quiet = 1, 30.0
    header = (
        f"{'level':<10} {'act P':>6} {'act R':>6} {'act F1':>6}   {'on p50':>6} {'on p95':>6}"
        f"   {'att P':>6} {'att R':>6} {'att F1':>6}   {'nv P':>6} {'nv R':>6} {'nv F1':>6}   {'clk ms':>7}"
    )
    print(
        f"onset error in ms (|detected - true upload start|); "
        f"naive = every endpoint within {NAIVE_WINDOW_S:g} s after the "
        "onset; clk = marker-free clock fit minus the markers' at the run's middle (worst run; nan: no markers)"
    )
    print(header, flush=True)

    def show(label: str, results: list[dict]) -> None:
        posts = np.sum([r["posts"] for r in results], axis=0)
        print(
            _row(label, results) + f"   (background {np.mean([r['background_s'] for r in results]):.0f} s/run; "
            f"metrics posts attributed to their request: {posts[0]}/{posts[1]})",
            flush=True,
        )
        if args.details:
            _details(results)

    if args.runs:
        for run in args.runs:
            show(Path(run).name[:10], [evaluate(Path(run), None, args.device)])  # captures from the run's manifest
        return 0
    with tempfile.TemporaryDirectory(prefix="correlate-accuracy-") as tmp:
        if args.synthetic:
            for level in LEVELS:
                results = []
                for k in range(args.scenes):
                    run = make_scene(Path(tmp), level, args.utterances, args.seed * 100 + k)
                    results.append(evaluate(run, [str(run / "capture" / "scene.pcap")], DEVICE))
                show(level, results)
            return 0
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        for level, run in twin_runs(folder, args.levels, args.script, args.repeats, args.quiet, args.seed).items():
            show(level, [evaluate(run, None, None)])
        print(f"# {time.monotonic() - began:.0f} s in all", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
