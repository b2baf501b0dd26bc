"""synthesize(): normalised WAVs, durations, cache hits and keys, concurrent cache writers."""

from __future__ import annotations

import subprocess
import sys
import threading
import wave
from pathlib import Path

import numpy as np
import pytest

from harness.script.models import SpeechSettings
from harness.speech import SpeechError, cache_key, default_cache_dir, get_engine, synthesize
from harness.speech.normalise import PAD_S, PEAK_CEILING_DBFS, SAMPLE_RATE, TARGET_RMS_DBFS, condition
from harness.wav import read_wav

from conftest import require_tool

SHORT = "Alexa, open Big Sky."
LONG = "Alexa, ask Big Sky for the weather in three hours and whether it will rain in Boston tomorrow afternoon."


@pytest.fixture(autouse=True)
def _espeak() -> None:
    require_tool("espeak-ng")


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def espeak(**changes: object) -> SpeechSettings:
    return SpeechSettings(**changes)


def gain_to_db(gain: float) -> float:
    return float(20.0 * np.log10(gain))


def rms_db(x: np.ndarray) -> float:
    return gain_to_db(float(np.sqrt(np.mean(x.astype(np.float64) ** 2))))


def test_output_is_mono_16bit_22050(cache: Path) -> None:
    s = synthesize(SHORT, espeak(), cache)
    with wave.open(str(s.path), "rb") as wf:
        assert (wf.getnchannels(), wf.getsampwidth(), wf.getframerate()) == (1, 2, SAMPLE_RATE)
        assert s.duration_s == pytest.approx(wf.getnframes() / SAMPLE_RATE)
    assert s.sample_rate == SAMPLE_RATE


def test_durations_plausible_and_proportional_to_length(cache: Path) -> None:
    short, long = synthesize(SHORT, espeak(), cache), synthesize(LONG, espeak(), cache)
    assert 0.8 < short.duration_s < 3.0
    words = len(LONG.split()) / len(SHORT.split())
    assert 0.6 * words < long.duration_s / short.duration_s < 1.4 * words
    slow = synthesize(LONG, espeak(rate=120), cache)
    assert slow.duration_s > 1.2 * long.duration_s


def test_level_is_normalised(cache: Path) -> None:
    for text in (SHORT, LONG):
        samples, _ = read_wav(synthesize(text, espeak(), cache).path)
        pad = int(PAD_S * SAMPLE_RATE)
        voiced = samples[pad:-pad]
        peak_db = gain_to_db(float(np.abs(voiced).max()))
        at_target = abs(rms_db(voiced) - TARGET_RMS_DBFS) < 0.2
        at_ceiling = abs(peak_db - PEAK_CEILING_DBFS) < 0.1
        assert at_target or at_ceiling
        assert peak_db <= PEAK_CEILING_DBFS + 0.01


def test_volume_scales_the_normalised_level(cache: Path) -> None:
    full, _ = read_wav(synthesize(SHORT, espeak(), cache).path)
    half, _ = read_wav(synthesize(SHORT, espeak(volume=0.5), cache).path)
    assert rms_db(half) - rms_db(full) == pytest.approx(-6.02, abs=0.1)


