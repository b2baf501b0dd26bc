"""Clock alignment without markers: utterance onsets (bench clock) against activation onsets (capture clock)."""

from __future__ import annotations

import numpy as np
import pytest

from harness.correlate.clock import align_onsets, manual_alignment, require_overlap
from harness.errors import HarnessError

SECOND = 10**9
LAG_S = 0.8  # the device uploads once it has heard the wake word


def schedule(rng: np.random.Generator, n: int, start_ns: int) -> np.ndarray:
    """Utterance onsets with irregular gaps (8-60 s), as a bench run spaces them."""
    return start_ns + np.cumsum(rng.uniform(8, 60, n) * SECOND).astype(np.int64)


def device(rng: np.random.Generator, onsets: np.ndarray, offset_s: float, drift_ppm: float) -> np.ndarray:
    """Activation onsets on the capture clock: 10% of utterances not heard, wake-word latency
    jitter, and 10% spontaneous activations at random."""
    heard = onsets[rng.random(len(onsets)) > 0.1]
    shift = offset_s + drift_ppm * 1e-6 * (heard - onsets[0]) / SECOND + LAG_S + rng.normal(0, 0.1, len(heard))
    found = heard + (shift * SECOND).astype(np.int64)
    stray = rng.uniform(found.min(), found.max(), len(onsets) // 10).astype(np.int64)
    return np.sort(np.r_[found, stray])


def test_offset_recovered_from_onsets():
    rng = np.random.default_rng(3)
    onsets = schedule(rng, 80, 1_700_000_000 * SECOND)
    fit = align_onsets(onsets, device(rng, onsets, -42.3, 0.0), lag_s=LAG_S)
    assert fit.method == "activations" and fit.drift_ppm == 0
    assert fit.offset_s == pytest.approx(-42.3, abs=0.05)
    assert 0.8 <= fit.matched / len(onsets) <= 0.95 and fit.confidence > 0.7
    assert fit.jitter_p50_s < 0.15 and fit.jitter_max_s < 0.5


def test_drift_recovered_over_a_long_run():
    rng = np.random.default_rng(4)
    onsets = schedule(rng, 400, 1_700_000_000 * SECOND)  # ~3 h
    fit = align_onsets(onsets, device(rng, onsets, 12.0, 60.0), lag_s=LAG_S)
    assert fit.offset_s == pytest.approx(12.0, abs=0.05)
    assert fit.drift_ppm == pytest.approx(60.0, abs=5.0)
    late = onsets[-1]
    truth = late + int((12.0 + 60e-6 * (late - onsets[0]) / SECOND) * SECOND)
    assert abs(fit.to_capture_ns(late) - truth) < 0.05 * SECOND


def test_a_periodic_schedule_is_ambiguous_and_says_so():
    onsets = 1_700_000_000 * SECOND + np.arange(20) * 30 * SECOND
    fit = align_onsets(onsets, onsets + int((5.0 + LAG_S) * SECOND), lag_s=LAG_S)
    assert fit.offset_s == pytest.approx(5.0, abs=0.05)  # the exact match wins, but barely
    assert fit.confidence < 0.1


def test_too_few_matches_are_refused():
    onsets = 1_700_000_000 * SECOND + np.array([0, 40, 95]) * SECOND
    with pytest.raises(HarnessError, match="only 1 of 3"):
        align_onsets(onsets, onsets[:1] + 3 * SECOND)
    with pytest.raises(HarnessError, match="no activation within"):
        align_onsets(onsets, onsets + 3600 * SECOND)


def test_a_capture_outside_the_run_is_refused_in_one_line():
    run = (1_764_000_000 * SECOND, 1_764_000_600 * SECOND)  # 2025
    capture = (1_540_286_786 * SECOND, 1_540_286_926 * SECOND)  # 2018
    with pytest.raises(HarnessError) as error:
        require_overlap(run, capture, manual_alignment(0.0))
    message = str(error.value)
    assert "\n" not in message and "do not overlap" in message and "2018-10-23" in message
    require_overlap(run, (run[0] - 10 * SECOND, run[0] + 5 * SECOND), manual_alignment(0.0))
    shifted = manual_alignment((capture[0] - run[0]) / SECOND)  # a known offset maps the run onto the capture
    require_overlap(run, capture, shifted)
