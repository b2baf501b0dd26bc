"""Bring engine output to the one format the bench plays: 22050 Hz mono, common level, tight edges.

Pure functions over float32 sample arrays; bump NORMALISATION_VERSION whenever their output
changes, since it is part of every cache key.
"""

from __future__ import annotations

from math import gcd

import numpy as np

NORMALISATION_VERSION = 1
SAMPLE_RATE = 22050
TARGET_RMS_DBFS = -20.0
PEAK_CEILING_DBFS = -1.0
PAD_S = 0.030
# Frames quieter than this, relative to the loudest frame, count as edge silence.
SILENCE_BELOW_DB = -40.0
FRAME_S = 0.010


def db_to_gain(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def resample(samples: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling to ``target`` Hz (a no-op when the rate already matches)."""
    if rate == target:
        return samples.astype(np.float32, copy=False)
    # Imported here: scipy.signal takes seconds to import, and espeak output never needs it.
    from scipy.signal import resample_poly

    g = gcd(rate, target)
    return resample_poly(samples, target // g, rate // g).astype(np.float32)


def audible_span(samples: np.ndarray, rate: int) -> tuple[int, int] | None:
    """(start, end) sample indices of the audible part, or None when it is all silence.

    A 10 ms frame is audible when its RMS is within 40 dB of the loudest frame; the span runs
    from the first audible frame's start to the last one's end.
    """
    frame = max(1, int(rate * FRAME_S))
    n = len(samples) // frame * frame
    if n == 0:
        return None
    frames = samples[:n].astype(np.float64).reshape(-1, frame)
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    loudest = float(rms.max())
    if loudest < db_to_gain(-90.0):
        return None
    loud = np.flatnonzero(rms >= loudest * db_to_gain(SILENCE_BELOW_DB))
    return int(loud[0]) * frame, min(len(samples), (int(loud[-1]) + 1) * frame)


def level_gain(samples: np.ndarray, volume: float) -> float:
    """Gain that brings the RMS to TARGET_RMS_DBFS scaled by ``volume``, peaks kept under the ceiling."""
    x = samples.astype(np.float64)
    rms = float(np.sqrt(np.mean(x * x)))
    peak = float(np.max(np.abs(x)))
    if rms == 0.0:
        return 0.0
    return min(db_to_gain(TARGET_RMS_DBFS) * volume / rms, db_to_gain(PEAK_CEILING_DBFS) / peak)


def condition(samples: np.ndarray, rate: int, volume: float = 1.0) -> np.ndarray | None:
    """Resample to SAMPLE_RATE, trim edge silence leaving PAD_S each side, normalise the level.

    ``volume`` (0..1) scales the normalised level (1.0 = -20 dBFS RMS). Returns None when the
    input holds no audible sound.
    """
    x = resample(samples, rate)
    span = audible_span(x, SAMPLE_RATE)
    if span is None:
        return None
    voiced = x[span[0] : span[1]]
    pad = np.zeros(int(round(PAD_S * SAMPLE_RATE)), dtype=np.float32)
    return np.concatenate([pad, voiced * np.float32(level_gain(voiced, volume)), pad]).astype(np.float32)
