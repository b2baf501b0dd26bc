"""Real playback into the lab's harness_out, checked against a recording of its monitor."""

from __future__ import annotations

import subprocess
import time

import numpy as np
import pytest

from conftest import require_tool
from harness.audio import BACKENDS, Capture, open_backend, resolve_device
from harness.audio.align import find_sound
from harness.audio.clock import Callback, settled, time_of_frame
from harness.wav import read_wav

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
    paced = [Callback(true_onset + k * 0.010 + 0.00002 * (-1) ** k, 10.05 + (k - 5) * 0.010, k * 10, 10)
             for k in range(5, 40)]
    callbacks = burst + paced
    assert settled(callbacks, rate)[0] == paced[0]
    assert time_of_frame(callbacks, 0, rate) == pytest.approx(true_onset, abs=5e-5)
    assert time_of_frame(callbacks, 399, rate) == pytest.approx(true_onset + 0.399, abs=5e-5)
