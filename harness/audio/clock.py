"""Stream clock to wall clock, and when a given sample met the converter.

PortAudio stamps each callback with the stream clock (``currentTime``) and the time the
buffer meets the DAC (output) or left the ADC (input). That clock is CLOCK_REALTIME on
Linux/ALSA but not on every host API, so its offset to the wall clock is measured by
bracketing ``Pa_GetStreamTime`` between wall-clock reads, never assumed.

The first callbacks of an output stream fill its buffer before the device runs, and their
DAC times are wrong by up to tens of milliseconds; so only *paced* callbacks (ones that waited
for the device) count, once the first few agree ("settled"). Even those are estimates (through
PulseAudio, an interpolated latency) whose error grows the longer the stream runs: measured
through the lab's null sink, a median drift of 70-140 ppm and, on a loaded host, jumps of
several milliseconds within seconds, while the sample clock itself is steady to tens of ppm.
So the time of sample ``i`` is the stream's *anchor* (the median over its first settled
callbacks of when sample 0 met the converter) plus ``i / rate``; only where a stream has run
long enough for its reports to average out (:data:`LONG_S`) is a straight line fitted to
them instead, which also follows a device clock that drifts against the wall clock. A
callback flagged with an underflow or overflow starts a new segment with its own anchor:
the audio after it has moved.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

# Consecutive paced callbacks that must agree before an estimate is trusted.
SETTLE_WINDOW = 3
SETTLE_TOLERANCE_S = 0.0005
# The anchor uses the settled callbacks within this much audio of the first one.
ANCHOR_S = 0.5
# A frame with this much audio of settled callbacks on one side is dated by a line fitted to
# the callbacks within that distance (outliers beyond FIT_OUTLIER_S dropped), not the anchor.
LONG_S = 20.0
FIT_OUTLIER_S = 0.002


@dataclass(frozen=True)
class ClockMap:
    """Offsets from the stream clock (float seconds) to wall and monotonic nanoseconds."""

    stream_to_wall_ns: int
    wall_to_mono_ns: int
    bracket_ns: int

    def wall_ns(self, stream_s: float) -> int:
        return int(round(stream_s * 1e9)) + self.stream_to_wall_ns

    def mono_ns(self, wall_ns: int) -> int:
        return wall_ns + self.wall_to_mono_ns


def measure_clock(stream_time: Callable[[], float], tries: int = 7) -> ClockMap:
    """Bracket the stream clock between wall reads and keep the tightest bracket."""
    best: ClockMap | None = None
    for _ in range(tries):
        m0, w0 = time.monotonic_ns(), time.time_ns()
        s = stream_time()
        w1, m1 = time.time_ns(), time.monotonic_ns()
        wall_mid = (w0 + w1) // 2
        candidate = ClockMap(
            stream_to_wall_ns=wall_mid - int(round(s * 1e9)),
            wall_to_mono_ns=(m0 + m1) // 2 - wall_mid,
            bracket_ns=w1 - w0,
        )
        if best is None or candidate.bracket_ns < best.bracket_ns:
            best = candidate
    assert best is not None
    return best


def better_clock(a: ClockMap | None, b: ClockMap) -> ClockMap:
    return b if a is None or b.bracket_ns < a.bracket_ns else a


class Callback(NamedTuple):
    """What one stream callback saw: buffer time (DAC or ADC), callback time, position, and
    whether PortAudio flagged an underflow or overflow."""

    buffer_time: float
    current_time: float
    frames_before: int
    frames: int
    flagged: bool = False


def settled(callbacks: Sequence[Callback], rate: int) -> list[Callback]:
    """The callbacks whose buffer times can be trusted (see module docstring); [] if none yet."""
    paced = [
        cb
        for prev, cb in zip(callbacks, callbacks[1:], strict=False)
        if cb.current_time - prev.current_time >= 0.25 * prev.frames / rate
    ]
    origins = [cb.buffer_time - cb.frames_before / rate for cb in paced]
    for start in range(len(paced) - SETTLE_WINDOW + 1):
        window = origins[start : start + SETTLE_WINDOW]
        if max(window) - min(window) <= SETTLE_TOLERANCE_S:
            return paced[start:]
    return []


def _segment(callbacks: Sequence[Callback], frame: int) -> Sequence[Callback]:
    """The run of callbacks between flagged ones that ``frame`` belongs to."""
    start = 0
    for k, cb in enumerate(callbacks):
        if k and cb.flagged:
            if cb.frames_before > frame:
                return callbacks[start:k]
            start = k
    return callbacks[start:]


def time_of_frame(callbacks: Sequence[Callback], frame: int, rate: int) -> float:
    """Stream-clock time at which ``frame`` met the converter (see module docstring).

    Uses the settled callbacks of ``frame``'s segment; with none (a very short sound, or a
    segment still settling) falls back to every callback after the first, then to the first.
    """
    segment = _segment(callbacks, frame)
    pool = settled(segment, rate) or list(segment[1:]) or list(segment[:1]) or list(callbacks[:1])
    if not pool:
        raise ValueError("no callbacks")
    positions = np.array([cb.frames_before for cb in pool], dtype=np.float64)
    origins = np.array([cb.buffer_time for cb in pool]) - positions / rate
    near = np.abs(positions - frame) <= LONG_S * rate
    span = positions[near]
    if len(span) and (span.min() <= frame - LONG_S * rate or span.max() >= frame + LONG_S * rate):
        return _fitted_origin(span, origins[near], frame) + frame / rate
    anchor = positions - positions[0] <= ANCHOR_S * rate
    return float(np.median(origins[anchor])) + frame / rate


def _fitted_origin(positions: np.ndarray, origins: np.ndarray, frame: int) -> float:
    """A straight line through (position, origin), refitted without its outliers, at ``frame``."""
    x, y = positions - positions[0], origins - origins[0]  # small numbers keep the fit exact
    keep = np.ones(len(x), dtype=bool)
    for _ in range(3):
        slope, intercept = np.polyfit(x[keep], y[keep], 1)
        residual = np.abs(y - (intercept + slope * x))
        if (residual < FIT_OUTLIER_S).sum() < 2:
            break
        keep = residual < FIT_OUTLIER_S
    return float(origins[0] + intercept + slope * (frame - positions[0]))
