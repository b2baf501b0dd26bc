"""Listening for the Echo's answer on the lab's virtual_mic, and the pure VAD underneath."""

from __future__ import annotations

import subprocess
import threading
import time

import numpy as np
import pytest

from harness.audio import (
    BACKENDS,
    Answer,
    Limits,
    NoiseFloor,
    calibrate_noise,
    listen,
    open_backend,
    resolve_device,
    same_answer,
)
from harness.audio.vad import Endpointer, noise_floor
from harness.wav import read_wav

from conftest import require_tool

RATE = 22050
NOISE = NoiseFloor(rms_dbfs=-120.0, threshold_dbfs=-50.0)


def say(tmp_path_factory, text: str) -> np.ndarray:
    """espeak-ng speech with its leading and trailing quiet cut, so the voice starts at sample 0."""
    espeak = require_tool("espeak-ng")
    path = tmp_path_factory.mktemp("answer") / "answer.wav"
    subprocess.run([espeak, "-v", "en-us", "-w", str(path), text], check=True)
    samples, rate = read_wav(path)
    assert rate == RATE
    loud = np.flatnonzero(np.abs(samples) > 0.02)
    return samples[loud[0] : loud[-1] + 1]


@pytest.fixture(scope="module")
def answer_wav(tmp_path_factory) -> np.ndarray:
    return say(tmp_path_factory, "The weather in Boston is sunny, with a high of seventy degrees.")


@pytest.fixture(scope="module")
def other_wav(tmp_path_factory) -> np.ndarray:
    return say(tmp_path_factory, "Sorry, I don't know that one.")


def answer_later(lab, samples: np.ndarray, delay_s: float) -> tuple[threading.Thread, list]:
    """Play ``samples`` into the Echo's speaker from another thread after ``delay_s``."""
    backend = open_backend("sounddevice")
    speaker = resolve_device(lab.answer_output, "output")
    timings: list = []

    def run() -> None:
        time.sleep(delay_s)
        timings.append(backend.play(samples, RATE, speaker))

    thread = threading.Thread(target=run)
    thread.start()
    return thread, timings


@pytest.mark.lab
@pytest.mark.parametrize("backend_name", BACKENDS)
def test_answer_is_detected_with_its_onset_and_duration(lab, answer_wav, backend_name):
    backend = open_backend(backend_name)
    mic = resolve_device(lab.mic, "input", backend_name)
    thread, timings = answer_later(lab, answer_wav, delay_s=0.7)
    answer = listen(backend, mic, RATE, Limits(answer_timeout_s=4, max_answer_s=15, min_silence_s=0.6), NOISE)
    thread.join()
    spoken = timings[0]
    assert answer.outcome == "answer"
    assert abs(answer.onset_wall_ns - spoken.onset_wall_ns) < 10e6
    assert abs(answer.end_wall_ns - spoken.end_wall_ns) < 30e6
    assert answer.duration_s == pytest.approx((spoken.end_wall_ns - spoken.onset_wall_ns) / 1e9, abs=0.04)
    assert answer.started_wall_ns < answer.onset_wall_ns
    assert answer.onset_wall_ns - answer.started_wall_ns == pytest.approx(answer.onset_index / RATE * 1e9, abs=1e6)
    # Listening stopped once min_silence_s of quiet followed the answer, not at the timeout.
    assert len(answer.samples) / RATE < answer.onset_index / RATE + answer.duration_s + 0.6 + 0.3


@pytest.mark.lab
def test_silence_is_no_answer(lab):
    backend = open_backend()
    answer = listen(backend, resolve_device(lab.mic, "input"), RATE, Limits(answer_timeout_s=0.6), NOISE)
    assert answer.outcome == "no_answer"
    assert answer.onset_wall_ns is None and answer.duration_s is None
    assert len(answer.samples) >= 0.6 * RATE


