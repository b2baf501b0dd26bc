"""What does the run loop cost per utterance beyond the audio itself?

Starts a private virtual lab, runs `harness run` on N short utterances (gap 0, no listening, speech
cache warm) and reads its events.jsonl; as the baseline, the same WAVs are played back to back by
a bare `backend.play()` loop in this process. Per utterance:

    cycle      = next utterance_started - this utterance_started   (monotonic clock)
    audio      = last sample at the DAC - first sample at the DAC
    overhead   = cycle - audio                  (stream open/close and drain included)
    added      = p50 overhead(harness) - p50 overhead(bare play), the run loop's own share

    .venv/bin/python benchmarks/run_overhead.py [-n 30]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WORDS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]


def percentiles(values: list[float]) -> str:
    a = np.asarray(values) * 1e3
    return f"p50 {np.percentile(a, 50):7.2f}  p99 {np.percentile(a, 99):7.2f}  max {a.max():7.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=30, help="utterances (default 30)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="run-overhead-") as tmp:
        root = Path(tmp)
        from harness.audio.lab import lab_down, lab_up

        status = lab_up(root / "lab")
        os.environ.update(status.environment())
        os.environ["HARNESS_CACHE"] = str(root / "cache")
        try:
            return measure(root, args.n)
        finally:
            lab_down(status.base)


def measure(root: Path, n: int) -> int:
    from harness.audio import open_backend, resolve_device
    from harness.rundir.events import UtteranceEnded, UtteranceStarted, read_events
    from harness.rundir.layout import RunDir
    from harness.script import SpeechSettings
    from harness.speech import synthesize
    from harness.wav import read_wav

    texts = [f"Alexa, {WORDS[i % len(WORDS)]} {i}." for i in range(n)]
    wavs = [synthesize(t, SpeechSettings()).path for t in texts]  # warm the cache the run will use
    lines = [
        "persona: {id: bench, name: Bench, category: Test}",
        "session: {gap_s: 0}",
        "skills:",
        "  - {id: s, name: S, invocation: s, utterances: [",
    ]
    lines += [f"      {{text: '{t}'}}," for t in texts] + ["    ]}"]
    script = root / "bench.yaml"
    script.write_text("\n".join(lines) + "\n")

    started = time.monotonic()
    command = [
        sys.executable,
        "-m",
        "harness.cli.main",
        "run",
        str(script),
        "--output-device",
        "harness_out",
        "--runs-dir",
        str(root / "runs"),
    ]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.monotonic() - started
    (run_dir,) = (root / "runs").iterdir()
    events = read_events(RunDir(run_dir).events).events
    starts = [e for e in events if isinstance(e, UtteranceStarted)]
    ends = {e.started_seq: e for e in events if isinstance(e, UtteranceEnded)}
    harness = [
        ((b.t_mono_ns - a.t_mono_ns) - (ends[a.seq].end_mono_ns - ends[a.seq].onset_mono_ns)) / 1e9
        for a, b in zip(starts, starts[1:], strict=False)
    ]
    latency = [ends[a.seq].latency_s for a in starts[:-1]]

    backend = open_backend("sounddevice")
    device = resolve_device("harness_out", "output")
    sounds = [read_wav(w) for w in wavs]
    marks = []
    for samples, rate in sounds:
        t0 = time.monotonic_ns()
        timing = backend.play(samples, rate, device)
        marks.append((t0, timing))
    bare = [
        ((b[0] - a[0]) - (a[1].end_mono_ns - a[1].onset_mono_ns)) / 1e9 for a, b in zip(marks, marks[1:], strict=False)
    ]

    print(
        f"{n} utterances, mean audio {np.mean([len(s) / r for s, r in sounds]):.2f} s, "
        f"harness run took {wall:.1f} s (process start included)"
    )
    print(f"output latency reported   {percentiles(latency)}")
    print(f"overhead, bare play()     {percentiles(bare)}")
    print(f"overhead, harness run     {percentiles(harness)}")
    added = (np.percentile(harness, 50) - np.percentile(bare, 50)) * 1e3
    print(
        f"added by the run loop     p50 {added:+.2f} ms per utterance (3 fsynced events, live view, "
        f"synthesis cache look-up); harness / bare p50 {np.percentile(harness, 50) / np.percentile(bare, 50):.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
