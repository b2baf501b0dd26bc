"""Clock alignment, activation detection (real Echo captures and synthetic traffic), background scoring, CLI."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pandas as pd
import pytest

from harness.cli.main import main
from harness.correlate import detect_activations, fit_alignment, read_capture
from harness.correlate.attribution import (
    AttributionSettings,
    background_intervals,
    background_probability,
    windows,
)
from harness.correlate.capture import CaptureView, DevicePackets
from harness.correlate.clock import WAKE_LAG_S
from harness.correlate.run import align

CAPTURES = {
    # file: (device, packet-level onsets of the five upstream bursts, seconds from the first packet)
    "tell_me_a_joke_5x30s.pcapng": ("192.168.86.40", [5.44, 54.92, 105.35, 160.48, 219.71]),
    "what_is_the_weather_5x30s.pcapng": ("10.63.7.79", [2.17, 31.37, 63.33, 98.27, 128.13]),
}


def test_alignment_recovers_offset_and_drift():
    rng = np.random.default_rng(7)
    sent = 1_700_000_000 * 10**9 + np.sort(rng.integers(0, 3600 * 10**9, 200))
    offset_s, drift_ppm = -2.5, 40.0
    jitter = rng.exponential(0.002, len(sent))  # queueing only ever delays a marker
    seen = sent + np.round(offset_s * 1e9 + drift_ppm * 1e-6 * (sent - sent.min()) + jitter * 1e9).astype(np.int64)
    seen[::25] += 3 * 10**9  # a few markers stuck behind a burst for seconds
    fit = fit_alignment(sent, seen)
    assert fit.method == "markers" and fit.markers == len(sent)
    assert fit.offset_s == pytest.approx(offset_s, abs=0.006)  # within the typical queueing delay
    assert fit.drift_ppm == pytest.approx(drift_ppm, abs=1.0)
    assert fit.jitter_p50_s < 0.005 and fit.jitter_max_s > 2.9
    mapped = fit.to_capture_ns(sent[1:-1:25])
    assert np.abs(mapped - seen[1:-1:25]).max() < 0.02e9


def test_alignment_from_one_marker_is_an_offset():
    fit = fit_alignment([10**18], [10**18 + 1_500_000_000])
    assert fit.offset_s == pytest.approx(1.5) and fit.drift_ppm == 0
    assert fit.to_capture_ns(10**18 + 10**9) == 10**18 + 2_500_000_000


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_five_activations_in_each_real_capture(echo_captures, name):
    device, onsets = CAPTURES[name]
    view = read_capture([echo_captures / name], device)
    result = detect_activations(view)
    found = [(a.onset_ns - view.first_ns) / 1e9 for a in result.activations]
    assert len(found) == 5
    assert np.abs(np.array(found) - onsets).max() < 0.05
    assert all(a.bytes_up > 30_000 for a in result.activations)
    assert all(a.end_ns - a.onset_ns < 12e9 for a in result.activations)


def test_joke_metrics_after_each_answer_are_not_requests(echo_captures):
    view = read_capture([echo_captures / "tell_me_a_joke_5x30s.pcapng"], "192.168.86.40")
    result = detect_activations(view)
    assert result.voice_source == "shape" and result.voice_endpoints == ["52.94.227.146"]
    # ~6 s after each request the Echo posts ~14 KB of metrics on the same connection (11.6 s, 62.8 s, ...)
    assert all(a.end_ns - a.onset_ns < 4e9 and 40_000 < a.bytes_up < 75_000 for a in result.activations)
    assert all(a.confidence > 0.9 for a in result.activations)


def test_activations_cli_json(echo_captures, capsys):
    path = echo_captures / "what_is_the_weather_5x30s.pcapng"
    assert main(["activations", str(path), "--device", "10.63.7.79", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["activations"]) == 5 and doc["threshold_bps"] > 0 and doc["device"] == "10.63.7.79"
    first = doc["activations"][0]
    assert first["activation_id"] == 0 and isinstance(first["onset_capture_ns"], int)
    assert first["onset_capture_ns"] / 1e9 == pytest.approx(1540286788.5296, abs=1e-3)
    assert first["endpoint_ids"] == ["52.46.136.99"]
    assert doc["warnings"]  # the voice endpoint has no name in this capture


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["activations", str(tmp_path / "missing.pcap"), "--device", "10.0.0.1"]) == 1
    assert "missing.pcap" in capsys.readouterr().err
    assert main(["correlate", str(tmp_path)]) == 1
    assert "events.jsonl" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["correlate", str(tmp_path), "--clock-offset", "soon"])
    assert exc.value.code == 2


def test_periodic_background_fills_every_window():
    second = 10**9
    beats = np.arange(0, 100 * second, 5 * second)  # every 5 s
    assert background_probability(beats, [(0, 100 * second)], 5 * second) == pytest.approx(1.0, abs=0.06)
    p = background_probability(beats, [(0, 100 * second)], 1 * second)
    assert 0.15 < p < 0.3  # a 1 s window holds a 5 s beat one time in five
    assert background_probability(np.array([], np.int64), [(0, 100 * second)], 5 * second) < 0.03


def test_windows_end_at_the_next_onset_or_the_cap():
    settings = AttributionSettings(max_window_s=10, lead_s=0)
    starts, ends = windows([0, 4 * 10**9, 40 * 10**9], settings)
    assert list(ends) == [4 * 10**9, 14 * 10**9, 50 * 10**9]
    assert background_intervals((0, 60 * 10**9), starts, ends) == [(14 * 10**9, 40 * 10**9), (50 * 10**9, 60 * 10**9)]


VOICE = "52.94.227.146"
NOW = 1_700_000_000 * 10**9


def request(t_s: float, speech_s: float = 2.0, answer_s: float = 1.0) -> list[tuple[float, int, bool]]:
    """An Echo request as (time, bytes, upstream): ~28 KB opening at once, 566-byte audio records
    every 57 ms (~9.9 KB/s) while spoken, then the answer down."""
    packets = [(t_s + 0.002 * i, 1514, True) for i in range(19)]
    packets += [(t_s + 0.1 + 0.057 * i, 566, True) for i in range(int(speech_s / 0.057))]
    end = t_s + 0.1 + speech_s
    packets += [(end + 0.2 + 0.01 * i, 1514, False) for i in range(int(answer_s * 100))]
    return packets


def metrics(t_s: float) -> list[tuple[float, int, bool]]:
    """A post-answer metrics post: three bursts of full records 0.4 s apart (~16 KB in a second)."""
    sizes = [287, 190, 1514, 1514, 1514, 965]
    return [(t_s + 0.4 * k + 0.001 * i, size, True) for k in range(3) for i, size in enumerate(sizes)]


def view_of(packets: list[tuple[float, int, bool]], base_ns: int = NOW) -> CaptureView:
    ts = np.array([base_ns + round(t * 1e9) for t, _, _ in packets], np.int64)
    order = np.argsort(ts, kind="stable")
    length = np.array([n for _, n, _ in packets], np.int64)[order]
    up = np.array([u for _, _, u in packets], bool)[order]
    device = DevicePackets(ts[order], length, up, np.full(len(ts), VOICE, object), np.zeros(len(ts), np.int64))
    flows = pd.DataFrame({"name": pd.Series([], dtype=object), "service": pd.Series([], dtype=bool), "endpoint": []})
    return CaptureView("192.168.86.40", device, flows, [], int(ts.min()), int(ts.max()))


def test_metrics_after_an_answer_are_not_an_activation():
    packets = request(10.0) + metrics(25.0) + request(60.0) + metrics(72.0)
    result = detect_activations(view_of(packets))
    assert [round((a.onset_ns - NOW) / 1e9, 3) for a in result.activations] == [10.0, 60.0]
    assert result.voice_endpoints == [VOICE] and result.voice_source == "shape"
    assert all(a.confidence > 0.9 and 30_000 < a.bytes_up < 60_000 for a in result.activations)


def test_a_long_streamed_answer_with_keep_alives_adds_no_activation():
    packets = request(10.0, answer_s=0.1)
    # five minutes of music down at ~150 KB/s: an ACK up for every second record, a 120-byte
    # keep-alive record every 1.5 s, a 2 KB progress report every 20 s
    packets += [(13.0 + 0.01 * i, 1514, False) for i in range(30_000)]
    packets += [(13.0 + 0.02 * i, 54, True) for i in range(15_000)]
    packets += [(13.0 + 1.5 * i, 120, True) for i in range(200)]
    packets += [(20.0 + 20 * i + 0.001 * j, size, True) for i in range(15) for j, size in enumerate([287, 190, 1514])]
    packets += request(200.0, speech_s=1.0, answer_s=0.1)  # "Alexa, stop" while the music plays
    result = detect_activations(view_of(packets))
    assert [round((a.onset_ns - NOW) / 1e9, 3) for a in result.activations] == [10.0, 200.0]


def test_a_clock_step_from_1970_is_skipped_with_a_warning():
    boot = request(5.0)  # the access point's clock before NTP set it: 1970
    later = request(40.0)
    packets = boot + [(t + (NOW - 10**12) / 1e9, n, u) for t, n, u in later]  # then today
    tracemalloc.start()
    result = detect_activations(view_of(packets, base_ns=10**12))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(result.activations) == 2
    assert peak < 20 * 2**20  # nothing sized by the 54 years between the two
    assert any("clock jumps" in w for w in result.warnings)


def test_without_markers_the_clocks_are_fitted_to_the_utterance_onsets():
    """A capture clock 42 s ahead and no markers: the offset comes from the requests' shape."""
    spoken_s = np.array([10.0, 31.0, 47.0, 80.0, 96.0, 140.0])  # bench clock, irregular as a real plan
    lag_s = 0.6
    view = view_of([p for t in spoken_s for p in request(t + 42.0 + lag_s)])
    warnings: list[str] = []
    clock = align(view, "run", None, NOW + (spoken_s * 1e9).astype(np.int64), None, warnings)
    assert clock.method == "activations" and clock.matched == len(spoken_s) and clock.confidence > 0.5
    assert abs(clock.offset_s - (42.0 + lag_s - WAKE_LAG_S)) < 0.05
    assert any("fitted from 6 utterance onsets" in w for w in warnings)