@pytest.mark.lab
def test_answer_longer_than_the_limit_is_too_long(lab, answer_wav):
    backend = open_backend()
    thread, timings = answer_later(lab, answer_wav, delay_s=0.3)
    answer = listen(
        backend,
        resolve_device(lab.mic, "input"),
        RATE,
        Limits(answer_timeout_s=3, max_answer_s=1.0, min_silence_s=0.5),
        NOISE,
    )
    thread.join()
    assert answer.outcome == "too_long"
    assert answer.duration_s == pytest.approx(1.0, abs=0.03)
    assert abs(answer.onset_wall_ns - timings[0].onset_wall_ns) < 10e6
    assert len(answer.samples) < answer.onset_index + 1.3 * RATE  # returned at the limit, not the end


@pytest.mark.lab
def test_calibration_on_digital_silence_uses_the_floor(lab):
    noise = calibrate_noise(open_backend(), resolve_device(lab.mic, "input"), seconds=0.5, floor_dbfs=-60.0)
    assert noise.rms_dbfs <= -100.0
    assert noise.threshold_dbfs == -60.0


@pytest.mark.lab
def test_a_repeated_answer_is_recognised(lab, answer_wav, other_wav):
    backend, mic = open_backend(), resolve_device(lab.mic, "input")
    limits = Limits(answer_timeout_s=3, max_answer_s=15, min_silence_s=0.5)
    heard = []
    for delay in (0.2, 0.45):
        thread, _ = answer_later(lab, answer_wav, delay_s=delay)
        heard.append(listen(backend, mic, RATE, limits, NOISE))
        thread.join()
    assert same_answer(heard[0], heard[1])
    assert not same_answer(heard[0], as_answer(other_wav))


def as_answer(samples: np.ndarray, lead: int = 0) -> Answer:
    padded = np.concatenate([np.zeros(lead, np.float32), samples, np.zeros(RATE // 2, np.float32)])
    return Answer(
        "answer", 1, 2, len(samples) / RATE, padded, RATE, 0, onset_index=lead, end_index=lead + len(samples) - 1
    )


def test_same_answer_tolerates_small_offsets_and_level(answer_wav, other_wav):
    a = as_answer(answer_wav)
    shifted = as_answer(np.concatenate([np.zeros(300, np.float32), answer_wav * 0.5]), lead=700)
    assert same_answer(a, shifted)
    assert not same_answer(a, as_answer(other_wav))
    longer = as_answer(np.concatenate([answer_wav, answer_wav]))
    assert not same_answer(a, longer)
    nothing = Answer("no_answer", None, None, None, np.zeros(RATE, np.float32), RATE, 0)
    assert not same_answer(nothing, nothing)


def test_endpointer_finds_onset_and_end_inside_frames():
    rate = 8000
    recording = np.zeros(3 * rate, np.float32)
    onset, end = 4321, 4321 + 6000
    t = np.arange(end - onset) / rate
    recording[onset:end] = 0.3 * np.sin(2 * np.pi * 440 * t)
    detector = Endpointer(rate, -40.0, answer_timeout_s=2, max_answer_s=10, min_silence_s=0.3)
    outcomes = [detector.update(recording[:n]) for n in range(800, len(recording) + 1, 800)]
    assert outcomes[-1] == "answer" and outcomes.count("answer") >= 1
    assert abs(detector.onset_index - onset) <= 2 * int(rate * 0.002)
    assert abs(detector.end_index - (end - 1)) <= 2 * int(rate * 0.002)


def test_endpointer_ignores_a_click_and_times_out():
    rate = 8000
    recording = np.zeros(2 * rate, np.float32)
    recording[1000:1040] = 0.9  # 5 ms click, shorter than the minimum voice
    detector = Endpointer(rate, -40.0, answer_timeout_s=1.5, max_answer_s=10, min_silence_s=0.3)
    assert detector.update(recording[:rate]) is None
    assert detector.update(recording) == "no_answer"
    assert detector.onset_index is None


def test_noise_floor_threshold_is_noise_plus_margin():
    rng = np.random.default_rng(0)
    noise = (0.01 * rng.standard_normal(RATE)).astype(np.float32)  # about -40 dBFS
    floor = noise_floor(noise, RATE, margin_db=12.0, floor_dbfs=-60.0)
    assert floor.rms_dbfs == pytest.approx(-40.0, abs=1.0)
    assert floor.threshold_dbfs == pytest.approx(floor.rms_dbfs + 12.0)
