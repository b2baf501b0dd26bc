"""Finding a known sound in a recording (to check timing against what was really heard)."""

from __future__ import annotations

import numpy as np
from scipy.signal import correlate


def find_sound(
    recording: np.ndarray, sound: np.ndarray, guess: int | None = None, window: int | None = None
) -> tuple[float, float]:
    """Sub-sample start of ``sound`` in ``recording`` and the match's normalised
    cross-correlation (1.0 = identical). With ``guess``, searches only ``guess +- window``."""
    lo = 0 if guess is None else max(0, guess - (window or 0))
    hi = len(recording) if guess is None else guess + len(sound) + (window or 0)
    segment = recording[lo:hi]
    if len(segment) < len(sound):
        return float(lo), 0.0
    c = correlate(segment, sound, mode="valid", method="fft")
    k = int(np.argmax(c))
    shift = 0.0
    if 0 < k < len(c) - 1:
        y0, y1, y2 = c[k - 1], c[k], c[k + 1]
        denominator = y0 - 2 * y1 + y2
        shift = 0.5 * (y0 - y2) / denominator if denominator else 0.0
    found = segment[k : k + len(sound)]
    ncc = float(np.dot(found, sound) / (np.linalg.norm(found) * np.linalg.norm(sound) + 1e-12))
    return lo + k + shift, ncc
