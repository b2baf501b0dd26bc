"""How exact are the logged onsets? Plays N espeak-ng utterances into the lab's harness_out
while a separate stream records harness_out's monitor (what the Echo would hear), finds each
utterance in that recording by cross-correlation, and compares the harness's logged onset and
end, and a naive `time.time_ns()` taken just before the play call, with where the sound
really is.

Reference time base: the recording's own sample clock. Sample i of the monitor recording is
dated by a straight line (offset + rate drift) fitted to the recorder's ADC times over the
whole run, so no single callback's time matters; an independent `parec` recording, dated by
the lower envelope of its read times (a line fitted to the earliest arrivals), checks it.

    scripts/lab up && .venv/bin/python benchmarks/onset_accuracy.py [-n 50] [--backend both]

Errors are logged minus found, in ms; "p99|e-median|" is the spread once a constant offset
between the two time bases is removed.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from harness.audio import Capture, lab_status, open_backend, resolve_device
from harness.audio.align import find_sound
from harness.audio.clock import settled
from harness.wav import read_wav, write_wav

WORDS = (
    "what time is it",
    "play some jazz",
    "ask fitbit how many steps I took",
    "set a timer for ten minutes",
    "what is the weather in Boston",
    "tell me a joke",
    "turn off the kitchen lights",
    "add milk to my shopping list",
    "how tall is mount everest",
    "open daily horoscopes",
)


def synthesise(n: int, folder: Path) -> list[Path]:
    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng is not installed")
    rng = random.Random(1)
    paths = []
    for i in range(n):
        text = f"Alexa, {rng.choice(WORDS)}, number {i}"
        path = folder / f"u{i:03d}.wav"
        subprocess.run(
            ["espeak-ng", "-v", "en-us", "-s", str(rng.choice((150, 175, 200))), "-w", str(path), text], check=True
        )
        # Trim the edge silence (as the speech stage does) so each sound's first and last half
        # second is voice, which cross-correlation can place.
        samples, rate = read_wav(path)
        loud = np.flatnonzero(np.abs(samples) > 0.01)
        write_wav(path, samples[loud[0] : loud[-1] + 1], rate)
        paths.append(path)
    return paths


class ParecRecorder:
    """An independent recorder: PulseAudio's own client, dated by when its reads arrive."""

    def __init__(self, source: str, rate: int) -> None:
        self.rate = rate
        self.arrivals: list[tuple[int, int]] = []
        self.chunks: list[bytes] = []
        self.proc = subprocess.Popen(
            [
                "parec",
                "--raw",
                "--format=float32le",
                f"--rate={rate}",
                "--channels=1",
                "--latency-msec=5",
                "-d",
                source,
            ],
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        total = 0
        while data := self.proc.stdout.read(1024):
            now = time.time_ns()
            self.chunks.append(data)
            total += len(data)
            self.arrivals.append((now, total // 4))

    def stop(self) -> tuple[np.ndarray, np.ndarray]:
        """The samples and (intercept_ns, ns_per_sample) of the lower-envelope line."""
        self.proc.terminate()
        self.thread.join(5)
        raw = b"".join(self.chunks)
        samples = np.frombuffer(raw[: len(raw) // 4 * 4], dtype="<f4")
        arrivals = np.array(self.arrivals, dtype=np.float64)
        # Arrival of the read holding sample k-1, minus k sample periods: never below the
        # true time of sample 0; the earliest arrival per second is the least delayed.
        t0 = arrivals[:, 0] - arrivals[:, 1] * 1e9 / self.rate
        seconds = (arrivals[:, 0] - arrivals[0, 0]) // 1e9
        xs, ys = [], []
        for s in np.unique(seconds)[1:-1]:
            k = np.flatnonzero(seconds == s)
            best = k[np.argmin(t0[k])]
            xs.append(arrivals[best, 1])
            ys.append(arrivals[best, 0])
        slope, intercept = np.polyfit(np.array(xs), np.array(ys), 1)
        return samples, np.array([intercept, slope])


def reference_line(capture: Capture) -> np.ndarray:
    """(intercept_ns, ns_per_sample) of the recording's sample clock, fitted to ADC times."""
    points = settled(capture.callbacks, capture.rate)
    x = np.array([cb.frames_before for cb in points], dtype=np.float64)
    y = np.array([capture.clock.wall_ns(cb.buffer_time) for cb in points], dtype=np.float64)
    keep = np.ones(len(x), dtype=bool)
    for _ in range(3):
        slope, intercept = np.polyfit(x[keep], y[keep], 1)
        keep = np.abs(y - (intercept + slope * x)) < 1e6
    return np.array([intercept, slope])


def run(backend_name: str, wavs: list[Path], rate: int, seed: int) -> dict[str, list[float]]:
    backend = open_backend(backend_name)
    out = resolve_device("harness_out", "output", backend_name)
    recorder_backend = open_backend("sounddevice")
    monitor = resolve_device("harness_out_monitor", "input", "sounddevice")
    sounds = [read_wav(p)[0] for p in wavs]
    rng = random.Random(seed)
    gaps = [rng.uniform(0.1, 0.4) for _ in sounds]
    total = sum(len(s) / rate for s in sounds) + sum(gaps) + 0.2 * len(sounds) + 5
    rows = []
    parec = ParecRecorder("harness_out.monitor", rate)
    with Capture(recorder_backend, monitor, rate, total) as capture:
        time.sleep(0.5)
        for sound, gap in zip(sounds, gaps, strict=False):
            capture.poll()
            naive = time.time_ns()
            t0 = time.monotonic_ns()
            timing = backend.play(sound, rate, out)
            elapsed = time.monotonic_ns() - t0
            rows.append((naive, timing.onset_wall_ns, timing.end_wall_ns, elapsed, timing.underflows))
            capture.poll()
            time.sleep(gap)
        time.sleep(0.3)
        capture.poll()
    pa_samples, pa_line = capture.samples, reference_line(capture)
    parec_samples, parec_line = parec.stop()
    result: dict[str, list[float]] = {
        k: [] for k in ("onset", "end", "naive", "onset_vs_parec", "naive_vs_parec", "overhead", "ncc", "underflows")
    }
    for sound, (naive, onset, end, elapsed, underflows) in zip(sounds, rows, strict=False):
        # Onset and end are located with the sound's first and last half second, so a glitch
        # in the middle (an underrun on a loaded host) cannot move either.
        head, tail = sound[: rate // 2], sound[-(rate // 2) :]
        for name, samples, line in (("", pa_samples, pa_line), ("_vs_parec", parec_samples, parec_line)):
            guess = int(round((onset - line[0]) / line[1]))
            position, ncc = find_sound(samples, head, guess, int(0.3 * rate))
            ref_onset = line[0] + line[1] * position
            result["onset" + name].append((onset - ref_onset) / 1e6)
            result["naive" + name].append((naive - ref_onset) / 1e6)
            if not name:
                tail_at, _ = find_sound(samples, tail, guess + len(sound) - len(tail), int(0.3 * rate))
                ref_end = line[0] + line[1] * (tail_at + len(tail) - 1)
                result["end"].append((end - ref_end) / 1e6)
                result["ncc"].append(find_sound(samples, sound, int(round(position)), 0)[1])
        result["overhead"].append(elapsed / 1e6 - len(sound) / rate * 1e3)
        result["underflows"].append(underflows)
    result["drift_ppm"] = [(pa_line[1] * rate / 1e9 - 1) * 1e6]
    return result


def summary(label: str, errors: list[float]) -> str:
    e = np.array(errors)
    a = np.abs(e)
    return (
        f"  {label:<28} median {np.median(e):+7.3f}  p50|e| {np.percentile(a, 50):6.3f}  "
        f"p99|e| {np.percentile(a, 99):6.3f}  max|e| {a.max():6.3f}  "
        f"p99|e-median| {np.percentile(np.abs(e - np.median(e)), 99):6.3f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=50, help="utterances per back end (default 50)")
    parser.add_argument("--backend", choices=["sounddevice", "pyaudio", "both"], default="both")
    parser.add_argument("--rate", type=int, default=22050)
    args = parser.parse_args()
    if not lab_status().running and not os.environ.get("PULSE_SERVER"):
        sys.exit("the virtual lab is not running: scripts/lab up")
    with tempfile.TemporaryDirectory() as tmp:
        wavs = synthesise(args.n, Path(tmp))
        durations = [len(read_wav(p)[0]) / args.rate for p in wavs]
        print(
            f"{args.n} utterances, {min(durations):.2f}-{max(durations):.2f} s, rate {args.rate} Hz; "
            "errors = logged - found in the monitor recording"
        )
        for name in ("sounddevice", "pyaudio") if args.backend == "both" else (args.backend,):
            r = run(name, wavs, args.rate, seed=2)
            glitched = sum(1 for c in r["ncc"] if c < 0.999)
            print(
                f"{name}: whole-utterance match NCC min {min(r['ncc']):.5f} ({glitched} below 0.999, "
                f"{sum(1 for u in r['underflows'] if u)} with reported underflows); recorder clock "
                f"{r['drift_ppm'][0]:+.0f} ppm vs wall"
            )
            print(summary("harness onset", r["onset"]))
            clean = [e for e, u in zip(r["onset"], r["underflows"], strict=False) if not u]
            print(summary(f"  without underflow ({len(clean)})", clean))
            print(summary("naive stamp before play()", r["naive"]))
            print(summary("harness end (last sample)", r["end"]))
            print(summary("harness onset vs parec", r["onset_vs_parec"]))
            print(summary("naive vs parec", r["naive_vs_parec"]))
            o = np.array(r["overhead"])
            print(
                f"  overhead (play() wall time - audio): p50 {np.percentile(o, 50):.1f} ms  "
                f"p99 {np.percentile(o, 99):.1f} ms"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
