"""The vectorised attribution and matching against direct, obviously correct implementations (seeded random inputs)."""

from __future__ import annotations

import numpy as np
import pytest

from harness.correlate.activations import Activation, ActivationResult
from harness.correlate.attribution import _delays, background_probabilities, background_probability
from harness.correlate.run import MAX_LAG_S, _match_activations


def slow_background_probability(
    times: np.ndarray, intervals: list[tuple[int, int]], length: int, rate_per_s: float | None
) -> float:
    """Place the window at every integer start t in (s, e - L] of every interval and count the
    placements [t, t + L) that hold a contact (half-open, so the count is the measure)."""
    placed = held = 0
    for s, e in intervals:
        for t in range(s + 1, e - length + 1):
            placed += 1
            held += bool(np.any((times >= t) & (times < t + length)))
    if placed == 0 and rate_per_s is not None:
        return float(-np.expm1(-rate_per_s * length / 1e9))
    return (held + 0.5 * length) / (placed + length)


@pytest.mark.parametrize("seed", range(40))
def test_background_probabilities_equal_placing_every_window(seed):
    rng = np.random.default_rng(seed)
    times = rng.integers(0, 300, rng.integers(0, 25))
    if seed % 3 == 0:
        times = np.r_[times, times[:3]]  # repeated contacts (two flows in one slot)
    intervals = []
    for _ in range(rng.integers(0, 6)):  # may overlap, touch, be empty or reversed
        s = int(rng.integers(0, 280))
        intervals.append((s, s + int(rng.integers(-5, 80))))
    lengths = rng.integers(1, 60, rng.integers(1, 8))
    rate = None if seed % 2 else 0.3
    starts = np.array([s for s, _ in intervals], np.int64)
    ends = np.array([e for _, e in intervals], np.int64)
    fast = background_probabilities(times, starts, ends, lengths, rate)
    slow = [slow_background_probability(times, intervals, int(length), rate) for length in lengths]
    assert fast.tolist() == slow  # exactly, not approximately
    assert [background_probability(times, intervals, int(length), rate) for length in lengths] == slow


def slow_delays(episodes: np.ndarray, onsets: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> list[float]:
    return [
        (int(x) - int(o)) / 1e9 for o, s, e in zip(onsets, starts, ends, strict=False) for x in episodes if s <= x < e
    ]


@pytest.mark.parametrize("seed", range(10))
def test_delays_equal_a_loop_over_windows(seed):
    rng = np.random.default_rng(seed)
    episodes = np.sort(rng.integers(0, 10**11, 40))
    onsets = np.sort(rng.integers(0, 10**11, 12))
    starts, ends = onsets - 10**8, onsets + rng.integers(0, 2 * 10**10, 12)
    assert _delays(episodes, onsets, starts, ends).tolist() == slow_delays(episodes, onsets, starts, ends)


def slow_match(onsets: np.ndarray, activations: list[int], lead_s: float) -> dict[int, int]:
    """Each activation in turn takes the latest onset not yet taken with onset - lead <= it <= onset + lag."""
    taken: set[int] = set()
    matched = {}
    for i, t in enumerate(activations):
        reach = [j for j in range(len(onsets)) if t - MAX_LAG_S * 1e9 <= onsets[j] <= t + lead_s * 1e9]
        free = [j for j in reach if j not in taken]
        if free:
            best = max(free, key=lambda j: (onsets[j], j))  # the latest; of equal onsets the last logged
            matched[i] = best
            taken.add(best)
    return matched


@pytest.mark.parametrize("seed", range(30))
def test_matching_sweep_equals_taking_the_latest_free_onset(seed):
    rng = np.random.default_rng(seed)
    base = 1_700_000_000 * 10**9
    onsets = base + rng.integers(0, 120, rng.integers(0, 25)) * 10**9 // 2  # half seconds: ties and exact bounds
    times = sorted(int(t) for t in base + rng.integers(0, 120, rng.integers(0, 25)) * 10**9 // 2)
    detection = ActivationResult([Activation(t, t + 10**9, 20_000, ("voice",)) for t in times], 16_000.0, ["voice"])
    assert _match_activations(onsets, detection, 0.25) == slow_match(onsets, times, 0.25)
