"""Real playback into the lab's harness_out, checked against a recording of its monitor."""

from __future__ import annotations

import subprocess
import threading
import time

import numpy as np
import pytest

from harness.audio import BACKENDS, Capture, PlayControl, open_backend, resolve_device
from harness.audio.align import find_sound
from harness.audio.clock import Callback, settled, time_of_frame
from harness.wav import read_wav

from conftest import require_tool

pytestmark = pytest.mark.lab
RATE = 22050


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> np.ndarray:
    espeak = require_tool("espeak-ng")
    path = tmp_path_factory.mktemp("speech") / "utterance.wav"
    subprocess.run([espeak, "-v", "en-us", "-w", str(path), "Alexa, what is the weather today"], check=True)
    samples, rate = read_wav(path)
    assert rate == RATE
    return samples


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_played_sound_is_heard_when_the_log_says(lab, speech, backend_name):
    backend = open_backend(backend_name)
    out = resolve_device(lab.output, "output", backend_name)
    monitor = resolve_device(lab.monitor, "input", "sounddevice")
    reported: list[int] = []
    with Capture(open_backend("sounddevice"), monitor, RATE, capacity_s=10) as capture:
        time.sleep(0.3)
        timing = backend.play(speech, RATE, out, on_onset=reported.append)
        returned_ns = time.time_ns()
        time.sleep(0.3)
        capture.poll()
        position, ncc = find_sound(capture.samples, speech)
        heard_ns = capture.wall_ns(0) + position / RATE * 1e9
    assert ncc > 0.99
    assert abs(timing.onset_wall_ns - heard_ns) < 3e6  # within 3 ms
    assert timing.end_wall_ns - timing.onset_wall_ns == pytest.approx((len(speech) - 1) / RATE * 1e9, abs=3e6)
    assert returned_ns >= timing.end_wall_ns  # play() returns after the last sample was played
    assert len(reported) == 1 and abs(reported[0] - timing.onset_wall_ns) < 1e6
    assert timing.onset_mono_ns - timing.onset_wall_ns == pytest.approx(time.monotonic_ns() - time.time_ns(), abs=5e6)
    assert (timing.backend, timing.device, timing.sample_rate, timing.frames) == (backend_name, out, RATE, len(speech))
    assert timing.complete and timing.latency_s > 0


def test_prefill_callbacks_do_not_date_the_sound():
    # The shape seen on ALSA: five callbacks in a burst fill the buffer (their DAC times are
    # 40 ms early), then paced callbacks carry the true DAC times.
    rate, true_onset = 1000, 100.0
    burst = [Callback(99.96 + k * 0.010, 10.0 + k * 1e-4, k * 10, 10) for k in range(5)]
    paced = [
        Callback(true_onset + k * 0.010 + 0.00002 * (-1) ** k, 10.05 + (k - 5) * 0.010, k * 10, 10)
        for k in range(5, 40)
    ]
    callbacks = burst + paced
    assert settled(callbacks, rate)[0] == paced[0]
    assert time_of_frame(callbacks, 0, rate) == pytest.approx(true_onset, abs=5e-5)
    assert time_of_frame(callbacks, 399, rate) == pytest.approx(true_onset + 0.399, abs=5e-5)


def test_wandering_reports_do_not_move_the_end():
    # Reports that wander away after the start (as PulseAudio's interpolated latency does under
    # load: here 2 ms too early by the end) must not move the end: the sample clock is steady.
    rate, onset = 1000, 100.0
    callbacks = [
        Callback(onset + k * 0.010 - 0.002 * max(0, k - 30) / 170, 10.0 + k * 0.010, k * 10, 10) for k in range(200)
    ]
    assert time_of_frame(callbacks, 0, rate) == pytest.approx(onset, abs=1e-6)
    assert time_of_frame(callbacks, 1999, rate) == pytest.approx(onset + 1.999, abs=1e-6)


def test_an_underflow_starts_a_new_anchor():
    # After an underrun the rest of the sound plays 20 ms later; the flagged callback says so.
    rate, onset = 1000, 100.0
    callbacks = [
        Callback(onset + k * 0.010 + (0.020 if k >= 50 else 0.0), 10.0 + k * 0.010, k * 10, 10, k == 50)
        for k in range(100)
    ]
    assert time_of_frame(callbacks, 0, rate) == pytest.approx(onset, abs=1e-6)
    assert time_of_frame(callbacks, 999, rate) == pytest.approx(onset + 0.999 + 0.020, abs=1e-6)


def test_a_long_stream_follows_its_device_clock():
    # A minute of input from a device 100 ppm slow: past LONG_S the fitted line follows it.
    rate, start = 1000, 100.0
    callbacks = [Callback(start + k * 0.1 * (1 + 1e-4), 10.0 + k * 0.1, k * 100, 100) for k in range(600)]
    assert time_of_frame(callbacks, 50_000, rate) == pytest.approx(start + 50.0 * (1 + 1e-4), abs=1e-5)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_control_ducks_and_cuts_a_sound(lab, speech, backend_name):
    backend = open_backend(backend_name)
    out = resolve_device(lab.output, "output", backend_name)
    monitor = resolve_device(lab.monitor, "input", "sounddevice")
    control = PlayControl(gain=lambda: 0.25)
    cut_after_s = 0.8
    with Capture(open_backend("sounddevice"), monitor, RATE, capacity_s=10) as capture:
        time.sleep(0.3)
        threading.Timer(cut_after_s, control.stop.set).start()
        timing = backend.play(speech, RATE, out, control=control)
        returned_ns = time.time_ns()
        time.sleep(0.3)
        capture.poll()
        position, ncc = find_sound(capture.samples, speech[: timing.frames])
        heard = capture.samples[int(round(position)) : int(round(position)) + timing.frames]
        after = capture.samples[int(round(position)) + timing.frames + 5 :]
    assert timing.stopped and timing.complete and 0 < timing.frames < len(speech)
    level = np.sqrt(np.mean(speech[: timing.frames] ** 2))
    assert ncc > 0.99 and np.sqrt(np.mean(heard**2)) == pytest.approx(0.25 * level, rel=0.05)
    assert np.abs(after).max() < 1e-4  # nothing of the sound after the cut
    assert timing.end_wall_ns - timing.onset_wall_ns == pytest.approx((timing.frames - 1) / RATE * 1e9, abs=1e3)
    assert returned_ns >= timing.end_wall_ns
