"""Stream clock to wall clock, and when a given sample met the converter.

PortAudio stamps each callback with the stream clock (``currentTime``) and the time the
buffer meets the DAC (output) or left the ADC (input). That clock is CLOCK_REALTIME on
Linux/ALSA but not on every host API, so its offset to the wall clock is measured by
bracketing ``Pa_GetStreamTime`` between wall-clock reads, never assumed.

The first callbacks of an output stream fill its buffer before the device runs, and their
DAC times are wrong by up to tens of milliseconds. So the time of sample ``i`` is estimated
from *paced* callbacks only (ones that waited for the device), after the first few agree,
as the median of ``buffer_time_k + (i - frames_before_k) / rate`` over the callbacks
nearest to ``i``.
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
# Callbacks within this much audio of the sample in question take part in its estimate.
NEIGHBOURHOOD_S = 0.5


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
    """What one stream callback saw: buffer time (DAC or ADC), callback time, position."""

    buffer_time: float
    current_time: float
    frames_before: int
    frames: int


def settled(callbacks: Sequence[Callback], rate: int) -> list[Callback]:
    """The callbacks whose buffer times can be trusted (see module docstring); [] if none yet."""
    paced = [
        cb
        for prev, cb in zip(callbacks, callbacks[1:])
        if cb.current_time - prev.current_time >= 0.25 * prev.frames / rate
    ]
    origins = [cb.buffer_time - cb.frames_before / rate for cb in paced]
    for start in range(len(paced) - SETTLE_WINDOW + 1):
        window = origins[start : start + SETTLE_WINDOW]
        if max(window) - min(window) <= SETTLE_TOLERANCE_S:
            return paced[start:]
    return []


def time_of_frame(callbacks: Sequence[Callback], frame: int, rate: int) -> float:
    """Stream-clock time at which ``frame`` met the converter, from the callbacks nearest it.

    Uses settled callbacks; with too few (a very short sound) falls back to every callback
    after the first, then to the first.
    """
    pool = settled(callbacks, rate) or list(callbacks[1:]) or list(callbacks[:1])
    if not pool:
        raise ValueError("no callbacks")
    positions = np.array([cb.frames_before for cb in pool], dtype=np.int64)
    estimates = np.array([cb.buffer_time + (frame - cb.frames_before) / rate for cb in pool])
    distance = np.abs(positions - frame)
    near = distance <= max(NEIGHBOURHOOD_S * rate, np.sort(distance)[min(4, len(pool) - 1)])
    return float(np.median(estimates[near]))
