"""Energy voice-activity detection on short frames, and comparing two answers.

Pure functions over sample arrays; the recording itself is in :mod:`harness.audio.listen`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

FRAME_S = 0.020
# A sound must stay above the threshold this long to count as an answer (a click does not).
MIN_VOICE_S = 0.040
# Window of the sample-level search that places onset and end inside their frame.
FINE_S = 0.002
SILENCE_DBFS = -120.0

Outcome = Literal["answer", "no_answer", "too_long"]


def dbfs(samples: np.ndarray) -> float:
    """RMS level in dB relative to full scale (-120 for digital silence)."""
    if len(samples) == 0:
        return SILENCE_DBFS
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return max(SILENCE_DBFS, 20.0 * np.log10(rms)) if rms > 0 else SILENCE_DBFS


def frame_levels(samples: np.ndarray, frame: int) -> np.ndarray:
    """dBFS of each whole frame of ``frame`` samples."""
    n = len(samples) // frame
    if n == 0:
        return np.empty(0)
    blocks = samples[: n * frame].reshape(n, frame).astype(np.float64)
    rms = np.sqrt(np.mean(blocks * blocks, axis=1))
    with np.errstate(divide="ignore"):
        return np.maximum(20.0 * np.log10(rms), SILENCE_DBFS)


@dataclass(frozen=True)
class NoiseFloor:
    """The room's noise (``rms_dbfs``) and the level above which a frame is voice."""

    rms_dbfs: float
    threshold_dbfs: float


def noise_floor(samples: np.ndarray, rate: int, margin_db: float = 12.0, floor_dbfs: float = -60.0) -> NoiseFloor:
    """Noise level of a recording of the quiet room (90th percentile of frame levels, so a
    short knock does not raise it) and the threshold ``max(noise + margin, floor)``; the floor
    keeps digital silence from making every dither bit "voice"."""
    levels = frame_levels(samples, max(1, int(rate * FRAME_S)))
    noise = float(np.percentile(levels, 90)) if len(levels) else SILENCE_DBFS
    return NoiseFloor(rms_dbfs=noise, threshold_dbfs=max(noise + margin_db, floor_dbfs))


class Endpointer:
    """Finds where an answer starts and ends in a growing recording.

    Feed it the recording as it grows with :meth:`update`; it returns the outcome once one is
    decided: ``answer`` (voice, then ``min_silence_s`` of quiet), ``no_answer`` (no voice within
    ``answer_timeout_s`` of the start) or ``too_long`` (voice for ``max_answer_s``).
    Indices are samples from the start of the recording.
    """

    def __init__(
        self, rate: int, threshold_dbfs: float, answer_timeout_s: float, max_answer_s: float, min_silence_s: float
    ) -> None:
        self.rate = rate
        self.threshold = threshold_dbfs
        self.frame = max(1, int(rate * FRAME_S))
        self.min_voice = max(1, int(np.ceil(MIN_VOICE_S / FRAME_S)))
        self.min_silence = max(1, int(np.ceil(min_silence_s / FRAME_S)))
        self.timeout = int(answer_timeout_s * rate)
        self.max_answer = int(max_answer_s * rate)
        self.levels: list[float] = []
        self.onset_index: int | None = None
        self.end_index: int | None = None
        self.outcome: Outcome | None = None
        self._last_voiced = -1
        self._run = 0

    def update(self, recording: np.ndarray) -> Outcome | None:
        done = len(self.levels)
        new = frame_levels(recording[done * self.frame :], self.frame)
        for level in new:
            if self.outcome is not None:
                break
            self._step(len(self.levels), float(level), recording)
            self.levels.append(float(level))
        if self.outcome is None and self.onset_index is None and len(recording) >= self.timeout:
            self.outcome = "no_answer"
        return self.outcome

    def _step(self, k: int, level: float, recording: np.ndarray) -> None:
        voiced = level > self.threshold
        if self.onset_index is None:
            self._run = self._run + 1 if voiced else 0
            if self._run >= self.min_voice:
                first = k - self.min_voice + 1
                self.onset_index = refine_onset(recording, first * self.frame, self.frame, self.threshold, self.rate)
                self._last_voiced = k
            return
        if voiced:
            self._last_voiced = k
        if k - self._last_voiced >= self.min_silence:
            self.end_index = refine_end(
                recording, self._last_voiced * self.frame, self.frame, self.threshold, self.rate
            )
            self.outcome = "answer"
        elif (k + 1) * self.frame - self.onset_index >= self.max_answer:
            self.end_index = self.onset_index + self.max_answer
            self.outcome = "too_long"


def _fine_levels(samples: np.ndarray, rate: int) -> np.ndarray:
    window = max(1, int(rate * FINE_S))
    power = np.convolve(np.square(samples.astype(np.float64)), np.ones(window) / window, mode="same")
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(np.maximum(power, 1e-12))


def refine_onset(recording: np.ndarray, frame_start: int, frame: int, threshold: float, rate: int) -> int:
    """First sample, in the voiced frame or the one before it, where the short-window level
    crosses the threshold."""
    lo = max(0, frame_start - frame)
    levels = _fine_levels(recording[lo : frame_start + frame], rate)
    above = np.flatnonzero(levels > threshold)
    return lo + int(above[0]) if len(above) else frame_start


def refine_end(recording: np.ndarray, frame_start: int, frame: int, threshold: float, rate: int) -> int:
    """Last sample, in the last voiced frame or the one after it, above the threshold."""
    hi = min(len(recording), frame_start + 2 * frame)
    levels = _fine_levels(recording[frame_start:hi], rate)
    above = np.flatnonzero(levels > threshold)
    return frame_start + int(above[-1]) if len(above) else frame_start + frame - 1


def envelope(samples: np.ndarray, rate: int, frame_s: float = 0.010) -> np.ndarray:
    """Level envelope in dB, one value per ``frame_s``."""
    return frame_levels(samples, max(1, int(rate * frame_s)))


def similar_envelopes(a: np.ndarray, b: np.ndarray, max_lag: int, min_ncc: float) -> bool:
    """Whether two envelopes match: normalised cross-correlation >= ``min_ncc`` at some lag
    within ``max_lag`` frames."""
    for lag in range(-max_lag, max_lag + 1):
        x = a[max(0, lag) :]
        y = b[max(0, -lag) :]
        n = min(len(x), len(y))
        if n < 5:
            continue
        x, y = x[:n] - x[:n].mean(), y[:n] - y[:n].mean()
        denom = float(np.linalg.norm(x) * np.linalg.norm(y))
        if denom > 0 and float(np.dot(x, y)) / denom >= min_ncc:
            return True
    return False
