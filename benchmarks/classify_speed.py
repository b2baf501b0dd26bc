"""How long endpoint classification takes: list loading, first look-up of a name, cached look-up.

Run: .venv/bin/python benchmarks/classify_speed.py
"""

from __future__ import annotations

import statistics
import time


def main() -> None:
    t0 = time.perf_counter()
    from harness.classify import Classifier

    t1 = time.perf_counter()
    classifier = Classifier()
    classifier.classify_name("warm-up.example.com")
    t2 = time.perf_counter()
    names = [f"host{i}.site{i % 500}.com" for i in range(5000)] + [
        "unagi-na.amazon.com",
        "avs-alexa-4-na.amazon.com",
        "s.amazon-adsystem.com",
    ]
    first, again = [], []
    for name in names:
        start = time.perf_counter_ns()
        classifier.classify_name(name)
        first.append(time.perf_counter_ns() - start)
    for name in names:
        start = time.perf_counter_ns()
        classifier.classify_name(name)
        again.append(time.perf_counter_ns() - start)

    def pct(values: list[int], q: float) -> float:
        return statistics.quantiles(values, n=100)[int(q) - 1] / 1000

    print(f"import: {t1 - t0:.3f} s; lists loaded on first use: {t2 - t1:.3f} s")
    print(f"new name:    median {pct(first, 50):.1f} us, p99 {pct(first, 99):.1f} us")
    print(
        f"cached name: median {pct(again, 50):.2f} us, p99 {pct(again, 99):.2f} us "
        f"(ratio new/cached {statistics.median(first) / statistics.median(again):.0f}x)"
    )
    print(f"1000 distinct endpoints cost about {statistics.mean(first) * 1000 / 1e9:.3f} s after loading")


if __name__ == "__main__":
    main()