def test_edges_trimmed_to_a_short_pad(cache: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw.wav"
    get_engine("espeak").render(SHORT, "en-us", 175, 1.0, raw)
    raw_samples, _ = read_wav(raw)
    s = synthesize(SHORT, espeak(), cache)
    samples, _ = read_wav(s.path)
    pad = int(round(PAD_S * SAMPLE_RATE))
    assert not samples[:pad].any() and not samples[-pad:].any()
    frame = SAMPLE_RATE // 100  # the 10 ms just inside each pad holds speech
    assert np.abs(samples[pad : pad + frame]).max() > 0.01
    assert np.abs(samples[-pad - frame : -pad]).max() > 0.001
    assert len(raw_samples) / SAMPLE_RATE - s.duration_s > 0.2  # espeak's ~300 ms end pause is gone


def test_condition_resamples_other_rates() -> None:
    rate = 16000
    t = np.arange(rate) / rate  # one second of a 440 Hz tone
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out = condition(tone, rate)
    assert len(out) == pytest.approx(SAMPLE_RATE + 2 * PAD_S * SAMPLE_RATE, abs=SAMPLE_RATE * 0.011)
    spectrum = np.abs(np.fft.rfft(out))
    assert np.fft.rfftfreq(len(out), 1 / SAMPLE_RATE)[spectrum.argmax()] == pytest.approx(440, abs=2)


def test_silence_and_empty_text_are_errors(cache: Path) -> None:
    assert condition(np.zeros(22050, dtype=np.float32), 22050) is None
    with pytest.raises(SpeechError, match="empty"):
        synthesize("   ", espeak(), cache)


def test_espeak_synthesis_is_deterministic(tmp_path: Path) -> None:
    a = synthesize(LONG, espeak(), tmp_path / "a")
    b = synthesize(LONG, espeak(), tmp_path / "b")
    assert a.sha256 == b.sha256
    assert a.path.read_bytes() == b.path.read_bytes()


def test_second_call_is_a_cache_hit_without_rendering(cache: Path) -> None:
    first = synthesize(SHORT, espeak(), cache)
    before = first.path.stat()
    second = synthesize(SHORT, espeak(), cache)
    after = second.path.stat()
    assert (first.cache_hit, second.cache_hit) == (False, True)
    assert second.path == first.path and second.sha256 == first.sha256
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert sorted(p.name for p in cache.iterdir()) == [first.path.name]


def test_damaged_cache_file_is_rendered_again(cache: Path) -> None:
    first = synthesize(SHORT, espeak(), cache)
    first.path.write_bytes(b"RIFF")
    again = synthesize(SHORT, espeak(), cache)
    assert again.cache_hit is False and again.sha256 == first.sha256


def test_cache_key_covers_every_setting() -> None:
    base = espeak()
    version = get_engine("espeak").version()
    key = cache_key(SHORT, base, version)
    assert key == cache_key(SHORT, espeak(), version)
    variants = [
        cache_key(SHORT + " ", base, version),
        cache_key(SHORT, espeak(voice="en-us+f2"), version),
        cache_key(SHORT, espeak(rate=176), version),
        cache_key(SHORT, espeak(volume=0.9), version),
        cache_key(SHORT, espeak(engine="pyttsx3"), version),
        cache_key(SHORT, base, version + "x"),
    ]
    assert len({key, *variants}) == 1 + len(variants)


def test_default_cache_dir_follows_harness_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "speech"
    monkeypatch.delenv("HARNESS_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "harness" / "speech"


TEXTS = [SHORT, LONG, "Alexa, stop", "Alexa, ask Fitbit how I slept last night."]


def assert_clean_cache(cache: Path, expected: int) -> None:
    files = sorted(cache.iterdir())
    assert [p.name for p in files if p.name.startswith(".")] == []  # no temp files or render folders
    assert len(files) == expected
    for path in files:
        samples, rate = read_wav(path)
        assert rate == SAMPLE_RATE and len(samples) > SAMPLE_RATE // 2


def test_concurrent_threads_same_and_different_keys(cache: Path) -> None:
    start = threading.Barrier(12)
    results: dict[int, str] = {}

    def worker(n: int) -> None:
        start.wait()
        text = TEXTS[0] if n < 8 else TEXTS[n - 8]  # 8 writers race on one key, 4 on different keys
        results[n] = synthesize(text, espeak(), cache).sha256

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 12
    assert len({results[n] for n in range(8)} | {results[8]}) == 1
    assert_clean_cache(cache, len(TEXTS))


def test_concurrent_processes_same_and_different_keys(cache: Path) -> None:
    code = (
        "import sys\n"
        "from harness.script.models import SpeechSettings\n"
        "from harness.speech import synthesize\n"
        "for text in sys.argv[2:]:\n"
        "    print(synthesize(text, SpeechSettings(), sys.argv[1]).sha256)\n"
    )
    orders = [TEXTS, TEXTS[::-1], TEXTS[1:] + TEXTS[:1], [TEXTS[0]] * 3]
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(cache), *order], stdout=subprocess.PIPE, text=True)
        for order in orders
    ]
    outputs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert [p.returncode for p in procs] == [0] * len(procs)
    by_text: dict[str, set[str]] = {}
    for order, digests in zip(orders, outputs, strict=True):
        for text, digest in zip(order, digests, strict=True):
            by_text.setdefault(text, set()).add(digest)
    assert all(len(digests) == 1 for digests in by_text.values())
    assert_clean_cache(cache, len(TEXTS))


def test_pyttsx3_synthesis_matches_format_and_repeats_duration(tmp_path: Path) -> None:
    pytest.importorskip("pyttsx3", reason="pyttsx3 is not installed")
    settings = SpeechSettings(engine="pyttsx3")
    a = synthesize(SHORT, settings, tmp_path / "a")
    b = synthesize(SHORT, settings, tmp_path / "b")
    assert a.sample_rate == SAMPLE_RATE
    assert b.duration_s == pytest.approx(a.duration_s, rel=0.02)
    assert synthesize(SHORT, settings, tmp_path / "a").cache_hit
