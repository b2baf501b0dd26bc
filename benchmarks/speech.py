"""Speech synthesis time per utterance for each engine: cold cache vs warm cache, and the speed-up.

Run: .venv/bin/python benchmarks/speech.py [--rounds 3] [--script utterances/demo.yaml]

Texts: everything the demo persona says (utterances with the wake word, follow-ups, the stop
phrase), or a fixed list of ten when the script is absent. Each round uses a fresh cache folder:
every text is synthesised once (cold: engine + normalisation + atomic write) and then again
(warm: served from the cache). Calls are sequential, so each time is one utterance's latency.
A last row per engine times the whole set cold through synthesize_many (parallel workers).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from harness.errors import HarnessError
from harness.script import build_plan, load_persona
from harness.script.models import SpeechSettings
from harness.speech import ENGINE_NAMES, get_engine, spoken_texts, synthesize, synthesize_many

FALLBACK = [
    "Alexa, open Big Sky.",
    "Alexa, ask Big Sky for the weather in three hours.",
    "Alexa, ask Fitbit how I slept last night.",
    "Alexa, ask Fitbit how many steps I've taken.",
    "Alexa, play Jeopardy!",
    "Alexa, ask Jeopardy for today's categories.",
    "Alexa, what's on my shopping list?",
    "Alexa, set a timer for ten minutes.",
    "I don't know!",
    "Alexa, stop",
]


def texts_of(script: Path) -> list[str]:
    if not script.exists():
        return FALLBACK
    persona = load_persona(script)
    return list(dict.fromkeys(t.text for t in spoken_texts(persona, build_plan(persona))))


def percentiles(seconds: list[float]) -> tuple[float, float]:
    p50, p95 = np.percentile(np.array(seconds) * 1000.0, [50, 95])
    return float(p50), float(p95)


def bench(engine: str, texts: list[str], rounds: int) -> dict[str, float]:
    settings = SpeechSettings(engine=engine)
    get_engine(engine).version()  # engine discovery is paid once per process, not per utterance
    cold: list[float] = []
    warm: list[float] = []
    parallel: list[float] = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as folder:
            cache = Path(folder)
            for sink, expect_hit in ((cold, False), (warm, True)):
                for text in texts:
                    t0 = time.perf_counter()
                    result = synthesize(text, settings, cache)
                    sink.append(time.perf_counter() - t0)
                    assert result.cache_hit is expect_hit
        with tempfile.TemporaryDirectory() as folder:
            t0 = time.perf_counter()
            synthesize_many([(t, settings) for t in texts], Path(folder))
            parallel.append((time.perf_counter() - t0) / len(texts))
    c50, c95 = percentiles(cold)
    w50, w95 = percentiles(warm)
    return {
        "cold_p50": c50,
        "cold_p95": c95,
        "warm_p50": w50,
        "warm_p95": w95,
        "speedup": c50 / w50,
        "parallel": float(np.median(parallel)) * 1000.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--script", type=Path, default=Path(__file__).resolve().parents[1] / "utterances" / "demo.yaml")
    args = parser.parse_args()
    texts = texts_of(args.script)
    print(f"{len(texts)} texts x {args.rounds} rounds, {os.cpu_count()} CPUs; times in ms per utterance")
    print(
        f"{'engine':8} {'cold p50':>9} {'cold p95':>9} {'warm p50':>9} {'warm p95':>9} "
        f"{'speed-up':>9} {'parallel cold':>14}"
    )
    for engine in ENGINE_NAMES:
        try:
            r = bench(engine, texts, args.rounds)
        except HarnessError as exc:
            print(f"{engine:8} skipped: {exc}")
            continue
        print(
            f"{engine:8} {r['cold_p50']:9.1f} {r['cold_p95']:9.1f} {r['warm_p50']:9.2f} {r['warm_p95']:9.2f}"
            f" {r['speedup']:8.0f}x {r['parallel']:14.1f}"
        )
    print("speed-up = cold p50 / warm p50; parallel cold = wall time of synthesize_many over the set / texts")


if __name__ == "__main__":
    main()