def test_without_markers_agreeing_clocks_are_kept_and_a_periodic_schedule_is_not_trusted():
    steady = np.arange(6) * 30.0 + 10.0  # every 30 s: offsets 30 s apart fit as well
    for spoken_s, shift_s in ((np.array([10.0, 31.0, 47.0, 80.0, 96.0, 140.0]), 0.5), (steady, 60.0)):
        view = view_of([p for t in spoken_s for p in request(t + shift_s)])
        warnings: list[str] = []
        clock = align(view, "run", None, NOW + (spoken_s * 1e9).astype(np.int64), None, warnings)
        assert clock.method == "host" and clock.offset_s == 0.0
    assert any("ambiguous" in w for w in warnings)


def test_a_request_mapped_just_after_its_opening_still_starts_its_own_activation():
    """Back-to-back requests on one connection (the second 1.5 s after the first's stream ended):
    the logged onsets, mapped onto the capture clock, may land a little after the opening burst
    they caused (a device with no wake lag, a clock residual); each still starts its activation."""
    packets = request(10.0, speech_s=1.2, answer_s=0.0) + request(12.8, speech_s=1.2, answer_s=0.0)
    view = view_of(packets)
    assert len(detect_activations(view).activations) == 1  # without the log: one stream
    late = np.array([NOW + int((t + 0.02) * 1e9) for t in (10.0, 12.8)], np.int64)
    found = detect_activations(view, None, late).activations
    assert [round((a.onset_ns - NOW) / 1e9, 3) for a in found] == [10.0, 12.8]
